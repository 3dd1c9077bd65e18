// The user in the browser, over plain HTTP: follows an authorization URL, signs in through
// mcpauth's login form when there is no session yet, and approves (or denies) on the consent
// page. Shared by the interop scripts.

import assert from 'node:assert/strict';

// A tiny cookie jar: enough for the login pages (names are unique per flow).
const jar = new Map();
function remember(response) {
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const eq = pair.indexOf('=');
    jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
}
const cookieHeader = () => [...jar].filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join('; ');

async function request(url, options = {}) {
  const response = await fetch(url, { ...options, redirect: 'manual', headers: { ...(options.headers ?? {}), cookie: cookieHeader() } });
  remember(response);
  return response;
}

/** The page's form posting to a URL ending in `suffix` (pages also carry a sign-out form). */
function formOf(html, suffix) {
  const decode = (action) => action.replaceAll('&#x2f;', '/').replaceAll('&#47;', '/');
  const forms = [...html.matchAll(/<form method="post" action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)];
  const form = forms.find(([, action]) => decode(action).endsWith(suffix));
  const csrf = form?.[2].match(/name="csrf_token" value="([^"]+)"/)?.[1];
  assert.ok(form && csrf, `page has no form posting to …${suffix}:\n${html}`);
  return { action: decode(form[1]), csrf };
}

async function post(url, fields) {
  return request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
}

export const log = (step, detail = '') => console.log(`ok - ${step}${detail ? `: ${detail}` : ''}`);

/**
 * Follows `authorizationUrl` as the user `email`/`password` and approves what the consent page
 * shows; returns the callback URL the browser is sent to. With `tryWrongPassword`, first
 * checks that a wrong password is refused. `expectOnConsent` is a RegExp the consent page
 * must match.
 */
export async function loginAndApprove(authorizationUrl, { email, password, tryWrongPassword = false, expectOnConsent }) {
  const start = await request(authorizationUrl);
  assert.equal(start.status, 303, `authorize answered ${start.status}: ${await start.text()}`);
  let page = new URL(start.headers.get('location'), authorizationUrl);
  assert.equal(page.origin, authorizationUrl.origin, `the authorization server sent the browser away at once: ${page}`);
  log('authorization request accepted', page.pathname);

  let response = await request(page);
  assert.equal(response.status, 200);
  let html = await response.text();
  if (/name="password"/.test(html)) {
    const login = formOf(html, '/login');
    if (tryWrongPassword) {
      const wrong = await post(new URL(login.action, page), { csrf_token: login.csrf, email, password: 'not-the-password' });
      assert.equal(wrong.status, 401, 'a wrong password must be refused');
    }
    const signedIn = await post(new URL(login.action, page), { csrf_token: login.csrf, email, password });
    assert.equal(signedIn.status, 303, `login answered ${signedIn.status}`);
    log('signed in through the login form');
    page = new URL(signedIn.headers.get('location'), page);
    response = await request(page);
    html = await response.text();
  } else {
    log('already signed in: straight to consent');
  }
  if (expectOnConsent) assert.match(html, expectOnConsent);
  const consent = formOf(html, '/consent');
  const approved = await post(new URL(consent.action, page), { csrf_token: consent.csrf, decision: 'approve' });
  assert.equal(approved.status, 303, `consent answered ${approved.status}`);
  log('approved on the consent page');
  return new URL(approved.headers.get('location'));
}

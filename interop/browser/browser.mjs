// Drives headless Chromium (Debian's /usr/bin/chromium, through playwright-core) through
// mcpauth-server's pages, the way a person would: reads the page, fills the form, clicks.
//
//   node browser.mjs authorize '<json>'   an authorization request: sign in if asked,
//                                         approve or deny on the consent page if shown
//   node browser.mjs device '<json>'      the device page: sign in if asked, approve the code
//   node browser.mjs framed '<json>'      another site's page that frames one of ours: what
//                                         the frame shows and what the console says
//   node browser.mjs federated '<json>'   an authorization request at a server with upstream
//                                         providers: continue with one on the chooser, sign
//                                         in and consent on the upstream's own pages
//   node browser.mjs device-federated '<json>'  the device page, signing in upstream
//   node browser.mjs walk '<json>'        another server's sign-in and consent pages, until
//                                         the browser reaches `until`
//   node browser.mjs cross-origin '<json>'  a page of another origin calls an MCP server with
//                                         fetch (CORS enforced by Chromium): without a token,
//                                         with one, and its metadata document
//   node browser.mjs admin '<json>'       the admin console as an administrator: sign in, revoke
//                                         a user's grant for a client, disable a user, rotate
//                                         a key, then read the audit trail
//   node browser.mjs inspector '<json>'   the MCP Inspector's web UI: connect to the server
//                                         it was started for, through its OAuth flow (sign in
//                                         and consent at mcpauth), then list the tools
//
// The JSON names the URL to open, the user's email and password, the profile directory (one
// per "browser", so sessions persist between runs) and where screenshots go. The script
// prints one JSON line describing what it saw; the Rust test (crates/server/tests/browser.rs)
// decides whether that is right.
import { chromium } from "playwright-core";

const [command, json] = process.argv.slice(2);
const input = JSON.parse(json);

// Flags that keep Chromium from reaching out to the network at start-up (closed here).
const context = await chromium.launchPersistentContext(input.profile, {
  executablePath: input.chromium ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: input.viewport ?? { width: 720, height: 900 },
});

const page = context.pages()[0] ?? (await context.newPage());
const seen = { pages: [], console: [] };
page.on("console", (message) => seen.console.push(message.text()));
// What failed to load, for the test's failure message.
page.on("requestfailed", (request) =>
  console.error(`request failed: ${request.url()} ${request.failure()?.errorText ?? ""}`),
);
page.on("framenavigated", (frame) => {
  if (frame === page.mainFrame()) console.error(`at ${frame.url()}`);
});

async function remember(name) {
  // Pages without a heading (another site's) must not wait out the default 30 s.
  const headings = page.locator("h1");
  const heading = (await headings.count()) > 0 ? ((await headings.first().textContent()) ?? "") : "";
  seen.pages.push({ name, heading: heading.trim(), text: await page.locator("body").innerText() });
  if (input.screenshots) {
    const path = `${input.screenshots}/${input.prefix ?? ""}${name}.png`;
    await page.screenshot({ path, fullPage: true });
  }
}

async function signInIfAsked(name) {
  if ((await page.locator('input[name="password"]').count()) === 0) return false;
  await remember(name);
  await page.getByLabel("Email").fill(input.email);
  await page.getByLabel("Password").fill(input.password);
  await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Sign in" }).click()]);
  return true;
}

// The device page's code form (filled in from verification_uri_complete): check the code is
// there and continue to the confirmation.
async function continueWithCode(name) {
  const code = page.locator('input[name="user_code"][type="text"]');
  if ((await code.count()) === 0) return;
  await remember(name);
  seen.prefilled_code = await code.inputValue();
  await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Continue", exact: true }).click()]);
}

try {
  await page.goto(input.url);
  if (command === "authorize") {
    // The client's redirect URI is a loopback listener of the test; the final page is its.
    const atClient = () => page.url().startsWith(input.redirect_uri);
    seen.signedIn = await signInIfAsked("login");
    if (!atClient()) {
      await remember("consent");
      seen.consent = true;
      if (input.remember) await page.getByLabel(/Remember this decision/).check();
      const button = input.approve ? "Approve" : "Deny";
      await Promise.all([
        page.waitForURL((url) => url.href.startsWith(input.redirect_uri)),
        page.getByRole("button", { name: button, exact: true }).click(),
      ]);
    } else {
      seen.consent = false;
    }
    seen.final_url = page.url();
    seen.final_text = await page.locator("body").innerText();
  } else if (command === "device") {
    seen.signedIn = await signInIfAsked("device-login");
    await continueWithCode("device-entry");
    await remember("device-confirm");
    await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Approve", exact: true }).click()]);
    await remember("device-done");
  } else if (command === "federated" || command === "device-federated") {
    // `federated`: an authorization request; ends at the client's redirect URI.
    // `device-federated`: the device page without a session; ends at the device page, where
    // the code is approved.
    const back = command === "federated" ? input.redirect_uri : input.return_to;
    const isBack = () => page.url().startsWith(back);
    // The upstream's redirect back to mcpauth, which the test replays.
    page.on("request", (request) => {
      if (request.url().includes("/upstream/") && request.url().includes("/callback?")) {
        seen.callback_url = request.url();
      }
    });
    await remember(command === "federated" ? "chooser" : "device-sign-in");
    const first = page.url();
    await Promise.all([
      page.waitForURL((url) => url.href !== first),
      page.getByRole("button", { name: `Continue with ${input.provider}` }).click(),
    ]);
    // The upstream's own pages (oidc-provider's development sign-in and consent): fill what
    // is asked, submit, until the browser is back.
    for (let step = 0; step < 6 && !isBack(); step += 1) {
      await page.waitForLoadState("load");
      if (isBack()) break;
      await remember(`upstream-${step}`);
      const login = page.locator('input[name="login"]');
      if ((await login.count()) > 0) {
        await login.fill(input.upstream_login);
        await page.locator('input[name="password"]').fill("any password");
      }
      const before = page.url();
      await Promise.all([
        page.waitForURL((url) => url.href !== before),
        page.locator('button[type="submit"]').first().click(),
      ]);
    }
    await page.waitForURL((url) => url.href.startsWith(back));
    seen.final_url = page.url();
    if (command === "device-federated") {
      await page.waitForLoadState("load");
      await continueWithCode("device-federated-entry");
      await remember("device-federated-confirm");
      await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Approve", exact: true }).click()]);
      await remember("device-federated-done");
    }
  } else if (command === "walk") {
    // Another authorization server's own pages (oidc-provider's development sign-in and
    // consent): fill what is asked, submit, until the browser reaches `until`.
    const done = () => page.url().startsWith(input.until);
    for (let step = 0; step < 8 && !done(); step += 1) {
      await page.waitForLoadState("load");
      if (done()) break;
      await remember(`walk-${step}`);
      const login = page.locator('input[name="login"]');
      if ((await login.count()) > 0) {
        await login.fill(input.login);
        await page.locator('input[name="password"]').fill("any password");
      }
      const before = page.url();
      await Promise.all([
        page.waitForURL((url) => url.href !== before),
        page.locator('button[type="submit"]').first().click(),
      ]);
    }
    await page.waitForURL((url) => url.href.startsWith(input.until));
    seen.final_url = page.url();
  } else if (command === "inspector") {
    // The Inspector's own page: its server card's switch connects, which sends the browser
    // to the authorization server when the MCP server answers 401.
    await page.waitForLoadState("load");
    await remember("inspector");
    await page.locator('input[type="checkbox"]').first().click({ force: true });
    await page.waitForURL((url) => url.href.startsWith(input.issuer), { timeout: 30000 });
    seen.authorization_url = page.url();
    seen.signedIn = await signInIfAsked("inspector-login");
    await remember("inspector-consent");
    await Promise.all([
      page.waitForURL((url) => url.href.startsWith(input.url), { timeout: 30000 }),
      page.getByRole("button", { name: "Approve", exact: true }).click(),
    ]);
    seen.back_at = page.url();
    await page.getByText("Connected", { exact: true }).first().waitFor({ timeout: 30000 });
    await remember("inspector-connected");
    await page.getByText("Tools", { exact: true }).first().click();
    for (const name of input.expect_tools) {
      await page.getByText(name, { exact: true }).first().waitFor({ timeout: 30000 });
    }
    await remember("inspector-tools");
  } else if (command === "cross-origin") {
    // What a browser-based MCP client can read; a CORS refusal is a TypeError here.
    seen.calls = await page.evaluate(async ({ resource, metadata, token }) => {
      const initialize = JSON.stringify({
        jsonrpc: "2.0", id: 1, method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "page", version: "1" } },
      });
      const call = async (url, init) => {
        try {
          const response = await fetch(url, init);
          return {
            status: response.status,
            session: response.headers.get("mcp-session-id"),
            challenge: response.headers.get("www-authenticate"),
            body: await response.text(),
          };
        } catch (error) {
          return { error: String(error) };
        }
      };
      const headers = {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2025-06-18",
      };
      return {
        anonymous: await call(resource, { method: "POST", headers, body: initialize }),
        authorized: await call(resource, {
          method: "POST", headers: { ...headers, authorization: `Bearer ${token}` }, body: initialize,
        }),
        metadata: await call(metadata, { headers: { "mcp-protocol-version": "2025-06-18" } }),
      };
    }, input);
  } else if (command === "admin") {
    // Signed out, the console shows its sign-in form; signed in, the users page.
    seen.signedIn = await signInIfAsked("admin-sign-in");
    const go = async (path, name) => {
      await page.goto(`${input.base}/admin${path}`);
      await remember(name);
    };
    // Click `button` in the table row that mentions `text`; wait for the page it leads to.
    const clickInRow = async (text, button) => {
      const row = page.locator("tbody tr", { hasText: text });
      await Promise.all([page.waitForLoadState("load"), row.getByRole("button", { name: button, exact: true }).click()]);
    };
    await remember("admin-users");
    // The user's grants, found from the users page, and the one for the client revoked.
    await Promise.all([
      page.waitForLoadState("load"),
      page.locator("tbody tr", { hasText: input.user }).getByRole("link", { name: "Grants" }).click(),
    ]);
    await remember("admin-grants");
    seen.grants_text = await page.locator("main").innerText();
    await clickInRow(input.client_id, "Revoke");
    await go(`/grants?user=${encodeURIComponent(input.user)}&all=1`, "admin-grants-revoked");
    seen.revoked_text = await page.locator("main").innerText();
    // The user disabled.
    await go("/users", "admin-users-before");
    await clickInRow(input.user, "Disable");
    await remember("admin-users-disabled");
    seen.users_text = await page.locator("main").innerText();
    // A key rotated.
    await go("/keys", "admin-keys");
    await page.getByLabel("Algorithm").selectOption("EdDSA");
    await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Rotate: add a new key" }).click()]);
    await remember("admin-keys-rotated");
    seen.keys_rows = await page.locator("tbody tr").count();
    await go("/clients", "admin-clients");
    // The trail, then filtered by the client.
    await go("/audit", "admin-audit");
    seen.audit_text = await page.locator("main").innerText();
    await page.getByLabel("Client").fill(input.client_id);
    await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Filter" }).click()]);
    await remember("admin-audit-filtered");
    seen.filtered_text = await page.locator("main").innerText();
  } else if (command === "framed") {
    await page.locator("iframe").waitFor();
    const frame = page.frames().find((f) => f !== page.mainFrame());
    // A refused frame never fires `load`: wait for Chromium's refusal message instead.
    if (!seen.console.some((line) => line.includes("frame-ancestors"))) {
      await page
        .waitForEvent("console", { predicate: (m) => m.text().includes("frame-ancestors"), timeout: 10000 })
        .catch(() => {});
    }
    seen.frame_url = frame.url();
    seen.frame_inputs = await frame.locator("input").count().catch(() => 0);
    await remember("framed");
  } else {
    throw new Error(`unknown command ${command}`);
  }
  console.log(JSON.stringify(seen));
} finally {
  await context.close();
}

// A DPoP client no one here wrote: oauth4webapi (the OAuth library under openid-client), from
// npm, against mcpauth-server (nonces on) and an example MCP server behind mcpauth-http. It
// registers, authorizes with PKCE and `dpop_jkt` through the real login form, redeems the code
// with a proof (answering the server's use_dpop_nonce), calls the MCP server with the bound
// token, refreshes with a proof; and checks what a thief gets: a captured proof replayed, the
// token as Bearer, the token with a proof by another key, the refresh token without the key.
//
// With RS_NONCES=1 the MCP server asks for its own nonce (RFC 9449 §9), answered the same way.
//
// Env: ISSUER, MCP_URL, USER_EMAIL, USER_PASSWORD, RS_NONCES. Prints "interop: every step
// passed".

import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { loginAndApprove, log } from '../ts-sdk/user.mjs';

const issuer = new URL(process.env.ISSUER);
const mcp = new URL(process.env.MCP_URL);
const redirectUri = 'http://127.0.0.1:53682/callback';
const insecure = { [oauth.allowInsecureRequests]: true }; // loopback http test servers

const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
assert.ok(as.dpop_signing_alg_values_supported?.includes('ES256'), 'the server advertises ES256 DPoP proofs');
log('discovered', `${as.issuer} takes DPoP proofs: ${as.dpop_signing_alg_values_supported.join(' ')}`);

const registered = await fetch(as.registration_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ redirect_uris: [redirectUri], token_endpoint_auth_method: 'none', client_name: 'oauth4webapi DPoP peer' }),
});
assert.equal(registered.status, 201);
const client = { client_id: (await registered.json()).client_id };
const clientAuth = oauth.None();
log('registered', client.client_id);

const keyPair = await oauth.generateKeyPair('ES256');
// Every request the library makes is seen here, so the test can replay what it sent.
const sent = [];
const capture = (url, init) => {
  sent.push({ url: String(url), headers: new Headers(init.headers), body: init.body });
  return fetch(url, init);
};
const DPoP = oauth.DPoP(client, keyPair);
const options = { DPoP, [oauth.customFetch]: capture, ...insecure };

const verifier = oauth.generateRandomCodeVerifier();
const authorizationUrl = new URL(as.authorization_endpoint);
for (const [name, value] of Object.entries({
  response_type: 'code',
  client_id: client.client_id,
  redirect_uri: redirectUri,
  code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  scope: 'mcp:tools',
  resource: mcp.href,
  dpop_jkt: await DPoP.calculateThumbprint(),
})) authorizationUrl.searchParams.set(name, value);
const callback = await loginAndApprove(authorizationUrl, { email: process.env.USER_EMAIL, password: process.env.USER_PASSWORD });
const parameters = oauth.validateAuthResponse(as, client, callback, oauth.expectNoState);

/** A token request, retried once when the server asks for its nonce (RFC 9449 §8). */
async function withNonce(request, process) {
  try {
    return { tokens: await process(await request()), retried: false };
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return { tokens: await process(await request()), retried: true };
  }
}

const redeemed = await withNonce(
  () => oauth.authorizationCodeGrantRequest(as, client, clientAuth, parameters, redirectUri, verifier, { ...options, additionalParameters: { resource: mcp.href } }),
  (response) => oauth.processAuthorizationCodeResponse(as, client, response),
);
assert.ok(redeemed.retried, 'the server (dpop_nonces on) asked for its nonce first');
assert.equal(redeemed.tokens.token_type, 'dpop');
log('code redeemed with a proof', 'use_dpop_nonce answered, token_type DPoP');
const accessToken = redeemed.tokens.access_token;
const claims = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
assert.equal(claims.cnf?.jkt, await DPoP.calculateThumbprint(), 'the token is bound to the key (cnf.jkt)');

const initialize = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth4webapi-dpop-peer', version: '1' } },
});
const mcpHeaders = () => new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
/** A call of the MCP server, retried once when it asks for its nonce (RFC 9449 §9). */
let resourceNonceAsked = false;
async function callMcp(token, callOptions) {
  const call = () => oauth.protectedResourceRequest(token, 'POST', mcp, mcpHeaders(), initialize, callOptions);
  try {
    return await call();
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    resourceNonceAsked = true;
    return await call();
  }
}
const called = await callMcp(accessToken, options);
assert.equal(called.status, 200, `the MCP server answered ${called.status}: ${called.headers.get('www-authenticate')}`);
await called.text();
if (process.env.RS_NONCES === '1') {
  assert.ok(resourceNonceAsked, 'the MCP server (nonces on) asked for its nonce first');
  log('the MCP server asked for its nonce', 'use_dpop_nonce answered with DPoP-Nonce');
}
const request = sent.at(-1);
assert.match(request.headers.get('authorization'), /^DPoP /);
log('MCP server accepted the bound token with a proof', mcp.href);

// A thief who captured that request: the same proof again is a replay.
const replayed = await fetch(mcp, { method: 'POST', headers: request.headers, body: initialize });
assert.equal(replayed.status, 401, 'a replayed proof is refused');
log('a replayed proof is refused', replayed.headers.get('www-authenticate'));

// The token alone: as Bearer, and as DPoP with a proof by the thief's own key.
const asBearer = await fetch(mcp, { method: 'POST', headers: { ...Object.fromEntries(mcpHeaders()), authorization: `Bearer ${accessToken}` }, body: initialize });
assert.equal(asBearer.status, 401, 'a bound token presented as Bearer is refused');
const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'));
// The thief answers a nonce request too, so that the key is what is refused.
const forged = await callMcp(accessToken, { DPoP: thief, ...insecure }).catch((error) => error);
const forgedStatus = forged instanceof Response ? forged.status : forged?.response?.status ?? forged?.status;
assert.equal(forgedStatus, 401, `a proof by another key is refused (got ${forged})`);
log('a stolen token is useless without the key', 'Bearer and a foreign key refused');

// The refresh token of this public client is bound too.
const stolenRefresh = await fetch(as.token_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: redeemed.tokens.refresh_token, client_id: client.client_id }),
});
assert.equal(stolenRefresh.status, 400);
assert.equal((await stolenRefresh.json()).error, 'invalid_dpop_proof');
const refreshed = await withNonce(
  () => oauth.refreshTokenGrantRequest(as, client, clientAuth, redeemed.tokens.refresh_token, { ...options, additionalParameters: { resource: mcp.href } }),
  (response) => oauth.processRefreshTokenResponse(as, client, response),
);
assert.equal(refreshed.tokens.token_type, 'dpop');
const again = await callMcp(refreshed.tokens.access_token, options);
assert.equal(again.status, 200);
await again.text();
log('refreshed with a proof by the same key', 'the refresh token without it: invalid_dpop_proof');

console.log('interop: every step passed');

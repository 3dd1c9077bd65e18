// Interop test: the official MCP TypeScript SDK client against mcpauth.
//
// The SDK does everything a real MCP client does: it gets 401 from the MCP server, reads
// WWW-Authenticate, fetches the RFC 9728 and RFC 8414 metadata, registers dynamically
// (RFC 7591), and builds the PKCE authorization request. This script plays the user: it logs
// in and approves through mcpauth's real HTML forms over HTTP, checks the authorization
// response (state, and the RFC 9207 `iss` the SDK itself does not check), hands the code back
// to the SDK, lists and calls tools, and finally makes the SDK refresh its token.
//
// Usage: node interop.mjs   (MCP_URL, ISSUER, USER_EMAIL, USER_PASSWORD in the environment;
// with CLIENT_METADATA_URL set, the client identifies itself with that Client ID Metadata
// Document instead of registering dynamically)

import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { InMemoryProvider } from './provider.mjs';
import { log, loginAndApprove } from './user.mjs';

const { MCP_URL, ISSUER, USER_EMAIL, USER_PASSWORD, CLIENT_METADATA_URL, EXPECT_REGISTRATION } = process.env;
// The client offers a metadata document; did the server accept it, or did the client register?
const USES_DOCUMENT = Boolean(CLIENT_METADATA_URL) && !EXPECT_REGISTRATION;
for (const [name, value] of Object.entries({ MCP_URL, ISSUER, USER_EMAIL, USER_PASSWORD })) {
  if (!value) throw new Error(`${name} is not set`);
}
const REDIRECT_URL = 'http://127.0.0.1:53682/callback';

const provider = new InMemoryProvider({ clientName: 'MCP TypeScript SDK interop client', redirectUrl: REDIRECT_URL, clientMetadataUrl: CLIENT_METADATA_URL });
const mcpUrl = new URL(MCP_URL);

// 1. Unauthenticated connect: 401 → discovery → registration → authorization URL.
let transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
let client = new Client({ name: 'mcpauth-interop', version: '1.0.0' });
await assert.rejects(client.connect(transport), UnauthorizedError);
assert.ok(provider.client?.client_id, 'the SDK must have a client identity');
if (USES_DOCUMENT) {
  assert.equal(provider.client.client_id, CLIENT_METADATA_URL, 'the metadata document URL is the client_id (no registration)');
} else {
  assert.notEqual(provider.client.client_id, CLIENT_METADATA_URL, 'the client registered dynamically');
}
assert.ok(provider.authorizationUrl, 'the SDK must have built an authorization URL');
const authUrl = provider.authorizationUrl;
assert.equal(`${authUrl.origin}${authUrl.pathname}`, `${ISSUER}/authorize`);
assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
assert.equal(authUrl.searchParams.get('resource'), MCP_URL);
log(USES_DOCUMENT ? '401 → discovery → Client ID Metadata Document' : '401 → discovery → dynamic registration', `client_id ${provider.client.client_id}`);

// 2. The user authorizes; check the authorization response.
const callback = await loginAndApprove(authUrl, {
  email: USER_EMAIL,
  password: USER_PASSWORD,
  tryWrongPassword: true,
  expectOnConsent: /Authorize MCP TypeScript SDK interop client/,
});
assert.equal(`${callback.origin}${callback.pathname}`, REDIRECT_URL);
assert.equal(callback.searchParams.get('state'), provider.lastState, 'state must come back untouched');
assert.equal(callback.searchParams.get('iss'), ISSUER, 'RFC 9207 iss must name the issuer');
const code = callback.searchParams.get('code');
assert.ok(code);
log('authorization response carries code, state and iss');

// 3. The SDK exchanges the code (PKCE verifier, resource) and connects.
await transport.finishAuth(code);
assert.ok(provider.savedTokens?.access_token && provider.savedTokens?.refresh_token);
transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
client = new Client({ name: 'mcpauth-interop', version: '1.0.0' });
await client.connect(transport);
const { tools } = await client.listTools();
assert.deepEqual(tools.map((t) => t.name).sort(), ['admin_report', 'echo', 'whoami']);
log('code exchanged, connected, tools listed', tools.map((t) => t.name).join(', '));

const who = JSON.parse((await client.callTool({ name: 'whoami', arguments: {} })).content[0].text);
assert.match(who.sub, /^user_/);
assert.equal(who.client_id, provider.client.client_id);
assert.deepEqual(who.aud, [MCP_URL]);
log('whoami', JSON.stringify(who));

// 4. Refresh: the access token stops working; the SDK must refresh (rotating the refresh
// token) and retry by itself.
const before = provider.savedTokens;
provider.savedTokens = { ...before, access_token: 'revoked-or-expired' };
const echoed = await client.callTool({ name: 'echo', arguments: { text: 'after refresh' } });
assert.equal(echoed.content[0].text, 'after refresh');
assert.notEqual(provider.savedTokens.access_token, 'revoked-or-expired');
assert.notEqual(provider.savedTokens.refresh_token, before.refresh_token, 'the refresh token must rotate');
log('SDK refreshed after invalid_token and retried');

// 5. A retry with the rotated-out refresh token inside the grace window (its answer was lost,
// say) gets the same successor the SDK saved: one chain, not a second family (checked at the
// token endpoint).
const tokenEndpoint = `${ISSUER}/token`;
const refreshWith = (token) => fetch(tokenEndpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: provider.client.client_id }),
});
const retried = await refreshWith(before.refresh_token);
assert.equal(retried.status, 200);
assert.equal((await retried.json()).refresh_token, provider.savedTokens.refresh_token);
log('a retry with the rotated refresh token gets the same successor');

await client.close();
console.log('interop: every step passed');

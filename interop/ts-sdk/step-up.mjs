// Interop test: the MCP TypeScript SDK 2.x client (`@modelcontextprotocol/client`) against an
// MCP server protected by mcpauth (the axum or the actix-web example), through step-up.
//
// The SDK gets 401, discovers (RFC 9728, RFC 8414), registers (RFC 7591), asks for the scope
// the challenge names (`mcp:tools`), and the user signs in and approves. It lists and calls
// tools. Then it calls `admin_report`, which needs `mcp:admin`: the server answers 403
// `insufficient_scope`, the SDK asks for the union of what it holds and what is needed (it
// must not refresh: a refresh cannot widen scope), the user approves the new scope, and the
// retried call succeeds with a token carrying both scopes.
//
// Usage: node step-up.mjs   (MCP_URL, ISSUER, USER_EMAIL, USER_PASSWORD in the environment)

import assert from 'node:assert/strict';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { InMemoryProvider } from './provider.mjs';
import { log, loginAndApprove } from './user.mjs';

const { MCP_URL, ISSUER, USER_EMAIL, USER_PASSWORD } = process.env;
for (const [name, value] of Object.entries({ MCP_URL, ISSUER, USER_EMAIL, USER_PASSWORD })) {
  if (!value) throw new Error(`${name} is not set`);
}
const REDIRECT_URL = 'http://127.0.0.1:53683/callback';
const user = { email: USER_EMAIL, password: USER_PASSWORD };

const provider = new InMemoryProvider({ clientName: 'MCP TypeScript SDK 2 interop client', redirectUrl: REDIRECT_URL, cacheDiscovery: true });
const mcpUrl = new URL(MCP_URL);
const scopesOf = (url) => new Set((url.searchParams.get('scope') ?? '').split(' ').filter(Boolean));

// 1. Unauthenticated connect: 401 → discovery → registration → authorization URL for the
// scope the challenge names.
let transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
let client = new Client({ name: 'mcpauth-interop-v2', version: '1.0.0' });
await assert.rejects(client.connect(transport), UnauthorizedError);
assert.ok(provider.client?.client_id, 'the SDK must have registered');
let authUrl = provider.authorizationUrl;
assert.ok(authUrl, 'the SDK must have built an authorization URL');
assert.equal(`${authUrl.origin}${authUrl.pathname}`, `${ISSUER}/authorize`);
assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
assert.equal(authUrl.searchParams.get('resource'), MCP_URL);
assert.deepEqual([...scopesOf(authUrl)], ['mcp:tools'], 'the first request asks for the challenged scope only');
log('401 → discovery → dynamic registration', `client_id ${provider.client.client_id}, scope ${authUrl.searchParams.get('scope')}`);

// 2. The user signs in and approves; the SDK checks state and the RFC 9207 iss itself.
let callback = await loginAndApprove(authUrl, { ...user, expectOnConsent: /MCP TypeScript SDK 2 interop client/ });
assert.equal(callback.searchParams.get('state'), provider.lastState);
assert.equal(callback.searchParams.get('iss'), ISSUER);
await transport.finishAuth(callback.searchParams);
assert.equal(provider.savedTokens?.scope, 'mcp:tools');
log('code exchanged (iss checked by the SDK)', `scope ${provider.savedTokens.scope}`);

// 3. Connected: tools listed and called.
transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
client = new Client({ name: 'mcpauth-interop-v2', version: '1.0.0' });
await client.connect(transport);
const { tools } = await client.listTools();
assert.deepEqual(tools.map((t) => t.name).sort(), ['admin_report', 'echo', 'whoami']);
const who = JSON.parse((await client.callTool({ name: 'whoami', arguments: {} })).content[0].text);
assert.match(who.sub, /^user_/);
assert.equal(who.client_id, provider.client.client_id);
assert.deepEqual(who.aud, [MCP_URL]);
assert.equal(who.scope, 'mcp:tools');
log('connected, tools listed, whoami', JSON.stringify(who));

// 4. Step-up: admin_report needs mcp:admin. The call is refused with 403 insufficient_scope;
// the SDK starts a new authorization for the union of scopes instead of refreshing.
provider.authorizationUrl = undefined;
const heldRefreshToken = provider.savedTokens.refresh_token;
await assert.rejects(client.callTool({ name: 'admin_report', arguments: {} }), UnauthorizedError);
authUrl = provider.authorizationUrl;
assert.ok(authUrl, 'insufficient_scope must lead to a new authorization request');
assert.deepEqual([...scopesOf(authUrl)].sort(), ['mcp:admin', 'mcp:tools'], 'the step-up asks for held + needed scopes');
assert.equal(provider.savedTokens.refresh_token, heldRefreshToken, 'no refresh was attempted in place of the step-up');
log('403 insufficient_scope → new authorization request', authUrl.searchParams.get('scope'));

callback = await loginAndApprove(authUrl, { ...user, expectOnConsent: /mcp:admin/ });
assert.equal(callback.searchParams.get('state'), provider.lastState);
await transport.finishAuth(callback.searchParams);
assert.deepEqual(provider.savedTokens.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
log('stepped up', `scope ${provider.savedTokens.scope}`);

const report = await client.callTool({ name: 'admin_report', arguments: {} });
assert.notEqual(report.isError, true, JSON.stringify(report));
assert.match(report.content[0].text, /^report for user_/);
const whoAfter = JSON.parse((await client.callTool({ name: 'whoami', arguments: {} })).content[0].text);
assert.deepEqual(whoAfter.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
log('the retried admin_report call succeeds', report.content[0].text);

// 5. Refresh keeps the stepped-up scope and rotates the refresh token.
const before = provider.savedTokens;
provider.savedTokens = { ...before, access_token: 'revoked-or-expired' };
const echoed = await client.callTool({ name: 'echo', arguments: { text: 'after refresh' } });
assert.equal(echoed.content[0].text, 'after refresh');
assert.notEqual(provider.savedTokens.refresh_token, before.refresh_token, 'the refresh token must rotate');
assert.deepEqual(provider.savedTokens.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
log('SDK refreshed after invalid_token and retried; scope kept');

await client.close();
console.log('interop: every step passed');

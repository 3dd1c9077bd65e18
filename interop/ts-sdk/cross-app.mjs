// Interop test: the official MCP TypeScript SDK's cross-app access (enterprise-managed
// authorization, SEP-990) with one mcpauth-server as the enterprise identity provider and
// another as the MCP server's authorization server.
//
// 1. The user signs in at the provider through its real login and consent pages, as an
//    OpenID Connect sign-in (scope `openid`, a `nonce`); the agent redeems the code with
//    `client_secret_post` and keeps the ID token. The SDK has no sign-in of its own for this:
//    its examples take the ID token from "your function to get ID token".
// 2. The SDK's `CrossAppAccessProvider` does the rest: 401 at the MCP server, discovery, token
//    exchange at the provider (`discoverAndRequestJwtAuthGrant`, the ID token as the subject
//    token) for an ID-JAG, the JWT bearer grant at the MCP authorization server, then tools.
//
// Usage: node cross-app.mjs   (MCP_URL, MCP_ISSUER, IDP_ISSUER, IDP_RESOURCE (a resource the
// provider serves, for the sign-in's own access token), USER_EMAIL, USER_PASSWORD,
// IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_REDIRECT_URI, AS_CLIENT_ID, AS_CLIENT_SECRET in the
// environment). The last line of output is JSON: the ID token and refresh token from the
// sign-in, the tools listed, and the access token the SDK holds.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  Client,
  CrossAppAccessProvider,
  StreamableHTTPClientTransport,
  discoverAndRequestJwtAuthGrant,
} from '@modelcontextprotocol/client';
import { log, loginAndApprove } from './user.mjs';

const env = process.env;
const required = ['MCP_URL', 'MCP_ISSUER', 'IDP_ISSUER', 'IDP_RESOURCE', 'USER_EMAIL', 'USER_PASSWORD', 'IDP_CLIENT_ID', 'IDP_CLIENT_SECRET', 'IDP_REDIRECT_URI', 'AS_CLIENT_ID', 'AS_CLIENT_SECRET'];
for (const name of required) {
  if (!env[name]) throw new Error(`${name} is not set`);
}
const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

// 1. The OpenID Connect sign-in at the provider.
const verifier = b64url(randomBytes(32));
const nonce = b64url(randomBytes(16));
const state = b64url(randomBytes(16));
const authorize = new URL(`${env.IDP_ISSUER}/authorize`);
for (const [name, value] of Object.entries({
  response_type: 'code',
  client_id: env.IDP_CLIENT_ID,
  redirect_uri: env.IDP_REDIRECT_URI,
  scope: 'openid',
  resource: env.IDP_RESOURCE,
  nonce,
  state,
  code_challenge: b64url(createHash('sha256').update(verifier).digest()),
  code_challenge_method: 'S256',
})) {
  authorize.searchParams.set(name, value);
}
const callback = await loginAndApprove(authorize, { email: env.USER_EMAIL, password: env.USER_PASSWORD, expectOnConsent: /Know who you are/ });
assert.equal(callback.searchParams.get('state'), state);
assert.equal(callback.searchParams.get('iss'), env.IDP_ISSUER);
const redeemed = await fetch(`${env.IDP_ISSUER}/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    grant_type: 'authorization_code',
    code: callback.searchParams.get('code'),
    redirect_uri: env.IDP_REDIRECT_URI,
    code_verifier: verifier,
    client_id: env.IDP_CLIENT_ID,
    client_secret: env.IDP_CLIENT_SECRET,
  }).toString(),
});
const signIn = await redeemed.json();
assert.equal(redeemed.status, 200, JSON.stringify(signIn));
assert.ok(signIn.id_token, 'an openid sign-in answers an ID token');
const idClaims = claimsOf(signIn.id_token);
assert.equal(idClaims.iss, env.IDP_ISSUER);
assert.equal(idClaims.aud, env.IDP_CLIENT_ID);
assert.equal(idClaims.nonce, nonce, 'the ID token echoes the nonce');
log('signed in at the provider', `ID token for ${idClaims.sub}`);

// 2. The SDK's cross-app access, from the MCP server's 401 on.
let exchanges = 0;
const provider = new CrossAppAccessProvider({
  assertion: async (ctx) => {
    exchanges += 1;
    const result = await discoverAndRequestJwtAuthGrant({
      idpUrl: env.IDP_ISSUER,
      audience: ctx.authorizationServerUrl,
      resource: ctx.resourceUrl,
      idToken: signIn.id_token,
      clientId: env.IDP_CLIENT_ID,
      clientSecret: env.IDP_CLIENT_SECRET,
      scope: ctx.scope,
      fetchFn: ctx.fetchFn,
    });
    const jag = claimsOf(result.jwtAuthGrant);
    assert.equal(jag.aud, env.MCP_ISSUER, 'the ID-JAG is for the MCP authorization server');
    assert.equal(jag.client_id, env.AS_CLIENT_ID, "the agent's id there");
    log('ID-JAG from the provider', `for ${jag.aud}`);
    return result.jwtAuthGrant;
  },
  clientId: env.AS_CLIENT_ID,
  clientSecret: env.AS_CLIENT_SECRET,
  expectedIssuer: env.MCP_ISSUER,
});
const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), { authProvider: provider });
const client = new Client({ name: 'mcpauth-cross-app-interop', version: '1.0.0' });
await client.connect(transport);
const { tools } = await client.listTools();
assert.ok(tools.length > 0, 'the MCP server lists its tools');
log('connected with the user\'s token', `${tools.length} tools`);
assert.equal(exchanges, 1, 'one exchange, no second consent');
await client.close();

console.log(JSON.stringify({
  id_token: signIn.id_token,
  refresh_token: signIn.refresh_token,
  tools: tools.map((t) => t.name),
  access_token: provider.tokens()?.access_token,
}));

// panva's oidc-provider (npm) as the authorization server of an MCP server, for the
// mcpauth client's interop test (crates/client/tests/against_oidc_provider.rs): dynamic
// registration open, PKCE required, RFC 8707 resource indicators issuing RFC 9068 JWT access
// tokens (ES256) for the MCP server, refresh tokens, revocation (RFC 7009). Loopback only.
//
//   node as.mjs '{"port": 4000, "resource": "http://127.0.0.1:3000/mcp"}'
//
// Users sign in on the provider's own development pages with any login name (the password
// is not checked). Prints `ready <issuer>` once it listens.
import Provider from "oidc-provider";
import * as jose from "jose";

const input = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${input.port}`;
const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), alg: "ES256", use: "sig", kid: "es256-1" };

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  // The MCP server reads keys at `{issuer}/jwks.json`.
  routes: { jwks: "/jwks.json" },
  scopes: ["openid", "offline_access", "mcp:tools", "mcp:admin"],
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? input.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== input.resource) throw new Error(`unknown resource ${resource}`);
        return {
          scope: "mcp:tools mcp:admin",
          audience: resource,
          accessTokenFormat: "jwt",
          accessTokenTTL: 3600,
          jwt: { sign: { alg: "ES256" } },
        };
      },
    },
  },
  clientDefaults: { token_endpoint_auth_method: "none", id_token_signed_response_alg: "ES256" },
  issueRefreshToken: async () => true,
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
});
provider.proxy = false;

const server = provider.listen(input.port, "127.0.0.1", () => {
  console.log(`ready ${issuer}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

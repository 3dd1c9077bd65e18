// panva's oidc-provider (npm), configured for the grants and token format scripts/bench loads
// on mcpauth-server: client_credentials issuing RFC 9068 JWT access tokens signed with ES256
// (RFC 8707 resource indicators), refresh-token rotation, and RFC 7662 introspection of
// opaque access tokens. Default in-memory adapter. Loopback only.
//
//   node oidc-provider.mjs '{"port": 4000, "resource": "https://mcp.example/jwt",
//                            "opaque_resource": "https://mcp.example/opaque", "refresh_tokens": 64}'
//
// Prints one JSON line once it listens: {"issuer", "refresh_tokens": [...]}; the refresh
// tokens belong to the public client `bench-public`, each on its own grant (rotation chains).
import Provider from "oidc-provider";
import * as jose from "jose";

const input = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${input.port}`;
const { privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), alg: "ES256", use: "sig", kid: "es256-1" };

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [
    {
      client_id: "bench-machine",
      client_secret: "bench-machine-secret-0123456789abcdef",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
    },
    {
      client_id: "bench-public",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      redirect_uris: ["http://127.0.0.1/cb"],
      token_endpoint_auth_method: "none",
    },
  ],
  scopes: ["openid", "offline_access", "mcp:tools"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => input.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource === input.resource) {
          return {
            scope: "mcp:tools",
            audience: resource,
            accessTokenFormat: "jwt",
            accessTokenTTL: 3600,
            jwt: { sign: { alg: "ES256" } },
          };
        }
        if (resource === input.opaque_resource) {
          return { scope: "mcp:tools", audience: resource, accessTokenFormat: "opaque", accessTokenTTL: 3600 };
        }
        throw new Error(`unknown resource ${resource}`);
      },
    },
  },
  rotateRefreshToken: () => true,
  issueRefreshToken: async () => true,
  ttl: { RefreshToken: 14 * 24 * 3600, Grant: 14 * 24 * 3600 },
  clientDefaults: { id_token_signed_response_alg: "ES256" },
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
});
provider.proxy = false;

// Refresh tokens as an authorization-code grant would have left them: a grant with the
// resource scope, a refresh token on it. No `openid`: like mcpauth, no ID token per refresh.
const client = await provider.Client.find("bench-public");
const refreshTokens = [];
for (let i = 0; i < (input.refresh_tokens ?? 0); i += 1) {
  const grant = new provider.Grant({ accountId: "alice", clientId: client.clientId });
  grant.addOIDCScope("offline_access");
  grant.addResourceScope(input.resource, "mcp:tools");
  const grantId = await grant.save();
  const refreshToken = new provider.RefreshToken({
    client,
    accountId: "alice",
    grantId,
    gty: "authorization_code",
    scope: "offline_access mcp:tools",
    resource: input.resource,
    authTime: Math.floor(Date.now() / 1000),
    iiat: Math.floor(Date.now() / 1000),
    rotations: 0,
  });
  refreshTokens.push(await refreshToken.save());
}

const server = provider.listen(input.port, "127.0.0.1", () => {
  console.log(JSON.stringify({ issuer, refresh_tokens: refreshTokens }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

// panva's oidc-provider (npm), configured by the test as the upstream identity provider of
// mcpauth's federated sign-in (crates/server/tests/federated.rs). Loopback only.
//
//   node upstream.mjs '{"port": 4000, "client_id": "...", "client_secret": "...",
//                       "redirect_uri": "http://127.0.0.1:PORT/upstream/test-idp/callback"}'
//
// Users sign in on the provider's own development pages with any login name (the password
// is not checked); the login name is the `sub`, `<login>@example.com` the verified email.
// Access tokens live 5 seconds, so the test's refresh of kept upstream tokens goes upstream.
// Prints one line, `ready <issuer>`, once it listens.
import Provider from "oidc-provider";

const input = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${input.port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: input.client_id,
      client_secret: input.client_secret,
      redirect_uris: [input.redirect_uri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  scopes: ["openid", "email", "offline_access"],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true };
      },
    };
  },
  // Refresh tokens for this client without `offline_access` + `prompt=consent`, so kept
  // upstream tokens can be refreshed.
  issueRefreshToken: async () => true,
  ttl: { AccessToken: 5, IdToken: 300, RefreshToken: 3600 },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;

const server = provider.listen(input.port, "127.0.0.1", () => {
  console.log(`ready ${issuer}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

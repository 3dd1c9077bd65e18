// The MCP TypeScript SDK's side of scripts/bench, as its users would deploy it:
// - its example authorization server (`mcpAuthRouter` with `DemoInMemoryAuthProvider`), rate
//   limits off so the load measures the work, with one public client `bench-public`;
// - an MCP server (stateless streamable HTTP, one tool) behind `requireBearerAuth`, whose
//   verifier checks mcpauth's ES256 JWT access tokens with `jose` against mcpauth's JWKS
//   (fetched once at start: a warm key cache, like mcpauth's bearer check).
//
//   node ts-sdk.mjs '{"auth_port": 4100, "mcp_port": 4101, "issuer": "http://127.0.0.1:8080",
//                     "audience": "http://127.0.0.1:3000/mcp"}'
//
// Prints one JSON line once both listen: {"issuer", "mcp", "client_id"}.
import express from "express";
import * as jose from "jose";
import { mcpAuthRouter } from "@modelcontextprotocol/sdk/server/auth/router.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { DemoInMemoryAuthProvider } from "@modelcontextprotocol/sdk/examples/server/demoInMemoryOAuthProvider.js";

const input = JSON.parse(process.argv[2]);
const issuerUrl = new URL(`http://127.0.0.1:${input.auth_port}`);

// The authorization server.
const provider = new DemoInMemoryAuthProvider();
await provider.clientsStore.registerClient({
  client_id: "bench-public",
  client_id_issued_at: Math.floor(Date.now() / 1000),
  redirect_uris: ["http://127.0.0.1/cb"],
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
  token_endpoint_auth_method: "none",
});
const authApp = express();
authApp.use(
  mcpAuthRouter({
    provider,
    issuerUrl,
    scopesSupported: ["mcp:tools"],
    authorizationOptions: { rateLimit: false },
    tokenOptions: { rateLimit: false },
    clientRegistrationOptions: { rateLimit: false },
    revocationOptions: { rateLimit: false },
  }),
);

// The MCP server, behind the SDK's bearer middleware.
const jwks = jose.createLocalJWKSet(await (await fetch(`${input.issuer}/jwks.json`)).json());
const verifier = {
  async verifyAccessToken(token) {
    const { payload } = await jose.jwtVerify(token, jwks, {
      issuer: input.issuer,
      audience: input.audience,
      typ: "at+jwt",
    });
    return {
      token,
      clientId: payload.client_id,
      scopes: typeof payload.scope === "string" ? payload.scope.split(" ") : [],
      expiresAt: payload.exp,
      resource: new URL(input.audience),
    };
  },
};
const mcpApp = express();
mcpApp.use(express.json());
mcpApp.post(
  "/mcp",
  requireBearerAuth({ verifier, requiredScopes: ["mcp:tools"], expectedResource: new URL(input.audience) }),
  async (req, res) => {
    // The SDK's stateless pattern: a server and a transport per request.
    const server = new McpServer({ name: "bench", version: "1.0.0" });
    server.registerTool("echo", { description: "Echoes its input" }, async () => ({
      content: [{ type: "text", text: "echo" }],
    }));
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  },
);

const listen = (app, port) =>
  new Promise((resolve) => {
    const server = app.listen(port, "127.0.0.1", () => resolve(server));
  });
const servers = [await listen(authApp, input.auth_port), await listen(mcpApp, input.mcp_port)];
console.log(
  JSON.stringify({
    issuer: issuerUrl.href.replace(/\/$/, ""),
    mcp: `http://127.0.0.1:${input.mcp_port}/mcp`,
    client_id: "bench-public",
  }),
);
process.on("SIGTERM", () => {
  for (const server of servers) server.close();
  process.exit(0);
});

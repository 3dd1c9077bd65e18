//! What a resource server is configured with: its URL, the authorization server, scopes per tool,
//! introspection.

use crate::tool_scopes::ToolScopes;

/// Default for [`ResourceServerConfig::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub(super) const ROOT_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// How a resource server is protected.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResourceServerConfig {
    /// This server's resource identifier (its canonical URI), the `aud` tokens must carry.
    pub resource: String,
    /// The authorization server's issuer identifier.
    pub issuer: String,
    /// The authorization server's JWK Set URL.
    pub jwks_uri: String,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
    /// Scopes published in the metadata.
    pub scopes_supported: Vec<String>,
    /// Human-readable name published in the metadata.
    pub resource_name: Option<String>,
    /// Checks tokens that are not JWTs (opaque tokens) at the authorization server's RFC 7662
    /// introspection endpoint.
    pub introspection: Option<IntrospectionClient>,
    /// Seconds an introspection result is reused (never past the token's `exp`); a
    /// revocation takes effect here within this time. 0 asks every time. Default 30.
    pub introspection_cache_ttl: u64,
    /// Scopes that calls of particular MCP tools need beyond the route's: a `tools/call`
    /// naming one is answered `403 insufficient_scope` before it reaches the MCP server, so
    /// the client can step up. Empty by default (bodies are then never read).
    pub tool_scopes: ToolScopes,
    /// Largest request body the protection lets through, in bytes (`413` above it).
    /// Default 4 MiB: MCP messages are JSON and most SDKs read them whole.
    pub max_body_bytes: usize,
    /// Whether every request needs a user behind its token: a token a client obtained for
    /// itself (`client_credentials`, `sub_type: client`), or one whose authorization server
    /// does not say (`sub_type` absent), is answered `401 insufficient_user_authentication`
    /// (RFC 9470 §3). Default off; per tool, see
    /// [`tool_requires_user`](Self::tool_requires_user); per route, the adapters'
    /// `requiring_user`.
    pub require_user: bool,
    /// Binds each MCP session (`Mcp-Session-Id`) to the subject and client of the token that
    /// opened it, and answers a request naming another's session `404`, as for an unknown
    /// session (MCP security best practices, "Session Hijacking"). Default on. The bindings
    /// live in this process, like rmcp's sessions: with several instances behind a load
    /// balancer, keep a session on one instance (or an id unknown here is bound to the first
    /// token that names it).
    pub bind_sessions: bool,
    /// Answers CORS for browser-based MCP clients (the MCP Inspector's direct connection, web
    /// apps): a preflight (`OPTIONS`) on the protected routes and the metadata paths is
    /// answered here, and every response, admitted or refused, is readable from any origin,
    /// with `Mcp-Session-Id`, `Mcp-Protocol-Version` and `WWW-Authenticate` exposed. Any
    /// origin is safe because a token is sent explicitly, never as a cookie: a page gains
    /// nothing it could not do without a browser (DNS rebinding is the `Host` check's job).
    /// Default on; off when the application has a CORS layer of its own, whose preflights
    /// then reach the application as they are.
    pub cors: bool,
    /// Server nonces in DPoP proofs (RFC 9449 §9): a request with the DPoP scheme whose proof
    /// carries no current nonce from this source is answered `401` with
    /// `error="use_dpop_nonce"` and a fresh nonce in `DPoP-Nonce`, which the client puts in
    /// its next proof. A proof made in advance is then usable only while its nonce is (one to
    /// two periods), and, with a secret shared by every instance, a proof cannot outlive its
    /// nonce on any of them. Default none.
    pub dpop_nonces: Option<mcpauth_dpop::NonceSource>,
    /// Revocation from the authorization server's Shared Signals stream: tokens whose grant,
    /// user, client or key was revoked are refused within seconds. Run
    /// [`ResourceServer::receive_revocations`](crate::ResourceServer::receive_revocations) in
    /// the application's runtime. Default none (a JWT is accepted until its `exp`).
    pub revocation_stream: Option<super::revocation::RevocationStream>,
}

/// How this resource server authenticates to the introspection endpoint (RFC 7662 §2.1: it
/// must; `client_secret_basic`).
#[derive(Clone)]
#[non_exhaustive]
pub struct IntrospectionClient {
    /// The introspection endpoint URL.
    pub endpoint: String,
    /// This resource server's client id at the authorization server.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for IntrospectionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionClient")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ResourceServerConfig {
    /// Protection of `resource` by the authorization server `issuer`, whose keys are at
    /// `jwks_uri`. No scope is required.
    pub fn new(
        resource: impl Into<String>,
        issuer: impl Into<String>,
        jwks_uri: impl Into<String>,
    ) -> Self {
        Self {
            resource: resource.into(),
            issuer: issuer.into(),
            jwks_uri: jwks_uri.into(),
            required_scopes: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
            introspection: None,
            introspection_cache_ttl: 30,
            tool_scopes: ToolScopes::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            require_user: false,
            bind_sessions: true,
            cors: true,
            dpop_nonces: None,
            revocation_stream: None,
        }
    }

    /// Requires DPoP proofs to carry a nonce from `source` ([`dpop_nonces`](Self::dpop_nonces)).
    #[must_use]
    pub fn with_dpop_nonces(mut self, source: mcpauth_dpop::NonceSource) -> Self {
        self.dpop_nonces = Some(source);
        self
    }

    /// Receives revocations from the authorization server's Shared Signals stream
    /// ([`revocation_stream`](Self::revocation_stream)).
    #[must_use]
    pub fn with_revocation_stream(mut self, stream: super::revocation::RevocationStream) -> Self {
        self.revocation_stream = Some(stream);
        self
    }

    /// Calls of the MCP tool `tool` need `scopes` as well as the route's.
    #[must_use]
    pub fn tool_requires(mut self, tool: &str, scopes: &[&str]) -> Self {
        self.tool_scopes.require(tool, scopes);
        self
    }

    /// Calls of the MCP tool `tool` need a user behind the token: a machine token (or one
    /// whose issuer does not say who stands behind it) is answered `401
    /// insufficient_user_authentication` before the call reaches the MCP server.
    #[must_use]
    pub fn tool_requires_user(mut self, tool: &str) -> Self {
        self.tool_scopes.require_user(tool);
        self
    }

    /// Checks opaque tokens at `endpoint`, authenticating as `client_id` / `client_secret`.
    #[must_use]
    pub fn with_introspection(
        mut self,
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.introspection = Some(IntrospectionClient {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        self
    }
}

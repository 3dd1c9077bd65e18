//! Protecting an MCP server (the resource server), framework-neutral: bearer tokens verified
//! (RFC 6750, RFC 9068) against the authorization server's keys, RFC 6750 §3 / RFC 9728 §5.1
//! challenges, per-route scopes with `insufficient_scope` for step-up, and the RFC 9728
//! protected-resource metadata document.
//!
//! Keys come from the authorization server's `jwks_uri`, fetched on first use and again when a
//! token names an unknown `kid` (at most once every 30 seconds, so garbage tokens cannot make
//! us hammer the authorization server), through a [`KeySource`]. Requests are admitted by the
//! state machine in [`crate::admission`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcpauth_bearer::{Challenge, TokenVerifier, VerifiedToken, VerifyError, extract_bearer};
use mcpauth_metadata::ProtectedResourceMetadata;
use mcpauth_oauth_types::UnixTime;
use tokio::sync::{Mutex, RwLock};

use crate::HttpResponse;
#[cfg(feature = "reqwest")]
use crate::key_source::HttpKeySource;
use crate::key_source::KeySource;
use crate::session_binding::{Owner, SESSION_HEADER, SessionOwners, SessionTicket};
use crate::tool_scopes::ToolScopes;

/// Default for [`ResourceServerConfig::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

const ROOT_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

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
        }
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

/// Why a token was not accepted.
enum Refusal {
    /// The token is bad: `401 invalid_token`.
    Invalid(VerifyError),
    /// The authorization server could not be asked: `503`, try again.
    Unavailable,
}

impl From<VerifyError> for Refusal {
    fn from(e: VerifyError) -> Self {
        Self::Invalid(e)
    }
}

/// Most introspection results kept at once.
const CACHE_CAPACITY: usize = 1024;

/// A JWT has three base64url segments; anything else is opaque.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The configuration cannot protect a resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceServerError {
    /// The resource identifier is not an https (or loopback http) URL without fragment.
    #[error("resource identifier: {0}")]
    Resource(#[from] mcpauth_metadata::WellKnownError),
    /// The resource identifier does not parse.
    #[error("resource identifier is not a URL: {0}")]
    Url(#[from] url::ParseError),
    /// The HTTP client could not be built.
    #[cfg(feature = "reqwest")]
    #[error("HTTP client")]
    Http(#[from] reqwest::Error),
}

/// A protected resource: verifier, key cache, session bindings and metadata. Share it in an
/// `Arc`; admit requests with [`admit`](Self::admit).
pub struct ResourceServer {
    config: ResourceServerConfig,
    metadata_url: String,
    metadata_path: String,
    verifier: RwLock<TokenVerifier>,
    introspected: Mutex<std::collections::HashMap<[u8; 32], (VerifiedToken, u64)>>,
    /// When the JWK Set was last fetched.
    last_fetch: Mutex<Option<UnixTime>>,
    keys: Arc<dyn KeySource>,
    sessions: SessionOwners,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Seconds between two fetches of the JWK Set for unknown `kid`s.
const REFETCH_INTERVAL_SECONDS: u64 = 30;

/// Largest JWK Set or introspection answer used.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl ResourceServer {
    /// Builds the protection for `config`, fetching keys over HTTP ([`HttpKeySource`], the
    /// `reqwest` feature).
    ///
    /// # Errors
    ///
    /// [`ResourceServerError`] when the resource identifier is unusable.
    #[cfg(feature = "reqwest")]
    pub fn new(config: ResourceServerConfig) -> Result<Self, ResourceServerError> {
        Self::with_key_source(config, Arc::new(HttpKeySource::new()?))
    }

    /// Builds the protection for `config`, getting keys and introspection answers from
    /// `keys`.
    ///
    /// # Errors
    ///
    /// [`ResourceServerError`] when the resource identifier is unusable.
    pub fn with_key_source(
        config: ResourceServerConfig,
        keys: Arc<dyn KeySource>,
    ) -> Result<Self, ResourceServerError> {
        let resource = url::Url::parse(&config.resource)?;
        let metadata_url = mcpauth_metadata::protected_resource_metadata_url(&resource)?;
        Ok(Self {
            metadata_path: metadata_url.path().to_owned(),
            metadata_url: metadata_url.into(),
            verifier: RwLock::new(TokenVerifier::new(
                config.issuer.clone(),
                config.resource.clone(),
            )),
            last_fetch: Mutex::new(None),
            introspected: Mutex::new(std::collections::HashMap::new()),
            config,
            keys,
            sessions: SessionOwners::default(),
        })
    }

    /// The configuration it protects with.
    #[must_use]
    pub fn config(&self) -> &ResourceServerConfig {
        &self.config
    }

    /// The RFC 9728 document.
    #[must_use]
    pub fn metadata(&self) -> ProtectedResourceMetadata {
        let mut metadata = ProtectedResourceMetadata::new(
            self.config.resource.clone(),
            self.config.issuer.clone(),
        );
        metadata
            .scopes_supported
            .clone_from(&self.config.scopes_supported);
        metadata
            .resource_name
            .clone_from(&self.config.resource_name);
        metadata
    }

    /// The URL of the metadata document (what `resource_metadata` in challenges points to).
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The paths to serve [`metadata_response`](Self::metadata_response) at: the
    /// path-inserted well-known URL (RFC 9728 §3.1) and the root well-known URL that older
    /// clients try.
    #[must_use]
    pub fn metadata_paths(&self) -> Vec<String> {
        let mut paths = vec![self.metadata_path.clone()];
        if self.metadata_path != ROOT_METADATA_PATH {
            paths.push(ROOT_METADATA_PATH.to_owned());
        }
        paths
    }

    /// The RFC 9728 document as a response: public, cacheable, readable cross-origin.
    #[must_use]
    pub fn metadata_response(&self) -> HttpResponse {
        let body = serde_json::to_vec(&self.metadata()).unwrap_or_default();
        let mut response = http::Response::new(Bytes::from(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        response
    }

    fn challenge(&self, scopes: &[&str]) -> Challenge {
        Challenge::new(self.metadata_url.clone()).with_scope(&scopes.join(" "))
    }

    /// A tool result that asks the MCP client for more authorization from inside a tool
    /// call, for servers whose HTTP answer is already `200`: `isError`, `message` as text, and
    /// the `insufficient_scope` challenge naming `scopes` under
    /// `_meta["mcp/www_authenticate"]` (the tool-level counterpart of the `403` challenge that
    /// MCP clients such as ChatGPT act on). Deserialize it into your MCP SDK's tool result
    /// type (for `rmcp`, `CallToolResult`).
    #[must_use]
    pub fn tool_authorization_required(&self, scopes: &[&str], message: &str) -> serde_json::Value {
        let challenge = Challenge::new(self.metadata_url.clone())
            .insufficient_scope(&scopes.join(" "))
            .header_value();
        serde_json::json!({
            "content": [{ "type": "text", "text": message }],
            "isError": true,
            "_meta": { "mcp/www_authenticate": [challenge] },
        })
    }

    /// The `403 insufficient_scope` answer naming `scopes`: for a handler that finds, while
    /// serving, that it needs more than the token grants.
    #[must_use]
    pub fn insufficient_scope(&self, scopes: &[&str]) -> HttpResponse {
        challenge_response(
            &Challenge::new(self.metadata_url.clone()).insufficient_scope(&scopes.join(" ")),
        )
    }

    /// Verifies the request's bearer token and that it carries `scopes` (a route's needs). A
    /// token without them gets `403` with `error="insufficient_scope"` and `scope` naming
    /// every scope needed, so MCP clients can step up (MCP authorization, scope challenge
    /// handling).
    #[allow(
        clippy::result_large_err,
        reason = "the refusal is the response adapters send as is"
    )]
    pub(crate) async fn authenticate_with_scopes(
        &self,
        headers: &HeaderMap,
        scopes: &[&str],
        now: UnixTime,
    ) -> Result<VerifiedToken, HttpResponse> {
        let token = match extract_bearer(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Err(challenge_response(&self.challenge(scopes))),
            Err(e) => {
                return Err(challenge_response(
                    &self.challenge(scopes).invalid_request(&e.to_string()),
                ));
            }
        };
        let verified = match self.verify(token, now).await {
            Ok(verified) => verified,
            Err(Refusal::Invalid(e)) => {
                return Err(challenge_response(
                    &self.challenge(scopes).invalid_token(&e.to_string()),
                ));
            }
            Err(Refusal::Unavailable) => return Err(unavailable()),
        };
        if scopes.iter().any(|s| !verified.scope.contains(s)) {
            return Err(self.step_up(&verified, scopes));
        }
        if self.config.require_user
            && let Some(refusal) = self.refuse_without_user(&verified)
        {
            return Err(refusal);
        }
        Ok(verified)
    }

    /// The `401 insufficient_user_authentication` answer (RFC 9470 §3) for a token with no
    /// user behind it, if `verified` is one: for routes and handlers where a person must
    /// have agreed.
    #[must_use]
    pub fn refuse_without_user(&self, verified: &VerifiedToken) -> Option<HttpResponse> {
        if verified.has_user() {
            return None;
        }
        tracing::info!(
            client_id = %verified.client_id,
            "refused a token with no user behind it where a user is required"
        );
        Some(challenge_response(
            &Challenge::new(self.metadata_url.clone()).insufficient_user_authentication(
                "this request needs a token a user authorized; a client's own token (client_credentials) is not enough",
            ),
        ))
    }

    /// Whether the body of a request with `method` is read before it goes on: a `POST` (a
    /// JSON-RPC message) when some tool has needs of its own.
    pub(crate) fn reads_body(&self, method: &http::Method) -> bool {
        method == http::Method::POST && !self.config.tool_scopes.is_empty()
    }

    /// [`ResourceServerConfig::max_body_bytes`].
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// The `413` answer for a request that declares a body larger than
    /// [`max_body_bytes`](Self::max_body_bytes) in `Content-Length`, if it does; bodies that
    /// do not declare their length are cut off as they stream.
    pub(crate) fn refuse_declared_length(&self, headers: &HeaderMap) -> Option<HttpResponse> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())?;
        (declared > self.config.max_body_bytes as u64).then(crate::body_too_large)
    }

    /// Checks the MCP session a request names (`Mcp-Session-Id`) against the token that
    /// sent it (see [`ResourceServerConfig::bind_sessions`]): the `404` answer when another
    /// user or client opened it (rmcp's answer for an unknown session, so it tells nothing
    /// about others' sessions; the client starts one of its own), else what to remember
    /// until the MCP server answers, for [`record_session`](Self::record_session).
    #[allow(
        clippy::result_large_err,
        reason = "the refusal is the response adapters send as is"
    )]
    pub(crate) fn check_session(
        &self,
        method: &http::Method,
        headers: &HeaderMap,
        verified: &VerifiedToken,
    ) -> Result<SessionTicket, HttpResponse> {
        if !self.config.bind_sessions {
            return Ok(SessionTicket::default());
        }
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            // Only a request outside a session can open one: keep who sent it.
            return Ok(SessionTicket {
                ends: None,
                opener: Some(owner_of(verified)),
            });
        };
        if self.sessions.admit(id, &owner_of(verified)) {
            return Ok(SessionTicket {
                ends: (method == http::Method::DELETE).then(|| id.to_owned()),
                opener: None,
            });
        }
        tracing::info!(
            client_id = %verified.client_id,
            "refused a request naming an MCP session another user or client opened"
        );
        Err(plain_refusal(
            StatusCode::NOT_FOUND,
            "Not Found: Session not found",
        ))
    }

    /// Records what the MCP server's answer did to sessions: the session it opened (its
    /// `Mcp-Session-Id` response header, `response_session`) belongs to the subject and
    /// client that sent the request; a session a `DELETE` ended successfully is forgotten.
    /// [`Admitted::finish`](crate::Admitted::finish) calls it with every answer to a request
    /// [`check_session`](Self::check_session) let through.
    pub(crate) fn record_session(
        &self,
        ticket: SessionTicket,
        response_status: StatusCode,
        response_session: Option<&str>,
    ) {
        if let Some(id) = ticket.ends {
            if response_status.is_success() {
                self.sessions.ended(&id);
            }
        } else if let (Some(owner), Some(id)) = (ticket.opener, response_session) {
            self.sessions.opened(id, &owner);
        }
    }

    /// A body the tool check cannot read is refused rather than let through unchecked: `415`
    /// for a `Content-Encoding` other than `identity` (the MCP server might decompress what
    /// this check saw compressed).
    pub(crate) fn refuse_encoded_body(&self, headers: &HeaderMap) -> Option<HttpResponse> {
        headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
            .then(|| {
                plain_refusal(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Media Type: send MCP messages without Content-Encoding",
                )
            })
    }

    /// Checks the tool calls in a request `body` (read because
    /// [`reads_body`](Self::reads_body) said so) against the verified token: the
    /// `403 insufficient_scope` answer when it calls a tool with scopes the token lacks, the
    /// `401 insufficient_user_authentication` answer when it calls a tool that needs a user
    /// with a token that has none, and a JSON-RPC parse error (`400`, code -32700) for a body
    /// that is not JSON here, whatever another parser makes of it.
    pub(crate) fn refuse_tool_calls(
        &self,
        verified: &VerifiedToken,
        body: &[u8],
    ) -> Option<HttpResponse> {
        let Some(needs) = self.config.tool_scopes.needs_of(body) else {
            return Some(json_rpc_parse_error());
        };
        if needs.user
            && let Some(refusal) = self.refuse_without_user(verified)
        {
            return Some(refusal);
        }
        needs
            .scopes
            .iter()
            .any(|s| !verified.scope.contains(s))
            .then(|| self.step_up(verified, &needs.scopes))
    }

    /// The `403 insufficient_scope` for a token that lacks some of `needed`. The challenge
    /// names the scopes the token holds and the ones it lacks: MCP clients of the
    /// 2025-06-18 and 2025-11-25 revisions ask for exactly the challenge's scopes (and would
    /// lose what they hold otherwise), clients of 2026-07-28 ask for the union of what they
    /// hold and the challenge, which comes to the same set.
    fn step_up(&self, verified: &VerifiedToken, needed: &[&str]) -> HttpResponse {
        let mut scopes: Vec<&str> = verified.scope.iter().collect();
        for scope in needed {
            if !scopes.contains(scope) {
                scopes.push(scope);
            }
        }
        self.insufficient_scope(&scopes)
    }

    async fn verify(&self, token: &str, now: UnixTime) -> Result<VerifiedToken, Refusal> {
        if let Some(client) = &self.config.introspection
            && !looks_like_jwt(token)
        {
            return self.introspect(client, token, now).await;
        }
        let first = self.verifier.read().await.verify(token, now);
        Ok(match first {
            Err(VerifyError::UnknownKey) if self.refresh_keys(now).await => {
                self.verifier.read().await.verify(token, now)
            }
            other => other,
        }?)
    }

    /// RFC 7662: asks the authorization server, reusing a recent answer for the same token
    /// (kept by the token's SHA-256, never past its `exp`).
    async fn introspect(
        &self,
        client: &IntrospectionClient,
        token: &str,
        now: UnixTime,
    ) -> Result<VerifiedToken, Refusal> {
        let seconds = now.0;
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some((verified, until)) = self.introspected.lock().await.get(&key)
            && *until > seconds
        {
            return Ok(verified.clone());
        }
        let body = match self.keys.introspect(client, token).await {
            Ok(body) if body.len() <= MAX_ANSWER_BYTES => body,
            Ok(_) => {
                tracing::warn!(endpoint = %client.endpoint, "introspection answer is larger than 64 KiB");
                return Err(Refusal::Unavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %client.endpoint, "introspection failed");
                return Err(Refusal::Unavailable);
            }
        };
        let verified = mcpauth_bearer::verify_introspection(
            &body,
            &self.config.issuer,
            &self.config.resource,
            now,
        )?;
        let ttl = self.config.introspection_cache_ttl;
        if ttl > 0 {
            let until = verified.expires_at.min(seconds.saturating_add(ttl));
            let mut cache = self.introspected.lock().await;
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, (_, until)| *until > seconds);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(key, (verified.clone(), until));
        }
        Ok(verified)
    }

    /// Fetches the JWK Set unless it was fetched within the last 30 seconds. Returns whether
    /// new keys were loaded.
    async fn refresh_keys(&self, now: UnixTime) -> bool {
        let mut last = self.last_fetch.lock().await;
        // Within 30 s after the last fetch, none; a clock that stepped back is no reason to
        // refuse tokens from rotated keys until it catches up.
        if last.is_some_and(|at| at <= now && now < at.plus(REFETCH_INTERVAL_SECONDS)) {
            return false;
        }
        *last = Some(now);
        let body = self.keys.jwk_set(&self.config.jwks_uri).await;
        match body {
            Ok(bytes) if bytes.len() <= MAX_ANSWER_BYTES => {
                match self.verifier.write().await.set_jwks(&bytes) {
                    Ok(count) => {
                        tracing::debug!(count, jwks_uri = %self.config.jwks_uri, "loaded signing keys");
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, jwks_uri = %self.config.jwks_uri, "JWK Set does not parse");
                        false
                    }
                }
            }
            Ok(_) => {
                tracing::warn!(jwks_uri = %self.config.jwks_uri, "JWK Set is larger than 64 KiB");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, jwks_uri = %self.config.jwks_uri, "fetching the JWK Set failed");
                false
            }
        }
    }
}

/// `503` when the authorization server cannot be asked: the token may be fine, so no
/// challenge that would send the client back to authorize.
fn unavailable() -> HttpResponse {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": "the authorization server could not be reached to check the token; try again",
    });
    let mut response = http::Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn challenge_response(challenge: &Challenge) -> HttpResponse {
    let status = StatusCode::from_u16(challenge.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let value = HeaderValue::from_str(&challenge.header_value())
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    let body = serde_json::json!({
        "error": challenge.error().map_or("invalid_token", |e| e.as_str()),
        "error_description": "authorization is required: see the WWW-Authenticate header",
    });
    let mut response = http::Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::WWW_AUTHENTICATE, value);
    // Browser-based MCP clients must be able to read the challenge. It holds nothing secret,
    // so any origin may; a CORS layer the application wraps around this replaces the
    // headers with its own.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate"),
    );
    response
}

fn owner_of(verified: &VerifiedToken) -> Owner {
    Owner {
        subject: verified.subject.clone(),
        client_id: verified.client_id.clone(),
    }
}

/// A plain-text refusal.
fn plain_refusal(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut response = http::Response::new(Bytes::from_static(text.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// JSON-RPC 2.0's answer to a body that is not JSON (§5.1, code -32700), as MCP servers send
/// it, with `400`.
fn json_rpc_parse_error() -> HttpResponse {
    let mut response = http::Response::new(Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the body is not a JSON-RPC message"}}"#,
    ));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_carry_the_insufficient_scope_challenge_in_meta() {
        let resource = ResourceServer::new(ResourceServerConfig::new(
            "https://mcp.example.com/mcp",
            "https://auth.example.com",
            "https://auth.example.com/jwks.json",
        ))
        .unwrap();
        let result = resource.tool_authorization_required(&["mcp", "admin"], "Allow admin access");
        assert_eq!(result["isError"], true);
        assert_eq!(result["content"][0]["text"], "Allow admin access");
        let challenge = result["_meta"]["mcp/www_authenticate"][0].as_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(challenge.contains("scope=\"mcp admin\""), "{challenge}");
        assert!(
            challenge.contains(
                "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            ),
            "{challenge}"
        );
    }
}

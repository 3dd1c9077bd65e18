//! The authorization-server endpoints: RFC 8414 metadata, `/authorize`, `/token`,
//! `/register` (and RFC 7592 `/register/{client_id}`), `/revoke`, `/introspect`,
//! `/device_authorization` and `/jwks.json`, at the paths the engine publishes.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use mcpauth_oauth_types::{AuthorizeErrorCode, OAuthError};

use crate::engine_handle::EngineHandle;
use crate::response::{HttpResponse, json_error, response, security_headers};
use mcpauth_token_engine::{
    AuthorizeOutcome, Clock, InternalError, OAuthServerModel, PendingAuthorization, SystemClock,
    TokenEngine, paths,
};

/// Largest request body the endpoints accept; adapters read at most this much and answer
/// [`body_too_large`](crate::body_too_large) beyond it.
pub const MAX_BODY_BYTES: usize = mcpauth_oauth_types::MAX_FORM_BYTES;

/// What happens between a valid authorization request and the user's decision: login and
/// consent. The server binary renders pages; a library author plugs in their own UI.
#[async_trait::async_trait]
pub trait Interaction: Send + Sync + 'static {
    /// Starts the interaction for `pending` (for example: store it, redirect to a login page).
    /// The implementation MUST eventually call `approve` or `deny` on the engine.
    async fn begin(
        &self,
        pending: PendingAuthorization,
        request: &http::request::Parts,
    ) -> HttpResponse;
}

/// The operating system's random source, for [`TokenEngine::new`]: the engine's `os`
/// feature's, re-exported where the HTTP edge's users look.
pub use mcpauth_token_engine::OsRandom;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    Metadata,
    Jwks,
    Authorize,
    Token,
    Register,
    ClientConfiguration(String),
    Revoke,
    Introspect,
    DeviceAuthorization,
}

impl Endpoint {
    /// The methods it answers, besides `OPTIONS` where browsers need CORS.
    fn methods(&self) -> &'static [Method] {
        match self {
            Self::Metadata | Self::Jwks | Self::Authorize => &[Method::GET, Method::HEAD],
            Self::ClientConfiguration(_) => &[Method::GET, Method::PUT, Method::DELETE],
            _ => &[Method::POST],
        }
    }

    /// Browser-based MCP clients call these cross-origin (MCP authorization, CORS note);
    /// `/authorize` is a navigation and `/introspect` is for servers.
    fn allows_cors(&self) -> bool {
        !matches!(self, Self::Authorize | Self::Introspect)
    }
}

/// The authorization server's HTTP surface over an engine, whatever its model. Share it in an
/// `Arc`; cloning it is cheap too.
#[derive(Clone)]
pub struct AuthorizationServer {
    engine: Arc<dyn EngineHandle>,
    interaction: Arc<dyn Interaction>,
    fetcher: Option<Arc<mcpauth_fetch::SafeFetcher>>,
    clock: Arc<dyn Clock>,
    issuer_path: Arc<str>,
    metadata_path: Arc<str>,
}

impl std::fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("issuer_path", &self.issuer_path)
            .field("fetches_client_metadata", &self.fetcher.is_some())
            .finish_non_exhaustive()
    }
}

impl AuthorizationServer {
    /// Serves `engine`, handing valid authorization requests to `interaction`.
    pub fn new<M: OAuthServerModel + ?Sized + 'static>(
        engine: Arc<TokenEngine<M>>,
        interaction: Arc<dyn Interaction>,
    ) -> Self {
        let issuer_path = EngineHandle::issuer_path(&*engine);
        Self {
            metadata_path: format!("/.well-known/oauth-authorization-server{issuer_path}").into(),
            issuer_path: issuer_path.into(),
            engine,
            interaction,
            fetcher: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Fetches Client ID Metadata Documents with `fetcher` (SSRF-safe) when the engine asks
    /// for one; without it, `https` client ids are refused with an explanation.
    #[must_use]
    pub fn with_client_metadata_fetcher(mut self, fetcher: mcpauth_fetch::SafeFetcher) -> Self {
        self.fetcher = Some(Arc::new(fetcher));
        self
    }

    /// Reads the time from `clock` instead of the system's (tests step a
    /// [`ManualClock`](mcpauth_token_engine::ManualClock) past expiries and polling
    /// intervals).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The paths to route here, in the `{name}` pattern syntax axum and actix-web share: the
    /// exact endpoint paths, and `…/register/{client_id}` for RFC 7592 management.
    #[must_use]
    pub fn route_paths(&self) -> Vec<String> {
        let at = |path: &str| format!("{}{path}", self.issuer_path);
        let mut routes = vec![
            self.metadata_path.to_string(),
            at(paths::JWKS),
            at(paths::AUTHORIZE),
            at(paths::TOKEN),
            at(paths::REGISTER),
            format!("{}/{{client_id}}", at(paths::REGISTER)),
            at(paths::REVOKE),
            at(paths::INTROSPECT),
        ];
        if self.engine.serves_device_flow() {
            routes.push(at(paths::DEVICE_AUTHORIZATION));
        }
        routes
    }

    fn endpoint(&self, path: &str) -> Option<Endpoint> {
        if path == &*self.metadata_path {
            return Some(Endpoint::Metadata);
        }
        let rest = path.strip_prefix(&*self.issuer_path)?;
        Some(match rest {
            paths::JWKS => Endpoint::Jwks,
            paths::AUTHORIZE => Endpoint::Authorize,
            paths::TOKEN => Endpoint::Token,
            paths::REGISTER => Endpoint::Register,
            paths::REVOKE => Endpoint::Revoke,
            paths::INTROSPECT => Endpoint::Introspect,
            paths::DEVICE_AUTHORIZATION if self.engine.serves_device_flow() => {
                Endpoint::DeviceAuthorization
            }
            _ => {
                let id = rest
                    .strip_prefix(paths::REGISTER)?
                    .strip_prefix('/')
                    .filter(|id| !id.is_empty() && !id.contains('/'))?;
                let id = percent_encoding::percent_decode_str(id)
                    .decode_utf8()
                    .ok()?
                    .into_owned();
                Endpoint::ClientConfiguration(id)
            }
        })
    }

    /// Answers `request`: any path of [`route_paths`](Self::route_paths), `404` for others.
    /// Adapters put the caller's address in the request's extensions as a
    /// [`CallerKey`](mcpauth_token_engine::CallerKey) for the per-caller limits.
    ///
    /// The request runs to completion in a task of its own (on the current tokio runtime),
    /// even when the caller stops waiting: a client that hangs up cannot cancel it half-way
    /// through a storage transaction. (A cancelled PostgreSQL transaction once left a
    /// connection idle in a transaction, holding row locks; see the adapters'
    /// `tests/cancellation.rs`.)
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn handle(&self, request: http::Request<Bytes>) -> HttpResponse {
        let server = self.clone();
        match tokio::spawn(async move { server.answer(request).await }).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "the request's task failed");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the request failed; try again",
                )
            }
        }
    }

    async fn answer(&self, request: http::Request<Bytes>) -> HttpResponse {
        let Some(endpoint) = self.endpoint(request.uri().path()) else {
            return json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        let cors = endpoint.allows_cors();
        let mut response = if request.method() == Method::OPTIONS && cors {
            preflight(endpoint.methods())
        } else if !endpoint.methods().contains(request.method()) {
            method_not_allowed(endpoint.methods())
        } else {
            let head = request.method() == Method::HEAD;
            let mut response = self.dispatch(endpoint, request).await;
            if head {
                *response.body_mut() = Bytes::new();
            }
            response
        };
        security_headers(&mut response, cors);
        response
    }

    async fn dispatch(&self, endpoint: Endpoint, request: http::Request<Bytes>) -> HttpResponse {
        let engine = &self.engine;
        logged(match endpoint {
            Endpoint::Metadata => engine.metadata_endpoint(),
            Endpoint::Jwks => engine.jwks_endpoint(),
            Endpoint::Authorize => return self.authorize(request).await,
            Endpoint::Token => {
                if let Err(refusal) = self.refresh_stale_document(&request).await {
                    return refusal;
                }
                engine.token_endpoint(request, self.clock.now()).await
            }
            Endpoint::Register => {
                engine
                    .registration_endpoint(request, self.clock.now())
                    .await
            }
            Endpoint::ClientConfiguration(client_id) => {
                engine
                    .client_configuration_endpoint(request, &client_id, self.clock.now())
                    .await
            }
            Endpoint::Revoke => engine.revocation_endpoint(request, self.clock.now()).await,
            Endpoint::Introspect => {
                engine
                    .introspection_endpoint(request, self.clock.now())
                    .await
            }
            Endpoint::DeviceAuthorization => {
                if let Err(refusal) = self.refresh_stale_document(&request).await {
                    return refusal;
                }
                engine
                    .device_authorization_endpoint(request, self.clock.now())
                    .await
            }
        })
    }

    async fn authorize(&self, request: http::Request<Bytes>) -> HttpResponse {
        let (parts, _) = request.into_parts();
        let query = parts.uri.query().unwrap_or_default().as_bytes().to_vec();
        let mut outcome = self.engine.authorize(&query, self.clock.now()).await;
        if let AuthorizeOutcome::NeedsClientMetadata(fetch) = &outcome {
            // Each fetch can make the server store a client: limited per caller.
            let caller = parts
                .extensions
                .get::<mcpauth_token_engine::CallerKey>()
                .map_or("anonymous", |k| k.0.as_str());
            match self
                .engine
                .allow_client_metadata_fetch(caller, self.clock.now())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    return show_error_page(&OAuthError::new(
                        AuthorizeErrorCode::TemporarilyUnavailable,
                        "too many client metadata documents fetched for this caller: try again later",
                    ));
                }
                Err(e) => {
                    tracing::error!(error = %e, "counting a document fetch failed");
                    return show_error_page(&OAuthError::new(
                        AuthorizeErrorCode::ServerError,
                        "storage failure",
                    ));
                }
            }
            if let Err(page) = self.fetch_client_document(fetch).await {
                return page;
            }
            outcome = self.engine.authorize(&query, self.clock.now()).await;
        }
        match outcome {
            AuthorizeOutcome::Redirect(redirect) => redirect_to(&redirect.location),
            AuthorizeOutcome::ShowError(error) => show_error_page(&error),
            AuthorizeOutcome::NeedsConsent(pending) => {
                self.interaction.begin(pending, &parts).await
            }
            // Still no usable document after a successful fetch: refuse rather than loop.
            AuthorizeOutcome::NeedsClientMetadata(_) => show_error_page(&OAuthError::new(
                AuthorizeErrorCode::InvalidRequest,
                "the client's metadata document could not be used",
            )),
            // The engine may grow outcomes; refusing is the safe default.
            _ => show_error_page(&OAuthError::new(
                AuthorizeErrorCode::ServerError,
                "unsupported authorization outcome",
            )),
        }
    }

    /// At the token and device-authorization endpoints: a metadata-document client whose
    /// cached document went stale has it fetched again before the engine sees the request,
    /// so a client whose publisher withdrew or changed its document (its keys, its grant
    /// types) is held to the new one. A document that cannot be fetched again refuses the
    /// client.
    async fn refresh_stale_document(
        &self,
        request: &http::Request<Bytes>,
    ) -> Result<(), HttpResponse> {
        let Ok(form) = mcpauth_oauth_types::FormParams::parse(request.body()) else {
            return Ok(());
        };
        let Some(client_id) = form
            .get("client_id")
            .map(str::to_owned)
            .or_else(|| form.get("client_assertion").and_then(assertion_subject))
        else {
            return Ok(());
        };
        let storage_failure = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "checking a client's metadata document failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "storage failure",
            )
        };
        let fetch = match self
            .engine
            .stale_client_metadata_document(&client_id, self.clock.now())
            .await
        {
            Ok(Some(fetch)) => fetch,
            Ok(None) => return Ok(()),
            Err(e) => return Err(storage_failure(&e)),
        };
        // Anyone can name a client id, so the fetches it causes are limited like those at the
        // authorization endpoint (per caller), and per document, so a publisher that hangs
        // or fails is not asked again on every request.
        let caller = request
            .extensions()
            .get::<mcpauth_token_engine::CallerKey>()
            .map_or("anonymous", |k| k.0.as_str());
        match self
            .engine
            .allow_client_metadata_refetch(fetch.url(), caller, self.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Another request may have refreshed it meanwhile: then there is nothing to
                // wait for.
                match self
                    .engine
                    .stale_client_metadata_document(&client_id, self.clock.now())
                    .await
                {
                    Ok(None) => return Ok(()),
                    Ok(Some(_)) => {}
                    Err(e) => return Err(storage_failure(&e)),
                }
                let mut refusal = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the client's metadata document was fetched too often: try again in a minute",
                );
                refusal.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("60"),
                );
                return Err(refusal);
            }
            Err(e) => return Err(storage_failure(&e)),
        }
        self.fetch_document(&fetch).await.map_err(|reason| {
            tracing::info!(url = %fetch.url(), %reason, "a stale client metadata document could not be refreshed");
            json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("the client's metadata document could not be fetched again: {reason}"),
            )
        })
    }

    /// Fetches a Client ID Metadata Document and gives it to the engine; an error page
    /// otherwise.
    async fn fetch_client_document(
        &self,
        fetch: &mcpauth_token_engine::DocumentFetch,
    ) -> Result<(), HttpResponse> {
        self.fetch_document(fetch).await.map_err(|reason| {
            show_error_page(&OAuthError::new(AuthorizeErrorCode::InvalidRequest, reason))
        })
    }

    /// Fetches the document of `fetch` and hands it to the engine; why not, otherwise.
    async fn fetch_document(
        &self,
        fetch: &mcpauth_token_engine::DocumentFetch,
    ) -> Result<(), String> {
        let url = fetch.url();
        let Some(fetcher) = &self.fetcher else {
            return Err(
                "this server does not fetch Client ID Metadata Documents; register the client instead"
                    .into(),
            );
        };
        let fetched = fetcher.fetch(url).await.map_err(|e| {
            tracing::info!(%url, error = %e, "client metadata document refused");
            format!("the client's metadata document could not be fetched: {e}")
        })?;
        let at = self.clock.now();
        let lifetime = fetched
            .max_age
            .unwrap_or(DOCUMENT_CACHE_DEFAULT)
            .clamp(60, 86_400);
        self.engine
            .accept_client_metadata_document(fetch, &fetched.body, at, at.plus(lifetime))
            .await
            .map_err(|e| {
                format!(
                    "the client's metadata document is not valid: {}",
                    e.description()
                )
            })
    }
}

/// The `sub` of a client assertion (RFC 7523 §3: the client id), read without verifying it:
/// only to find which client's document to refresh; the engine verifies the assertion.
fn assertion_subject(assertion: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// Cache lifetime of a fetched document when it gives none: its `max-age` is kept between
/// 1 minute and 1 day.
const DOCUMENT_CACHE_DEFAULT: u64 = 3600;

/// Logs the internal cause the engine attached to a `server_error` answer.
fn logged(response: HttpResponse) -> HttpResponse {
    if let Some(internal) = response.extensions().get::<InternalError>() {
        tracing::error!(description = %internal.description, cause = %internal.cause, "internal error answered as server_error");
    }
    response
}

fn allow_list(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn method_not_allowed(methods: &[Method]) -> HttpResponse {
    let allow = allow_list(methods);
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("this endpoint answers {allow}"),
    );
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn preflight(methods: &[Method]) -> HttpResponse {
    let allow = format!("{}, OPTIONS", allow_list(methods));
    response(
        StatusCode::NO_CONTENT,
        &[
            (header::ACCESS_CONTROL_ALLOW_METHODS, allow.as_str()),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, dpop, mcp-protocol-version",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
        Bytes::new(),
    )
}

/// A 303 to `location`, never cached.
fn redirect_to(location: &str) -> HttpResponse {
    if HeaderValue::from_str(location).is_err() {
        return show_error_page(&OAuthError::new(
            AuthorizeErrorCode::ServerError,
            "the redirect URI cannot be sent as a header",
        ));
    }
    response(
        StatusCode::SEE_OTHER,
        &[
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Bytes::new(),
    )
}

/// A plain HTML page for an authorization error that must not be redirected
/// (RFC 6749 §4.1.2.1). Everything is escaped.
#[must_use]
pub fn show_error_page(error: &OAuthError<AuthorizeErrorCode>) -> HttpResponse {
    if let Some(source) = error.internal_source() {
        tracing::error!(cause = %source, "authorization endpoint failed");
    }
    let status =
        StatusCode::from_u16(error.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization error</title></head>\
         <body><main><h1>This authorization request cannot continue</h1><p><code>{}</code>: {}</p>\
         <p>Return to the application and try again. If this keeps happening, tell its developer.</p></main></body></html>",
        escape_html(error.code().as_str()),
        escape_html(error.description())
    );
    response(
        status,
        &[
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ],
        Bytes::from(body),
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

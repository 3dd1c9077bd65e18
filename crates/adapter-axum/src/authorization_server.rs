//! The authorization-server routes: RFC 8414 metadata, `/authorize`, `/token`, `/register`,
//! `/revoke` and `/jwks.json`, at the paths the engine publishes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcpauth_oauth_types::{AuthorizeErrorCode, OAuthError};
use mcpauth_token_engine::{
    AuthorizeOutcome, InternalError, OAuthServerModel, PendingAuthorization, TokenEngine, UnixTime,
    paths,
};

/// What happens between a valid authorization request and the user's decision: login and
/// consent. The server binary renders pages; a library author plugs in their own UI.
#[async_trait::async_trait]
pub trait InteractionHandler: Send + Sync + 'static {
    /// Starts the interaction for `pending` (for example: store it, redirect to a login page).
    /// The implementation MUST eventually call `approve` or `deny` on the engine.
    async fn begin(
        &self,
        pending: PendingAuthorization,
        request: &axum::http::request::Parts,
    ) -> Response;
}

/// The current time from the system clock: adapters are where the clock is read.
#[must_use]
pub fn now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

struct AppState<M: ?Sized> {
    engine: Arc<TokenEngine<M>>,
    interaction: Arc<dyn InteractionHandler>,
    fetcher: Option<mcpauth_fetch::SafeFetcher>,
}

/// The routes of an authorization server for `engine`, at the paths its metadata publishes
/// (below the issuer's path, with the RFC 8414 §3.1 well-known URL).
pub fn authorization_server_router<M>(
    engine: Arc<TokenEngine<M>>,
    interaction: Arc<dyn InteractionHandler>,
) -> Router
where
    M: OAuthServerModel + ?Sized + 'static,
{
    authorization_server_router_with_fetcher(engine, interaction, None)
}

/// Like [`authorization_server_router`], with a fetcher for Client ID Metadata Documents:
/// when the engine asks for a client's document, the router fetches it (SSRF-safe), hands it
/// to the engine, and continues the authorization.
pub fn authorization_server_router_with_fetcher<M>(
    engine: Arc<TokenEngine<M>>,
    interaction: Arc<dyn InteractionHandler>,
    fetcher: Option<mcpauth_fetch::SafeFetcher>,
) -> Router
where
    M: OAuthServerModel + ?Sized + 'static,
{
    let issuer_path = engine
        .config()
        .issuer()
        .path()
        .trim_end_matches('/')
        .to_owned();
    let at = |path: &str| format!("{issuer_path}{path}");
    let state = Arc::new(AppState {
        engine,
        interaction,
        fetcher,
    });
    Router::new()
        .route(
            &format!("/.well-known/oauth-authorization-server{issuer_path}"),
            get(metadata::<M>).options(preflight),
        )
        .route(&at(paths::JWKS), get(jwks::<M>).options(preflight))
        .route(&at(paths::AUTHORIZE), get(authorize::<M>))
        .route(&at(paths::TOKEN), post(token::<M>).options(preflight))
        .route(&at(paths::REGISTER), post(register::<M>).options(preflight))
        .route(
            &format!("{}/{{client_id}}", at(paths::REGISTER)),
            get(client_configuration::<M>)
                .put(client_configuration::<M>)
                .delete(client_configuration::<M>),
        )
        .route(&at(paths::REVOKE), post(revoke::<M>).options(preflight))
        .route(&at(paths::INTROSPECT), post(introspect::<M>))
        .route(
            &at(paths::DEVICE_AUTHORIZATION),
            post(device_authorization::<M>).options(preflight),
        )
        .layer(DefaultBodyLimit::max(mcpauth_oauth_types::MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(cors_and_security_headers))
        .with_state(state)
}

/// These endpoints carry no cookies and answer any origin: browser-based MCP clients call them
/// cross-origin (MCP authorization, "CORS" note).
async fn cors_and_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, mcp-protocol-version",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

fn logged(response: http::Response<Bytes>) -> Response {
    if let Some(internal) = response.extensions().get::<InternalError>() {
        tracing::error!(description = %internal.description, cause = %internal.cause, "internal error answered as server_error");
    }
    response.map(axum::body::Body::from).into_response()
}

async fn metadata<M: OAuthServerModel + ?Sized>(State(state): State<Arc<AppState<M>>>) -> Response {
    logged(state.engine.metadata_endpoint())
}

async fn jwks<M: OAuthServerModel + ?Sized>(State(state): State<Arc<AppState<M>>>) -> Response {
    logged(state.engine.jwks_endpoint())
}

async fn authorize<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default().as_bytes().to_vec();
    let mut outcome = state.engine.authorize(&query, now()).await;
    if let AuthorizeOutcome::NeedsClientMetadata(url) = &outcome {
        if let Err(page) = fetch_client_document(&state, url).await {
            return page;
        }
        outcome = state.engine.authorize(&query, now()).await;
    }
    match outcome {
        AuthorizeOutcome::Redirect(redirect) => redirect_to(&redirect.location),
        AuthorizeOutcome::ShowError(error) => show_error_page(&error),
        AuthorizeOutcome::NeedsConsent(pending) => state.interaction.begin(pending, &parts).await,
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

/// Cache lifetime of a fetched document when it gives none: its `max-age` is kept between
/// 1 minute and 1 day.
const DOCUMENT_CACHE_DEFAULT: u64 = 3600;

/// Fetches a Client ID Metadata Document and gives it to the engine; an error page otherwise.
async fn fetch_client_document<M: OAuthServerModel + ?Sized>(
    state: &AppState<M>,
    url: &url::Url,
) -> Result<(), Response> {
    let Some(fetcher) = &state.fetcher else {
        return Err(show_error_page(&OAuthError::new(
            AuthorizeErrorCode::InvalidRequest,
            "this server does not fetch Client ID Metadata Documents; register the client instead",
        )));
    };
    let fetched = fetcher.fetch(url).await.map_err(|e| {
        tracing::info!(%url, error = %e, "client metadata document refused");
        show_error_page(&OAuthError::new(
            AuthorizeErrorCode::InvalidRequest,
            format!("the client's metadata document could not be fetched: {e}"),
        ))
    })?;
    let at = now();
    let lifetime = fetched
        .max_age
        .unwrap_or(DOCUMENT_CACHE_DEFAULT)
        .clamp(60, 86_400);
    state
        .engine
        .accept_client_metadata_document(url.as_str(), &fetched.body, at, at.plus(lifetime))
        .await
        .map_err(|e| {
            show_error_page(&OAuthError::new(
                AuthorizeErrorCode::InvalidRequest,
                format!(
                    "the client's metadata document is not valid: {}",
                    e.description()
                ),
            ))
        })
}

/// A 303 to `location`, never cached.
fn redirect_to(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, value),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => show_error_page(&OAuthError::new(
            AuthorizeErrorCode::ServerError,
            "the redirect URI cannot be sent as a header",
        )),
    }
}

/// A plain HTML page for an authorization error that must not be redirected
/// (RFC 6749 §4.1.2.1). Everything is escaped.
pub fn show_error_page(error: &OAuthError<AuthorizeErrorCode>) -> Response {
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
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
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

async fn engine_request(request: Request) -> Result<http::Request<Bytes>, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, mcpauth_oauth_types::MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(serde_json::json!({
                    "error": "invalid_request",
                    "error_description": "the request body is too large",
                })),
            )
                .into_response()
        })?;
    let mut out = http::Request::new(bytes);
    *out.method_mut() = parts.method;
    *out.uri_mut() = parts.uri;
    *out.headers_mut() = parts.headers;
    // Per-caller limits key on the peer address when the server provides it
    // (`into_make_service_with_connect_info`); behind a proxy, configure that proxy instead.
    if let Some(axum::extract::ConnectInfo(peer)) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        out.extensions_mut()
            .insert(mcpauth_token_engine::CallerKey(peer.ip().to_string()));
    }
    Ok(out)
}

/// Runs one engine entry on the request and logs what it hid behind `server_error`.
async fn through_engine<F, Fut>(request: Request, call: F) -> Response
where
    F: FnOnce(http::Request<Bytes>) -> Fut,
    Fut: std::future::Future<Output = http::Response<Bytes>>,
{
    match engine_request(request).await {
        Ok(request) => logged(call(request).await),
        Err(response) => response,
    }
}

async fn token<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    request: Request,
) -> Response {
    through_engine(request, |r| async move {
        state.engine.token_endpoint(r, now()).await
    })
    .await
}

async fn register<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    request: Request,
) -> Response {
    through_engine(request, |r| async move {
        state.engine.registration_endpoint(r, now()).await
    })
    .await
}

async fn device_authorization<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    request: Request,
) -> Response {
    through_engine(request, |r| async move {
        state.engine.device_authorization_endpoint(r, now()).await
    })
    .await
}

async fn introspect<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    request: Request,
) -> Response {
    through_engine(request, |r| async move {
        state.engine.introspection_endpoint(r, now()).await
    })
    .await
}

async fn revoke<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    request: Request,
) -> Response {
    through_engine(request, |r| async move {
        state.engine.revocation_endpoint(r, now()).await
    })
    .await
}

async fn client_configuration<M: OAuthServerModel + ?Sized>(
    State(state): State<Arc<AppState<M>>>,
    axum::extract::Path(client_id): axum::extract::Path<String>,
    request: Request,
) -> Response {
    through_engine(request, |r| async move {
        state
            .engine
            .client_configuration_endpoint(r, &client_id, now())
            .await
    })
    .await
}

//! The authorization-server routes, mounted in axum: every path of
//! [`AuthorizationServer::route_paths`] goes to one handler that converts the request, calls
//! the framework-neutral service and converts the answer back.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use mcpauth_http::{
    AuthorizationServer, HttpResponse, Interaction, MAX_BODY_BYTES, body_too_large,
};
use mcpauth_token_engine::{CallerKey, OAuthServerModel, PendingAuthorization, TokenEngine};

pub use mcpauth_http::now;

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

/// Lets an axum [`InteractionHandler`] answer with any axum response.
struct AxumInteraction(Arc<dyn InteractionHandler>);

#[async_trait::async_trait]
impl Interaction for AxumInteraction {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        request: &http::request::Parts,
    ) -> HttpResponse {
        let (parts, body) = self.0.begin(pending, request).await.into_parts();
        match axum::body::to_bytes(body, 1 << 20).await {
            Ok(bytes) => http::Response::from_parts(parts, bytes),
            Err(e) => {
                tracing::error!(error = %e, "interaction response body failed");
                let mut failed = http::Response::new(Bytes::new());
                *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                failed
            }
        }
    }
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
    let mut server = AuthorizationServer::new(engine, Arc::new(AxumInteraction(interaction)));
    if let Some(fetcher) = fetcher {
        server = server.with_client_metadata_fetcher(fetcher);
    }
    router(Arc::new(server))
}

/// Mounts an [`AuthorizationServer`] built by hand.
pub fn router<M>(server: Arc<AuthorizationServer<M>>) -> Router
where
    M: OAuthServerModel + ?Sized + 'static,
{
    server
        .route_paths()
        .iter()
        .fold(Router::new(), |router, path| {
            router.route(path, any(handle::<M>))
        })
        .with_state(server)
}

async fn handle<M: OAuthServerModel + ?Sized + 'static>(
    State(server): State<Arc<AuthorizationServer<M>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return into_axum(body_too_large());
    };
    let mut request = http::Request::from_parts(parts, body);
    // Per-caller limits key on the peer address (an IPv6 one by its /64) when the server
    // provides it (`into_make_service_with_connect_info`); behind a reverse proxy, put the
    // client's address there first (`mcpauth_http::TrustedProxies`, as mcpauth-server does).
    if let Some(axum::extract::ConnectInfo(peer)) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .cloned()
    {
        request
            .extensions_mut()
            .insert(CallerKey(mcpauth_http::caller_key(peer.ip())));
    }
    // In its own task: a client that hangs up drops this future, and a request dropped inside
    // a database transaction (between `BEGIN` and the transaction's own drop guard, in sqlx)
    // returns its connection to the pool mid-transaction, row locks held. The task always
    // finishes what it started.
    match tokio::spawn(async move { server.handle(request).await }).await {
        Ok(response) => into_axum(response),
        Err(e) => {
            tracing::error!(error = %e, "the request's task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn into_axum(response: HttpResponse) -> Response {
    response.map(axum::body::Body::from).into_response()
}

/// A plain HTML page for an authorization error that must not be redirected
/// (RFC 6749 §4.1.2.1).
pub fn show_error_page(
    error: &mcpauth_oauth_types::OAuthError<mcpauth_oauth_types::AuthorizeErrorCode>,
) -> Response {
    into_axum(mcpauth_http::show_error_page(error))
}

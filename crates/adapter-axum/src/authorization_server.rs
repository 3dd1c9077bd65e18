//! The authorization-server routes, mounted in axum: every path of
//! [`AuthorizationServer::route_paths`] goes to one handler that converts the request, calls
//! the framework-neutral service and converts the answer back.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use mcpauth_http::{AuthorizationServer, HttpResponse, MAX_BODY_BYTES, body_too_large};
use mcpauth_token_engine::CallerKey;

/// Mounts `server`: every path of [`AuthorizationServer::route_paths`] (below the issuer's
/// path, with the RFC 8414 §3.1 well-known URL). Build the server with
/// [`AuthorizationServer::new`] and an [`Interaction`](mcpauth_http::Interaction) of yours,
/// the same for every adapter.
pub fn router(server: Arc<AuthorizationServer>) -> Router {
    server
        .route_paths()
        .iter()
        .fold(Router::new(), |router, path| {
            router.route(path, any(handle))
        })
        .with_state(server)
}

async fn handle(State(server): State<Arc<AuthorizationServer>>, request: Request) -> Response {
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
    // `handle` runs the request in a task of its own: a client that hangs up drops this
    // future, never the request half-way through a database transaction.
    into_axum(server.handle(request).await)
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

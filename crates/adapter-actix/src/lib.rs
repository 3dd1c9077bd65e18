#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod resource_server;

#[cfg(feature = "authorization-server")]
use std::sync::Arc;

#[cfg(feature = "authorization-server")]
use actix_web::{HttpRequest, web};
#[cfg(feature = "authorization-server")]
use bytes::Bytes;
use mcpauth_http::HttpResponse;
#[cfg(feature = "authorization-server")]
use mcpauth_http::{AuthorizationServer, MAX_BODY_BYTES, body_too_large};
#[cfg(feature = "authorization-server")]
use mcpauth_token_engine::CallerKey;

#[cfg(feature = "authorization-server")]
pub use mcpauth_http::Interaction;
pub use mcpauth_http::{ResourceServer, ResourceServerConfig, now};
pub use resource_server::{
    Authenticated, BearerGuard, BearerGuardService, protected_resource_metadata, revocation_push,
};

#[cfg(feature = "authorization-server")]
/// Registers every route of `server` (see [`AuthorizationServer::route_paths`]); pass it to
/// [`App::configure`](actix_web::App::configure).
pub fn authorization_server(
    server: Arc<AuthorizationServer>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let data = web::Data::from(server.clone());
        for path in server.route_paths() {
            config.service(
                web::resource(path)
                    .app_data(data.clone())
                    .route(web::route().to(handle)),
            );
        }
    }
}

#[cfg(feature = "authorization-server")]
async fn handle(
    request: HttpRequest,
    payload: web::Payload,
    server: web::Data<AuthorizationServer>,
) -> actix_web::HttpResponse {
    let Ok(Ok(body)) = payload.to_bytes_limited(MAX_BODY_BYTES).await else {
        return into_actix(body_too_large());
    };
    let Some(request) = into_http(&request, body) else {
        return actix_web::HttpResponse::BadRequest().finish();
    };
    into_actix(server.handle(request).await)
}

/// actix-web speaks `http` 0.2 types; the engine speaks `http` 1: convert through their wire
/// forms.
#[cfg(feature = "authorization-server")]
fn into_http(request: &HttpRequest, body: Bytes) -> Option<http::Request<Bytes>> {
    let mut converted = http::Request::builder()
        .method(http_method(request.method()))
        .uri(request.uri().to_string())
        .body(body)
        .ok()?;
    *converted.headers_mut() = http_headers(request.headers());
    // Per-caller limits key on the peer address (an IPv6 one by its /64); behind a reverse
    // proxy, actix-web's `peer_addr` is the proxy: resolve the client with
    // `mcpauth_http::TrustedProxies` in a middleware of your own.
    if let Some(peer) = request.peer_addr() {
        converted
            .extensions_mut()
            .insert(CallerKey(mcpauth_http::caller_key(peer.ip())));
    }
    Some(converted)
}

fn http_method(method: &actix_web::http::Method) -> http::Method {
    http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or_default()
}

fn http_headers(headers: &actix_web::http::header::HeaderMap) -> http::HeaderMap {
    let mut converted = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            converted.append(name, value);
        }
    }
    converted
}

fn into_actix(response: HttpResponse) -> actix_web::HttpResponse {
    let (parts, body) = response.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut converted = actix_web::HttpResponse::build(status);
    for (name, value) in &parts.headers {
        converted.append_header((name.as_str(), value.as_bytes()));
    }
    converted.body(body)
}

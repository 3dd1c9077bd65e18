//! mcpauth on bare `hyper` 1.x, a framework with no adapter crate, written from
//! `docs/embedding.md` alone. `tests/hyper_conformance.rs` runs the shared conformance
//! suites against it; `examples/hyper_mcp_server.rs` protects the MCP server with it.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use mcpauth_http::{Admission, AuthorizationServer, HttpResponse, ResourceServer, RouteRules};
use mcpauth_http::{MAX_BODY_BYTES, MAX_PUSHED_EVENT_BYTES, body_too_large, caller_key, now};
use mcpauth_token_engine::CallerKey;

/// A body as the MCP server reads and answers it (streamed, so SSE works).
pub type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
/// The protected MCP server: gets requests with the `VerifiedToken` in their extensions.
pub type Mcp = Arc<
    dyn Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// One protected path.
#[derive(Debug)]
pub struct Protected {
    /// The exact path (`/mcp`).
    pub path: String,
    /// Its protection.
    pub resource: Arc<ResourceServer>,
    /// What the route needs beyond a valid token.
    pub rules: RouteRules,
}

/// What one hyper server serves.
#[allow(missing_debug_implementations, reason = "holds a closure")]
pub struct Mount {
    /// The protected paths; their RFC 9728 documents are served too.
    pub protected: Vec<Protected>,
    /// The MCP server behind them.
    pub mcp: Mcp,
    /// The authorization server, for every other path.
    pub authorization: Option<Arc<AuthorizationServer>>,
}

/// Serves `mount` on `listener` (HTTP/1.1) until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, mount: Arc<Mount>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        // Server-sent events go out in pieces: don't hold the last one for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let mount = mount.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mount = mount.clone();
            async move { Ok::<_, Infallible>(answer(&mount, peer.ip(), request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tokio::spawn(connection);
    }
}

async fn answer(mount: &Mount, peer: IpAddr, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    for route in &mount.protected {
        if route.resource.metadata_paths().iter().any(|p| p == path) {
            if request.method() == Method::OPTIONS && route.resource.config().cors {
                return boxed(route.resource.preflight_response(request.headers()));
            }
            return boxed(route.resource.metadata_response());
        }
    }
    if let Some(route) = mount.protected.iter().find(|r| r.path == path) {
        return protect(route, &mount.mcp, request).await;
    }
    // Where the authorization server pushes revocations (RFC 8935), if it does.
    if let Some(route) = mount
        .protected
        .iter()
        .find(|r| r.resource.revocation_push_path().as_deref() == Some(path))
        && request.method() == Method::POST
    {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Ok(body) = Limited::new(request.into_body(), MAX_PUSHED_EVENT_BYTES)
            .collect()
            .await
        else {
            return boxed(body_too_large());
        };
        return boxed(
            route
                .resource
                .receive_pushed_event(authorization.as_deref(), &body.to_bytes())
                .await,
        );
    }
    let Some(server) = &mount.authorization else {
        let mut not_found = HttpResponse::default();
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return boxed(not_found);
    };
    // At most MAX_BODY_BYTES of body, the caller's address for the per-caller limits.
    let (parts, body) = request.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
        return boxed(body_too_large());
    };
    let mut request = Request::from_parts(parts, body.to_bytes());
    request.extensions_mut().insert(CallerKey(caller_key(peer)));
    // `handle` runs the request to completion in a task of its own.
    boxed(server.handle(request).await)
}

/// The `Admission` table of docs/embedding.md, carried out.
async fn protect(route: &Protected, mcp: &Mcp, request: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let (method, headers) = (&parts.method, &parts.headers);
    let admission = route
        .resource
        .admit(method, headers, &route.rules, now())
        .await;
    let (admitted, body) = match admission {
        Admission::Refuse(response) => return boxed(response),
        Admission::Preflight => {
            let body = body.map_err(Into::into).boxed_unsync();
            return mcp(Request::from_parts(parts, body)).await;
        }
        Admission::NeedsBody(pending) => {
            let Ok(read) = Limited::new(body, pending.limit()).collect().await else {
                return boxed(pending.too_large());
            };
            let bytes = read.to_bytes();
            match pending.check(&bytes) {
                Ok(admitted) => (admitted, full(bytes)),
                Err(response) => return boxed(response),
            }
        }
        Admission::Admit(admitted) => {
            let limit = admitted.body_limit();
            (admitted, Limited::new(body, limit).boxed_unsync())
        }
    };
    parts.extensions.insert(admitted.token().clone());
    let mut response = mcp(Request::from_parts(parts, body)).await;
    admitted.finish(response.status(), response.headers());
    route.resource.add_cors_headers(response.headers_mut());
    response
}

/// A whole body as a [`Body`].
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|e| match e {}).boxed_unsync()
}

fn boxed(response: HttpResponse) -> Response<Body> {
    response.map(full)
}

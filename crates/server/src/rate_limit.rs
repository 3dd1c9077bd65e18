//! Per-address rate limits on the token and device-authorization endpoints, counted in the
//! database (fixed one-minute windows, [`RateLimitStore::hit`]) so every instance behind a load
//! balancer counts the same requests. Over the limit: `429` with `Retry-After` and an RFC 6749
//! §5.2-shaped JSON body. A counter the database cannot keep ends the request at once with the
//! `500 server_error` the endpoint would give, so an outage costs one `database_timeout`. Sign-in (per account and per address)
//! and registration (per address per hour) have their own limits; device user codes are
//! limited per caller by the engine (RFC 8628 §5.1).
//!
//! The key is the client's address (an IPv6 one by its /64): the connection's peer, or,
//! behind the configured `trusted_proxies`, the client they name ([`client_address`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::{Clock, RateLimitKey, RateLimitStore};

use crate::metrics::{Endpoint, Metrics};

const WINDOW: u64 = 60;

/// Requests allowed per address per minute, per endpoint; 0 turns a limit off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) token: u32,
    pub(crate) device_authorization: u32,
}

/// What the rate-limit layer needs.
pub(crate) struct RateLimiter {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: SqlStore,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) base: String,
    pub(crate) limits: Limits,
}

impl RateLimiter {
    /// The endpoint's per-address limit, its name (for logs) and its rate-limit bucket.
    fn limit(&self, endpoint: Endpoint) -> Option<(u32, &'static str, &'static str)> {
        let (limit, name, bucket) = match endpoint {
            Endpoint::Token => (self.limits.token, "token", "token-address"),
            Endpoint::DeviceAuthorization => (
                self.limits.device_authorization,
                "device_authorization",
                "device_authorization-address",
            ),
            _ => return None,
        };
        (limit > 0).then_some((limit, name, bucket))
    }
}

fn too_many(retry_after: u64) -> Response {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": format!(
            "too many requests from this address: retry after {retry_after} seconds"
        ),
    });
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    mcpauth_http::endpoint_headers(response.headers_mut(), true);
    response
}

/// What the endpoint itself answers when its database is away (RFC 6749 §5.2
/// `server_error`); the cause is logged, never sent.
fn database_unavailable() -> Response {
    let body = serde_json::json!({
        "error": "server_error",
        "error_description": "the server cannot answer this request now; try again shortly",
    });
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response();
    mcpauth_http::endpoint_headers(response.headers_mut(), true);
    response
}

/// The rate-limit layer.
pub(crate) async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = Endpoint::of(request.uri().path(), &limiter.base);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    // A CORS preflight asks for nothing and the endpoint answers it without the database.
    let preflight = request.method() == axum::http::Method::OPTIONS;
    if let (Some((limit, name, bucket)), Some(peer), false) =
        (limiter.limit(endpoint), peer, preflight)
    {
        let now = limiter.clock.now();
        match limiter
            .store
            .hit(
                &RateLimitKey::new(bucket, &mcpauth_http::caller_key(peer)),
                now,
                WINDOW,
            )
            .await
        {
            Ok(hits) if hits > limit => {
                tracing::warn!(endpoint = name, "requests over the per-address limit");
                limiter.metrics.rate_limited(endpoint);
                return too_many((WINDOW - now.0 % WINDOW).max(1));
            }
            Ok(_) => {}
            // The endpoint needs the same database: answer as it would, now, rather than let
            // it wait out `database_timeout` a second time (docs/postgres.md promises one).
            Err(e) => {
                tracing::warn!(error = %e, endpoint = name, "rate-limit counter failed");
                return database_unavailable();
            }
        }
    }
    next.run(request).await
}

/// The outermost layer: behind `trusted_proxies`, replaces the connection's peer address
/// with the client's that the proxies name, so every per-address limit, the engine's
/// per-caller limits and the logs see the real client. Requests from any other peer keep
/// their peer address, whatever headers they carry.
pub(crate) async fn client_address(
    State(proxies): State<Arc<mcpauth_http::TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = proxies.client_address(peer.ip(), request.headers());
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(request).await
}

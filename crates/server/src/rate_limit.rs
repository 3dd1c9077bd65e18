//! Per-address rate limits on the token and device-authorization endpoints (fixed one-minute
//! windows). Over the limit: `429` with `Retry-After` and an RFC 6749 §5.2-shaped JSON body.
//! Sign-in (per account and per address) and registration (per address per hour) have their
//! own limits; device user codes are limited per caller by the engine (RFC 8628 §5.1).
//!
//! Counted here, added to the database's shared counter ([`RateLimitStore::add_hits`]) only
//! now and then: at an address's first request in a window, then once [`SYNC_INTERVAL`] has
//! passed or a tenth of the limit has been counted since. A write per request was the token
//! endpoint's largest cost after the grant itself. What that gives up: one instance counts
//! exactly (hits on their way to the database count too); with several instances behind a
//! load balancer, an address can get, on top of the limit, what each instance admitted since
//! its last addition while the others added theirs: less than a tenth of the limit per
//! instance. A counter the database cannot
//! keep ends the request at once with the `500 server_error` the endpoint would give, so an
//! outage costs one `database_timeout`.
//!
//! The key is the client's address (an IPv6 one by its /64): the connection's peer, or,
//! behind the configured `trusted_proxies`, the client they name ([`client_address`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::{Clock, RateLimitKey, RateLimitStore};

use crate::metrics::{Endpoint, Metrics};

const WINDOW: u64 = 60;

/// Longest an instance keeps an address's count to itself, in seconds.
pub(crate) const SYNC_INTERVAL: u64 = 2;

/// Most addresses counted locally at once; past it, windows that have ended are dropped, and
/// if that is not enough, an address's hits go to the database one by one.
const MAX_LOCAL_ADDRESSES: usize = 100_000;

/// An address's count in the current window, as this instance knows it.
#[derive(Debug)]
struct LocalCount {
    window_start: u64,
    /// The shared total at the last addition (every instance's hits).
    shared: u32,
    /// Hits counted here since, not yet added to the shared total.
    unsynced: u32,
    /// Hits on their way to the shared total (an addition not answered yet): still counted
    /// here, or concurrent requests would pass while the database is slow.
    pending: u32,
    /// When this instance last added its hits (`None`: not yet in this window, or the last
    /// addition failed).
    synced_at: Option<u64>,
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Under the limit, as far as anyone knows.
    Admit,
    /// Over it, whatever the other instances counted.
    Refuse,
    /// Add these hits (this request's included) to the shared counter, then decide by its
    /// total ([`LocalCounts::synced`]).
    Add(u32),
}

/// Every address's count in its current window.
#[derive(Debug, Default)]
pub(crate) struct LocalCounts {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    by_address: HashMap<String, LocalCount>,
    /// The window whose start last dropped ended windows (at most once per window: the drop
    /// walks every address).
    cleaned_for: Option<u64>,
}

impl LocalCount {
    fn new(window_start: u64) -> Self {
        Self {
            window_start,
            shared: 0,
            unsynced: 0,
            pending: 0,
            synced_at: None,
        }
    }

    /// Every hit this instance knows of in the window.
    fn known(&self) -> u32 {
        self.shared
            .saturating_add(self.pending)
            .saturating_add(self.unsynced)
    }
}

impl LocalCounts {
    /// Counts one request from `key` at `now` against `limit`.
    pub(crate) fn count(&self, key: &str, now: u64, limit: u32) -> Verdict {
        let window_start = now - now % WINDOW;
        let Ok(mut counts) = self.counts.lock() else {
            return Verdict::Add(1);
        };
        let counts = &mut *counts;
        if counts.by_address.len() >= MAX_LOCAL_ADDRESSES && !counts.by_address.contains_key(key) {
            if counts.cleaned_for != Some(window_start) {
                counts.cleaned_for = Some(window_start);
                counts
                    .by_address
                    .retain(|_, count| count.window_start == window_start);
            }
            // Still full (that many addresses in this window): this one counts in the
            // database alone.
            if counts.by_address.len() >= MAX_LOCAL_ADDRESSES {
                return Verdict::Add(1);
            }
        }
        let count = counts
            .by_address
            .entry(key.to_owned())
            .or_insert_with(|| LocalCount::new(window_start));
        if count.window_start != window_start {
            *count = LocalCount::new(window_start);
        }
        count.unsynced = count.unsynced.saturating_add(1);
        // Others only add to the shared total: over the limit here is over it everywhere.
        if count.known() > limit {
            return Verdict::Refuse;
        }
        let due = match count.synced_at {
            None => true,
            Some(at) => {
                now.saturating_sub(at) >= SYNC_INTERVAL || count.unsynced >= (limit / 10).max(1)
            }
        };
        if !due {
            return Verdict::Admit;
        }
        let hits = std::mem::take(&mut count.unsynced);
        count.pending = count.pending.saturating_add(hits);
        // Marked now, so concurrent requests do not add the same window again meanwhile.
        count.synced_at = Some(now);
        Verdict::Add(hits)
    }

    /// The shared counter answered `total` for the hits of `Verdict::Add`: whether the request
    /// is admitted.
    pub(crate) fn synced(&self, key: &str, now: u64, hits: u32, limit: u32, total: u32) -> bool {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(count) = counts.by_address.get_mut(key)
            && count.window_start == now - now % WINDOW
        {
            count.pending = count.pending.saturating_sub(hits);
            count.shared = count.shared.max(total);
        }
        total <= limit
    }

    /// The addition of `hits` failed: they are counted again at the next request, which
    /// tries the database itself.
    pub(crate) fn failed(&self, key: &str, now: u64, hits: u32) {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(count) = counts.by_address.get_mut(key)
            && count.window_start == now - now % WINDOW
        {
            count.pending = count.pending.saturating_sub(hits);
            count.unsynced = count.unsynced.saturating_add(hits);
            count.synced_at = None;
        }
    }
}

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
    pub(crate) counts: LocalCounts,
}

impl RateLimiter {
    /// The endpoint's per-address limit, its name (for logs) and its rate-limit bucket.
    fn limit(&self, endpoint: Endpoint) -> Option<(u32, &'static str, &'static str)> {
        let (limit, name, bucket) = match endpoint {
            Endpoint::Token => (self.limits.token, "token", "token-address"),
            // Revocation authenticates a client too: without a limit, failed authentications
            // (each an audit record) would cost an attacker nothing.
            Endpoint::Revoke => (self.limits.token, "revocation", "revocation-address"),
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
    let mut response = mcpauth_http::endpoint_error(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        &format!("too many requests from this address: retry after {retry_after} seconds"),
    )
    .map(axum::body::Body::from);
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// What the endpoint itself answers when its database is away (RFC 6749 §5.2
/// `server_error`); the cause is logged, never sent.
fn database_unavailable() -> Response {
    mcpauth_http::endpoint_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server cannot answer this request now; try again shortly",
    )
    .map(axum::body::Body::from)
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
        let key = RateLimitKey::new(bucket, &mcpauth_http::caller_key(peer));
        let admitted = match limiter.counts.count(key.as_str(), now.0, limit) {
            Verdict::Admit => true,
            Verdict::Refuse => false,
            Verdict::Add(hits) => match limiter.store.add_hits(&key, now, WINDOW, hits).await {
                Ok(total) => limiter
                    .counts
                    .synced(key.as_str(), now.0, hits, limit, total),
                // The endpoint needs the same database: answer as it would, now, rather than
                // let it wait out `database_timeout` a second time (docs/postgres.md promises
                // one).
                Err(e) => {
                    limiter.counts.failed(key.as_str(), now.0, hits);
                    tracing::warn!(error = %e, endpoint = name, "rate-limit counter failed");
                    return database_unavailable();
                }
            },
        };
        if !admitted {
            tracing::warn!(endpoint = name, "requests over the per-address limit");
            limiter.metrics.rate_limited(endpoint);
            return too_many((WINDOW - now.0 % WINDOW).max(1));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One instance in front of a shared counter (the database's, here a number).
    fn request(
        counts: &LocalCounts,
        shared: &mut u32,
        adds: &mut u32,
        now: u64,
        limit: u32,
    ) -> bool {
        match counts.count("token-address:192.0.2.1", now, limit) {
            Verdict::Admit => true,
            Verdict::Refuse => false,
            Verdict::Add(hits) => {
                *adds += 1;
                *shared += hits;
                counts.synced("token-address:192.0.2.1", now, hits, limit, *shared)
            }
        }
    }

    #[test]
    fn one_instance_admits_exactly_the_limit_per_window() {
        let counts = LocalCounts::default();
        let (mut shared, mut adds) = (0, 0);
        let start = 6_000;
        let admitted = (0..700)
            .filter(|_| request(&counts, &mut shared, &mut adds, start + 1, 600))
            .count();
        assert_eq!(admitted, 600);
        // The next window starts over.
        assert!(request(
            &counts,
            &mut shared,
            &mut adds,
            start + WINDOW,
            600
        ));
    }

    #[test]
    fn the_shared_counter_is_written_once_per_interval_or_tenth_of_the_limit_not_per_request() {
        let counts = LocalCounts::default();
        let (mut shared, mut adds) = (0, 0);
        // 50 requests in the same second, limit 600: the first, then every 60th.
        for _ in 0..50 {
            assert!(request(&counts, &mut shared, &mut adds, 6_000, 600));
        }
        assert_eq!(adds, 1);
        // The interval passes: the next request adds what was counted meanwhile.
        assert!(request(
            &counts,
            &mut shared,
            &mut adds,
            6_000 + SYNC_INTERVAL,
            600
        ));
        assert_eq!((adds, shared), (2, 51));
        for _ in 0..60 {
            assert!(request(
                &counts,
                &mut shared,
                &mut adds,
                6_000 + SYNC_INTERVAL,
                600
            ));
        }
        assert_eq!(adds, 3, "a tenth of the limit counted: added at once");
    }

    #[test]
    fn instances_sharing_a_counter_admit_at_most_the_limit_plus_a_tenth_per_instance() {
        let instances = [
            LocalCounts::default(),
            LocalCounts::default(),
            LocalCounts::default(),
        ];
        let (mut shared, mut adds) = (0, 0);
        let mut admitted = 0;
        // A burst spread over every instance, within one second.
        for i in 0..3_000 {
            if request(&instances[i % 3], &mut shared, &mut adds, 6_000, 600) {
                admitted += 1;
            }
        }
        assert!(admitted >= 600, "{admitted}");
        assert!(admitted <= 600 + 3 * 60, "{admitted}");
        assert!(adds < 100, "{adds} writes for 3000 requests");
    }

    #[test]
    fn hits_whose_addition_failed_are_added_by_the_next_request() {
        let counts = LocalCounts::default();
        let key = "token-address:192.0.2.1";
        let Verdict::Add(hits) = counts.count(key, 6_000, 600) else {
            panic!("the first request of a window adds");
        };
        counts.failed(key, 6_000, hits);
        assert_eq!(counts.count(key, 6_000, 600), Verdict::Add(2));
    }

    #[test]
    fn an_address_over_the_limit_is_refused_without_the_database() {
        let counts = LocalCounts::default();
        let key = "token-address:192.0.2.1";
        assert_eq!(counts.count(key, 6_000, 1), Verdict::Add(1));
        assert!(counts.synced(key, 6_000, 1, 1, 1));
        assert_eq!(counts.count(key, 6_000, 1), Verdict::Refuse);
        // Another instance's hits, learnt at an addition, count too.
        assert_eq!(counts.count(key, 6_000 + WINDOW, 5), Verdict::Add(1));
        assert!(!counts.synced(key, 6_000 + WINDOW, 1, 5, 9));
        assert_eq!(counts.count(key, 6_000 + WINDOW, 5), Verdict::Refuse);
    }

    #[test]
    fn hits_on_their_way_to_the_database_still_count() {
        let counts = LocalCounts::default();
        let key = "token-address:192.0.2.1";
        let Verdict::Add(first) = counts.count(key, 6_000, 20) else {
            panic!("the first request of a window adds");
        };
        // The database has not answered yet: the other requests of the burst count against
        // the limit meanwhile.
        let mut admitted = 1;
        for _ in 0..100 {
            match counts.count(key, 6_000, 20) {
                Verdict::Refuse => {}
                Verdict::Admit | Verdict::Add(_) => admitted += 1,
            }
        }
        assert_eq!(admitted, 20);
        assert!(counts.synced(key, 6_000, first, 20, first));
    }

    #[test]
    fn a_full_table_of_addresses_is_cleaned_once_per_window_then_counts_in_the_database() {
        let counts = LocalCounts::default();
        for i in 0..MAX_LOCAL_ADDRESSES {
            assert!(matches!(
                counts.count(&format!("a:{i}"), 6_000, 600),
                Verdict::Add(1)
            ));
        }
        // Every address is of this window: nothing to drop, so a new one goes to the database.
        assert_eq!(counts.count("a:new", 6_000, 600), Verdict::Add(1));
        assert_eq!(counts.count("a:new", 6_000, 600), Verdict::Add(1));
        // The next window drops the ended one once, and counts here again.
        assert_eq!(counts.count("a:next", 6_000 + WINDOW, 600), Verdict::Add(1));
        assert_eq!(counts.count("a:next", 6_000 + WINDOW, 600), Verdict::Admit);
    }
}

//! Prometheus metrics at `/metrics` (text exposition format 0.0.4): requests and latencies per
//! endpoint, tokens issued per grant type, OAuth errors per endpoint and error code.
//!
//! Labels come from fixed sets (the endpoint is classified from the path, grant types outside
//! the known ones count as `other`, error codes outside RFC 6749/7591/8628/6750's as `other`),
//! so no request can grow the number of series. Counters are lock-free except the error
//! table, taken once per failed request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use mcpauth_oauth_types::GrantType;
use mcpauth_token_engine::{IssuedForGrantType, paths};

/// What a request was for, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    Authorize,
    Token,
    Register,
    DeviceAuthorization,
    Introspect,
    Revoke,
    Jwks,
    Metadata,
    Interaction,
    Device,
    Account,
    SignIn,
    Static,
    Health,
    Metrics,
    Other,
}

const ENDPOINTS: [Endpoint; 16] = [
    Endpoint::Authorize,
    Endpoint::Token,
    Endpoint::Register,
    Endpoint::DeviceAuthorization,
    Endpoint::Introspect,
    Endpoint::Revoke,
    Endpoint::Jwks,
    Endpoint::Metadata,
    Endpoint::Interaction,
    Endpoint::Device,
    Endpoint::Account,
    Endpoint::SignIn,
    Endpoint::Static,
    Endpoint::Health,
    Endpoint::Metrics,
    Endpoint::Other,
];

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Token => "token",
            Self::Register => "register",
            Self::DeviceAuthorization => "device_authorization",
            Self::Introspect => "introspect",
            Self::Revoke => "revoke",
            Self::Jwks => "jwks",
            Self::Metadata => "metadata",
            Self::Interaction => "interaction",
            Self::Device => "device",
            Self::Account => "account",
            Self::SignIn => "sign_in",
            Self::Static => "static",
            Self::Health => "health",
            Self::Metrics => "metrics",
            Self::Other => "other",
        }
    }

    fn index(self) -> usize {
        ENDPOINTS
            .iter()
            .position(|e| *e == self)
            .unwrap_or(ENDPOINTS.len() - 1)
    }

    /// Classifies `path` for a server whose pages and endpoints live below `base`.
    pub(crate) fn of(path: &str, base: &str) -> Self {
        if path.starts_with("/.well-known/") {
            return Self::Metadata;
        }
        match path {
            "/health" | "/ready" => return Self::Health,
            "/metrics" => return Self::Metrics,
            _ => {}
        }
        let Some(rest) = path.strip_prefix(base) else {
            return Self::Other;
        };
        match rest {
            paths::AUTHORIZE => Self::Authorize,
            paths::TOKEN => Self::Token,
            paths::DEVICE_AUTHORIZATION => Self::DeviceAuthorization,
            paths::INTROSPECT => Self::Introspect,
            paths::REVOKE => Self::Revoke,
            paths::JWKS => Self::Jwks,
            crate::DEVICE_PATH => Self::Device,
            "/sign-in" | "/sign-out" => Self::SignIn,
            _ if rest
                .strip_prefix(paths::REGISTER)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('/')) =>
            {
                Self::Register
            }
            _ if rest.starts_with("/interaction/") => Self::Interaction,
            _ if rest.starts_with("/account") => Self::Account,
            _ if rest.starts_with("/static/") => Self::Static,
            _ => Self::Other,
        }
    }
}

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    /// Cumulative counts are computed at render time; each slot counts its own bucket, the
    /// last one everything above the largest bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

const GRANT_TYPES: [&str; 6] = [
    GrantType::AuthorizationCode.as_str(),
    GrantType::RefreshToken.as_str(),
    GrantType::ClientCredentials.as_str(),
    GrantType::DeviceCode.as_str(),
    GrantType::TokenExchange.as_str(),
    "other",
];

const ERROR_CODES: [&str; 20] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "access_denied",
    "unsupported_response_type",
    "server_error",
    "temporarily_unavailable",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_software_statement",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "invalid_token",
    "insufficient_scope",
    "unsupported_token_type",
];

/// The server's counters.
pub(crate) struct Metrics {
    started: Instant,
    /// When this instance started (Unix seconds), for `process_start_time_seconds`.
    started_at: u64,
    /// Requests per endpoint and status class (1xx..5xx).
    requests: [[AtomicU64; 5]; ENDPOINTS.len()],
    latency: [Histogram; ENDPOINTS.len()],
    tokens_issued: [AtomicU64; GRANT_TYPES.len()],
    errors: Mutex<BTreeMap<(Endpoint, &'static str), u64>>,
    rate_limited: [AtomicU64; ENDPOINTS.len()],
    /// Shared Signals: polls answered, events delivered, and the last poll's time (Unix
    /// seconds) and lag (how long its oldest delivered event had waited, seconds).
    ssf_polls: AtomicU64,
    ssf_events_delivered: AtomicU64,
    ssf_last_poll: AtomicU64,
    ssf_lag: AtomicU64,
    /// Pushes (RFC 8935) by outcome: delivered, refused by the receiver, failed (retried).
    ssf_pushes: [AtomicU64; 3],
    /// Audit records written by the batch writer, and dropped because its queue was full.
    audit_written: AtomicU64,
    audit_dropped: AtomicU64,
    /// The minute (since start, from 1) a drop was last logged in.
    audit_drop_logged: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            requests: Default::default(),
            latency: Default::default(),
            tokens_issued: Default::default(),
            errors: Mutex::new(BTreeMap::new()),
            rate_limited: Default::default(),
            ssf_polls: AtomicU64::new(0),
            ssf_events_delivered: AtomicU64::new(0),
            ssf_last_poll: AtomicU64::new(0),
            ssf_lag: AtomicU64::new(0),
            ssf_pushes: Default::default(),
            audit_written: AtomicU64::new(0),
            audit_dropped: AtomicU64::new(0),
            audit_drop_logged: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    fn observe(&self, endpoint: Endpoint, status: StatusCode, elapsed: std::time::Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        let index = endpoint.index();
        if let Some(slot) = self.requests.get(index).and_then(|row| row.get(class)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(histogram) = self.latency.get(index) {
            let seconds = elapsed.as_secs_f64();
            let bucket = BUCKETS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(BUCKETS.len());
            if let Some(slot) = histogram.buckets.get(bucket) {
                slot.fetch_add(1, Ordering::Relaxed);
            }
            histogram.sum_micros.fetch_add(
                u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
    }

    fn token_issued(&self, grant_type: &str) {
        let index = GRANT_TYPES
            .iter()
            .position(|g| *g == grant_type)
            .unwrap_or(GRANT_TYPES.len() - 1);
        if let Some(slot) = self.tokens_issued.get(index) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn error(&self, endpoint: Endpoint, code: &str) {
        let code = ERROR_CODES
            .iter()
            .find(|c| **c == code)
            .copied()
            .unwrap_or("other");
        let mut errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *errors.entry((endpoint, code)).or_default() += 1;
    }

    /// Counts a request refused by a rate limit.
    pub(crate) fn rate_limited(&self, endpoint: Endpoint) {
        if let Some(slot) = self.rate_limited.get(endpoint.index()) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a Shared Signals poll at `now` that delivered `delivered` events, the oldest of
    /// which occurred at `oldest` (Unix seconds).
    pub(crate) fn ssf_polled(&self, delivered: usize, oldest: Option<u64>, now: u64) {
        self.ssf_polls.fetch_add(1, Ordering::Relaxed);
        self.ssf_events_delivered.fetch_add(
            u64::try_from(delivered).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.ssf_last_poll.store(now, Ordering::Relaxed);
        if let Some(oldest) = oldest {
            self.ssf_lag
                .store(now.saturating_sub(oldest), Ordering::Relaxed);
        }
    }

    /// Counts one push delivery round at `now`: `delivered` events accepted (the oldest
    /// having occurred at `oldest`), `refused` ones the receiver said it will never accept,
    /// and whether it ended in a failure that is retried.
    pub(crate) fn ssf_pushed(
        &self,
        delivered: usize,
        refused: usize,
        failed: bool,
        oldest: Option<u64>,
        now: u64,
    ) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let [delivered_total, refused_total, failed_total] = &self.ssf_pushes;
        delivered_total.fetch_add(count(delivered), Ordering::Relaxed);
        refused_total.fetch_add(count(refused), Ordering::Relaxed);
        failed_total.fetch_add(u64::from(failed), Ordering::Relaxed);
        self.ssf_events_delivered
            .fetch_add(count(delivered), Ordering::Relaxed);
        if let Some(oldest) = oldest.filter(|_| delivered > 0) {
            self.ssf_lag
                .store(now.saturating_sub(oldest), Ordering::Relaxed);
        }
    }

    /// Counts audit records the batch writer stored.
    pub(crate) fn audit_written(&self, count: usize) {
        self.audit_written
            .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts one audit record dropped (its queue full); answers whether to log it: the first,
    /// then at most once a minute.
    pub(crate) fn audit_dropped(&self) -> bool {
        self.audit_dropped.fetch_add(1, Ordering::Relaxed);
        let minute = self.started.elapsed().as_secs() / 60 + 1;
        self.audit_drop_logged.swap(minute, Ordering::Relaxed) != minute
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let _ = writeln!(
            out,
            "# HELP mcpauth_http_requests_total HTTP requests answered, by endpoint and status class.\n# TYPE mcpauth_http_requests_total counter"
        );
        for (endpoint, row) in ENDPOINTS.iter().zip(&self.requests) {
            for (class, count) in row.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "mcpauth_http_requests_total{{endpoint=\"{}\",status=\"{}xx\"}} {count}",
                        endpoint.label(),
                        class + 1
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP mcpauth_http_request_duration_seconds Time to answer, by endpoint.\n# TYPE mcpauth_http_request_duration_seconds histogram"
        );
        for (endpoint, histogram) in ENDPOINTS.iter().zip(&self.latency) {
            let counts: Vec<u64> = histogram
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let label = endpoint.label();
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "mcpauth_http_request_duration_seconds_bucket{{endpoint=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "mcpauth_http_request_duration_seconds_bucket{{endpoint=\"{label}\",le=\"+Inf\"}} {total}\nmcpauth_http_request_duration_seconds_sum{{endpoint=\"{label}\"}} {sum}\nmcpauth_http_request_duration_seconds_count{{endpoint=\"{label}\"}} {total}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcpauth_tokens_issued_total Successful token responses, by grant type.\n# TYPE mcpauth_tokens_issued_total counter"
        );
        for (grant_type, count) in GRANT_TYPES.iter().zip(&self.tokens_issued) {
            let _ = writeln!(
                out,
                "mcpauth_tokens_issued_total{{grant_type=\"{grant_type}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcpauth_oauth_errors_total OAuth error responses, by endpoint and error code.\n# TYPE mcpauth_oauth_errors_total counter"
        );
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for ((endpoint, code), count) in errors {
            let _ = writeln!(
                out,
                "mcpauth_oauth_errors_total{{endpoint=\"{}\",error=\"{code}\"}} {count}",
                endpoint.label()
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcpauth_ssf_polls_total Shared Signals polls answered (RFC 8936).\n# TYPE mcpauth_ssf_polls_total counter\nmcpauth_ssf_polls_total {}\n# HELP mcpauth_ssf_events_delivered_total Security events delivered to receivers.\n# TYPE mcpauth_ssf_events_delivered_total counter\nmcpauth_ssf_events_delivered_total {}\n# HELP mcpauth_ssf_last_poll_timestamp_seconds When a receiver last polled this instance.\n# TYPE mcpauth_ssf_last_poll_timestamp_seconds gauge\nmcpauth_ssf_last_poll_timestamp_seconds {}\n# HELP mcpauth_ssf_delivery_lag_seconds How long the oldest event of the last poll or push that delivered any had waited.\n# TYPE mcpauth_ssf_delivery_lag_seconds gauge\nmcpauth_ssf_delivery_lag_seconds {}",
            self.ssf_polls.load(Ordering::Relaxed),
            self.ssf_events_delivered.load(Ordering::Relaxed),
            self.ssf_last_poll.load(Ordering::Relaxed),
            self.ssf_lag.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP mcpauth_ssf_pushes_total Security events pushed to receivers (RFC 8935), by outcome (failed: a delivery round that will be retried).\n# TYPE mcpauth_ssf_pushes_total counter"
        );
        for (outcome, count) in ["delivered", "refused", "failed"]
            .iter()
            .zip(&self.ssf_pushes)
        {
            let _ = writeln!(
                out,
                "mcpauth_ssf_pushes_total{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcpauth_rate_limited_total Requests refused by a per-address rate limit.\n# TYPE mcpauth_rate_limited_total counter"
        );
        for (endpoint, count) in ENDPOINTS.iter().zip(&self.rate_limited) {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "mcpauth_rate_limited_total{{endpoint=\"{}\"}} {count}",
                    endpoint.label()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP mcpauth_audit_records_written_total Audit records of the token, revocation and registration endpoints stored by the batch writer.\n# TYPE mcpauth_audit_records_written_total counter\nmcpauth_audit_records_written_total {}\n# HELP mcpauth_audit_records_dropped_total Audit records dropped because the writer's queue was full (the database slower than the endpoints); alert on any.\n# TYPE mcpauth_audit_records_dropped_total counter\nmcpauth_audit_records_dropped_total {}",
            self.audit_written.load(Ordering::Relaxed),
            self.audit_dropped.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP mcpauth_build_info The running version.\n# TYPE mcpauth_build_info gauge\nmcpauth_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        process_metrics(&mut out, self.started_at);
        let _ = writeln!(
            out,
            "# HELP mcpauth_uptime_seconds Seconds since this instance started.\n# TYPE mcpauth_uptime_seconds gauge\nmcpauth_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );
        out
    }
}

/// What the metrics layer needs.
pub(crate) struct Observed {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) base: String,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The metrics layer: counts and times every request; reads the grant type of issued
/// tokens from the engine's response extension, and the `error` code of JSON error answers
/// (small, and only on errors).
pub(crate) async fn track(
    State(observed): State<Arc<Observed>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let endpoint = Endpoint::of(request.uri().path(), &observed.base);
    let response = next.run(request).await;
    let status = response.status();
    let response = if status.is_client_error() || status.is_server_error() {
        if is_json(response.headers()) {
            let (parts, body) = response.into_parts();
            match axum::body::to_bytes(body, 64 * 1024).await {
                Ok(bytes) => {
                    if let Some(code) = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .as_ref()
                        .and_then(|v| v.get("error"))
                        .and_then(serde_json::Value::as_str)
                    {
                        observed.metrics.error(endpoint, code);
                    }
                    Response::from_parts(parts, Body::from(bytes))
                }
                Err(_) => Response::from_parts(parts, Body::empty()),
            }
        } else {
            // Resource-server style errors live in WWW-Authenticate; pages are HTML.
            response
        }
    } else {
        if status == StatusCode::OK
            && endpoint == Endpoint::Token
            && let Some(issued) = response.extensions().get::<IssuedForGrantType>()
        {
            observed.metrics.token_issued(&issued.0);
        }
        response
    };
    observed
        .metrics
        .observe(endpoint, status, started.elapsed());
    response
}

/// The standard process metrics (Prometheus client conventions), from `/proc/self` on Linux;
/// only the start time elsewhere.
fn process_metrics(out: &mut String, started_at: u64) {
    let _ = writeln!(
        out,
        "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started_at}"
    );
    #[cfg(target_os = "linux")]
    {
        // utime and stime (fields 14 and 15, after the parenthesised command name), in the
        // kernel's USER_HZ: 100 a second on every Linux architecture's user ABI.
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some(ticks as f64 / 100.0)
            });
        if let Some(seconds) = cpu_seconds {
            let _ = writeln!(
                out,
                "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {seconds}"
            );
        }
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let kib = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()?;
                Some(kib * 1024)
            });
        if let Some(bytes) = resident_bytes {
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {bytes}"
            );
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let _ = writeln!(
                out,
                "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}",
                fds.count()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_classified_below_the_issuer_path() {
        assert_eq!(Endpoint::of("/t/token", "/t"), Endpoint::Token);
        assert_eq!(Endpoint::of("/t/register/abc", "/t"), Endpoint::Register);
        assert_eq!(Endpoint::of("/token", "/t"), Endpoint::Other);
        assert_eq!(
            Endpoint::of("/.well-known/oauth-authorization-server/t", "/t"),
            Endpoint::Metadata
        );
        assert_eq!(
            Endpoint::of("/interaction/x/login", ""),
            Endpoint::Interaction
        );
    }

    #[test]
    fn unknown_labels_collapse_so_series_stay_bounded() {
        let metrics = Metrics::default();
        metrics.token_issued("made-up-grant");
        metrics.error(Endpoint::Token, "<script>");
        metrics.observe(
            Endpoint::Token,
            StatusCode::OK,
            std::time::Duration::from_millis(2),
        );
        let text = metrics.render();
        assert!(text.contains("mcpauth_tokens_issued_total{grant_type=\"other\"} 1"));
        assert!(text.contains("mcpauth_oauth_errors_total{endpoint=\"token\",error=\"other\"} 1"));
        assert!(!text.contains("<script>"));
        assert!(text.contains(
            "mcpauth_http_request_duration_seconds_bucket{endpoint=\"token\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains("mcpauth_http_requests_total{endpoint=\"token\",status=\"2xx\"} 1"));
    }
}

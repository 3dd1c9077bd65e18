//! Revocation that reaches this resource server: a receiver of the authorization server's
//! Shared Signals stream (SSF 1.0, RFC 8936 poll delivery), so a token whose grant, user,
//! client or signing key was revoked is refused (`401 invalid_token`) within seconds, not at
//! its `exp`.
//!
//! - [`ResourceServer::receive_revocations`] runs in the application's runtime (the protocol
//!   crates stay sans-IO): it reads the transmitter's configuration, creates this instance's
//!   stream, and polls it every [`RevocationStream::poll_interval`] seconds, verifying each
//!   Security Event Token with the issuer's keys and acknowledging it once applied.
//! - Or, with [`RevocationStream::push_to`], the transmitter posts each event to this
//!   resource server (RFC 8935; the operator lists its origin in the authorization server's
//!   `ssf_push_origins`), at the route the adapters mount for
//!   [`ResourceServer::receive_pushed_event`]. Each push must carry the credential this
//!   receiver gave the transmitter when it created the stream, and verify as a Security
//!   Event Token for this receiver. To tell a calm stream from a broken one, the receiver
//!   asks for a verification event (SSF §8.1.4) every [`RevocationStream::verification_interval`]
//!   seconds; the stream counts as answering up to the moment of the last request whose
//!   event arrived (everything recorded before it arrived first).
//! - Every verified token is checked against the [`RevocationList`] by a few hash lookups.
//! - When the stream has not answered for [`RevocationStream::max_silence`] seconds, what
//!   [`WhenUnreachable`] says: by default tokens issued before the last successful poll plus
//!   that bound are answered `503` (they may have been revoked meanwhile); before the first
//!   successful poll, every token is. An event that cannot be verified yet (keys
//!   unreachable, a key not yet published, a clock behind the transmitter's) is not
//!   acknowledged, and the receiver counts as silent until it is applied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcpauth_bearer::{RevocationList, VerifiedToken, VerifyError};
use mcpauth_oauth_types::UnixTime;
use mcpauth_oauth_types::security_events::{POLL_DELIVERY, PUSH_DELIVERY};
use serde_json::{Value, json};

use http::StatusCode;

use super::Refusal;
use crate::{HttpResponse, ResourceServer};

/// The largest pushed Security Event Token an adapter reads before calling
/// [`ResourceServer::receive_pushed_event`] (a SET is a few hundred bytes).
pub const MAX_PUSHED_EVENT_BYTES: usize = 64 * 1024;

/// An RFC 8935 §2.3 error answer.
fn push_error(status: StatusCode, err: &str, description: &str) -> HttpResponse {
    let body = json!({ "err": err, "description": description });
    crate::response::response(
        status,
        &[(http::header::CONTENT_TYPE, "application/json")],
        bytes::Bytes::from(body.to_string()),
    )
}

/// What to do with tokens while the stream cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenUnreachable {
    /// Refuse (`503`, try again) every token issued before the last successful poll plus
    /// `max_silence`, and every token before the first poll. A token issued after that
    /// moment is accepted even if it was revoked during the silence (the issue's rule: tokens
    /// this receiver could have known about are the ones refused). The default.
    FailClosed,
    /// Keep accepting tokens, logging a warning: availability over prompt revocation.
    KeepServing,
}

/// The authorization server's Shared Signals stream, as this resource server receives it.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use mcpauth_http::{ResourceServer, ResourceServerConfig, RevocationStream};
///
/// let config = ResourceServerConfig::new(
///     "https://mcp.example.com/mcp",
///     "https://auth.example.com",
///     "https://auth.example.com/jwks.json",
/// )
/// // A resource server the operator added: mcpauth-server client add --resource-server
/// .with_revocation_stream(RevocationStream::new(
///     "https://auth.example.com",
///     "mcp-server-client-id",
///     "its-secret",
/// ));
/// let protection = Arc::new(ResourceServer::new(config)?);
/// // In the application's runtime, for as long as it serves.
/// tokio::spawn(protection.clone().receive_revocations());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RevocationStream {
    /// The transmitter's configuration document (SSF §7.1), e.g.
    /// `https://auth.example.com/.well-known/ssf-configuration`.
    pub configuration_url: String,
    /// This resource server's client id at the authorization server (an operator-registered
    /// resource server: `mcpauth-server client add --resource-server`).
    pub client_id: String,
    /// Its client secret (HTTP Basic).
    pub client_secret: String,
    /// Seconds between polls. Default 1.
    pub poll_interval: u64,
    /// Seconds without a successful poll after which [`when_unreachable`](Self::when_unreachable)
    /// applies. Default 30.
    pub max_silence: u64,
    /// Default [`WhenUnreachable::FailClosed`].
    pub when_unreachable: WhenUnreachable,
    /// The longest access-token lifetime the authorization server issues, in seconds: how
    /// long a revocation is remembered. Default 3600.
    pub max_token_lifetime: u64,
    /// Where the transmitter pushes events to this resource server (RFC 8935), if it does;
    /// `None` (the default): this receiver polls.
    pub push_endpoint: Option<String>,
    /// Pushed: seconds between verification requests, which tell a calm stream from a
    /// silent one. Default 10 (a third of `max_silence`).
    pub verification_interval: u64,
}

impl std::fmt::Debug for RevocationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationStream")
            .field("configuration_url", &self.configuration_url)
            .field("client_id", &self.client_id)
            .field("poll_interval", &self.poll_interval)
            .field("max_silence", &self.max_silence)
            .field("when_unreachable", &self.when_unreachable)
            .field("push_endpoint", &self.push_endpoint)
            .finish_non_exhaustive()
    }
}

impl RevocationStream {
    /// The stream of the authorization server `issuer` (its configuration at
    /// `/.well-known/ssf-configuration`, after the issuer's path as SSF §7.2 says), received
    /// as the resource server `client_id` with `client_secret`.
    #[must_use]
    pub fn new(issuer: &str, client_id: &str, client_secret: &str) -> Self {
        let configuration_url = match url::Url::parse(issuer) {
            Ok(url) => {
                let path = url.path().trim_end_matches('/');
                format!(
                    "{}/.well-known/ssf-configuration{path}",
                    url.origin().ascii_serialization()
                )
            }
            Err(_) => format!(
                "{}/.well-known/ssf-configuration",
                issuer.trim_end_matches('/')
            ),
        };
        Self {
            configuration_url,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            poll_interval: 1,
            max_silence: 30,
            when_unreachable: WhenUnreachable::FailClosed,
            max_token_lifetime: 3600,
            push_endpoint: None,
            verification_interval: 10,
        }
    }

    /// Has the transmitter push events to `endpoint_url` (RFC 8935): this resource server's
    /// own URL where the adapter serves [`ResourceServer::receive_pushed_event`] (axum:
    /// `RevocationPushRouter`; actix: `revocation_push`), on an origin the authorization
    /// server's operator lists in `ssf_push_origins`. Events arrive as soon as they are
    /// recorded instead of at the next poll; the stream's health is checked by
    /// verification events. The URL must reach this instance itself, not a load balancer
    /// in front of several: each instance has its own stream and credential.
    #[must_use]
    pub fn push_to(mut self, endpoint_url: &str) -> Self {
        self.push_endpoint = Some(endpoint_url.to_owned());
        self
    }

    /// Pushed: seconds between verification requests (at least one).
    #[must_use]
    pub fn verification_interval(mut self, seconds: u64) -> Self {
        self.verification_interval = seconds.max(1);
        self
    }

    /// What to do while the stream cannot be reached.
    #[must_use]
    pub fn when_unreachable(mut self, policy: WhenUnreachable) -> Self {
        self.when_unreachable = policy;
        self
    }

    /// Seconds between polls (at least one).
    #[must_use]
    pub fn poll_interval(mut self, seconds: u64) -> Self {
        self.poll_interval = seconds.max(1);
        self
    }

    /// Seconds without a successful poll before [`WhenUnreachable`] applies.
    #[must_use]
    pub fn max_silence(mut self, seconds: u64) -> Self {
        self.max_silence = seconds;
        self
    }

    /// The authorization server's longest access-token lifetime (its `access_token_ttl`):
    /// how long a revocation is remembered. Set it when the server's is above an hour.
    #[must_use]
    pub fn max_token_lifetime(mut self, seconds: u64) -> Self {
        self.max_token_lifetime = seconds;
        self
    }
}

/// Why `stream` cannot work for the resource at `resource` (metadata at `metadata_path`).
pub(super) fn check_stream(
    stream: &RevocationStream,
    resource: &url::Url,
    metadata_path: &str,
) -> Result<(), &'static str> {
    let Some(push) = &stream.push_endpoint else {
        return Ok(());
    };
    let push = url::Url::parse(push).map_err(|_| "push_to needs an absolute URL")?;
    if !matches!(push.scheme(), "https" | "http") || push.query().is_some() {
        return Err("push_to needs an http(s) URL without a query");
    }
    if push.path() == resource.path() || push.path() == metadata_path || push.path() == "/" {
        return Err(
            "push_to's path must be its own route, not the resource's, its metadata's or /",
        );
    }
    if stream.verification_interval >= stream.max_silence {
        return Err(
            "verification_interval must be below max_silence: a pushed stream is known to \
             answer only through verification, once every verification_interval",
        );
    }
    Ok(())
}

/// The receiver loop's own state: its stream, and what it acknowledges with the next poll.
#[derive(Debug, Default)]
struct Receiver {
    poll_url: Option<String>,
    acknowledged: Vec<String>,
    refused: serde_json::Map<String, Value>,
    /// When expired revocations were last forgotten.
    forgotten_at: u64,
}

/// What the receiver knows.
#[derive(Debug, Default)]
pub(super) struct Revocations {
    list: std::sync::RwLock<RevocationList>,
    /// When the stream last answered (Unix seconds; 0: never).
    last_poll: AtomicU64,
    /// When the silence was last warned about.
    warned: AtomicU64,
    /// Pushed: what the transmitter must send as `Authorization` (set when the stream is
    /// created), and the verifications asked for and not yet received.
    push: std::sync::Mutex<PushState>,
    /// Events applied.
    events_applied: AtomicU64,
    /// How old the last applied event was when it arrived (seconds).
    last_lag: AtomicU64,
    /// Tokens refused as revoked.
    refused_revoked: AtomicU64,
    /// Tokens refused (`503`) for the stream's silence.
    refused_silent: AtomicU64,
}

/// What a resource server's revocation receiver has done, for an operator's metrics
/// ([`ResourceServer::revocation_metrics`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationMetrics {
    /// When the stream last answered (a poll, or a verification pushed back), Unix seconds.
    pub last_answer: Option<u64>,
    /// Revocations held.
    pub revocations_held: usize,
    /// Security events applied since start.
    pub events_applied: u64,
    /// How long the last applied event took from happening to being applied, in seconds
    /// (whole seconds: event times are).
    pub delivery_lag_seconds: u64,
    /// Tokens refused because they were revoked.
    pub tokens_refused_revoked: u64,
    /// Tokens refused (`503`) because the stream was silent too long to tell.
    pub tokens_refused_silent: u64,
}

impl RevocationMetrics {
    /// The Prometheus text exposition at `now` (Unix seconds), for a resource server's own
    /// `/metrics`.
    #[must_use]
    pub fn prometheus(&self, now: u64) -> String {
        let last = self.last_answer.unwrap_or(0);
        let silence = if last == 0 {
            0
        } else {
            now.saturating_sub(last)
        };
        format!(
            "# HELP mcpauth_rs_revocation_last_answer_timestamp_seconds When the revocation stream last answered (0: never).\n\
             # TYPE mcpauth_rs_revocation_last_answer_timestamp_seconds gauge\n\
             mcpauth_rs_revocation_last_answer_timestamp_seconds {last}\n\
             # HELP mcpauth_rs_revocation_silence_seconds Seconds since the revocation stream last answered.\n\
             # TYPE mcpauth_rs_revocation_silence_seconds gauge\n\
             mcpauth_rs_revocation_silence_seconds {silence}\n\
             # HELP mcpauth_rs_revocations_held Revocations held (grants, users, clients, keys).\n\
             # TYPE mcpauth_rs_revocations_held gauge\n\
             mcpauth_rs_revocations_held {}\n\
             # HELP mcpauth_rs_revocation_events_total Security events applied.\n\
             # TYPE mcpauth_rs_revocation_events_total counter\n\
             mcpauth_rs_revocation_events_total {}\n\
             # HELP mcpauth_rs_revocation_delivery_lag_seconds How long the last applied event took from happening to being applied.\n\
             # TYPE mcpauth_rs_revocation_delivery_lag_seconds gauge\n\
             mcpauth_rs_revocation_delivery_lag_seconds {}\n\
             # HELP mcpauth_rs_tokens_refused_total Tokens refused by the revocation check, by reason.\n\
             # TYPE mcpauth_rs_tokens_refused_total counter\n\
             mcpauth_rs_tokens_refused_total{{reason=\"revoked\"}} {}\n\
             mcpauth_rs_tokens_refused_total{{reason=\"stream_silent\"}} {}\n",
            self.revocations_held,
            self.events_applied,
            self.delivery_lag_seconds,
            self.tokens_refused_revoked,
            self.tokens_refused_silent,
        )
    }
}

/// A push receiver's state, shared between its loop and the pushes it is sent.
#[derive(Default)]
pub(super) struct PushState {
    /// `Bearer <random>`, given to the transmitter with the stream.
    pub(super) authorization: Option<String>,
    /// The states of outstanding verification requests, with when each was asked for.
    pub(super) verifications: Vec<(String, u64)>,
}

impl std::fmt::Debug for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushState")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("verifications", &self.verifications.len())
            .finish()
    }
}

/// The most verification requests remembered at once (older ones are forgotten: the
/// transmitter keeps only the latest pending anyway).
const OUTSTANDING_VERIFICATIONS: usize = 8;

/// 32 random bytes, base64url: a push credential or a verification state.
fn random_value() -> Result<String, String> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "the OS random source failed".to_owned())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl ResourceServer {
    /// Refuses `token` if the stream says it was revoked, or (failing closed) if the stream
    /// has been silent too long to say.
    pub(super) fn check_revocation(
        &self,
        token: &VerifiedToken,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        let Some(stream) = &self.config.revocation_stream else {
            return Ok(());
        };
        // Read before the list: a poll publishes its list first, then its time.
        let last = self.revocations.last_poll.load(Ordering::Acquire);
        if self
            .revocations
            .list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .revokes(token)
        {
            self.revocations
                .refused_revoked
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Invalid(VerifyError::Revoked));
        }
        if last != 0 && now.0.saturating_sub(last) <= stream.max_silence {
            return Ok(());
        }
        let warned = self.revocations.warned.load(Ordering::Relaxed);
        if now.0.saturating_sub(warned) >= 60 {
            self.revocations.warned.store(now.0, Ordering::Relaxed);
            tracing::warn!(
                stream = %stream.configuration_url,
                last_successful_poll = last,
                policy = ?stream.when_unreachable,
                "the revocation stream has not answered within max_silence"
            );
        }
        match stream.when_unreachable {
            WhenUnreachable::KeepServing => Ok(()),
            WhenUnreachable::FailClosed
                if last != 0
                    && token.issued_at.unwrap_or(0) >= last.saturating_add(stream.max_silence) =>
            {
                Ok(())
            }
            _ => {
                self.revocations
                    .refused_silent
                    .fetch_add(1, Ordering::Relaxed);
                Err(Refusal::Unavailable)
            }
        }
    }

    /// What the revocation receiver has done: for the resource server's own `/metrics`
    /// ([`RevocationMetrics::prometheus`]).
    #[must_use]
    pub fn revocation_metrics(&self) -> RevocationMetrics {
        RevocationMetrics {
            last_answer: self.last_revocation_poll(),
            revocations_held: self.revocations_held(),
            events_applied: self.revocations.events_applied.load(Ordering::Relaxed),
            delivery_lag_seconds: self.revocations.last_lag.load(Ordering::Relaxed),
            tokens_refused_revoked: self.revocations.refused_revoked.load(Ordering::Relaxed),
            tokens_refused_silent: self.revocations.refused_silent.load(Ordering::Relaxed),
        }
    }

    /// When the revocation stream last answered a poll (Unix seconds), if it has: for an
    /// operator's health check or metrics (the silence policy applies once it is older than
    /// `max_silence`).
    #[must_use]
    pub fn last_revocation_poll(&self) -> Option<u64> {
        Some(self.revocations.last_poll.load(Ordering::Acquire)).filter(|t| *t != 0)
    }

    /// How many revocations this resource server holds.
    #[must_use]
    pub fn revocations_held(&self) -> usize {
        self.revocations
            .list
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Receives the authorization server's revocations until the future is dropped: spawn
    /// it on the application's runtime (`tokio::spawn(resource_server.clone()
    /// .receive_revocations())`). Without a [`RevocationStream`] configured it returns at
    /// once. Failures are logged and retried (after one second, doubling up to the silence
    /// bound) on the same stream; a new stream is created only when the transmitter no
    /// longer knows this one.
    pub async fn receive_revocations(self: std::sync::Arc<Self>) {
        let Some(stream) = self.config.revocation_stream.clone() else {
            return;
        };
        if stream.push_endpoint.is_some() {
            return self.receive_pushed_revocations(&stream).await;
        }
        let mut receiver = Receiver::default();
        let mut backoff = 1;
        loop {
            match self.poll_once(&stream, &mut receiver).await {
                Ok(wait) => {
                    backoff = 1;
                    if wait {
                        tokio::time::sleep(Duration::from_secs(stream.poll_interval)).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream = %stream.configuration_url, "the revocation stream failed; retrying");
                    tokio::time::sleep(Duration::from_secs(backoff)).await;
                    backoff = (backoff * 2).min(stream.max_silence.max(1));
                }
            }
        }
    }

    /// Creates this instance's stream at the transmitter (SSF §8.1.1.1): its poll URL, or
    /// for a pushed stream its id and the transmitter's verification endpoint.
    async fn create_stream(&self, stream: &RevocationStream) -> Result<String, String> {
        self.create_stream_for(stream, None)
            .await
            .map(|(_, endpoint)| endpoint)
    }

    async fn create_stream_for(
        &self,
        stream: &RevocationStream,
        push_authorization: Option<&str>,
    ) -> Result<(String, String), String> {
        let (status, body) = self
            .keys
            .shared_signals("GET", &stream.configuration_url, None, None)
            .await
            .map_err(|e| format!("reading the transmitter configuration: {e}"))?;
        let configuration: Value = json_of(status, &body, "the transmitter configuration")?;
        let endpoint = same_origin(
            &stream.configuration_url,
            configuration
                .get("configuration_endpoint")
                .and_then(Value::as_str),
        )?;
        let delivery = match (&stream.push_endpoint, push_authorization) {
            (Some(url), Some(authorization)) => json!({
                "method": PUSH_DELIVERY,
                "endpoint_url": url,
                "authorization_header": authorization,
            }),
            _ => json!({ "method": POLL_DELIVERY }),
        };
        let (status, body) = self
            .keys
            .shared_signals(
                "POST",
                &endpoint,
                Some((stream.client_id.as_str(), stream.client_secret.as_str())),
                Some(&json!({
                    "delivery": delivery,
                    "description": format!("mcpauth resource server {}", self.config.resource),
                })),
            )
            .await
            .map_err(|e| format!("creating a stream: {e}"))?;
        let created: Value = json_of(status, &body, "the new stream")?;
        let stream_id = created
            .get("stream_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        tracing::info!(%stream_id, push = stream.push_endpoint.is_some(), "receiving revocations");
        if push_authorization.is_some() {
            let verification = same_origin(
                &stream.configuration_url,
                configuration
                    .get("verification_endpoint")
                    .and_then(Value::as_str),
            )?;
            return Ok((stream_id, verification));
        }
        let poll_url = same_origin(
            &stream.configuration_url,
            created
                .pointer("/delivery/endpoint_url")
                .and_then(Value::as_str),
        )?;
        Ok((stream_id, poll_url))
    }

    /// The push receiver's loop: creates the stream (giving the transmitter a fresh
    /// credential to push with), then asks for a verification event every
    /// `verification_interval` seconds; pushes themselves arrive at
    /// [`receive_pushed_event`](Self::receive_pushed_event).
    async fn receive_pushed_revocations(&self, stream: &RevocationStream) {
        let mut created: Option<(String, String)> = None;
        let mut backoff = 1;
        loop {
            let result = async {
                let (stream_id, verify_url) = match &created {
                    Some(found) => found.clone(),
                    None => {
                        let authorization = format!("Bearer {}", random_value()?);
                        self.push_state().authorization = Some(authorization.clone());
                        let found = self.create_stream_for(stream, Some(&authorization)).await?;
                        created = Some(found.clone());
                        found
                    }
                };
                let state = random_value()?;
                let asked_at = mcpauth_oauth_types::now().0;
                {
                    let mut push = self.push_state();
                    if push.verifications.len() >= OUTSTANDING_VERIFICATIONS {
                        push.verifications.remove(0);
                    }
                    push.verifications.push((state.clone(), asked_at));
                }
                let (status, _) = self
                    .keys
                    .shared_signals(
                        "POST",
                        &verify_url,
                        Some((stream.client_id.as_str(), stream.client_secret.as_str())),
                        Some(&json!({ "stream_id": stream_id, "state": state })),
                    )
                    .await
                    .map_err(|e| format!("asking for verification: {e}"))?;
                if status == 404 {
                    // The transmitter no longer knows it: a new one, with a new credential.
                    created = None;
                    return Err("the stream is gone; creating another".to_owned());
                }
                if !(200..300).contains(&status) {
                    return Err(format!(
                        "asking for verification: the transmitter answered {status}"
                    ));
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    backoff = 1;
                    tokio::time::sleep(Duration::from_secs(stream.verification_interval)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream = %stream.configuration_url, "the revocation stream failed; retrying");
                    tokio::time::sleep(Duration::from_secs(backoff)).await;
                    backoff = (backoff * 2).min(stream.max_silence.max(1));
                }
            }
            self.forget_expired_revocations();
        }
    }

    pub(super) fn push_state(&self) -> std::sync::MutexGuard<'_, PushState> {
        self.revocations
            .push
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds what `event` ends to the list, each entry kept for a token lifetime.
    fn apply_security_event(
        &self,
        stream: &RevocationStream,
        event: &mcpauth_bearer::SecurityEvent,
        now: UnixTime,
    ) {
        let mut list = self
            .revocations
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for revocation in &event.revocations {
            list.add(revocation, now.0.saturating_add(stream.max_token_lifetime));
        }
        self.revocations
            .events_applied
            .fetch_add(1, Ordering::Relaxed);
        // Verification events say how fast the stream is only for themselves.
        if !event.revocations.is_empty() {
            self.revocations
                .last_lag
                .store(now.0.saturating_sub(event.occurred_at), Ordering::Relaxed);
        }
    }

    fn forget_expired_revocations(&self) {
        self.revocations
            .list
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .forget_before(mcpauth_oauth_types::now().0);
    }

    /// The path [`receive_pushed_event`](Self::receive_pushed_event) is served at: the path
    /// of [`RevocationStream::push_to`]'s URL, if one is configured.
    #[must_use]
    pub fn revocation_push_path(&self) -> Option<String> {
        let url = self
            .config
            .revocation_stream
            .as_ref()?
            .push_endpoint
            .as_deref()?;
        url::Url::parse(url).ok().map(|u| u.path().to_owned())
    }

    /// One pushed Security Event Token (RFC 8935 §2): `202` once applied. Refused: `401`
    /// (`authentication_failed`) without the credential this receiver gave the transmitter;
    /// `400` with RFC 8935 §2.4's `err` for a token that is not the issuer's
    /// (`invalid_issuer`), not for this receiver (`invalid_audience`), badly signed
    /// (`invalid_key`) or malformed (`invalid_request`), which the transmitter does not send
    /// again; `503` while it cannot be verified yet (the issuer's keys unreachable, its key
    /// not known yet), which it does.
    /// `404` where this resource server receives no pushes.
    pub async fn receive_pushed_event(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> HttpResponse {
        let Some(stream) = self
            .config
            .revocation_stream
            .as_ref()
            .filter(|s| s.push_endpoint.is_some())
        else {
            return push_error(StatusCode::NOT_FOUND, "invalid_request", "no pushes here");
        };
        let expected = self.push_state().authorization.clone();
        let authenticated = match (expected, authorization) {
            (Some(expected), Some(given)) => {
                mcpauth_oauth_types::constant_time_eq(expected.as_bytes(), given.as_bytes())
            }
            _ => false,
        };
        if !authenticated {
            return push_error(
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "the push does not carry this receiver's credential",
            );
        }
        let now = mcpauth_oauth_types::now();
        let Ok(set) = std::str::from_utf8(body) else {
            return push_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not a JWT",
            );
        };
        let event = match self
            .read_security_event(set.trim(), &stream.client_id, now)
            .await
        {
            Ok(event) => event,
            // The keys could not be fetched, a key not published yet (or not refetched yet:
            // fetches are spaced), a clock behind the transmitter's: it may verify later, so
            // the transmitter keeps it and sends it again.
            Err(
                Refusal::Unavailable
                | Refusal::Invalid(VerifyError::NotYetValid | VerifyError::UnknownKey),
            ) => {
                return push_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "invalid_request",
                    "the event cannot be verified yet; send it again",
                );
            }
            Err(Refusal::Invalid(e)) => {
                let err = match e {
                    VerifyError::WrongIssuer => "invalid_issuer",
                    VerifyError::WrongAudience => "invalid_audience",
                    VerifyError::BadSignature => "invalid_key",
                    _ => "invalid_request",
                };
                tracing::warn!(error = %e, err, "a pushed security event was refused");
                return push_error(StatusCode::BAD_REQUEST, err, &e.to_string());
            }
        };
        self.apply_security_event(stream, &event, now);
        if let Some(state) = &event.verification {
            let mut push = self.push_state();
            if let Some(at) = push
                .verifications
                .iter()
                .position(|(asked, _)| asked == state)
            {
                let asked_at = push.verifications.get(at).map_or(0, |(_, t)| *t);
                // This and every earlier request is answered.
                push.verifications.drain(..=at);
                // Published after the list: every event recorded before the request arrived
                // before its verification.
                self.revocations
                    .last_poll
                    .fetch_max(asked_at, Ordering::AcqRel);
            }
        }
        crate::response::response(StatusCode::ACCEPTED, &[], bytes::Bytes::new())
    }

    /// One poll (creating the stream first if there is none): applies what verifies,
    /// acknowledges it with the next poll, and says whether to wait before the next.
    async fn poll_once(
        &self,
        stream: &RevocationStream,
        receiver: &mut Receiver,
    ) -> Result<bool, String> {
        let poll_url = match &receiver.poll_url {
            Some(url) => url.clone(),
            None => {
                let url = self.create_stream(stream).await?;
                receiver.poll_url = Some(url.clone());
                url
            }
        };
        let request = json!({
            "ack": receiver.acknowledged,
            "setErrs": receiver.refused,
            "maxEvents": 100,
            "returnImmediately": true,
        });
        let (status, body) = self
            .keys
            .shared_signals(
                "POST",
                &poll_url,
                Some((stream.client_id.as_str(), stream.client_secret.as_str())),
                Some(&request),
            )
            .await
            .map_err(|e| format!("polling: {e}"))?;
        if status == 404 {
            // The transmitter no longer knows it (idle too long, or replaced): a new one,
            // which starts with every event still kept.
            receiver.poll_url = None;
            return Ok(false);
        }
        let answer: Value = json_of(status, &body, "a poll answer")?;
        // Delivered: the acknowledgements sent are done with.
        receiver.acknowledged.clear();
        receiver.refused.clear();
        let now = mcpauth_oauth_types::now();
        let no_sets = serde_json::Map::new();
        let sets = answer
            .get("sets")
            .and_then(Value::as_object)
            .unwrap_or(&no_sets);
        let more_available = answer
            .get("moreAvailable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut complete = true;
        for (jti, set) in sets {
            match self
                .read_security_event(set.as_str().unwrap_or_default(), &stream.client_id, now)
                .await
            {
                Ok(event) => {
                    self.apply_security_event(stream, &event, now);
                    receiver.acknowledged.push(jti.clone());
                }
                // The keys could not be fetched, or the event is signed by a key not yet
                // known or dated ahead of this clock: it comes again, and until it is
                // applied this receiver is not up to date.
                Err(
                    Refusal::Unavailable
                    | Refusal::Invalid(VerifyError::UnknownKey | VerifyError::NotYetValid),
                ) => complete = false,
                Err(Refusal::Invalid(e)) => {
                    tracing::warn!(%jti, error = %e, "a security event did not verify");
                    receiver.refused.insert(
                        jti.clone(),
                        json!({ "err": "invalid_request", "description": e.to_string() }),
                    );
                }
            }
        }
        if now.0.saturating_sub(receiver.forgotten_at) >= 60 {
            receiver.forgotten_at = now.0;
            self.forget_expired_revocations();
        }
        if !complete {
            return Err("an event could not be verified yet".into());
        }
        // Published after the list: a request that sees this poll sees what it brought.
        self.revocations.last_poll.store(now.0, Ordering::Release);
        Ok(!more_available || sets.is_empty())
    }

    /// Verifies a Security Event Token with the issuer's keys, fetching them again for a key
    /// it does not know yet.
    async fn read_security_event(
        &self,
        set: &str,
        receiver: &str,
        now: UnixTime,
    ) -> Result<mcpauth_bearer::SecurityEvent, Refusal> {
        self.with_current_keys(now, |verifier| {
            verifier.verify_security_event(set, receiver, now)
        })
        .await
    }
}

/// The JSON body of a `2xx` answer.
fn json_of(status: u16, body: &[u8], what: &str) -> Result<Value, String> {
    if !(200..300).contains(&status) {
        return Err(format!("{what}: the transmitter answered {status}"));
    }
    serde_json::from_slice(body).map_err(|_| format!("{what} is not JSON"))
}

/// `url` if it is on the origin of `configuration_url`: the transmitter's endpoints are the
/// authorization server's own, never somewhere its answers point.
fn same_origin(configuration_url: &str, url: Option<&str>) -> Result<String, String> {
    let url = url.ok_or("the transmitter's answer names no endpoint")?;
    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
    match (origin(configuration_url), origin(url)) {
        (Some(expected), Some(found)) if expected == found => Ok(url.to_owned()),
        _ => Err(format!(
            "the transmitter names an endpoint on another origin: {url}"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::ResourceServerConfig;
    use mcpauth_bearer::Revocation;

    const NOW: u64 = 1_800_000_000;
    const ISSUER: &str = "https://auth.example.com";
    const RESOURCE: &str = "https://mcp.example.com/mcp";

    fn protected(policy: WhenUnreachable) -> ResourceServer {
        let config = ResourceServerConfig::new(RESOURCE, ISSUER, format!("{ISSUER}/jwks.json"))
            .with_revocation_stream(
                RevocationStream::new(ISSUER, "rs", "secret")
                    .max_silence(30)
                    .when_unreachable(policy),
            );
        ResourceServer::new(config).unwrap()
    }

    /// A token of grant `g1`, for alice through `c1`, issued at `iat`.
    fn token(iat: u64) -> VerifiedToken {
        mcpauth_bearer::verify_introspection(
            json!({
                "active": true, "iss": ISSUER, "aud": RESOURCE, "sub": "alice",
                "client_id": "c1", "jti": "g1.x", "iat": iat, "exp": NOW + 3600,
            })
            .to_string()
            .as_bytes(),
            ISSUER,
            RESOURCE,
            UnixTime(NOW),
        )
        .unwrap()
    }

    fn refused(rs: &ResourceServer, token: &VerifiedToken, now: u64) -> Option<String> {
        rs.check_revocation(token, UnixTime(now))
            .err()
            .map(|r| match r {
                Refusal::Invalid(e) => format!("invalid: {e}"),
                Refusal::Unavailable => "unavailable".to_owned(),
            })
    }

    #[test]
    fn the_transmitter_cannot_point_the_receiver_at_another_origin() {
        let configuration = "https://auth.example.com/.well-known/ssf-configuration";
        assert_eq!(
            same_origin(configuration, Some("https://auth.example.com/ssf/poll/s1")).unwrap(),
            "https://auth.example.com/ssf/poll/s1"
        );
        for elsewhere in [
            "https://evil.example.com/ssf/poll/s1",
            "http://auth.example.com/ssf/poll/s1",
            "https://auth.example.com:8443/ssf/poll/s1",
            "http://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            assert!(
                same_origin(configuration, Some(elsewhere)).is_err(),
                "{elsewhere}"
            );
        }
        assert!(same_origin(configuration, None).is_err());
    }

    #[test]
    fn the_configuration_document_is_at_the_issuers_well_known_path() {
        assert_eq!(
            RevocationStream::new("https://auth.example.com", "rs", "s").configuration_url,
            "https://auth.example.com/.well-known/ssf-configuration"
        );
        assert_eq!(
            RevocationStream::new("https://auth.example.com/tenant", "rs", "s").configuration_url,
            "https://auth.example.com/.well-known/ssf-configuration/tenant"
        );
    }

    #[test]
    fn failing_closed_refuses_every_token_before_the_first_poll_and_old_ones_after_silence() {
        let rs = protected(WhenUnreachable::FailClosed);
        let old = token(NOW - 100);
        assert_eq!(rs.last_revocation_poll(), None);
        assert_eq!(refused(&rs, &old, NOW).as_deref(), Some("unavailable"));
        // A poll answered: accepted, for max_silence.
        rs.revocations.last_poll.store(NOW, Ordering::Release);
        assert_eq!(rs.last_revocation_poll(), Some(NOW));
        assert_eq!(refused(&rs, &old, NOW + 30), None);
        // Silent past the bound: tokens issued before the last poll plus the bound are
        // refused (one revoked meanwhile would pass); later ones are not.
        assert_eq!(refused(&rs, &old, NOW + 31).as_deref(), Some("unavailable"));
        assert_eq!(refused(&rs, &token(NOW + 30), NOW + 31), None);
    }

    #[test]
    fn keeping_on_serving_accepts_tokens_while_the_stream_is_silent() {
        let rs = protected(WhenUnreachable::KeepServing);
        let old = token(NOW - 100);
        assert_eq!(refused(&rs, &old, NOW), None);
        rs.revocations.last_poll.store(NOW, Ordering::Release);
        assert_eq!(refused(&rs, &old, NOW + 3600), None);
        // What the stream said is still enforced.
        rs.revocations
            .list
            .write()
            .unwrap()
            .add(&Revocation::Grant("g1".into()), NOW + 3600);
        assert_eq!(
            refused(&rs, &old, NOW + 1).as_deref(),
            Some("invalid: the access token has been revoked")
        );
    }

    #[test]
    fn a_revoked_grant_user_or_client_is_refused_as_an_invalid_token() {
        for revocation in [
            Revocation::Grant("g1".into()),
            Revocation::User {
                subject: "alice".into(),
                before: NOW,
            },
            Revocation::Client {
                client_id: "c1".into(),
                before: NOW,
            },
        ] {
            let rs = protected(WhenUnreachable::FailClosed);
            rs.revocations.last_poll.store(NOW, Ordering::Release);
            rs.revocations
                .list
                .write()
                .unwrap()
                .add(&revocation, NOW + 3600);
            assert_eq!(
                refused(&rs, &token(NOW), NOW + 1).as_deref(),
                Some("invalid: the access token has been revoked"),
                "{revocation:?}"
            );
            assert_eq!(rs.revocations_held(), 1);
        }
        // Without a stream configured, nothing is checked.
        let plain = ResourceServer::new(ResourceServerConfig::new(
            RESOURCE,
            ISSUER,
            format!("{ISSUER}/jwks.json"),
        ))
        .unwrap();
        assert_eq!(refused(&plain, &token(NOW), NOW), None);
    }
}

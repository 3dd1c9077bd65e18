//! Revocation that reaches this resource server: a receiver of the authorization server's
//! Shared Signals stream (SSF 1.0, RFC 8936 poll delivery), so a token whose grant, user,
//! client or signing key was revoked is refused (`401 invalid_token`) within seconds, not at
//! its `exp`.
//!
//! - [`ResourceServer::receive_revocations`] runs in the application's runtime (the protocol
//!   crates stay sans-IO): it reads the transmitter's configuration, creates this instance's
//!   stream, and polls it every [`RevocationStream::poll_interval`] seconds, verifying each
//!   Security Event Token with the issuer's keys and acknowledging it once applied.
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
use mcpauth_oauth_types::security_events::POLL_DELIVERY;
use serde_json::{Value, json};

use super::Refusal;
use crate::ResourceServer;

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
}

impl std::fmt::Debug for RevocationStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationStream")
            .field("configuration_url", &self.configuration_url)
            .field("client_id", &self.client_id)
            .field("poll_interval", &self.poll_interval)
            .field("max_silence", &self.max_silence)
            .field("when_unreachable", &self.when_unreachable)
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
        }
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
            _ => Err(Refusal::Unavailable),
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

    /// Creates this instance's stream at the transmitter (SSF §8.1.1.1): its poll URL.
    async fn create_stream(&self, stream: &RevocationStream) -> Result<String, String> {
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
        let (status, body) = self
            .keys
            .shared_signals(
                "POST",
                &endpoint,
                Some((stream.client_id.as_str(), stream.client_secret.as_str())),
                Some(&json!({
                    "delivery": { "method": POLL_DELIVERY },
                    "description": format!("mcpauth resource server {}", self.config.resource),
                })),
            )
            .await
            .map_err(|e| format!("creating a stream: {e}"))?;
        let created: Value = json_of(status, &body, "the new stream")?;
        let poll_url = same_origin(
            &stream.configuration_url,
            created
                .pointer("/delivery/endpoint_url")
                .and_then(Value::as_str),
        )?;
        let stream_id = created
            .get("stream_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        tracing::info!(stream_id, "receiving revocations");
        Ok(poll_url)
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
                    let mut list = self
                        .revocations
                        .list
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for revocation in &event.revocations {
                        list.add(revocation, now.0.saturating_add(stream.max_token_lifetime));
                    }
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
            self.revocations
                .list
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .forget_before(now.0);
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

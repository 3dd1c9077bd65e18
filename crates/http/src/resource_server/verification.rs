//! Verifying a bearer token: a JWT against the cached JWK Set (refetched for an unknown `kid`, at
//! most every 30 s; after a failed fetch within a second, backing off to 30 s), or an opaque
//! token through RFC 7662 introspection, cached.

use mcpauth_bearer::{VerifiedToken, VerifyError};
use mcpauth_oauth_types::UnixTime;

use super::{
    CACHE_CAPACITY, KeyFetches, LastFetch, MAX_ANSWER_BYTES, REFETCH_INTERVAL_SECONDS, Refusal,
};
use crate::{IntrospectionClient, ResourceServer};

/// What a fetch of the JWK Set for an unknown `kid` came to.
enum KeyRefresh {
    /// New keys are loaded: verify again.
    Loaded,
    /// Fetched recently and fine: the key is unknown to the authorization server too.
    NotDue,
    /// The keys cannot be fetched (now, or at the last try moments ago).
    Unreachable,
}

impl KeyFetches {
    fn locked(fetches: &std::sync::Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        fetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the last fetch says at `now`, when it is too recent to fetch again. A clock that
    /// stepped back is no reason to refuse tokens from rotated keys until it catches up.
    fn too_recent(&self, now: UnixTime) -> Option<KeyRefresh> {
        let last = self.last?;
        (last.at <= now && now < last.at.plus(last.wait)).then_some(if last.worked {
            KeyRefresh::NotDue
        } else {
            KeyRefresh::Unreachable
        })
    }
}

/// A JWT has three base64url segments; anything else is opaque.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl ResourceServer {
    pub(super) async fn verify(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<VerifiedToken, Refusal> {
        let verified = if let Some(client) = &self.config.introspection
            && !looks_like_jwt(token)
        {
            self.introspect(client, token, now).await?
        } else {
            self.with_current_keys(now, |verifier| verifier.verify(token, now))
                .await?
        };
        self.check_revocation(&verified, now)?;
        Ok(verified)
    }

    /// As [`verify`](Self::verify), for a token presented with the DPoP scheme: a JWT bound to a
    /// key (`cnf.jkt`, returned). Introspected (opaque) tokens are not accepted this way yet.
    pub(super) async fn verify_bound(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<(VerifiedToken, String), Refusal> {
        if !looks_like_jwt(token) {
            return Err(Refusal::Invalid(VerifyError::UnsupportedBinding));
        }
        let (verified, jkt) = self
            .with_current_keys(now, |verifier| verifier.verify_bound(token, now))
            .await?;
        self.check_revocation(&verified, now)?;
        Ok((verified, jkt))
    }

    /// Runs `check` with the keys held; if it names an unknown key, fetches the JWK Set (when
    /// due) and runs it again.
    pub(super) async fn with_current_keys<T>(
        &self,
        now: UnixTime,
        check: impl Fn(&mcpauth_bearer::TokenVerifier) -> Result<T, VerifyError>,
    ) -> Result<T, Refusal> {
        let first = check(&*self.verifier.read().await);
        Ok(match first {
            Err(VerifyError::UnknownKey) => match self.refresh_keys(now).await {
                KeyRefresh::Loaded => check(&*self.verifier.read().await),
                // The keys could not be fetched: the token may well be fine (503, retry).
                KeyRefresh::Unreachable => return Err(Refusal::Unavailable),
                KeyRefresh::NotDue => first,
            },
            other => other,
        }?)
    }

    /// RFC 7662: asks the authorization server, reusing a recent answer for the same token
    /// (kept by the token's SHA-256, never past its `exp`).
    async fn introspect(
        &self,
        client: &IntrospectionClient,
        token: &str,
        now: UnixTime,
    ) -> Result<VerifiedToken, Refusal> {
        let seconds = now.0;
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some((verified, until)) = self.introspected.lock().await.get(&key)
            && *until > seconds
        {
            return Ok(verified.clone());
        }
        let body = match self.keys.introspect(client, token).await {
            Ok(body) if body.len() <= MAX_ANSWER_BYTES => body,
            Ok(_) => {
                tracing::warn!(endpoint = %client.endpoint, "introspection answer is larger than 64 KiB");
                return Err(Refusal::Unavailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %client.endpoint, "introspection failed");
                return Err(Refusal::Unavailable);
            }
        };
        let verified = mcpauth_bearer::verify_introspection(
            &body,
            &self.config.issuer,
            &self.config.resource,
            now,
        )?;
        let ttl = self.config.introspection_cache_ttl;
        if ttl > 0 {
            let until = verified.expires_at.min(seconds.saturating_add(ttl));
            let mut cache = self.introspected.lock().await;
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, (_, until)| *until > seconds);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(key, (verified.clone(), until));
        }
        Ok(verified)
    }

    /// Fetches the JWK Set unless the last fetch was too recent (30 s after one that worked;
    /// after a failure 1 s, doubling up to 30 s). One fetch at a time: a request that waited
    /// for another's takes its outcome, and while the keys are known to be unreachable no
    /// request waits for a fetch under way (it is answered 503 at once).
    async fn refresh_keys(&self, now: UnixTime) -> KeyRefresh {
        let seen = {
            let fetches = KeyFetches::locked(&self.last_fetch);
            if let Some(outcome) = fetches.too_recent(now) {
                return outcome;
            }
            *fetches
        };
        let _fetching = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) if seen.last.is_some_and(|l| !l.worked) => return KeyRefresh::Unreachable,
            Err(_) => self.fetching.lock().await,
        };
        {
            let fetches = KeyFetches::locked(&self.last_fetch);
            if fetches.ended != seen.ended {
                return match fetches.last {
                    Some(last) if last.worked => KeyRefresh::Loaded,
                    _ => KeyRefresh::Unreachable,
                };
            }
        }
        let wait_after_failure = match seen.last {
            Some(previous) if !previous.worked => previous
                .wait
                .saturating_mul(2)
                .min(REFETCH_INTERVAL_SECONDS),
            _ => 1,
        };
        let body = self.keys.jwk_set(&self.config.jwks_uri).await;
        let outcome = match body {
            Ok(bytes) if bytes.len() <= MAX_ANSWER_BYTES => {
                match self.verifier.write().await.set_jwks(&bytes) {
                    Ok(count) => {
                        tracing::debug!(count, jwks_uri = %self.config.jwks_uri, "loaded signing keys");
                        None
                    }
                    Err(e) => Some(format!("the JWK Set does not parse: {e}")),
                }
            }
            Ok(_) => Some("the JWK Set is larger than 64 KiB".to_owned()),
            Err(e) => Some(mcpauth_oauth_types::said(&*e)),
        };
        match outcome {
            None => {
                self.record_fetch(LastFetch {
                    at: now,
                    worked: true,
                    wait: REFETCH_INTERVAL_SECONDS,
                });
                KeyRefresh::Loaded
            }
            Some(why) => {
                tracing::warn!(
                    jwks_uri = %self.config.jwks_uri,
                    issuer = %self.config.issuer,
                    retry_in_seconds = wait_after_failure,
                    "cannot fetch the authorization server's signing keys ({why}): tokens are \
                     answered 503 until they can be; is the authorization server running at \
                     its issuer, and is jwks_uri right?"
                );
                self.record_fetch(LastFetch {
                    at: now,
                    worked: false,
                    wait: wait_after_failure,
                });
                KeyRefresh::Unreachable
            }
        }
    }

    fn record_fetch(&self, fetch: LastFetch) {
        let mut fetches = KeyFetches::locked(&self.last_fetch);
        fetches.last = Some(fetch);
        fetches.ended = fetches.ended.wrapping_add(1);
    }
}

//! Verifying a bearer token: a JWT against the cached JWK Set (refetched for an unknown `kid`, at
//! most every 30 s), or an opaque token through RFC 7662 introspection, cached.

use mcpauth_bearer::{VerifiedToken, VerifyError};
use mcpauth_oauth_types::UnixTime;

use super::{CACHE_CAPACITY, MAX_ANSWER_BYTES, REFETCH_INTERVAL_SECONDS, Refusal};
use crate::{IntrospectionClient, ResourceServer};

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
        if let Some(client) = &self.config.introspection
            && !looks_like_jwt(token)
        {
            return self.introspect(client, token, now).await;
        }
        let first = self.verifier.read().await.verify(token, now);
        Ok(match first {
            Err(VerifyError::UnknownKey) if self.refresh_keys(now).await => {
                self.verifier.read().await.verify(token, now)
            }
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

    /// Fetches the JWK Set unless it was fetched within the last 30 seconds. Returns whether
    /// new keys were loaded.
    async fn refresh_keys(&self, now: UnixTime) -> bool {
        let mut last = self.last_fetch.lock().await;
        // Within 30 s after the last fetch, none; a clock that stepped back is no reason to
        // refuse tokens from rotated keys until it catches up.
        if last.is_some_and(|at| at <= now && now < at.plus(REFETCH_INTERVAL_SECONDS)) {
            return false;
        }
        *last = Some(now);
        let body = self.keys.jwk_set(&self.config.jwks_uri).await;
        match body {
            Ok(bytes) if bytes.len() <= MAX_ANSWER_BYTES => {
                match self.verifier.write().await.set_jwks(&bytes) {
                    Ok(count) => {
                        tracing::debug!(count, jwks_uri = %self.config.jwks_uri, "loaded signing keys");
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, jwks_uri = %self.config.jwks_uri, "JWK Set does not parse");
                        false
                    }
                }
            }
            Ok(_) => {
                tracing::warn!(jwks_uri = %self.config.jwks_uri, "JWK Set is larger than 64 KiB");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, jwks_uri = %self.config.jwks_uri, "fetching the JWK Set failed");
                false
            }
        }
    }
}

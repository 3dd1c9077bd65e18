//! RFC 8628: the device authorization grant, for clients without a browser.
//!
//! - §3.1–§3.2: the device authorization endpoint issues a high-entropy `device_code` (stored
//!   hashed) and a short `user_code` of 8 letters from a 20-consonant alphabet (§6.1: no vowels,
//!   so no words; no look-alike characters), shown as `BCDF-GHJK`.
//! - §3.3: the user enters the code at the verification page; lookups are rate-limited per
//!   caller key (§5.1), and approval or denial is one atomic model call.
//! - §3.4–§3.5: polling answers `authorization_pending`, `slow_down` when the client polls
//!   faster than `interval` (which then grows by 5 seconds), `access_denied`, `expired_token`,
//!   or tokens, exactly once.

use mcpauth_oauth_types::{
    DeviceAuthorizationRequest, DeviceCode, GrantType, OAuthError, Scope, TokenErrorCode,
};
use serde::Serialize;

use crate::UnixTime;
use crate::error::{TokenError, internal};
use crate::grant::refresh_token::GrantTokens;
use crate::model::{
    ClientId, ClientRecord, DeviceAuthorizationRecord, DeviceDecision, DeviceState, GrantId,
    GrantRecord, OAuthServerModel, RateLimitKey,
};
use crate::{SecretHash, TokenEngine, random};

/// RFC 8628 §6.1: "BCDFGHJKLMNPQRSTVWXZ" — consonants only.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LENGTH: usize = 8;
/// How many user codes are drawn before a device authorization fails: the store refuses a
/// code already held, which a random draw hits with a probability of held codes / 20⁸.
const USER_CODE_ATTEMPTS: u32 = 4;
/// The grant type name registered by RFC 8628 §3.4.
pub use mcpauth_oauth_types::DEVICE_CODE_GRANT;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeviceAuthorization {
    /// The code the device polls with.
    pub device_code: String,
    /// The code the user types, formatted `XXXX-XXXX`.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// The same, with the code filled in (for QR codes and links).
    pub verification_uri_complete: String,
    /// Lifetime of both codes in seconds.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[redacted]")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .finish_non_exhaustive()
    }
}

/// A device authorization waiting for the user, as the verification page shows it
/// ([`TokenEngine::device_lookup`]). Read-only and not copyable: the decision
/// ([`approve_device`](TokenEngine::approve_device) or [`deny_device`](TokenEngine::deny_device))
/// consumes it, so a page decides on what it showed, once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a looked-up device authorization is shown, then approved or denied"]
pub struct PendingDevice {
    user_code: String,
    user_code_hash: SecretHash,
    client_id: ClientId,
    client_name: Option<String>,
    client_identity: crate::ClientIdentity,
    scope: String,
    resources: Vec<String>,
}

impl PendingDevice {
    /// The normalised user code (`XXXX-XXXX`).
    #[must_use]
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// The client asking.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// Its display name, if registered.
    #[must_use]
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// How far the client's identity is verified, for the confirmation page.
    #[must_use]
    pub fn client_identity(&self) -> &crate::ClientIdentity {
        &self.client_identity
    }

    /// The scope requested, space-separated.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The resources requested.
    #[must_use]
    pub fn resources(&self) -> &[String] {
        &self.resources
    }
}

/// Why a user code could not be used at the verification page.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceUserError {
    /// No pending authorization has this code (mistyped, expired, or already decided).
    #[error("this code is not valid: check it and try again, or start again on your device")]
    UnknownCode,
    /// Too many wrong codes from this caller; wait a minute.
    #[error("too many attempts: wait a minute before trying again")]
    TooManyAttempts,
    /// The user deciding is disabled or no longer exists.
    #[error("this account cannot approve requests: it is disabled or was removed")]
    InactiveUser,
    /// Storage or randomness failed.
    #[error("the server failed: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// Uppercases, drops separators and spaces; `None` unless 8 letters of the alphabet remain.
fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LENGTH && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// The model keeps no device authorizations (see [`crate::ModelBase::devices`]).
fn no_device_flow() -> TokenError {
    OAuthError::new(
        TokenErrorCode::UnsupportedGrantType,
        "this server does not offer the device authorization grant",
    )
}

fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(4));
    format!("{a}-{b}")
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// RFC 8628 §3.1–§3.2 for an authenticated `client`.
    pub(crate) async fn start_device_authorization(
        &self,
        client: &ClientRecord,
        request: &DeviceAuthorizationRequest,
        now: UnixTime,
    ) -> Result<DeviceAuthorization, TokenError> {
        let Some(devices) = self.model.devices() else {
            return Err(no_device_flow());
        };
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "the client did not register the device_code grant type",
            ));
        }
        let scope = self
            .resolve_scope(request.scope.as_ref(), client, true)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidScope, d))?;
        let resources = self
            .resolve_resources(&request.resource)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidTarget, d))?;
        // A user code has about 34 bits (RFC 8628 §6.1), so among the codes a busy server holds
        // a new one may already be taken: the store refuses it (user codes are unique), and a
        // fresh pair is drawn. A storage failure fails every attempt alike.
        let mut attempt = 0;
        let (device_code, user_code) = loop {
            attempt += 1;
            let device_code =
                random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
            let user_code = self
                .new_user_code()
                .map_err(|e| internal("randomness failure", e))?;
            let inserted = devices
                .insert_device(DeviceAuthorizationRecord {
                    device_code_hash: SecretHash::of(&device_code),
                    user_code_hash: SecretHash::of(&user_code),
                    client_id: client.client_id.clone(),
                    scope: scope.clone(),
                    resources: resources.clone(),
                    expires_at: now.plus(self.config.device_code_ttl),
                    interval: self.config.device_poll_interval,
                    last_polled_at: None,
                    state: DeviceState::Pending,
                    subject: None,
                    grant_id: None,
                })
                .await;
            let error = match inserted {
                Ok(()) => break (device_code, user_code),
                Err(e) => e,
            };
            // Only a code already held is worth another draw; any other failure is final.
            let held = devices
                .find_device_by_user_code(&SecretHash::of(&user_code))
                .await
                .map_err(|e| internal("storage failure", e))?
                .is_some();
            if !held || attempt >= USER_CODE_ATTEMPTS {
                return Err(internal("storage failure", error));
            }
        };
        let verification_uri = self
            .config
            .endpoint_url(&self.config.device_verification_path);
        let user_code = display_user_code(&user_code);
        let mut complete = url::Url::parse(&verification_uri)
            .map_err(|e| internal("verification URI does not parse", e))?;
        complete
            .query_pairs_mut()
            .append_pair("user_code", &user_code);
        Ok(DeviceAuthorization {
            device_code,
            user_code,
            verification_uri,
            verification_uri_complete: complete.into(),
            expires_in: self.config.device_code_ttl,
            interval: self.config.device_poll_interval,
        })
    }

    /// 8 characters with rejection sampling, so each letter is uniform (240 = 12 × 20).
    fn new_user_code(&self) -> Result<String, crate::RandomError> {
        let mut code = String::with_capacity(USER_CODE_LENGTH);
        while code.len() < USER_CODE_LENGTH {
            let mut bytes = [0u8; 16];
            self.rng.fill(&mut bytes)?;
            for b in bytes.into_iter().filter(|b| *b < 240) {
                if code.len() < USER_CODE_LENGTH {
                    code.push(char::from(
                        USER_CODE_ALPHABET
                            .get(usize::from(b % 20))
                            .copied()
                            .unwrap_or(b'B'),
                    ));
                }
            }
        }
        Ok(code)
    }

    /// RFC 8628 §3.4–§3.5: one poll of the token endpoint.
    pub(crate) async fn redeem_device_code(
        &self,
        client: &ClientRecord,
        device_code: &DeviceCode,
        dpop_jkt: Option<&str>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        let device_hash = SecretHash::of(device_code.secret());
        let invalid =
            || OAuthError::new(TokenErrorCode::InvalidGrant, "the device code is invalid");
        let Some(devices) = self.model.devices() else {
            return Err(no_device_flow());
        };
        let before = devices
            .poll_device(&device_hash, now)
            .await
            .map_err(|e| internal("storage failure", e))?
            .ok_or_else(invalid)?;
        if before.client_id != client.client_id {
            return Err(OAuthError::new(
                TokenErrorCode::InvalidGrant,
                "the device code was issued to another client",
            ));
        }
        if before.expires_at <= now {
            return Err(OAuthError::new(
                TokenErrorCode::ExpiredToken,
                "the device code has expired: start a new device authorization",
            ));
        }
        if before
            .last_polled_at
            .is_some_and(|last| now.seconds_since(last) < before.interval)
        {
            // RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all
            // subsequent requests".
            devices
                .set_device_interval(&device_hash, before.interval.saturating_add(5))
                .await
                .map_err(|e| internal("storage failure", e))?;
            return Err(OAuthError::new(
                TokenErrorCode::SlowDown,
                "polling too fast: add 5 seconds to the interval",
            ));
        }
        match before.state {
            DeviceState::Pending => Err(OAuthError::new(
                TokenErrorCode::AuthorizationPending,
                "the user has not decided yet",
            )),
            DeviceState::Denied => Err(OAuthError::new(
                TokenErrorCode::AccessDenied,
                "the user denied the request",
            )),
            DeviceState::Consumed => Err(OAuthError::new(
                TokenErrorCode::InvalidGrant,
                "the device code was already used",
            )),
            DeviceState::Approved => {
                let (Some(subject), Some(grant_id)) =
                    (before.subject.as_deref(), before.grant_id.as_ref())
                else {
                    return Err(internal(
                        "approved device authorization without a grant",
                        crate::model_error::Inconsistent,
                    ));
                };
                // The user may have been disabled, or the grant revoked, since approving.
                let grant = self
                    .model
                    .find_grant(grant_id)
                    .await
                    .map_err(|e| internal("storage failure", e))?;
                if grant.is_none_or(|g| g.revoked_at.is_some()) {
                    return Err(OAuthError::new(
                        TokenErrorCode::InvalidGrant,
                        "the device authorization has been revoked",
                    ));
                }
                self.refuse_inactive_subject(subject, grant_id, now).await?;
                let access_scope = before.scope.to_string();
                let issue = GrantTokens {
                    grant_type: GrantType::DeviceCode,
                    grant_id,
                    subject,
                    grant_scope: &before.scope,
                    access_scope: &access_scope,
                    grant_resources: &before.resources,
                    audience: &before.resources,
                    dpop_jkt,
                    nonce: None,
                };
                // Consumed together with storing the refresh token, or not at all.
                let prepared = self.prepare_tokens(client, issue, now).await?;
                if !devices
                    .consume_device(&device_hash, prepared.refresh)
                    .await
                    .map_err(|e| internal("storage failure", e))?
                {
                    return Err(OAuthError::new(
                        TokenErrorCode::InvalidGrant,
                        "the device code was already used",
                    ));
                }
                Ok(super::Granted {
                    response: prepared.response,
                    subject: subject.to_owned(),
                })
            }
        }
    }

    /// For the verification page: the pending authorization behind `user_code`.
    /// `caller_key` identifies who is typing (an IP address, a session) for the rate limit.
    ///
    /// # Errors
    ///
    /// [`DeviceUserError`]; every failed lookup counts against `caller_key`.
    pub async fn device_lookup(
        &self,
        user_code: &str,
        caller_key: &str,
        now: UnixTime,
    ) -> Result<PendingDevice, DeviceUserError> {
        let attempts = self
            .model
            .hit(&RateLimitKey::new("device-user-code", caller_key), now, 60)
            .await
            .map_err(|e| DeviceUserError::Internal(Box::new(e)))?;
        if attempts > self.config.user_code_attempts_per_minute {
            return Err(DeviceUserError::TooManyAttempts);
        }
        let code = normalize_user_code(user_code).ok_or(DeviceUserError::UnknownCode)?;
        let devices = self.model.devices().ok_or(DeviceUserError::UnknownCode)?;
        let record = devices
            .find_device_by_user_code(&SecretHash::of(&code))
            .await
            .map_err(|e| DeviceUserError::Internal(Box::new(e)))?
            .filter(|r| r.state == DeviceState::Pending && r.expires_at > now)
            .ok_or(DeviceUserError::UnknownCode)?;
        let client = self
            .model
            .find_client(&record.client_id)
            .await
            .map_err(|e| DeviceUserError::Internal(Box::new(e)))?
            .ok_or(DeviceUserError::UnknownCode)?;
        Ok(PendingDevice {
            user_code: display_user_code(&code),
            user_code_hash: SecretHash::of(&code),
            client_id: record.client_id,
            client_identity: crate::ClientIdentity::of(&client),
            client_name: client.metadata.client_name,
            scope: record.scope.to_string(),
            resources: record.resources,
        })
    }

    /// The user approved `pending` (what [`device_lookup`](Self::device_lookup) showed): one atomic model call
    /// records the approval and the grant it creates, only while the authorization is
    /// pending and unexpired and the user is active. Nothing is written otherwise.
    ///
    /// # Errors
    ///
    /// [`DeviceUserError::UnknownCode`] when it is no longer pending (expired, denied or
    /// already decided); [`DeviceUserError::InactiveUser`] when `subject` is disabled or gone.
    pub async fn approve_device(
        &self,
        pending: PendingDevice,
        subject: &str,
        now: UnixTime,
    ) -> Result<(), DeviceUserError> {
        let user_code_hash = pending.user_code_hash;
        let devices = self.model.devices().ok_or(DeviceUserError::UnknownCode)?;
        let record = devices
            .find_device_by_user_code(&user_code_hash)
            .await
            .map_err(|e| DeviceUserError::Internal(Box::new(e)))?
            .filter(|r| r.state == DeviceState::Pending && r.expires_at > now)
            .ok_or(DeviceUserError::UnknownCode)?;
        if !self
            .subject_is_active(subject)
            .await
            .map_err(DeviceUserError::Internal)?
        {
            return Err(DeviceUserError::InactiveUser);
        }
        let grant_id = GrantId::from(
            random::identifier(&*self.rng).map_err(|e| DeviceUserError::Internal(Box::new(e)))?,
        );
        let grant = GrantRecord {
            grant_id,
            client_id: record.client_id,
            subject: subject.to_owned(),
            scope: record.scope,
            resources: record.resources,
            created_at: now,
            revoked_at: None,
        };
        match devices
            .decide_device(&user_code_hash, DeviceDecision::Approve { grant }, now)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeviceUserError::UnknownCode),
            Err(e) => Err(DeviceUserError::Internal(Box::new(e))),
        }
    }

    /// The user denied `pending` (what [`device_lookup`](Self::device_lookup) showed).
    ///
    /// # Errors
    ///
    /// [`DeviceUserError::UnknownCode`] when it is no longer pending.
    pub async fn deny_device(
        &self,
        pending: PendingDevice,
        now: UnixTime,
    ) -> Result<(), DeviceUserError> {
        let devices = self.model.devices().ok_or(DeviceUserError::UnknownCode)?;
        match devices
            .decide_device(&pending.user_code_hash, DeviceDecision::Deny, now)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeviceUserError::UnknownCode),
            Err(e) => Err(DeviceUserError::Internal(Box::new(e))),
        }
    }
}

/// The requested scope as a set (for pages).
impl PendingDevice {
    /// The scope tokens.
    #[must_use]
    pub fn scope_tokens(&self) -> Scope {
        Scope::parse(&self.scope).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_typed_user_codes() {
        assert_eq!(
            normalize_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code(" BCDF GHJK ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
    }
}

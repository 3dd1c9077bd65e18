//! Revocation a resource server learns from its authorization server's Shared Signals stream
//! (OpenID Shared Signals Framework 1.0): Security Event Tokens (RFC 8417) checked like access
//! tokens, read as what they end, and a [`RevocationList`] every verified token is checked
//! against by a few hash lookups.
//!
//! What each event ends:
//! - CAEP `session-revoked` naming a session (mcpauth: a grant, the first part of an access
//!   token's `jti`): every token of that grant. Naming only an application (a client): every
//!   token issued to it before the event. Naming only a user: every token of the user before
//!   the event.
//! - CAEP `credential-change`, RISC `account-disabled` (a user): every token of the user
//!   issued before the event.
//! - `urn:mcpauth:secevent:signing-key-removed` (a key id): every token that key signed.
//!
//! - SSF `verification`: ends nothing; its `state` is read (the receiver asked for it, to
//!   learn that its stream delivers).
//!
//! Other events are read as ending nothing (a receiver acknowledges them all the same).

use std::collections::HashMap;

use serde_json::Value;

use crate::verify::{TokenVerifier, VerifiedToken, VerifyError, number};

use mcpauth_oauth_types::security_events::{
    ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SECURITY_EVENT_TOKEN_MEDIA_TYPE,
    SECURITY_EVENT_TOKEN_TYPE, SESSION_REVOKED, SIGNING_KEY_REMOVED, VERIFICATION,
};

/// One thing a security event ends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Revocation {
    /// Every token of this grant (the part of `jti` before its first `.`).
    Grant(String),
    /// Every token of this user (`sub`) issued at or before `before`.
    User {
        /// The user.
        subject: String,
        /// When the event happened.
        before: u64,
    },
    /// Every token issued to this client at or before `before`.
    Client {
        /// The client.
        client_id: String,
        /// When the event happened.
        before: u64,
    },
    /// Every token signed by this key.
    Key(String),
}

/// A verified Security Event Token: its `jti` (to acknowledge) and what it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityEvent {
    /// `jti`.
    pub jti: String,
    /// What it ends (empty for an event that ends nothing here).
    pub revocations: Vec<Revocation>,
    /// For an SSF verification event, the `state` it carries (empty when it carries none).
    pub verification: Option<String>,
    /// When what it reports happened (its earliest `event_timestamp`, else its `iat`).
    pub occurred_at: u64,
}

fn subject_member<'a>(sub_id: &'a Value, member: &str) -> Option<&'a Value> {
    if sub_id.get("format").and_then(Value::as_str) == Some("complex") {
        sub_id.get(member)
    } else {
        None
    }
}

fn opaque_id(subject: &Value) -> Option<String> {
    (subject.get("format").and_then(Value::as_str) == Some("opaque"))
        .then(|| subject.get("id").and_then(Value::as_str).map(str::to_owned))
        .flatten()
}

impl TokenVerifier {
    /// Verifies a Security Event Token from this verifier's issuer for the receiver
    /// `receiver` (RFC 8417 §2.2, SSF §4): `typ: secevent+jwt`, signed by one of the
    /// issuer's keys, `iss` the issuer, `aud` the receiver, a `jti`, an `iat` not in the
    /// future, and an `events` object; then reads what it ends.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first check that failed.
    pub fn verify_security_event(
        &self,
        set: &str,
        receiver: &str,
        now: crate::UnixTime,
    ) -> Result<SecurityEvent, VerifyError> {
        let (_, claims) = self.signed_claims(set, |typ| {
            typ.eq_ignore_ascii_case(SECURITY_EVENT_TOKEN_TYPE)
                || typ.eq_ignore_ascii_case(SECURITY_EVENT_TOKEN_MEDIA_TYPE)
        })?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Err(VerifyError::WrongIssuer);
        }
        let addressed = match claims.get("aud") {
            Some(Value::String(one)) => one == receiver,
            Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(receiver)),
            _ => false,
        };
        if !addressed {
            return Err(VerifyError::WrongAudience);
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
            .ok_or(VerifyError::Malformed)?
            .to_owned();
        let iat = number(&claims, "iat")?.ok_or(VerifyError::Malformed)?;
        if iat > now.0.saturating_add(60) {
            return Err(VerifyError::NotYetValid);
        }
        let events = claims
            .get("events")
            .and_then(Value::as_object)
            .ok_or(VerifyError::Malformed)?;
        let sub_id = claims.get("sub_id").unwrap_or(&Value::Null);
        let user = |subject: &Value| {
            (subject.get("format").and_then(Value::as_str) == Some("iss_sub")
                && subject.get("iss").and_then(Value::as_str) == Some(self.issuer()))
            .then(|| {
                subject
                    .get("sub")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten()
        };
        let mut revocations = Vec::new();
        let mut verification = None;
        let mut occurred_at = iat;
        for (event_type, body) in events {
            // When it happened; without a time, when the token was issued.
            let at = body
                .get("event_timestamp")
                .and_then(Value::as_u64)
                .unwrap_or(iat);
            occurred_at = occurred_at.min(at);
            match event_type.as_str() {
                SESSION_REVOKED => {
                    if let Some(grant) = subject_member(sub_id, "session").and_then(opaque_id) {
                        revocations.push(Revocation::Grant(grant));
                    } else if let Some(client_id) =
                        subject_member(sub_id, "application").and_then(opaque_id)
                    {
                        revocations.push(Revocation::Client {
                            client_id,
                            before: at,
                        });
                    } else if let Some(subject) =
                        user(sub_id).or_else(|| subject_member(sub_id, "user").and_then(user))
                    {
                        revocations.push(Revocation::User {
                            subject,
                            before: at,
                        });
                    }
                }
                CREDENTIAL_CHANGE | ACCOUNT_DISABLED => {
                    if let Some(subject) =
                        user(sub_id).or_else(|| subject_member(sub_id, "user").and_then(user))
                    {
                        revocations.push(Revocation::User {
                            subject,
                            before: at,
                        });
                    }
                }
                SIGNING_KEY_REMOVED => {
                    if let Some(kid) = opaque_id(sub_id) {
                        revocations.push(Revocation::Key(kid));
                    }
                }
                VERIFICATION => {
                    verification = Some(
                        body.get("state")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                _ => {}
            }
        }
        Ok(SecurityEvent {
            jti,
            revocations,
            verification,
            occurred_at,
        })
    }
}

/// What a resource server knows was revoked, each entry kept until no token it ends can still
/// be alive. Checking a token is a few hash lookups.
#[derive(Clone, Debug, Default)]
pub struct RevocationList {
    /// Grant → forget at.
    grants: HashMap<String, u64>,
    /// User → (tokens issued at or before this end, forget at).
    users: HashMap<String, (u64, u64)>,
    /// Client → (tokens issued at or before this end, forget at).
    clients: HashMap<String, (u64, u64)>,
    /// Key id → forget at.
    keys: HashMap<String, u64>,
}

impl RevocationList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what `revocation` ends, remembered until `forget_at` (the moment every token it
    /// could end has expired: its time plus the longest access-token lifetime).
    pub fn add(&mut self, revocation: &Revocation, forget_at: u64) {
        fn later(entry: &mut (u64, u64), before: u64, forget_at: u64) {
            entry.0 = entry.0.max(before);
            entry.1 = entry.1.max(forget_at);
        }
        match revocation {
            Revocation::Grant(grant) => {
                let entry = self.grants.entry(grant.clone()).or_insert(forget_at);
                *entry = (*entry).max(forget_at);
            }
            Revocation::User { subject, before } => later(
                self.users.entry(subject.clone()).or_insert((0, 0)),
                *before,
                forget_at,
            ),
            Revocation::Client { client_id, before } => later(
                self.clients.entry(client_id.clone()).or_insert((0, 0)),
                *before,
                forget_at,
            ),
            Revocation::Key(kid) => {
                let entry = self.keys.entry(kid.clone()).or_insert(forget_at);
                *entry = (*entry).max(forget_at);
            }
        }
    }

    /// Whether `token` is revoked. A token without `iat` counts as issued before any user's or
    /// client's revocation.
    #[must_use]
    pub fn revokes(&self, token: &VerifiedToken) -> bool {
        let issued = token.issued_at.unwrap_or(0);
        let grant = token
            .jti
            .as_deref()
            .and_then(|jti| jti.split_once('.'))
            .map(|(grant, _)| grant);
        grant.is_some_and(|g| self.grants.contains_key(g))
            || self
                .users
                .get(&token.subject)
                .is_some_and(|(before, _)| issued <= *before)
            || self
                .clients
                .get(&token.client_id)
                .is_some_and(|(before, _)| issued <= *before)
            || token
                .key_id
                .as_deref()
                .is_some_and(|kid| self.keys.contains_key(kid))
    }

    /// Forgets what no live token can be affected by any more.
    pub fn forget_before(&mut self, now: u64) {
        self.grants.retain(|_, forget| *forget > now);
        self.users.retain(|_, (_, forget)| *forget > now);
        self.clients.retain(|_, (_, forget)| *forget > now);
        self.keys.retain(|_, forget| *forget > now);
    }

    /// How many entries it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.grants.len() + self.users.len() + self.clients.len() + self.keys.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

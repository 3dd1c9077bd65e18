//! RFC 6749 §6: refreshing an access token, with rotation (OAuth 2.1 §4.3.1, RFC 9700
//! §4.14.2) and resource indicators (RFC 8707 §2.2).
//!
//! Client, scope and resource are checked before rotating, so a bad request changes nothing.
//! The rotation itself is one atomic model call.
//!
//! A rotated token presented again is a replay. Within the grace window after its rotation
//! (`refresh_reuse_grace`, fixed from the first rotation, never sliding) and while its
//! successor has not been rotated itself, the replay is taken for a retry of a request whose
//! answer was lost: it gets the *same* successor again, with a fresh access token. The
//! successor is kept for that window only, sealed with a key derived from the rotated token
//! (stored only as a hash, so the database alone cannot open it). The family stays one
//! chain, so whichever of two holders uses the successor second after its own window is
//! caught. Any other replay revokes the family and everything issued from it.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_oauth_types::{
    GrantType, OAuthError, RefreshToken, Scope, TokenErrorCode, TokenResponse,
};
use sha2::{Digest as _, Sha256};

use crate::UnixTime;
use crate::dpop::{BoundGrant, check_binding};
use crate::error::{TokenError, internal};
use crate::id_token::{IdTokenFor, asks_for_id_token};
use crate::model::{
    ClientRecord, GrantId, OAuthServerModel, RefreshTokenRecord, RotateRefresh,
    TokenEndpointAuthMethod,
};
use crate::{SecretHash, TokenEngine, random};

fn invalid_grant(description: &'static str) -> TokenError {
    OAuthError::new(TokenErrorCode::InvalidGrant, description)
}

/// The AES-256-GCM key that seals the successor of `token`: derived from the token, which
/// the store keeps only as a hash.
fn successor_key(token: &str) -> Option<LessSafeKey> {
    let mut digest = Sha256::new();
    digest.update(b"mcpauth refresh successor v1\0");
    digest.update(token.as_bytes());
    let key = UnboundKey::new(&AES_256_GCM, &digest.finalize()).ok()?;
    Some(LessSafeKey::new(key))
}

/// Seals `successor` for the holder of `token`: base64url of nonce and ciphertext.
fn seal_successor(
    rng: &dyn random::SecureRandom,
    token: &str,
    successor: &str,
) -> Result<String, random::RandomError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let key = successor_key(token).ok_or(random::RandomError)?;
    let mut sealed = successor.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut sealed,
    )
    .map_err(|_| random::RandomError)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal_successor`] sealed for `token`; `None` if it was not sealed for it.
fn open_successor(token: &str, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let (nonce, ciphertext) = bytes.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = ciphertext.to_vec();
    let plain = successor_key(token)?
        .open_in_place(nonce, Aad::empty(), &mut buffer)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// The refusal of a rotated refresh token presented again (its grant is revoked): the
/// token endpoint's audit event tells it from other `invalid_grant`s by it.
pub(crate) const REFRESH_REPLAYED: &str =
    "the refresh token was already used; the grant is revoked and the user must authorize again";

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn refresh(
        &self,
        client: &ClientRecord,
        token: &RefreshToken,
        scope: Option<&Scope>,
        resource: &[String],
        dpop_jkt: Option<&str>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        let old_hash = SecretHash::of(token.secret());
        let (record, grant_live) = self
            .model
            .find_refresh_and_grant(&old_hash)
            .await
            .map_err(|e| internal("storage failure", e))?
            .ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
        if record.client_id != client.client_id {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if record.expires_at <= now {
            return Err(invalid_grant("the refresh token has expired"));
        }
        if !grant_live {
            return Err(invalid_grant("the refresh token has been revoked"));
        }
        check_binding(
            &self.config.dpop,
            BoundGrant::RefreshToken,
            record.dpop_jkt.as_deref(),
            dpop_jkt,
        )?;
        // RFC 6749 §6: the scope may narrow, never widen.
        let access_scope = match scope {
            Some(requested) if requested.is_subset_of(&record.scope) => requested.to_string(),
            Some(_) => {
                return Err(OAuthError::new(
                    TokenErrorCode::InvalidScope,
                    "the requested scope exceeds the scope of the grant",
                ));
            }
            None => record.scope.to_string(),
        };
        let audience = if resource.is_empty() {
            record.resources.clone()
        } else if resource.iter().all(|r| record.resources.contains(r)) {
            resource.to_vec()
        } else {
            return Err(OAuthError::new(
                TokenErrorCode::InvalidTarget,
                "resource was not part of the grant",
            ));
        };
        let answer = Refreshed {
            record: &record,
            client,
            access_scope: &access_scope,
            audience: &audience,
            dpop_jkt,
        };
        if record.rotated_at.is_some() {
            let successor = self.replayed(token, &record, now).await?;
            return self.refreshed(&answer, successor, now).await;
        }

        let new_token =
            random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        let sealed = if self.config.refresh_reuse_grace > 0 {
            Some(
                seal_successor(&*self.rng, token.secret(), &new_token)
                    .map_err(|e| internal("sealing the successor failed", e))?,
            )
        } else {
            None
        };
        let new_record = RefreshTokenRecord {
            token_hash: SecretHash::of(&new_token),
            issued_at: now,
            expires_at: now.plus(self.config.refresh_token_ttl),
            rotated_at: None,
            sealed_successor: None,
            ..record.clone()
        };
        match self
            .model
            .rotate_refresh(&old_hash, new_record, sealed, now)
            .await
            .map_err(|e| internal("storage failure", e))?
        {
            RotateRefresh::Rotated => self.refreshed(&answer, new_token, now).await,
            RotateRefresh::Reused { .. } => {
                // A concurrent request rotated it first: this one is its replay.
                let rotated = self
                    .model
                    .find_refresh(&old_hash)
                    .await
                    .map_err(|e| internal("storage failure", e))?
                    .ok_or_else(|| invalid_grant("the refresh token is invalid"))?;
                let successor = self.replayed(token, &rotated, now).await?;
                self.refreshed(&answer, successor, now).await
            }
            RotateRefresh::NotFound => Err(invalid_grant("the refresh token is invalid")),
        }
    }

    /// The token response of a refresh: a fresh access token and `refresh_token`.
    async fn refreshed(
        &self,
        answer: &Refreshed<'_>,
        refresh_token: String,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        let access_token = self
            .issue_access_token(
                GrantType::RefreshToken,
                Some(answer.record.grant_id.as_str()),
                &answer.record.subject,
                answer.client.client_id.as_str(),
                answer.access_scope,
                answer.audience,
                answer.dpop_jkt,
                now,
            )
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = self.access_token_response(access_token, answer.dpop_jkt.is_some());
        response.refresh_token = Some(refresh_token);
        response.scope = (!answer.access_scope.is_empty()).then(|| answer.access_scope.to_owned());
        // OpenID Connect Core §12.2: same `iss`, `sub` and `aud`; no `nonce`.
        if asks_for_id_token(answer.access_scope) {
            response.id_token = self.issue_id_token(
                &IdTokenFor {
                    grant_id: &answer.record.grant_id,
                    subject: &answer.record.subject,
                    client_id: answer.client.client_id.as_str(),
                    nonce: None,
                },
                now,
            )?;
        }
        Ok(super::Granted {
            response,
            subject: answer.record.subject.clone(),
        })
    }

    /// `token` (whose `record` says it was rotated) came back. Inside the grace window, while
    /// its successor is still the family's live token, answers with that successor (the
    /// caller issues a fresh access token with it); otherwise revokes the family.
    async fn replayed(
        &self,
        token: &RefreshToken,
        record: &RefreshTokenRecord,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let within_grace = record
            .rotated_at
            .is_some_and(|at| now.seconds_since(at) <= self.config.refresh_reuse_grace);
        if within_grace
            && let Some(successor) = record
                .sealed_successor
                .as_deref()
                .and_then(|sealed| open_successor(token.secret(), sealed))
        {
            let live = self
                .model
                .find_refresh(&SecretHash::of(&successor))
                .await
                .map_err(|e| internal("storage failure", e))?
                .is_some_and(|s| {
                    s.rotated_at.is_none() && s.expires_at > now && s.grant_id == record.grant_id
                });
            if live {
                return Ok(successor);
            }
        }
        self.model
            .revoke_grant(&record.grant_id, now)
            .await
            .map_err(|e| internal("storage failure", e))?;
        Err(invalid_grant(REFRESH_REPLAYED))
    }

    /// Prepares the tokens for a grant: the access token, and, when the client may refresh, a
    /// refresh token whose record the caller stores in the same atomic step that consumes the
    /// code or device authorization it comes from.
    pub(crate) async fn prepare_tokens(
        &self,
        client: &ClientRecord,
        issue: GrantTokens<'_>,
        now: UnixTime,
    ) -> Result<PreparedTokens, TokenError> {
        let access_token = self
            .issue_access_token(
                issue.grant_type,
                Some(issue.grant_id.as_str()),
                issue.subject,
                client.client_id.as_str(),
                issue.access_scope,
                issue.audience,
                issue.dpop_jkt,
                now,
            )
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = self.access_token_response(access_token, issue.dpop_jkt.is_some());
        response.scope = (!issue.access_scope.is_empty()).then(|| issue.access_scope.to_owned());
        if asks_for_id_token(issue.access_scope) {
            response.id_token = self.issue_id_token(
                &IdTokenFor {
                    grant_id: issue.grant_id,
                    subject: issue.subject,
                    client_id: client.client_id.as_str(),
                    nonce: issue.nonce,
                },
                now,
            )?;
        }
        let mut refresh = None;
        if client.allows_grant(GrantType::RefreshToken) {
            let token =
                random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
            refresh = Some(RefreshTokenRecord {
                token_hash: SecretHash::of(&token),
                grant_id: issue.grant_id.to_owned(),
                client_id: client.client_id.clone(),
                subject: issue.subject.to_owned(),
                scope: issue.grant_scope.clone(),
                resources: issue.grant_resources.to_vec(),
                issued_at: now,
                expires_at: now.plus(self.config.refresh_token_ttl),
                rotated_at: None,
                sealed_successor: None,
                // RFC 9449 §5: a public client's refresh token is bound to the key that
                // obtained it; a confidential client's is already bound to its credentials.
                dpop_jkt: issue
                    .dpop_jkt
                    .filter(|_| client.auth_method() == TokenEndpointAuthMethod::None)
                    .map(str::to_owned),
            });
            response.refresh_token = Some(token);
        }
        Ok(PreparedTokens { response, refresh })
    }

    /// A token response for `access_token`: `token_type: DPoP` when it is bound to a key
    /// (RFC 9449 §5), `Bearer` otherwise.
    pub(crate) fn access_token_response(&self, access_token: String, bound: bool) -> TokenResponse {
        if bound {
            TokenResponse::dpop(access_token, self.config.access_token_ttl)
        } else {
            TokenResponse::bearer(access_token, self.config.access_token_ttl)
        }
    }
}

/// What a refresh answers with, validated before any rotation.
struct Refreshed<'a> {
    record: &'a RefreshTokenRecord,
    client: &'a ClientRecord,
    access_scope: &'a str,
    audience: &'a [String],
    /// The key of the request's DPoP proof, which the access token is bound to.
    dpop_jkt: Option<&'a str>,
}

/// Tokens issued from a grant, before the step that commits them: the response is sent only
/// once `refresh` is stored.
pub(crate) struct PreparedTokens {
    pub(crate) response: TokenResponse,
    pub(crate) refresh: Option<RefreshTokenRecord>,
}

/// What [`TokenEngine::issue_tokens`] issues from a grant.
pub(crate) struct GrantTokens<'a> {
    pub(crate) grant_type: GrantType,
    pub(crate) grant_id: &'a GrantId,
    pub(crate) subject: &'a str,
    /// The grant's scope, kept by the refresh token.
    pub(crate) grant_scope: &'a Scope,
    /// The access token's scope (may be narrower).
    pub(crate) access_scope: &'a str,
    /// The grant's resources, kept by the refresh token.
    pub(crate) grant_resources: &'a [String],
    /// The access token's audience (may be narrower).
    pub(crate) audience: &'a [String],
    /// The key of the request's DPoP proof: the access token is bound to it, and so is the
    /// refresh token of a public client.
    pub(crate) dpop_jkt: Option<&'a str>,
    /// The authorization request's `nonce`, for the ID token of an `openid` grant.
    pub(crate) nonce: Option<&'a str>,
}

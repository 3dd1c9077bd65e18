//! RFC 6749 §6: refreshing an access token, with rotation (OAuth 2.1 §4.3.1, RFC 9700
//! §4.14.2) and resource indicators (RFC 8707 §2.2).
//!
//! Client, scope and resource are checked before rotating, so a bad request changes nothing.
//! The rotation itself is one atomic model call. Reuse of a rotated token revokes the whole
//! family, except within a short grace window after the first rotation, where it is only
//! refused (concurrent refreshes by one client must not log the user out).

use mcpauth_oauth_types::{
    GrantType, OAuthError, RefreshToken, Scope, TokenErrorCode, TokenResponse,
};

use crate::error::{TokenError, internal};
use crate::model::{ClientRecord, OAuthServerModel, RefreshTokenRecord, RotateRefresh};
use crate::time::UnixTime;
use crate::{TokenEngine, hash, random};

fn invalid_grant(description: &'static str) -> TokenError {
    OAuthError::new(TokenErrorCode::InvalidGrant, description)
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn refresh(
        &self,
        client: &ClientRecord,
        token: &RefreshToken,
        scope: Option<&Scope>,
        resource: &[String],
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        let old_hash = hash::secret_hash(token.secret());
        let record = self
            .model
            .find_refresh(&old_hash)
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
        let grant = self
            .model
            .find_grant(&record.grant_id)
            .await
            .map_err(|e| internal("storage failure", e))?;
        if grant.is_none_or(|g| g.revoked_at.is_some()) {
            return Err(invalid_grant("the refresh token has been revoked"));
        }
        if let Some(rotated_at) = record.rotated_at {
            return Err(self.refresh_reused(&record.grant_id, rotated_at, now).await);
        }
        // RFC 6749 §6: the scope may narrow, never widen.
        let granted = Scope::parse(&record.scope).unwrap_or_default();
        let access_scope = match scope {
            Some(requested) if requested.is_subset_of(&granted) => requested.to_string(),
            Some(_) => {
                return Err(OAuthError::new(
                    TokenErrorCode::InvalidScope,
                    "the requested scope exceeds the scope of the grant",
                ));
            }
            None => record.scope.clone(),
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

        let new_token =
            random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        let new_record = RefreshTokenRecord {
            token_hash: hash::secret_hash(&new_token),
            issued_at: now,
            expires_at: now.plus(self.config.refresh_token_ttl),
            rotated_at: None,
            ..record.clone()
        };
        match self
            .model
            .rotate_refresh(&old_hash, new_record, now)
            .await
            .map_err(|e| internal("storage failure", e))?
        {
            RotateRefresh::Rotated => {}
            RotateRefresh::Reused {
                grant_id,
                rotated_at,
            } => return Err(self.refresh_reused(&grant_id, rotated_at, now).await),
            RotateRefresh::NotFound => return Err(invalid_grant("the refresh token is invalid")),
        }
        let access_token = self
            .issue_access_token(
                GrantType::RefreshToken,
                Some(&record.grant_id),
                &record.subject,
                &client.client_id,
                &access_scope,
                &audience,
                now,
            )
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = TokenResponse::bearer(access_token, self.config.access_token_ttl);
        response.refresh_token = Some(new_token);
        response.scope = (!access_scope.is_empty()).then_some(access_scope);
        Ok(response)
    }

    /// A rotated token came back: within the grace window refuse; after it, revoke the family.
    async fn refresh_reused(
        &self,
        grant_id: &str,
        rotated_at: UnixTime,
        now: UnixTime,
    ) -> TokenError {
        if now.seconds_since(rotated_at) <= self.config.refresh_reuse_grace {
            return invalid_grant(
                "the refresh token was just rotated: use the refresh token from the latest response",
            );
        }
        if let Err(e) = self.model.revoke_grant(grant_id, now).await {
            return internal("storage failure", e);
        }
        invalid_grant(
            "the refresh token was already used; the grant is revoked and the user must authorize again",
        )
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
                Some(issue.grant_id),
                issue.subject,
                &client.client_id,
                issue.access_scope,
                issue.audience,
                now,
            )
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = TokenResponse::bearer(access_token, self.config.access_token_ttl);
        response.scope = (!issue.access_scope.is_empty()).then(|| issue.access_scope.to_owned());
        let mut refresh = None;
        if client.allows_grant("refresh_token") {
            let token =
                random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
            refresh = Some(RefreshTokenRecord {
                token_hash: hash::secret_hash(&token),
                grant_id: issue.grant_id.to_owned(),
                client_id: client.client_id.clone(),
                subject: issue.subject.to_owned(),
                scope: issue.grant_scope.to_owned(),
                resources: issue.grant_resources.to_vec(),
                issued_at: now,
                expires_at: now.plus(self.config.refresh_token_ttl),
                rotated_at: None,
            });
            response.refresh_token = Some(token);
        }
        Ok(PreparedTokens { response, refresh })
    }
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
    pub(crate) grant_id: &'a str,
    pub(crate) subject: &'a str,
    /// The grant's scope, kept by the refresh token.
    pub(crate) grant_scope: &'a str,
    /// The access token's scope (may be narrower).
    pub(crate) access_scope: &'a str,
    /// The grant's resources, kept by the refresh token.
    pub(crate) grant_resources: &'a [String],
    /// The access token's audience (may be narrower).
    pub(crate) audience: &'a [String],
}

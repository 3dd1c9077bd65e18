//! RFC 6749 §4.1.3: redeeming an authorization code, with PKCE (RFC 7636 §4.5-§4.6) and
//! resource indicators (RFC 8707 §2.2).
//!
//! Validate before consuming: a wrong verifier, client, redirect URI or resource is refused
//! and leaves the code usable. Only then is the code consumed, atomically, by the model,
//! together with storing the refresh token issued from it, so an outage never leaves a code
//! consumed with no token to show for it. A second redemption revokes the grant and
//! everything issued from it (RFC 6749 §4.1.2).

use mcpauth_oauth_types::{AuthorizationCode, CodeVerifier, GrantType, OAuthError, TokenErrorCode};
use mcpauth_pkce::CodeChallenge;

use crate::UnixTime;
use crate::dpop::{BoundGrant, check_binding};
use crate::error::{TokenError, internal};
use crate::grant::refresh_token::GrantTokens;
use crate::model::{ClientRecord, ConsumeCode, GrantId, OAuthServerModel};
use crate::{SecretHash, TokenEngine};

pub(crate) struct CodeRedemption<'a> {
    pub(crate) code: AuthorizationCode,
    pub(crate) redirect_uri: Option<&'a str>,
    pub(crate) code_verifier: Option<CodeVerifier>,
    pub(crate) resource: &'a [String],
    /// The key of the request's DPoP proof, if it carried one.
    pub(crate) dpop_jkt: Option<&'a str>,
}

fn invalid_grant(description: &'static str) -> TokenError {
    OAuthError::new(TokenErrorCode::InvalidGrant, description)
}

/// The refusal of an authorization code presented again (its grant is revoked): the token
/// endpoint's audit event tells it from other `invalid_grant`s by it.
pub(crate) const CODE_REPLAYED: &str =
    "the authorization code was already used; tokens issued from it are revoked";

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn redeem_code(
        &self,
        client: &ClientRecord,
        request: CodeRedemption<'_>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        let code_hash = SecretHash::of(request.code.secret());
        let (record, grant_live) = self
            .model
            .find_code_and_grant(&code_hash)
            .await
            .map_err(|e| internal("storage failure", e))?
            .ok_or_else(|| invalid_grant("the authorization code is invalid"))?;
        if record.client_id != client.client_id {
            return Err(invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
        if record.expires_at <= now {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if !grant_live {
            return Err(invalid_grant("the authorization code has been revoked"));
        }
        self.refuse_inactive_subject(&record.subject, &record.grant_id, now)
            .await?;
        // RFC 6749 §4.1.3: required, and identical, if it was in the authorization request.
        match request.redirect_uri {
            Some(uri) if uri == record.redirect_uri => {}
            Some(_) => {
                return Err(invalid_grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
            None if record.redirect_uri_in_request => {
                return Err(OAuthError::new(
                    TokenErrorCode::InvalidRequest,
                    "redirect_uri is required: it was in the authorization request",
                ));
            }
            None => {}
        }
        let Some(verifier) = request.code_verifier else {
            return Err(OAuthError::new(
                TokenErrorCode::InvalidRequest,
                "code_verifier is required (PKCE)",
            ));
        };
        CodeChallenge::from_stored(record.code_challenge.clone())
            .verify(&verifier)
            .map_err(|e| OAuthError::new(TokenErrorCode::InvalidGrant, e.to_string()))?;
        check_binding(
            &self.config.dpop,
            BoundGrant::Code,
            record.dpop_jkt.as_deref(),
            request.dpop_jkt,
        )?;
        // RFC 8707 §2.2: the token may be for fewer resources than the grant, never others.
        let audience = if request.resource.is_empty() {
            record.resources.clone()
        } else if request
            .resource
            .iter()
            .all(|r| record.resources.contains(r))
        {
            request.resource.to_vec()
        } else {
            return Err(OAuthError::new(
                TokenErrorCode::InvalidTarget,
                "resource was not part of the authorization request",
            ));
        };

        // Codes never change but for `consumed_at`: the tokens can be made from the record
        // read above, and are committed with the consumption or not at all.
        let access_scope = record.scope.to_string();
        let issue = GrantTokens {
            grant_type: GrantType::AuthorizationCode,
            grant_id: &record.grant_id,
            subject: &record.subject,
            grant_scope: &record.scope,
            access_scope: &access_scope,
            grant_resources: &record.resources,
            audience: &audience,
            dpop_jkt: request.dpop_jkt,
            nonce: record.nonce.as_deref(),
        };
        let prepared = self.prepare_tokens(client, issue, now).await?;
        match self
            .model
            .consume_code(&code_hash, now, prepared.refresh)
            .await
            .map_err(|e| internal("storage failure", e))?
        {
            ConsumeCode::Fresh(_) => Ok(super::Granted {
                response: prepared.response,
                subject: record.subject.clone(),
            }),
            ConsumeCode::Reused(record) => {
                // The code leaked or the client retried a used code: everything issued from it
                // is suspect.
                self.model
                    .revoke_grant(&record.grant_id, now)
                    .await
                    .map_err(|e| internal("storage failure", e))?;
                Err(invalid_grant(CODE_REPLAYED))
            }
            ConsumeCode::NotFound => Err(invalid_grant("the authorization code is invalid")),
        }
    }
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Refuses to issue tokens to a user who was disabled or removed after deciding, and
    /// revokes the grant their decision created.
    pub(crate) async fn refuse_inactive_subject(
        &self,
        subject: &str,
        grant_id: &GrantId,
        now: UnixTime,
    ) -> Result<(), TokenError> {
        let active = self.subject_is_active(subject).await.map_err(|e| {
            OAuthError::new(TokenErrorCode::ServerError, "storage failure").with_source(e)
        })?;
        if active {
            return Ok(());
        }
        self.model
            .revoke_grant(grant_id, now)
            .await
            .map_err(|e| internal("storage failure", e))?;
        Err(invalid_grant(
            "the user who authorized this grant is disabled or was removed",
        ))
    }
}

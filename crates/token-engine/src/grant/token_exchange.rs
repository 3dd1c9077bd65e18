//! RFC 8693: token exchange, so an MCP server can get a narrower token for a downstream API on
//! the user's behalf instead of passing the user's token through (MCP security best practices,
//! "token passthrough").
//!
//! - The caller is a confidential client, and an [`ExchangeRule`] must allow it to turn a
//!   token issued for `from_resource` into one for the requested targets.
//! - The subject token must be an access token this server issued, unexpired, of a live grant.
//! - Audience and scope only narrow; the new token keeps the user as `sub`, names the caller
//!   in `act` (RFC 8693 §4.1, nesting any earlier actor), expires no later than the subject
//!   token, and belongs to the same grant (revoking the user's grant revokes it too).
//! - `actor_token` is refused: the authenticated client is the actor.

use mcpauth_oauth_types::{AccessToken, GrantType, OAuthError, Scope, TokenErrorCode};

use crate::TokenEngine;
use crate::UnixTime;
use crate::access_token::SubjectType;
pub use crate::config::ExchangeRule;
use crate::error::{TokenError, internal};
use crate::model::{ClientRecord, GrantId, OAuthServerModel, TokenEndpointAuthMethod};

/// The grant type name registered by RFC 8693 §2.1.
pub use mcpauth_oauth_types::TOKEN_EXCHANGE_GRANT;
/// RFC 8693 §3: the token type of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What a token-exchange request asks for.
pub(crate) struct Exchange<'a> {
    pub(crate) subject_token: &'a AccessToken,
    pub(crate) subject_token_type: &'a str,
    pub(crate) has_actor_token: bool,
    pub(crate) requested_token_type: Option<&'a str>,
    pub(crate) targets: Vec<String>,
    /// The request's `resource` parameters alone.
    pub(crate) resource: &'a [String],
    /// The request's `audience` parameters alone.
    pub(crate) audience: &'a [String],
    pub(crate) scope: Option<&'a Scope>,
    /// The key of the request's DPoP proof: the issued token is bound to it.
    pub(crate) dpop_jkt: Option<&'a str>,
}

fn error(code: TokenErrorCode, description: &'static str) -> TokenError {
    OAuthError::new(code, description)
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn exchange(
        &self,
        client: &ClientRecord,
        request: Exchange<'_>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        if client.auth_method() == TokenEndpointAuthMethod::None {
            return Err(error(
                TokenErrorCode::UnauthorizedClient,
                "token exchange is for confidential clients only",
            ));
        }
        if request.subject_token_type != ACCESS_TOKEN_TYPE {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "subject_token_type must be urn:ietf:params:oauth:token-type:access_token",
            ));
        }
        if request
            .requested_token_type
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
        {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "only access tokens can be requested (requested_token_type)",
            ));
        }
        if request.has_actor_token {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "actor_token is not supported: the authenticated client is the actor",
            ));
        }
        let subject = self
            .decode_own_access_token(request.subject_token.secret())
            .await
            .map_err(|e| internal("storage failure", e))?
            .ok_or_else(|| {
                error(
                    TokenErrorCode::InvalidGrant,
                    "subject_token is not an access token issued by this server",
                )
            })?;
        if subject.exp <= now.0 {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token has expired",
            ));
        }
        let grant_id = subject.grant_id().map(GrantId::from);
        if let Some(grant_id) = &grant_id {
            let grant = self
                .model
                .find_grant(grant_id)
                .await
                .map_err(|e| internal("storage failure", e))?;
            if grant.is_none_or(|g| g.revoked_at.is_some()) {
                return Err(error(
                    TokenErrorCode::InvalidGrant,
                    "subject_token has been revoked",
                ));
            }
        }
        // RFC 8693 §2.2.2: invalid_target when unwilling to issue for the named targets.
        if request.targets.is_empty() {
            return Err(error(
                TokenErrorCode::InvalidTarget,
                "name the downstream service with resource or audience",
            ));
        }
        let subject_audience: Vec<&str> = match &subject.aud {
            crate::access_token::Audience::One(one) => vec![one.as_str()],
            crate::access_token::Audience::Many(many) => many.iter().map(String::as_str).collect(),
        };
        let allowed = self.config.exchange_rules.iter().any(|rule| {
            client.client_id == rule.client_id
                && subject_audience.contains(&rule.from_resource.as_str())
                && request
                    .targets
                    .iter()
                    .all(|t| rule.to_resources.contains(t))
        });
        if !allowed {
            return Err(error(
                TokenErrorCode::InvalidTarget,
                "no exchange rule lets this client obtain tokens for these targets from this subject token",
            ));
        }
        let subject_scope = Scope::parse(&subject.scope).unwrap_or_default();
        let scope = match request.scope {
            Some(requested) if requested.is_subset_of(&subject_scope) => requested.to_string(),
            Some(_) => {
                return Err(error(
                    TokenErrorCode::InvalidScope,
                    "the requested scope exceeds the subject token's scope",
                ));
            }
            None => subject.scope.clone(),
        };
        let mut claims = self
            .access_token_claims(
                GrantType::TokenExchange,
                grant_id.as_ref().map(GrantId::as_str),
                &subject.sub,
                client.client_id.as_str(),
                &scope,
                &request.targets,
                now,
            )
            .map_err(|e| internal("signing failure", e))?;
        claims.exp = claims.exp.min(subject.exp);
        // The new token stands for whoever the subject token stood for.
        claims.sub_type = Some(if subject.has_user() {
            SubjectType::User
        } else {
            SubjectType::Client
        });
        // RFC 8693 §4.1: the current actor, with earlier actors nested inside.
        let mut act = serde_json::Map::new();
        act.insert("sub".into(), client.client_id.as_str().into());
        if let Some(previous) = subject.extra.get("act") {
            act.insert("act".into(), previous.clone());
        }
        claims.extra.insert("act".into(), act.into());
        claims.cnf = request.dpop_jkt.map(crate::Confirmation::jkt);
        let expires_in = claims.exp.saturating_sub(now.0);
        let access_token = self
            .encode_access_token(&claims)
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = self.access_token_response(access_token, request.dpop_jkt.is_some());
        response.expires_in = expires_in;
        response.scope = (!scope.is_empty()).then_some(scope);
        response.issued_token_type = Some(ACCESS_TOKEN_TYPE.into());
        Ok(super::Granted {
            response,
            subject: subject.sub,
        })
    }
}

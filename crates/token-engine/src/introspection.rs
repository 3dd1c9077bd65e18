//! RFC 7662: token introspection, for resource servers that hold opaque or revocable tokens.
//!
//! Only resource servers may ask (§2.1: "the endpoint MUST also require some form of
//! authorization"; §4: tokens are revealed only to parties that need them): authenticated
//! confidential clients the operator marked as resource servers
//! ([`ClientRecord::resource_server`]) or listed
//! ([`EngineConfig::introspection_clients`](crate::EngineConfig::introspection_clients)).
//! Any other client gets `403 unauthorized_client` and learns nothing. Refresh tokens are
//! introspectable only by the client they were issued to. Anything the caller may not see,
//! or that is unknown, expired, rotated or revoked, is `{"active":false}`.

use mcpauth_oauth_types::{
    IntrospectionErrorCode, IntrospectionRequest, OAuthError, TokenTypeHint,
};
use serde::Serialize;

use crate::UnixTime;
use crate::access_token::Audience;
use crate::error::internal;
use crate::model::{ClientRecord, GrantId, OAuthServerModel, TokenEndpointAuthMethod};
use crate::{SecretHash, TokenEngine};

/// An introspection response (RFC 7662 §2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// Its scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client it was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Its subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Its audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Its issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// When it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// When it was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Its identifier (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for bearer access tokens, `DPoP` for DPoP-bound ones (RFC 9449 §6.2),
    /// `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// `user` when a user stands behind the token, `client` when the client acts for itself
    /// (the access token's `sub_type` claim; an RFC 7662 §2.2 extension member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<crate::SubjectType>,
    /// The key a DPoP-bound access token is bound to (RFC 9449 §6.2): the resource server
    /// must check the request's proof against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::Confirmation>,
}

impl Introspection {
    /// `{"active": false}`.
    #[must_use]
    pub fn inactive() -> Self {
        Self::default()
    }
}

type IntrospectionError = OAuthError<IntrospectionErrorCode>;

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn introspect(
        &self,
        caller: &ClientRecord,
        request: &IntrospectionRequest,
        now: UnixTime,
    ) -> Result<Introspection, IntrospectionError> {
        if caller.auth_method() == TokenEndpointAuthMethod::None {
            return Err(OAuthError::new(
                IntrospectionErrorCode::InvalidClient,
                "introspection requires client authentication with a secret",
            ));
        }
        if !self.is_resource_server(caller) {
            return Err(OAuthError::new(
                IntrospectionErrorCode::UnauthorizedClient,
                "only resource servers may introspect tokens: the operator marks a client as one (mcpauth-server client add --resource-server)",
            ));
        }
        let refresh_first = request.token_type_hint != Some(TokenTypeHint::AccessToken);
        if refresh_first {
            if let Some(found) = self.introspect_refresh(caller, &request.token, now).await? {
                return Ok(found);
            }
            return self.introspect_access(&request.token, now).await;
        }
        match self.introspect_access(&request.token, now).await? {
            found if found.active => Ok(found),
            _ => Ok(self
                .introspect_refresh(caller, &request.token, now)
                .await?
                .unwrap_or_default()),
        }
    }

    /// `None` when the token is not a refresh token we know.
    async fn introspect_refresh(
        &self,
        caller: &ClientRecord,
        token: &str,
        now: UnixTime,
    ) -> Result<Option<Introspection>, IntrospectionError> {
        let Some(record) = self
            .model
            .find_refresh(&SecretHash::of(token))
            .await
            .map_err(|e| internal("storage failure", e))?
        else {
            return Ok(None);
        };
        if record.client_id != caller.client_id
            || record.rotated_at.is_some()
            || record.expires_at <= now
        {
            return Ok(Some(Introspection::inactive()));
        }
        if !self.grant_is_live(&record.grant_id).await? {
            return Ok(Some(Introspection::inactive()));
        }
        Ok(Some(Introspection {
            active: true,
            scope: (!record.scope.is_empty()).then(|| record.scope.to_string()),
            client_id: Some(record.client_id.into_string()),
            sub: Some(record.subject),
            aud: Some(Audience::Many(record.resources)),
            iss: Some(self.issuer_str()),
            exp: Some(record.expires_at.0),
            iat: Some(record.issued_at.0),
            jti: None,
            token_type: Some("refresh_token".into()),
            sub_type: Some(crate::SubjectType::User),
            cnf: None,
        }))
    }

    async fn introspect_access(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<Introspection, IntrospectionError> {
        let Some(claims) = self
            .decode_own_access_token(token)
            .await
            .map_err(|e| internal("storage failure", e))?
        else {
            return Ok(Introspection::inactive());
        };
        if claims.exp <= now.0 {
            return Ok(Introspection::inactive());
        }
        if let Some(grant_id) = claims.grant_id()
            && !self.grant_is_live(&GrantId::from(grant_id)).await?
        {
            return Ok(Introspection::inactive());
        }
        let sub_type = Some(if claims.has_user() {
            crate::SubjectType::User
        } else {
            crate::SubjectType::Client
        });
        Ok(Introspection {
            active: true,
            scope: (!claims.scope.is_empty()).then_some(claims.scope),
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            sub_type,
            jti: Some(claims.jti),
            token_type: Some(
                if claims.cnf.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                }
                .into(),
            ),
            cnf: claims.cnf,
        })
    }

    async fn grant_is_live(&self, grant_id: &GrantId) -> Result<bool, IntrospectionError> {
        let grant = self
            .model
            .find_grant(grant_id)
            .await
            .map_err(|e| internal("storage failure", e))?;
        Ok(grant.is_some_and(|g| g.revoked_at.is_none()))
    }
}

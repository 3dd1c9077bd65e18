//! RFC 6749 §4.4: the client credentials grant, for machine clients acting for themselves.
//!
//! Only confidential clients may use it (§4.4: "MUST only be used by confidential clients").
//! The token has no user: its `sub` is the client id (RFC 9068 §2.2: "the value of sub SHOULD
//! correspond to an identifier the authorization server uses to indicate the client
//! application"). No refresh token is issued (§4.4.3), and no grant is stored, so issuing
//! is one signature and no write.

use mcpauth_oauth_types::{GrantType, OAuthError, Scope, TokenErrorCode, TokenResponse};

use crate::TokenEngine;
use crate::error::{TokenError, internal};
use crate::model::{ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};
use crate::time::UnixTime;

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn client_credentials(
        &self,
        client: &ClientRecord,
        scope: Option<&Scope>,
        resource: &[String],
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        if client.auth_method == TokenEndpointAuthMethod::None {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "client_credentials is for confidential clients only",
            ));
        }
        let scope = self
            .resolve_scope(scope, client, false)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidScope, d))?
            .to_string();
        let audience = self
            .resolve_resources(resource)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidTarget, d))?;
        let access_token = self
            .issue_access_token(
                GrantType::ClientCredentials,
                None,
                &client.client_id,
                &client.client_id,
                &scope,
                &audience,
                now,
            )
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = TokenResponse::bearer(access_token, self.config.access_token_ttl);
        response.scope = (!scope.is_empty()).then_some(scope);
        Ok(response)
    }
}

//! RFC 6749 §4.4: the client credentials grant, for machine clients acting for themselves.
//!
//! Only confidential clients may use it (§4.4: "MUST only be used by confidential clients").
//! The token has no user: its `sub` is the client id (RFC 9068 §2.2: "the value of sub SHOULD
//! correspond to an identifier the authorization server uses to indicate the client
//! application"), and `sub_type` is `client`: no user stands behind it. No refresh token is
//! issued (§4.4.3), and no grant is stored, so issuing is one signature and no write.
//!
//! The scope ceiling is the operator's: the scope an operator registered the client with
//! (any supported scope if none), or for a self-registered client someone vouched for, the
//! policy's [`vouched_scope`](crate::RegistrationPolicy::vouched_scope); never a scope the
//! client registered for itself.

use mcpauth_oauth_types::{GrantType, OAuthError, Scope, TokenErrorCode};

use crate::TokenEngine;
use crate::UnixTime;
use crate::error::{TokenError, internal};
use crate::model::Voucher;
use crate::model::{ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn client_credentials(
        &self,
        client: &ClientRecord,
        scope: Option<&Scope>,
        resource: &[String],
        dpop_jkt: Option<&str>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        if client.auth_method() == TokenEndpointAuthMethod::None {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "client_credentials is for confidential clients only",
            ));
        }
        let scope = self
            .machine_scope(scope, client)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidScope, d))?
            .to_string();
        let audience = self
            .resolve_resources(resource)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidTarget, d))?;
        let access_token = self
            .issue_access_token(
                GrantType::ClientCredentials,
                None,
                client.client_id.as_str(),
                client.client_id.as_str(),
                &scope,
                &audience,
                dpop_jkt,
                now,
            )
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = self.access_token_response(access_token, dpop_jkt.is_some());
        response.scope = (!scope.is_empty()).then_some(scope);
        Ok(super::Granted {
            response,
            subject: client.client_id.as_str().to_owned(),
        })
    }
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// The scope of a token a client obtains for itself: the request (or, without one, the
    /// ceiling, RFC 6749 §3.3's pre-defined default), within the operator's ceiling.
    fn machine_scope(
        &self,
        requested: Option<&Scope>,
        client: &ClientRecord,
    ) -> Result<Scope, &'static str> {
        let operator_ceiling = match &client.vouched {
            // The application that registered it stands where an operator would.
            Some(Voucher::Application) | None => None,
            Some(_) => Some(Scope::from_tokens(
                self.config.registration.vouched_scope.iter().cloned(),
            )),
        };
        let Some(ceiling) = operator_ceiling.filter(|_| client.is_self_registered()) else {
            return self.resolve_scope(requested, client, false);
        };
        let scope = requested.cloned().unwrap_or_else(|| ceiling.clone());
        if !scope.is_subset_of(&ceiling) {
            return Err(
                "the requested scope exceeds what the operator allows self-registered machine clients",
            );
        }
        Ok(scope)
    }
}

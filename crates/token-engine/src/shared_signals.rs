//! What a Shared Signals transmitter (OpenID Shared Signals Framework 1.0, RFC 8936 poll
//! delivery) built on this engine needs from it: to know its receivers, and to sign what it
//! sends them.
//!
//! - Receivers are resource servers: clients with a secret that the operator marked as
//!   resource servers (or listed as introspection clients), the same callers RFC 7662 §4 lets
//!   introspect, authenticating with HTTP Basic. Anyone else learns nothing about who lost
//!   access.
//! - Security Event Tokens (RFC 8417 §2.2) are signed with the server's current key and
//!   `typ: secevent+jwt` (§2.3), a type no access token, ID token or ID-JAG carries, so no
//!   one of them passes for another.

use crate::model::{ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};
use crate::{TokenEngine, UnixTime};
use mcpauth_oauth_types::BodyCredentials;

use mcpauth_oauth_types::security_events::SECURITY_EVENT_TOKEN_TYPE;

/// Why a caller may not use an endpoint that serves resource servers only.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResourceServerRefusal {
    /// The caller did not authenticate as a client (answer `401 invalid_client` with
    /// `WWW-Authenticate: Basic`).
    Unauthenticated(&'static str),
    /// It is a client, but not one the operator marked as a resource server (answer `403`).
    NotAResourceServer,
    /// Storage failed (answer `500`).
    Storage(Box<dyn std::error::Error + Send + Sync>),
}

impl std::fmt::Display for ResourceServerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated(why) => f.write_str(why),
            Self::NotAResourceServer => f.write_str(
                "only resource servers may do this: the operator marks a client as one (mcpauth-server client add --resource-server)",
            ),
            Self::Storage(_) => f.write_str("storage failure"),
        }
    }
}

/// Signing a Security Event Token failed.
#[derive(Debug, thiserror::Error)]
#[error("signing the security event token failed: {0}")]
pub struct SetSigningError(#[from] crate::keys::SignError);

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Whether `caller` may read about tokens it did not obtain: a client with credentials
    /// that the operator marked as a resource server or listed in
    /// [`EngineConfig::introspection_clients`](crate::EngineConfig::introspection_clients).
    pub(crate) fn is_resource_server(&self, caller: &ClientRecord) -> bool {
        caller.auth_method() != TokenEndpointAuthMethod::None
            && (caller.resource_server
                || self
                    .config
                    .introspection_clients
                    .iter()
                    .any(|c| caller.client_id == *c))
    }

    /// Authenticates a resource server from a request's `Authorization` header (HTTP Basic,
    /// RFC 6749 §2.3.1), for endpoints outside the engine that serve resource servers only,
    /// such as a Shared Signals transmitter's.
    ///
    /// # Errors
    ///
    /// [`ResourceServerRefusal`].
    pub async fn authenticate_resource_server(
        &self,
        authorization: Option<&str>,
        now: UnixTime,
    ) -> Result<ClientRecord, ResourceServerRefusal> {
        let caller = self
            .authenticate_client(authorization, &BodyCredentials::default(), now)
            .await
            .map_err(|e| match e {
                crate::client_auth::ClientAuthError::Storage(e) => {
                    ResourceServerRefusal::Storage(e)
                }
                crate::client_auth::ClientAuthError::Malformed(why)
                | crate::client_auth::ClientAuthError::Failed {
                    description: why, ..
                } => ResourceServerRefusal::Unauthenticated(why),
            })?;
        if !self.is_resource_server(&caller) {
            return Err(ResourceServerRefusal::NotAResourceServer);
        }
        Ok(caller)
    }

    /// A Security Event Token (RFC 8417) of `claims`, signed with this server's current key:
    /// header `typ: secevent+jwt`, `alg` and `kid` of the key.
    ///
    /// # Errors
    ///
    /// The claims do not serialize, or signing failed.
    pub fn sign_security_event_token(
        &self,
        claims: &serde_json::Value,
    ) -> Result<String, SetSigningError> {
        let keys = self.keys();
        let key = keys.current();
        let mut header = jsonwebtoken::Header::new(key.algorithm());
        header.typ = Some(SECURITY_EVENT_TOKEN_TYPE.into());
        header.kid = Some(key.kid().to_owned());
        Ok(key.sign_jwt(&header, claims)?)
    }
}

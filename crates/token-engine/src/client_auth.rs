//! RFC 6749 §2.3: client authentication at the token and revocation endpoints.
//!
//! Methods: `none` (public client, `client_id` in the body), `client_secret_basic` and
//! `client_secret_post`. Exactly one method per request (RFC 6749 §2.3: "The client MUST NOT
//! use more than one authentication method in each request"), and it must be the one the
//! client registered. Unknown client and wrong secret give the same answer.

use mcpauth_oauth_types::{BodyCredentials, ClientSecret, parse_basic_authorization};

use crate::model::{ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};
use crate::time::UnixTime;
use crate::{TokenEngine, hash};

/// Why authentication failed, before it is mapped to an endpoint's error code.
#[derive(Debug)]
pub(crate) enum ClientAuthError {
    /// `invalid_request`: malformed or more than one method.
    Malformed(&'static str),
    /// `invalid_client`; `basic` says whether the client tried HTTP Basic (then the answer is
    /// 401 with `WWW-Authenticate: Basic`, RFC 6749 §5.2).
    Failed {
        description: &'static str,
        basic: bool,
    },
    /// Storage failed.
    Storage(Box<dyn std::error::Error + Send + Sync>),
}

const BAD_CREDENTIALS: &str = "client authentication failed: unknown client, wrong credentials, or a method the client did not register";

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    pub(crate) async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        body: &BodyCredentials,
        now: UnixTime,
    ) -> Result<ClientRecord, ClientAuthError> {
        let basic = match authorization.map(parse_basic_authorization).transpose() {
            Ok(basic) => basic.flatten(),
            Err(_) => {
                return Err(ClientAuthError::Failed {
                    description: "the Authorization header is not valid Basic credentials",
                    basic: true,
                });
            }
        };
        let (client_id, secret, method): (&str, Option<&ClientSecret>, TokenEndpointAuthMethod) =
            match (&basic, &body.client_secret) {
                (Some(_), Some(_)) => {
                    return Err(ClientAuthError::Malformed(
                        "more than one client authentication method (Authorization header and client_secret) in one request",
                    ));
                }
                (Some(b), None) => {
                    if body
                        .client_id
                        .as_deref()
                        .is_some_and(|id| id != b.client_id)
                    {
                        return Err(ClientAuthError::Malformed(
                            "client_id in the body differs from the Authorization header",
                        ));
                    }
                    (
                        &b.client_id,
                        Some(&b.client_secret),
                        TokenEndpointAuthMethod::ClientSecretBasic,
                    )
                }
                (None, Some(secret)) => match body.client_id.as_deref() {
                    Some(id) => (id, Some(secret), TokenEndpointAuthMethod::ClientSecretPost),
                    None => {
                        return Err(ClientAuthError::Malformed(
                            "client_secret was sent without client_id",
                        ));
                    }
                },
                (None, None) => match body.client_id.as_deref() {
                    Some(id) => (id, None, TokenEndpointAuthMethod::None),
                    None => {
                        return Err(ClientAuthError::Failed {
                            description: "client authentication is required: send client_id (public clients) or client credentials",
                            basic: false,
                        });
                    }
                },
            };
        let is_basic = method == TokenEndpointAuthMethod::ClientSecretBasic;
        let fail = ClientAuthError::Failed {
            description: BAD_CREDENTIALS,
            basic: is_basic,
        };
        let client = match self.model.find_client(client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(fail),
            Err(e) => return Err(ClientAuthError::Storage(Box::new(e))),
        };
        if client.auth_method != method {
            return Err(fail);
        }
        if let Some(secret) = secret {
            let Some(stored) = client.secret_hash.as_deref() else {
                return Err(fail);
            };
            if !mcpauth_oauth_types::constant_time_eq(
                hash::secret_hash(secret.secret()).as_bytes(),
                stored.as_bytes(),
            ) {
                return Err(fail);
            }
            if client.secret_expires_at.is_some_and(|at| at <= now) {
                return Err(ClientAuthError::Failed {
                    description: "the client secret has expired",
                    basic: is_basic,
                });
            }
        }
        Ok(client)
    }
}

//! RFC 6749 §2.3: client authentication at the token, revocation, introspection and device
//! authorization endpoints.
//!
//! Methods: `none` (public client, `client_id` in the body), `client_secret_basic`,
//! `client_secret_post`, and `private_key_jwt` (RFC 7523 §2.2). Exactly one method per
//! request (RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
//! each request"), and it must be the one the client registered. Unknown client and wrong
//! credentials give the same answer.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth_oauth_types::{BodyCredentials, ClientSecret, parse_basic_authorization};
use serde_json::Value;

use crate::UnixTime;
use crate::model::{ClientId, ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};
use crate::{SecretHash, TokenEngine, paths};

/// RFC 7523 §2.2.
pub(crate) const JWT_BEARER_ASSERTION: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The signing algorithms accepted for client assertions, as advertised in
/// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2): asymmetric only.
pub(crate) const ASSERTION_ALGORITHMS: &[(&str, Algorithm)] = &[
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("RS256", Algorithm::RS256),
    ("PS256", Algorithm::PS256),
    ("EdDSA", Algorithm::EdDSA),
];
/// Assertions may not live longer than this, so the replay cache stays small.
const MAX_ASSERTION_LIFETIME: u64 = 600;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 30;

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

fn failed(description: &'static str) -> ClientAuthError {
    ClientAuthError::Failed {
        description,
        basic: false,
    }
}

/// What the request presented.
enum Presented<'a> {
    None(&'a str),
    Secret {
        client_id: &'a str,
        secret: &'a ClientSecret,
        method: TokenEndpointAuthMethod,
    },
    Assertion(&'a str),
}

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
        let assertion = match (
            body.client_assertion_type.as_deref(),
            body.client_assertion.as_deref(),
        ) {
            (None, None) => None,
            (Some(JWT_BEARER_ASSERTION), Some(assertion)) => Some(assertion),
            (Some(JWT_BEARER_ASSERTION), None) => {
                return Err(ClientAuthError::Malformed("client_assertion is missing"));
            }
            (Some(_), _) => {
                return Err(failed(
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
            }
            (None, Some(_)) => {
                return Err(ClientAuthError::Malformed(
                    "client_assertion_type is missing",
                ));
            }
        };
        let methods = usize::from(basic.is_some())
            + usize::from(body.client_secret.is_some())
            + usize::from(assertion.is_some());
        if methods > 1 {
            return Err(ClientAuthError::Malformed(
                "more than one client authentication method in one request",
            ));
        }
        let presented = if let Some(b) = &basic {
            if body
                .client_id
                .as_deref()
                .is_some_and(|id| id != b.client_id)
            {
                return Err(ClientAuthError::Malformed(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            Presented::Secret {
                client_id: &b.client_id,
                secret: &b.client_secret,
                method: TokenEndpointAuthMethod::ClientSecretBasic,
            }
        } else if let Some(secret) = &body.client_secret {
            let client_id = body.client_id.as_deref().ok_or(ClientAuthError::Malformed(
                "client_secret was sent without client_id",
            ))?;
            Presented::Secret {
                client_id,
                secret,
                method: TokenEndpointAuthMethod::ClientSecretPost,
            }
        } else if let Some(assertion) = assertion {
            Presented::Assertion(assertion)
        } else {
            let client_id = body.client_id.as_deref().ok_or_else(|| failed("client authentication is required: send client_id (public clients) or client credentials"))?;
            Presented::None(client_id)
        };
        match presented {
            Presented::None(client_id) => {
                let client = self
                    .registered(client_id, TokenEndpointAuthMethod::None, false)
                    .await?;
                Ok(client)
            }
            Presented::Secret {
                client_id,
                secret,
                method,
            } => {
                let basic = method == TokenEndpointAuthMethod::ClientSecretBasic;
                let client = self.registered(client_id, method, basic).await?;
                let fail = ClientAuthError::Failed {
                    description: BAD_CREDENTIALS,
                    basic,
                };
                let Some(stored) = client.secret_hash.as_ref() else {
                    return Err(fail);
                };
                if !stored.matches(secret.secret()) {
                    return Err(fail);
                }
                if client.secret_expires_at.is_some_and(|at| at <= now) {
                    return Err(ClientAuthError::Failed {
                        description: "the client secret has expired",
                        basic,
                    });
                }
                Ok(client)
            }
            Presented::Assertion(assertion) => {
                self.authenticate_assertion(assertion, body.client_id.as_deref(), now)
                    .await
            }
        }
    }

    /// The client, if it exists and registered `method`.
    async fn registered(
        &self,
        client_id: &str,
        method: TokenEndpointAuthMethod,
        basic: bool,
    ) -> Result<ClientRecord, ClientAuthError> {
        match self.model.find_client(&ClientId::from(client_id)).await {
            Ok(Some(client)) if client.auth_method() == method => Ok(client),
            Ok(_) => Err(ClientAuthError::Failed {
                description: BAD_CREDENTIALS,
                basic,
            }),
            Err(e) => Err(ClientAuthError::Storage(Box::new(e))),
        }
    }

    /// RFC 7523 §3: validates a client assertion JWT and refuses a replayed `jti`.
    async fn authenticate_assertion(
        &self,
        assertion: &str,
        body_client_id: Option<&str>,
        now: UnixTime,
    ) -> Result<ClientRecord, ClientAuthError> {
        const BAD_ASSERTION: &str = "the client assertion is not valid (RFC 7523 §3)";
        // Who claims to be signing: iss and sub must both be the client id (§3 items 1-2).
        let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
            .map_err(|_| failed(BAD_ASSERTION))?;
        let client_id = unverified
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(BAD_ASSERTION))?
            .to_owned();
        if unverified.claims.get("iss").and_then(Value::as_str) != Some(client_id.as_str())
            || body_client_id.is_some_and(|id| id != client_id)
        {
            return Err(failed(BAD_ASSERTION));
        }
        let client = self
            .registered(&client_id, TokenEndpointAuthMethod::PrivateKeyJwt, false)
            .await?;
        let keys: JwkSet = client
            .metadata
            .jwks
            .clone()
            .and_then(|jwks| serde_json::from_value(jwks).ok())
            .ok_or_else(|| failed("the client registered no usable jwks"))?;
        let header = unverified.header;
        // Exactly the advertised algorithms (`token_endpoint_auth_signing_alg_values_supported`),
        // all asymmetric: an HS256 "assertion" would be signed with public data.
        if !ASSERTION_ALGORITHMS
            .iter()
            .any(|(_, alg)| *alg == header.alg)
        {
            return Err(failed(BAD_ASSERTION));
        }
        let candidates = keys
            .keys
            .iter()
            .filter(|k| header.kid.is_none() || k.common.key_id == header.kid);
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        // §3 item 3: the audience identifies this server. It is the issuer identifier as a
        // single string (draft-ietf-oauth-rfc7523bis §4: an array, or the token endpoint URL,
        // lets an assertion meant for one server be replayed at another); RFC 7523's older
        // forms only behind the `legacy_assertion_audience` switch.
        let legacy = self.config.legacy_assertion_audience;
        let mut audiences = vec![self.issuer_str()];
        if legacy {
            audiences.push(self.config.endpoint_url(paths::TOKEN));
        }
        validation.set_audience(&audiences);
        let claims = candidates
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
            .find_map(|key| jsonwebtoken::decode::<Value>(assertion, &key, &validation).ok())
            .ok_or_else(|| failed(BAD_ASSERTION))?
            .claims;
        if !legacy && !claims.get("aud").is_some_and(Value::is_string) {
            return Err(failed(
                "the client assertion's aud must be the issuer identifier, as a single string",
            ));
        }
        // §3 items 4-7: numeric exp in the future and not too far, nbf/iat not in the future, jti.
        let number = |name: &str| {
            claims
                .get(name)
                .map(|v| v.as_u64().ok_or_else(|| failed(BAD_ASSERTION)))
                .transpose()
        };
        let exp = number("exp")?.ok_or_else(|| failed("the client assertion has no exp"))?;
        if exp.saturating_add(LEEWAY) <= now.0 {
            return Err(failed("the client assertion has expired"));
        }
        if exp > now.0.saturating_add(MAX_ASSERTION_LIFETIME) {
            return Err(failed("the client assertion lives longer than 10 minutes"));
        }
        for name in ["nbf", "iat"] {
            if number(name)?.is_some_and(|t| t > now.0.saturating_add(LEEWAY)) {
                return Err(failed("the client assertion is not valid yet"));
            }
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| failed("the client assertion has no jti"))?;
        let key = format!("assertion:{client_id}:{}", SecretHash::of(jti).as_str());
        match self
            .model
            .remember_once(&key, UnixTime(exp.saturating_add(LEEWAY)), now)
            .await
        {
            Ok(true) => Ok(client),
            Ok(false) => Err(failed("the client assertion was already used (jti replay)")),
            Err(e) => Err(ClientAuthError::Storage(Box::new(e))),
        }
    }
}

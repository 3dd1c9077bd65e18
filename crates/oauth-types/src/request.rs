//! Typed requests of the authorization endpoint (RFC 6749 §4.1.1, RFC 7636 §4.3,
//! RFC 8707 §2), the token endpoint (RFC 6749 §4.1.3, §6) and the revocation endpoint
//! (RFC 7009 §2.1).
//!
//! Parsing checks syntax only. Whether a client, code or redirect URI is acceptable is
//! decided by the engine.

use crate::form::{FormParams, ParseError};
use crate::scope::Scope;
use crate::secret::{
    AccessToken, Assertion, AuthorizationCode, ClientSecret, CodeVerifier, DeviceCode, RefreshToken,
};

/// Longest value accepted for identifiers and tokens in a request.
const MAX_VALUE_LEN: usize = 4096;

fn bounded<'a>(form: &'a FormParams, name: &'static str) -> Result<Option<&'a str>, ParseError> {
    match form.get(name) {
        Some(value) if value.len() > MAX_VALUE_LEN => Err(ParseError::Invalid {
            parameter: name,
            reason: "is longer than 4096 bytes",
        }),
        other => Ok(other),
    }
}

fn required<'a>(form: &'a FormParams, name: &'static str) -> Result<&'a str, ParseError> {
    bounded(form, name)?.ok_or(ParseError::Missing(name))
}

fn scope(form: &FormParams) -> Result<Option<Scope>, ParseError> {
    bounded(form, "scope")?
        .map(|s| {
            Scope::parse(s).map_err(|_| ParseError::Invalid {
                parameter: "scope",
                reason: "is not a space-separated list of RFC 6749 §3.3 scope tokens",
            })
        })
        .transpose()
}

fn resources(form: &FormParams) -> Result<Vec<String>, ParseError> {
    let mut out: Vec<String> = Vec::new();
    for value in form.get_all("resource") {
        if value.len() > MAX_VALUE_LEN {
            return Err(ParseError::Invalid {
                parameter: "resource",
                reason: "is longer than 4096 bytes",
            });
        }
        if out.len() == 16 {
            return Err(ParseError::Invalid {
                parameter: "resource",
                reason: "is given more than 16 times",
            });
        }
        if !out.iter().any(|r| r == value) {
            out.push(value.to_owned());
        }
    }
    Ok(out)
}

/// An authorization request (RFC 6749 §4.1.1 with RFC 7636 §4.3 and RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// `response_type`; the engine accepts only `code`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `scope`.
    pub scope: Option<Scope>,
    /// `state`, returned to the client untouched.
    pub state: Option<String>,
    /// `code_challenge` (RFC 7636 §4.3).
    pub code_challenge: Option<String>,
    /// `code_challenge_method` (RFC 7636 §4.3).
    pub code_challenge_method: Option<String>,
    /// `resource` values (RFC 8707 §2), deduplicated, in order.
    pub resource: Vec<String>,
    /// `response_mode` (OAuth 2.0 Multiple Response Type Encoding Practices §2.1); the
    /// engine answers only in the query.
    pub response_mode: Option<String>,
    /// `dpop_jkt` (RFC 9449 §10): the JWK thumbprint of the DPoP key the code is bound to.
    pub dpop_jkt: Option<String>,
    /// `nonce` (OpenID Connect Core §3.1.2.1): echoed in the ID token of an `openid` request.
    pub nonce: Option<String>,
    /// `prompt` (OpenID Connect Core §3.1.2.1): space-separated `none`, `login`, `consent`,
    /// `select_account`.
    pub prompt: Option<String>,
    /// `max_age` (OpenID Connect Core §3.1.2.1), as sent.
    pub max_age: Option<String>,
}

impl AuthorizationRequest {
    /// Reads an authorization request from parsed query parameters.
    ///
    /// Nothing is required at this stage: the engine must first find the client and the
    /// redirect URI to know whether an error may be redirected (RFC 6749 §4.1.2.1).
    ///
    /// # Errors
    ///
    /// A [`ParseError`] when a value is too long or the scope syntax is invalid.
    pub fn from_form(form: &FormParams) -> Result<Self, ParseError> {
        Ok(Self {
            response_type: bounded(form, "response_type")?.map(str::to_owned),
            client_id: bounded(form, "client_id")?.map(str::to_owned),
            redirect_uri: bounded(form, "redirect_uri")?.map(str::to_owned),
            scope: scope(form)?,
            state: bounded(form, "state")?.map(str::to_owned),
            code_challenge: bounded(form, "code_challenge")?.map(str::to_owned),
            code_challenge_method: bounded(form, "code_challenge_method")?.map(str::to_owned),
            resource: resources(form)?,
            response_mode: bounded(form, "response_mode")?.map(str::to_owned),
            dpop_jkt: bounded(form, "dpop_jkt")?.map(str::to_owned),
            nonce: bounded(form, "nonce")?.map(str::to_owned),
            prompt: bounded(form, "prompt")?.map(str::to_owned),
            max_age: bounded(form, "max_age")?.map(str::to_owned),
        })
    }
}

/// The `grant_type` of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1.3).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
    DeviceCode,
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693 §2.1).
    TokenExchange,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): a JWT as the grant (an
    /// identity assertion JWT authorization grant, a workload token).
    JwtBearer,
}

/// The device authorization grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The token exchange grant's `grant_type` (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The JWT bearer grant's `grant_type` (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl GrantType {
    /// Every grant type, in the order servers list them.
    pub const ALL: [Self; 6] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::DeviceCode,
        Self::TokenExchange,
        Self::JwtBearer,
    ];

    /// The wire value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => DEVICE_CODE_GRANT,
            Self::TokenExchange => TOKEN_EXCHANGE_GRANT,
            Self::JwtBearer => JWT_BEARER_GRANT,
        }
    }

    /// Parses a wire value.
    #[must_use]
    pub fn from_wire(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

/// A token request, by grant type, plus the client credentials sent in the body
/// (`client_secret_post` or the `client_id` of a public client).
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenRequest {
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5 and RFC 8707 §2.2.
    AuthorizationCode {
        /// `code`.
        code: AuthorizationCode,
        /// `redirect_uri`, required when it was in the authorization request.
        redirect_uri: Option<String>,
        /// `code_verifier`.
        code_verifier: Option<CodeVerifier>,
        /// `resource` values.
        resource: Vec<String>,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
    /// RFC 6749 §6 with RFC 8707 §2.2.
    RefreshToken {
        /// `refresh_token`.
        refresh_token: RefreshToken,
        /// `scope`, which may only narrow the grant.
        scope: Option<Scope>,
        /// `resource` values, which may only narrow the grant.
        resource: Vec<String>,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
    /// RFC 6749 §4.4.2 with RFC 8707 §2.
    ClientCredentials {
        /// `scope`.
        scope: Option<Scope>,
        /// `resource` values.
        resource: Vec<String>,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
    /// RFC 8628 §3.4.
    DeviceCode {
        /// `device_code`.
        device_code: DeviceCode,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
    /// RFC 8693 §2.1 token exchange.
    TokenExchange {
        /// `subject_token`: the token representing the party on whose behalf the request is.
        subject_token: AccessToken,
        /// `subject_token_type`.
        subject_token_type: String,
        /// `actor_token`, if the actor presents one.
        actor_token: Option<AccessToken>,
        /// `actor_token_type`, required with `actor_token`.
        actor_token_type: Option<String>,
        /// `requested_token_type`.
        requested_token_type: Option<String>,
        /// `resource` values (RFC 8707).
        resource: Vec<String>,
        /// `audience` values (logical names of the target service).
        audience: Vec<String>,
        /// `scope`.
        scope: Option<Scope>,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
    /// RFC 7523 §2.1: a JWT as the authorization grant.
    JwtBearer {
        /// `assertion`: the JWT.
        assertion: Assertion,
        /// `scope`.
        scope: Option<Scope>,
        /// `resource` values (RFC 8707).
        resource: Vec<String>,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
    /// A grant type this crate knows but whose parameters are read elsewhere, or an
    /// unknown one; the engine answers `unsupported_grant_type` for those it does not serve.
    Other {
        /// The `grant_type` value.
        grant_type: String,
        /// Credentials in the body.
        body_credentials: BodyCredentials,
    },
}

/// `client_id` and `client_secret` sent in a request body (RFC 6749 §2.3.1).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct BodyCredentials {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret`.
    pub client_secret: Option<ClientSecret>,
    /// `client_assertion_type` (RFC 7521 §4.2).
    pub client_assertion_type: Option<String>,
    /// `client_assertion`: a JWT signed by the client (RFC 7523 §2.2).
    pub client_assertion: Option<String>,
}

impl BodyCredentials {
    fn from_form(form: &FormParams) -> Result<Self, ParseError> {
        Ok(Self {
            client_id: bounded(form, "client_id")?.map(str::to_owned),
            client_secret: bounded(form, "client_secret")?.map(|s| ClientSecret::new(s.to_owned())),
            client_assertion_type: bounded(form, "client_assertion_type")?.map(str::to_owned),
            client_assertion: bounded(form, "client_assertion")?.map(str::to_owned),
        })
    }
}

impl TokenRequest {
    /// Reads a token request from a parsed form body.
    ///
    /// # Errors
    ///
    /// [`ParseError::Missing`] for `grant_type` or a parameter its grant requires, or
    /// [`ParseError::Invalid`] for a malformed value.
    pub fn from_form(form: &FormParams) -> Result<Self, ParseError> {
        let grant_type = required(form, "grant_type")?;
        let body_credentials = BodyCredentials::from_form(form)?;
        Ok(match GrantType::from_wire(grant_type) {
            Some(GrantType::AuthorizationCode) => Self::AuthorizationCode {
                code: AuthorizationCode::new(required(form, "code")?.to_owned()),
                redirect_uri: bounded(form, "redirect_uri")?.map(str::to_owned),
                code_verifier: bounded(form, "code_verifier")?
                    .map(|v| CodeVerifier::new(v.to_owned())),
                resource: resources(form)?,
                body_credentials,
            },
            Some(GrantType::RefreshToken) => Self::RefreshToken {
                refresh_token: RefreshToken::new(required(form, "refresh_token")?.to_owned()),
                scope: scope(form)?,
                resource: resources(form)?,
                body_credentials,
            },
            Some(GrantType::ClientCredentials) => Self::ClientCredentials {
                scope: scope(form)?,
                resource: resources(form)?,
                body_credentials,
            },
            Some(GrantType::DeviceCode) => Self::DeviceCode {
                device_code: DeviceCode::new(required(form, "device_code")?.to_owned()),
                body_credentials,
            },
            Some(GrantType::TokenExchange) => {
                let actor_token =
                    bounded(form, "actor_token")?.map(|t| AccessToken::new(t.to_owned()));
                let actor_token_type = bounded(form, "actor_token_type")?.map(str::to_owned);
                // RFC 8693 §2.1: actor_token_type "is REQUIRED when the actor_token parameter
                // is present in the request but MUST NOT be included otherwise."
                if actor_token.is_some() != actor_token_type.is_some() {
                    return Err(ParseError::Invalid {
                        parameter: "actor_token_type",
                        reason: "must be sent with actor_token, and only with it",
                    });
                }
                let mut audience = Vec::new();
                for value in form.get_all("audience").take(17) {
                    if value.len() > MAX_VALUE_LEN || audience.len() == 16 {
                        return Err(ParseError::Invalid {
                            parameter: "audience",
                            reason: "has too many or too long values",
                        });
                    }
                    audience.push(value.to_owned());
                }
                Self::TokenExchange {
                    subject_token: AccessToken::new(required(form, "subject_token")?.to_owned()),
                    subject_token_type: required(form, "subject_token_type")?.to_owned(),
                    actor_token,
                    actor_token_type,
                    requested_token_type: bounded(form, "requested_token_type")?.map(str::to_owned),
                    resource: resources(form)?,
                    audience,
                    scope: scope(form)?,
                    body_credentials,
                }
            }
            Some(GrantType::JwtBearer) => Self::JwtBearer {
                assertion: Assertion::new(required(form, "assertion")?.to_owned()),
                scope: scope(form)?,
                resource: resources(form)?,
                body_credentials,
            },
            _ => Self::Other {
                grant_type: grant_type.chars().take(128).collect(),
                body_credentials,
            },
        })
    }

    /// The grant type, or `None` for an unknown one.
    #[must_use]
    pub fn grant_type(&self) -> Option<GrantType> {
        match self {
            Self::AuthorizationCode { .. } => Some(GrantType::AuthorizationCode),
            Self::RefreshToken { .. } => Some(GrantType::RefreshToken),
            Self::ClientCredentials { .. } => Some(GrantType::ClientCredentials),
            Self::DeviceCode { .. } => Some(GrantType::DeviceCode),
            Self::TokenExchange { .. } => Some(GrantType::TokenExchange),
            Self::JwtBearer { .. } => Some(GrantType::JwtBearer),
            Self::Other { grant_type, .. } => GrantType::from_wire(grant_type),
        }
    }

    /// The credentials sent in the body.
    #[must_use]
    pub fn body_credentials(&self) -> &BodyCredentials {
        match self {
            Self::AuthorizationCode {
                body_credentials, ..
            }
            | Self::RefreshToken {
                body_credentials, ..
            }
            | Self::ClientCredentials {
                body_credentials, ..
            }
            | Self::DeviceCode {
                body_credentials, ..
            }
            | Self::TokenExchange {
                body_credentials, ..
            }
            | Self::JwtBearer {
                body_credentials, ..
            }
            | Self::Other {
                body_credentials, ..
            } => body_credentials,
        }
    }
}

/// `token_type_hint` (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

/// A device authorization request (RFC 8628 §3.1, with RFC 8707 resources).
#[derive(Debug)]
#[non_exhaustive]
pub struct DeviceAuthorizationRequest {
    /// `scope`.
    pub scope: Option<Scope>,
    /// `resource` values.
    pub resource: Vec<String>,
    /// Credentials in the body (`client_id` for public clients).
    pub body_credentials: BodyCredentials,
}

impl DeviceAuthorizationRequest {
    /// Reads a device authorization request from a parsed form body.
    ///
    /// # Errors
    ///
    /// [`ParseError::Invalid`] for a malformed scope or resource.
    pub fn from_form(form: &FormParams) -> Result<Self, ParseError> {
        Ok(Self {
            scope: scope(form)?,
            resource: resources(form)?,
            body_credentials: BodyCredentials::from_form(form)?,
        })
    }
}

/// An introspection request (RFC 7662 §2.1): the same parameters as a revocation request.
pub type IntrospectionRequest = RevocationRequest;

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug)]
#[non_exhaustive]
pub struct RevocationRequest {
    /// `token`. Its type is unknown until the server looks it up.
    pub token: String,
    /// `token_type_hint`; an unknown hint is ignored, since the server "MUST extend its
    /// search across all of its supported token types" anyway.
    pub token_type_hint: Option<TokenTypeHint>,
    /// Credentials in the body.
    pub body_credentials: BodyCredentials,
}

impl RevocationRequest {
    /// Reads a revocation request from a parsed form body.
    ///
    /// # Errors
    ///
    /// [`ParseError::Missing`] when `token` is absent.
    pub fn from_form(form: &FormParams) -> Result<Self, ParseError> {
        Ok(Self {
            token: required(form, "token")?.to_owned(),
            token_type_hint: match form.get("token_type_hint") {
                Some("access_token") => Some(TokenTypeHint::AccessToken),
                Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
                _ => None,
            },
            body_credentials: BodyCredentials::from_form(form)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_an_authorization_code_token_request() -> Result<(), ParseError> {
        let form = FormParams::parse(b"grant_type=authorization_code&code=c1&code_verifier=v&client_id=app&resource=https%3A%2F%2Fmcp.example%2Fmcp")?;
        match TokenRequest::from_form(&form)? {
            TokenRequest::AuthorizationCode {
                code,
                code_verifier,
                resource,
                body_credentials,
                ..
            } => {
                assert_eq!(code.secret(), "c1");
                assert_eq!(
                    code_verifier.map(CodeVerifier::into_secret).as_deref(),
                    Some("v")
                );
                assert_eq!(resource, ["https://mcp.example/mcp"]);
                assert_eq!(body_credentials.client_id.as_deref(), Some("app"));
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn requires_grant_type_and_code() -> Result<(), ParseError> {
        let missing_grant = FormParams::parse(b"code=c")?;
        assert_eq!(
            TokenRequest::from_form(&missing_grant).err(),
            Some(ParseError::Missing("grant_type"))
        );
        let missing_code = FormParams::parse(b"grant_type=authorization_code")?;
        assert_eq!(
            TokenRequest::from_form(&missing_code).err(),
            Some(ParseError::Missing("code"))
        );
        Ok(())
    }

    #[test]
    fn ignores_unknown_token_type_hints() -> Result<(), ParseError> {
        let form = FormParams::parse(b"token=t&token_type_hint=id_token")?;
        assert_eq!(RevocationRequest::from_form(&form)?.token_type_hint, None);
        Ok(())
    }

    proptest! {
        #[test]
        fn request_parsers_never_panic(input in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(form) = FormParams::parse(&input) {
                let _ = TokenRequest::from_form(&form);
                let _ = AuthorizationRequest::from_form(&form);
                let _ = RevocationRequest::from_form(&form);
            }
        }

        #[test]
        fn token_request_parser_never_panics_on_plausible_forms(
            grant in "(authorization_code|refresh_token|client_credentials|x)",
            extra in "[a-z_=&%0-9]{0,60}",
        ) {
            let body = format!("grant_type={grant}&{extra}");
            if let Ok(form) = FormParams::parse(body.as_bytes()) {
                let _ = TokenRequest::from_form(&form);
            }
        }
    }
}

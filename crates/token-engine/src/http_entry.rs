//! The `http`-crate level entry: `http::Request<Bytes>` in, `http::Response<Bytes>` out, so a
//! web adapter is a few lines of glue. Follows node-oidc-provider's order at the token
//! endpoint (DESIGN §2c): no-store headers, form body only, size limit, duplicate parameters,
//! client authentication, grant dispatch.
//!
//! When an answer hides an internal failure (`server_error`), the response carries an
//! [`InternalError`] extension with the cause, for the adapter to log. It never reaches the
//! wire.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use mcpauth_oauth_types::{
    ClientMetadata, DeviceAuthorizationRequest, FormParams, GrantType, IntrospectionErrorCode,
    OAuthError, RegistrationErrorCode, RevocationErrorCode, RevocationRequest, TokenErrorCode,
    TokenRequest, TokenResponse,
};

use crate::TokenEngine;
use crate::UnixTime;
use crate::client_auth::ClientAuthError;
use crate::error::{ClientAuthCodes, RegistrationError};
use crate::grant::authorization_code::CodeRedemption;
use crate::grant::token_exchange::Exchange;
use crate::model::{ClientRecord, OAuthServerModel, RateLimitKey};
use crate::registration::Registrant;

/// The cause of a `server_error` answer, attached to the response's extensions for logging.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InternalError {
    /// The public description that was sent.
    pub description: String,
    /// The internal cause (may name hosts or files: log it, never send it).
    pub cause: String,
}

/// The `grant_type` a successful token response answered, attached to its extensions so
/// that the layers around the engine (metrics) need not read the request body again.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedForGrantType(pub String);

/// An endpoint's refusal: the OAuth error, and whether the answer carries
/// `WWW-Authenticate: Basic` (RFC 6749 §5.2: a client that tried HTTP Basic and failed to
/// authenticate gets `401` with the challenge).
#[derive(Debug)]
#[non_exhaustive]
pub struct EndpointError<C> {
    /// The error the client gets.
    pub error: OAuthError<C>,
    /// Whether the client authenticated with HTTP Basic, so a failed authentication is
    /// answered with `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
}

impl<C> From<OAuthError<C>> for EndpointError<C> {
    fn from(error: OAuthError<C>) -> Self {
        Self {
            error,
            basic_challenge: false,
        }
    }
}

/// The token endpoint's refusal ([`TokenEngine::token`]).
pub type TokenEndpointError = EndpointError<TokenErrorCode>;

type Failure<C> = EndpointError<C>;

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(b"{}"));
    let mut response = Response::new(bytes);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // RFC 6749 §5.1: responses with tokens or credentials MUST NOT be cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn error_response<C: ClientAuthCodes + PartialEq + std::fmt::Display>(
    EndpointError {
        error,
        basic_challenge: basic,
    }: Failure<C>,
    realm: &'static str,
) -> Response<Bytes> {
    let mut response = plain_error_response(&error, error.code().status());
    if basic && error.code() == C::INVALID_CLIENT {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(realm));
    }
    response
}

fn plain_error_response<C: Copy + std::fmt::Display>(
    error: &OAuthError<C>,
    status: u16,
) -> Response<Bytes> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_response(status, &error.body());
    if let Some(source) = error.internal_source() {
        response.extensions_mut().insert(InternalError {
            description: error.description().to_owned(),
            cause: source.to_string(),
        });
    }
    response
}

fn has_content_type(request: &Request<Bytes>, expected: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

const FORM: &str = "application/x-www-form-urlencoded";

/// At most one `Authorization` header; its value as text.
fn authorization_header(request: &Request<Bytes>) -> Result<Option<&str>, &'static str> {
    let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| "the Authorization header is not visible ASCII")
        })
        .transpose()
}

fn auth_failure<C: ClientAuthCodes>(error: ClientAuthError) -> Failure<C> {
    match error {
        ClientAuthError::Malformed(d) => {
            EndpointError::from(OAuthError::new(C::INVALID_REQUEST, d))
        }
        ClientAuthError::Failed { description, basic } => EndpointError {
            error: OAuthError::new(C::INVALID_CLIENT, description),
            basic_challenge: basic,
        },
        ClientAuthError::Storage(e) => {
            EndpointError::from(OAuthError::new(C::SERVER_ERROR, "storage failure").with_source(e))
        }
    }
}

/// POST, form body, at most one `Authorization` header, parsed form.
fn read_form<C: ClientAuthCodes>(
    request: &Request<Bytes>,
) -> Result<(Option<&str>, FormParams), Failure<C>> {
    if request.method() != Method::POST || !has_content_type(request, FORM) {
        return Err(EndpointError::from(OAuthError::new(
            C::INVALID_REQUEST,
            "POST an application/x-www-form-urlencoded body",
        )));
    }
    let authorization = authorization_header(request)
        .map_err(|d| EndpointError::from(OAuthError::new(C::INVALID_REQUEST, d)))?;
    let form = FormParams::parse(request.body())
        .map_err(|e| EndpointError::from(OAuthError::new(C::INVALID_REQUEST, e.to_string())))?;
    Ok((authorization, form))
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// The token endpoint (RFC 6749 §3.2) as a typed call: the `Authorization` header value and
    /// the parsed form. The error says whether the answer must carry `WWW-Authenticate: Basic`
    /// (RFC 6749 §5.2).
    ///
    /// # Errors
    ///
    /// An RFC 6749 §5.2 error; nothing changed in storage unless tokens were issued.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenEndpointError> {
        let request = TokenRequest::from_form(form).map_err(|e| {
            EndpointError::from(OAuthError::new(
                TokenErrorCode::InvalidRequest,
                e.to_string(),
            ))
        })?;
        let unsupported = || {
            EndpointError::from(OAuthError::new(
                TokenErrorCode::UnsupportedGrantType,
                "grant_type is not supported by this server",
            ))
        };
        let grant_type = request.grant_type().ok_or_else(unsupported)?;
        if grant_type == GrantType::DeviceCode && !self.serves_device_flow() {
            return Err(unsupported());
        }
        if !matches!(
            grant_type,
            GrantType::AuthorizationCode
                | GrantType::RefreshToken
                | GrantType::ClientCredentials
                | GrantType::DeviceCode
                | GrantType::TokenExchange
        ) {
            return Err(unsupported());
        }
        let client = self
            .authenticate_client(authorization, request.body_credentials(), now)
            .await
            .map_err(auth_failure)?;
        if !client.allows_grant(grant_type.as_str()) {
            return Err(EndpointError::from(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "the client did not register this grant type",
            )));
        }
        // A client that registered itself without anyone vouching for it gets user-delegated
        // authority only, whatever its record says (records from before this rule included).
        if matches!(
            grant_type,
            GrantType::ClientCredentials | GrantType::TokenExchange
        ) && !client.may_act_for_itself()
        {
            return Err(EndpointError::from(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "client_credentials and token exchange are for clients the operator registered or vouched for; this client registered itself",
            )));
        }
        let result = match request {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
                ..
            } => {
                let redemption = CodeRedemption {
                    code,
                    redirect_uri: redirect_uri.as_deref(),
                    code_verifier,
                    resource: &resource,
                };
                self.redeem_code(&client, redemption, now).await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
                ..
            } => {
                self.refresh(&client, &refresh_token, scope.as_ref(), &resource, now)
                    .await
            }
            TokenRequest::ClientCredentials {
                scope, resource, ..
            } => {
                self.client_credentials(&client, scope.as_ref(), &resource, now)
                    .await
            }
            TokenRequest::DeviceCode { device_code, .. } => {
                self.redeem_device_code(&client, &device_code, now).await
            }
            TokenRequest::TokenExchange {
                subject_token,
                subject_token_type,
                actor_token,
                requested_token_type,
                resource,
                audience,
                scope,
                ..
            } => {
                let mut targets = resource;
                for name in audience {
                    if !targets.contains(&name) {
                        targets.push(name);
                    }
                }
                let exchange = Exchange {
                    subject_token: &subject_token,
                    subject_token_type: &subject_token_type,
                    has_actor_token: actor_token.is_some(),
                    requested_token_type: requested_token_type.as_deref(),
                    targets,
                    scope: scope.as_ref(),
                };
                self.exchange(&client, exchange, now).await
            }
            _ => Err(unsupported().error),
        };
        result.map_err(EndpointError::from)
    }

    /// The token endpoint over HTTP: POST, form-encoded body.
    pub async fn token_endpoint(&self, request: Request<Bytes>, now: UnixTime) -> Response<Bytes> {
        let result = async {
            let (authorization, form) = read_form(&request)?;
            let tokens = self.token(authorization, &form, now).await?;
            Ok((
                tokens,
                form.get("grant_type").unwrap_or_default().to_owned(),
            ))
        }
        .await;
        match result {
            Ok((tokens, grant_type)) => {
                let mut response = json_response(StatusCode::OK, &tokens);
                response
                    .extensions_mut()
                    .insert(IssuedForGrantType(grant_type));
                response
            }
            Err(failure) => error_response(failure, "Basic realm=\"token\""),
        }
    }

    /// The device authorization endpoint over HTTP (RFC 8628 §3.1–§3.2).
    pub async fn device_authorization_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result = async {
            let (authorization, form) = read_form::<TokenErrorCode>(&request)?;
            let parsed = DeviceAuthorizationRequest::from_form(&form).map_err(|e| {
                EndpointError::from(OAuthError::new(
                    TokenErrorCode::InvalidRequest,
                    e.to_string(),
                ))
            })?;
            let client = self
                .authenticate_client(authorization, &parsed.body_credentials, now)
                .await
                .map_err(auth_failure)?;
            self.device_authorization(&client, &parsed, now)
                .await
                .map_err(EndpointError::from)
        }
        .await;
        match result {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(failure) => error_response(failure, "Basic realm=\"device_authorization\""),
        }
    }

    /// Reads a revocation or introspection request (RFC 7009 §2.1, RFC 7662 §2.1) and
    /// authenticates its client.
    async fn authenticated_token_request<C: ClientAuthCodes>(
        &self,
        request: &Request<Bytes>,
        now: UnixTime,
    ) -> Result<(ClientRecord, RevocationRequest), Failure<C>> {
        let (authorization, form) = read_form(request)?;
        let parsed = RevocationRequest::from_form(&form)
            .map_err(|e| EndpointError::from(OAuthError::new(C::INVALID_REQUEST, e.to_string())))?;
        let client = self
            .authenticate_client(authorization, &parsed.body_credentials, now)
            .await
            .map_err(auth_failure)?;
        Ok((client, parsed))
    }

    /// The revocation endpoint over HTTP (RFC 7009 §2).
    pub async fn revocation_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result = async {
            let (client, revocation) = self
                .authenticated_token_request::<RevocationErrorCode>(&request, now)
                .await?;
            self.revoke(&client, &revocation, now)
                .await
                .map_err(EndpointError::from)
        }
        .await;
        match result {
            Ok(()) => {
                let mut response = Response::new(Bytes::new());
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(failure) => error_response(failure, "Basic realm=\"revocation\""),
        }
    }

    /// The introspection endpoint over HTTP (RFC 7662 §2).
    pub async fn introspection_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result = async {
            let (client, introspection) = self
                .authenticated_token_request::<IntrospectionErrorCode>(&request, now)
                .await?;
            self.introspect(&client, &introspection, now)
                .await
                .map_err(EndpointError::from)
        }
        .await;
        match result {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(failure) => error_response(failure, "Basic realm=\"introspection\""),
        }
    }

    /// The registration endpoint over HTTP (RFC 7591 §3): POST a JSON document.
    pub async fn registration_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        // RFC 7591 §3: with an initial access token configured, a missing or wrong one is an
        // RFC 6750 invalid_token.
        let policy = &self.config.registration;
        let initial_access_token = if policy.initial_access_token_hashes.is_empty() {
            false
        } else {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            let valid = presented.is_some_and(|token| {
                policy
                    .initial_access_token_hashes
                    .iter()
                    .any(|known| known.matches(token))
            });
            if !valid {
                let mut response = json_response(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({ "error": "invalid_token", "error_description": "registration needs a valid initial access token (Authorization: Bearer)" }),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return response;
            }
            true
        };
        let caller = request
            .extensions()
            .get::<crate::CallerKey>()
            .map_or("anonymous", |k| k.0.as_str());
        match self
            .model
            .hit(&RateLimitKey::new("register", caller), now, 3600)
            .await
        {
            Ok(hits) if hits > policy.per_caller_per_hour => {
                let mut response = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &serde_json::json!({ "error": "invalid_request", "error_description": "too many registrations from this caller; try again later" }),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(3600 - now.0 % 3600));
                return response;
            }
            Ok(_) => {}
            Err(e) => {
                let error: RegistrationError = crate::error::internal("storage failure", e);
                return plain_error_response(&error, error.code().http_status());
            }
        }
        let result: Result<_, RegistrationError> = async {
            if !self.config.dynamic_registration {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "dynamic client registration is disabled on this server",
                ));
            }
            if request.method() != Method::POST || !has_content_type(&request, "application/json") {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "POST an application/json body",
                ));
            }
            let metadata = ClientMetadata::from_json(request.body()).map_err(|e| {
                OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, e.to_string())
            })?;
            let (metadata, vouched) = self
                .apply_registration_policy(metadata, initial_access_token, now)
                .await?;
            self.register(metadata, now, Registrant::Endpoint { vouched })
                .await
        }
        .await;
        match result {
            Ok(registered) => json_response(StatusCode::CREATED, &registered),
            Err(error) => plain_error_response(&error, error.code().http_status()),
        }
    }

    /// The RFC 8414 metadata document.
    pub fn metadata_endpoint(&self) -> Response<Bytes> {
        public_document(json_response(StatusCode::OK, &self.metadata()))
    }

    /// The JWK Set document.
    pub fn jwks_endpoint(&self) -> Response<Bytes> {
        let mut response = public_document(json_response(StatusCode::OK, &self.jwks()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        response
    }
}

/// Public documents may be cached briefly.
fn public_document(mut response: Response<Bytes>) -> Response<Bytes> {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response.headers_mut().remove(header::PRAGMA);
    response
}

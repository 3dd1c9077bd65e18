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
    ClientMetadata, FormParams, GrantType, OAuthError, RegistrationErrorCode, RevocationErrorCode,
    RevocationRequest, TokenErrorCode, TokenRequest, TokenResponse,
};

use crate::TokenEngine;
use crate::client_auth::ClientAuthError;
use crate::error::{RegistrationError, RevocationError, TokenError};
use crate::grant::authorization_code::CodeRedemption;
use crate::model::OAuthServerModel;
use crate::time::UnixTime;

/// The cause of a `server_error` answer, attached to the response's extensions for logging.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InternalError {
    /// The public description that was sent.
    pub description: String,
    /// The internal cause (may name hosts or files: log it, never send it).
    pub cause: String,
}

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

fn error_response<C: Copy + std::fmt::Display>(
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

fn is_form(request: &Request<Bytes>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

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

fn token_error_from_auth(error: ClientAuthError) -> (TokenError, bool) {
    match error {
        ClientAuthError::Malformed(d) => {
            (OAuthError::new(TokenErrorCode::InvalidRequest, d), false)
        }
        ClientAuthError::Failed { description, basic } => (
            OAuthError::new(TokenErrorCode::InvalidClient, description),
            basic,
        ),
        ClientAuthError::Storage(e) => (
            OAuthError::new(TokenErrorCode::ServerError, "storage failure").with_source(e),
            false,
        ),
    }
}

fn revocation_error_from_auth(error: ClientAuthError) -> (RevocationError, bool) {
    match error {
        ClientAuthError::Malformed(d) => (
            OAuthError::new(RevocationErrorCode::InvalidRequest, d),
            false,
        ),
        ClientAuthError::Failed { description, basic } => (
            OAuthError::new(RevocationErrorCode::InvalidClient, description),
            basic,
        ),
        ClientAuthError::Storage(e) => (
            OAuthError::new(RevocationErrorCode::ServerError, "storage failure").with_source(e),
            false,
        ),
    }
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// The token endpoint (RFC 6749 §3.2) as a typed call: the `Authorization` header value and
    /// the parsed form. The `bool` in the error says whether the answer must carry
    /// `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    ///
    /// # Errors
    ///
    /// An RFC 6749 §5.2 error; nothing changed in storage unless tokens were issued.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<TokenResponse, (TokenError, bool)> {
        let request = TokenRequest::from_form(form).map_err(|e| {
            (
                OAuthError::new(TokenErrorCode::InvalidRequest, e.to_string()),
                false,
            )
        })?;
        let Some(grant_type) = request.grant_type() else {
            return Err((
                OAuthError::new(
                    TokenErrorCode::UnsupportedGrantType,
                    "grant_type is not supported by this server",
                ),
                false,
            ));
        };
        if !matches!(
            grant_type,
            GrantType::AuthorizationCode | GrantType::RefreshToken
        ) {
            return Err((
                OAuthError::new(
                    TokenErrorCode::UnsupportedGrantType,
                    "grant_type is not supported by this server",
                ),
                false,
            ));
        }
        let client = self
            .authenticate_client(authorization, request.body_credentials(), now)
            .await
            .map_err(token_error_from_auth)?;
        if !client.allows_grant(grant_type.as_str()) {
            return Err((
                OAuthError::new(
                    TokenErrorCode::UnauthorizedClient,
                    "the client did not register this grant type",
                ),
                false,
            ));
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
            _ => Err(OAuthError::new(
                TokenErrorCode::UnsupportedGrantType,
                "grant_type is not supported by this server",
            )),
        };
        result.map_err(|e| (e, false))
    }

    /// The token endpoint over HTTP: POST, form-encoded body.
    pub async fn token_endpoint(&self, request: Request<Bytes>, now: UnixTime) -> Response<Bytes> {
        let result = async {
            if request.method() != Method::POST {
                return Err((
                    OAuthError::new(
                        TokenErrorCode::InvalidRequest,
                        "the token endpoint accepts POST only",
                    ),
                    false,
                ));
            }
            if !is_form(&request) {
                return Err((
                    OAuthError::new(
                        TokenErrorCode::InvalidRequest,
                        "the body must be application/x-www-form-urlencoded",
                    ),
                    false,
                ));
            }
            let authorization = authorization_header(&request)
                .map_err(|d| (OAuthError::new(TokenErrorCode::InvalidRequest, d), false))?;
            let form = FormParams::parse(request.body()).map_err(|e| {
                (
                    OAuthError::new(TokenErrorCode::InvalidRequest, e.to_string()),
                    false,
                )
            })?;
            self.token(authorization, &form, now).await
        }
        .await;
        match result {
            Ok(tokens) => json_response(StatusCode::OK, &tokens),
            Err((error, basic)) => {
                let mut response = error_response(&error, error.code().http_status());
                if basic && error.code() == TokenErrorCode::InvalidClient {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"token\""),
                    );
                }
                response
            }
        }
    }

    /// The revocation endpoint over HTTP (RFC 7009 §2).
    pub async fn revocation_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result: Result<(), (RevocationError, bool)> = async {
            if request.method() != Method::POST || !is_form(&request) {
                return Err((
                    OAuthError::new(
                        RevocationErrorCode::InvalidRequest,
                        "POST an application/x-www-form-urlencoded body",
                    ),
                    false,
                ));
            }
            let authorization = authorization_header(&request).map_err(|d| {
                (
                    OAuthError::new(RevocationErrorCode::InvalidRequest, d),
                    false,
                )
            })?;
            let form = FormParams::parse(request.body()).map_err(|e| {
                (
                    OAuthError::new(RevocationErrorCode::InvalidRequest, e.to_string()),
                    false,
                )
            })?;
            let revocation = RevocationRequest::from_form(&form).map_err(|e| {
                (
                    OAuthError::new(RevocationErrorCode::InvalidRequest, e.to_string()),
                    false,
                )
            })?;
            let client = self
                .authenticate_client(authorization, &revocation.body_credentials, now)
                .await
                .map_err(revocation_error_from_auth)?;
            self.revoke(&client, &revocation, now)
                .await
                .map_err(|e| (e, false))
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
            Err((error, basic)) => {
                let mut response = error_response(&error, error.code().http_status());
                if basic && error.code() == RevocationErrorCode::InvalidClient {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"revocation\""),
                    );
                }
                response
            }
        }
    }

    /// The registration endpoint over HTTP (RFC 7591 §3): POST a JSON document.
    pub async fn registration_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result: Result<_, RegistrationError> = async {
            if !self.config.dynamic_registration {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "dynamic client registration is disabled on this server",
                ));
            }
            let is_json = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
            if request.method() != Method::POST || !is_json {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "POST an application/json body",
                ));
            }
            let metadata = ClientMetadata::from_json(request.body()).map_err(|e| {
                OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, e.to_string())
            })?;
            self.register_client(metadata, now).await
        }
        .await;
        match result {
            Ok(registered) => json_response(StatusCode::CREATED, &registered),
            Err(error) => error_response(&error, error.code().http_status()),
        }
    }

    /// The RFC 8414 metadata document.
    pub fn metadata_endpoint(&self) -> Response<Bytes> {
        let mut response = json_response(StatusCode::OK, &self.metadata());
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        response.headers_mut().remove(header::PRAGMA);
        response
    }

    /// The JWK Set document.
    pub fn jwks_endpoint(&self) -> Response<Bytes> {
        let mut response = json_response(StatusCode::OK, &self.jwks());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        response.headers_mut().remove(header::PRAGMA);
        response
    }
}

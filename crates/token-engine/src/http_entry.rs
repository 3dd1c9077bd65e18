//! The `http`-crate level entry: `http::Request<Bytes>` in, `http::Response<Bytes>` out, so a
//! web adapter is a few lines of glue. It frames the typed calls of `endpoints.rs`: the
//! method, a form body only, at most one `Authorization` header, the parsed form; then the
//! answer as JSON with no-store headers (node-oidc-provider's order at the token endpoint,
//! DESIGN §2c; client authentication and grant dispatch are the typed call's).
//!
//! When an answer hides an internal failure (`server_error`), the response carries an
//! [`InternalError`] extension with the cause, for the adapter to log. It never reaches the
//! wire.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use mcpauth_oauth_types::{
    FormParams, IntrospectionErrorCode, OAuthError, RevocationErrorCode, TokenErrorCode,
};

use crate::TokenEngine;
use crate::UnixTime;
use crate::endpoints::{EndpointError, RegistrationRefusal, RegistrationRequest};
use crate::error::ClientAuthCodes;
use crate::model::OAuthServerModel;

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

/// What an endpoint did that an audit trail records (who was issued tokens, a replayed code
/// or refresh token, a failed client authentication, a revocation, a registration and its
/// refusal), attached to the answer's extensions for the layers around the engine. Never on
/// the wire; carries no secret. Answers that are none of these (a pending device poll, a
/// malformed request) carry none.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointEvent {
    /// What happened.
    pub kind: EndpointEventKind,
    /// The client: the one authenticated, or, for a failed authentication, the identifier
    /// the caller claimed (their words, unverified).
    pub client_id: Option<String>,
    /// Whom issued tokens stand for (their `sub`): a user, or the client itself.
    pub subject: Option<String>,
    /// The `grant_type` of issued tokens, or the error code of a refusal.
    pub detail: Option<String>,
}

/// The kinds of [`EndpointEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointEventKind {
    /// The token endpoint issued tokens.
    TokensIssued,
    /// An authorization code came back after it was used: its grant is revoked.
    CodeReplayed,
    /// A rotated refresh token came back (outside the reuse grace): its grant is revoked.
    RefreshReplayed,
    /// A client failed to authenticate at the token or revocation endpoint.
    ClientAuthenticationFailed,
    /// The revocation endpoint answered `200` to an authenticated client (RFC 7009 §2.2: for
    /// a token it revoked, or one that was not valid).
    TokenRevoked,
    /// A client registered itself (RFC 7591).
    ClientRegistered,
    /// A registration was refused.
    RegistrationRefused,
}

impl EndpointEvent {
    /// An event of `kind` concerning nothing yet (set the fields that apply).
    #[must_use]
    pub const fn new(kind: EndpointEventKind) -> Self {
        Self {
            kind,
            client_id: None,
            subject: None,
            detail: None,
        }
    }
}

/// The client identifier a request claims, from the form or the Basic credentials.
fn claimed_client(authorization: Option<&str>, form: &FormParams) -> Option<String> {
    form.get("client_id").map(str::to_owned).or_else(|| {
        authorization
            .and_then(|value| mcpauth_oauth_types::parse_basic_authorization(value).ok())
            .flatten()
            .map(|basic| basic.client_id.as_str().to_owned())
    })
}

/// The event of a token or revocation endpoint's refusal, if it is one an audit records.
fn refusal_event<C: ClientAuthCodes + PartialEq>(
    failure: &EndpointError<C>,
    authorization: Option<&str>,
    form: &FormParams,
    client_id: Option<&str>,
) -> Option<EndpointEvent> {
    let kind = if failure.error.code() == C::INVALID_CLIENT {
        EndpointEventKind::ClientAuthenticationFailed
    } else if failure.error.description() == crate::grant::refresh_token::REFRESH_REPLAYED {
        EndpointEventKind::RefreshReplayed
    } else if failure.error.description() == crate::grant::authorization_code::CODE_REPLAYED {
        EndpointEventKind::CodeReplayed
    } else {
        return None;
    };
    let client_id = match kind {
        EndpointEventKind::ClientAuthenticationFailed => claimed_client(authorization, form),
        _ => client_id
            .map(str::to_owned)
            .or_else(|| claimed_client(authorization, form)),
    };
    Some(EndpointEvent {
        client_id,
        ..EndpointEvent::new(kind)
    })
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

fn error_response<C: ClientAuthCodes + PartialEq + std::fmt::Display>(
    EndpointError {
        error,
        basic_challenge: basic,
    }: EndpointError<C>,
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
pub(crate) fn authorization_header(request: &Request<Bytes>) -> Result<Option<&str>, &'static str> {
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

/// POST, form body, at most one `Authorization` header, parsed form.
fn read_form<C: ClientAuthCodes>(
    request: &Request<Bytes>,
) -> Result<(Option<&str>, FormParams), EndpointError<C>> {
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
    /// The token endpoint over HTTP: POST, form-encoded body, and any `DPoP` header (RFC
    /// 9449): every answer carries a fresh `DPoP-Nonce` when the engine asks for nonces.
    pub async fn token_endpoint(&self, request: Request<Bytes>, now: UnixTime) -> Response<Bytes> {
        let mut response = match read_form::<TokenErrorCode>(&request) {
            Err(failure) => error_response(failure, "Basic realm=\"token\""),
            Ok((authorization, form)) => {
                let proofs: Vec<&[u8]> = request
                    .headers()
                    .get_all(mcpauth_dpop::DPOP_HEADER)
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                let grant_type = form.get("grant_type").unwrap_or_default().to_owned();
                match self.token_granted(authorization, &proofs, &form, now).await {
                    Ok((granted, client_id)) => {
                        let mut response = json_response(StatusCode::OK, &granted.response);
                        let extensions = response.extensions_mut();
                        extensions.insert(EndpointEvent {
                            client_id: Some(client_id),
                            subject: Some(granted.subject),
                            detail: Some(grant_type.clone()),
                            ..EndpointEvent::new(EndpointEventKind::TokensIssued)
                        });
                        extensions.insert(IssuedForGrantType(grant_type));
                        response
                    }
                    Err((failure, client_id)) => {
                        let event =
                            refusal_event(&failure, authorization, &form, client_id.as_deref());
                        let mut response = error_response(failure, "Basic realm=\"token\"");
                        if let Some(event) = event {
                            response.extensions_mut().insert(event);
                        }
                        response
                    }
                }
            }
        };
        // RFC 9449 §8: a nonce for the client's next proof, on every answer.
        if let Some(nonce) = self
            .dpop_nonce(now)
            .and_then(|n| HeaderValue::from_str(&n).ok())
        {
            response
                .headers_mut()
                .insert(mcpauth_dpop::DPOP_NONCE_HEADER, nonce);
        }
        response
    }

    /// The device authorization endpoint over HTTP (RFC 8628 §3.1–§3.2).
    pub async fn device_authorization_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result = async {
            let (authorization, form) = read_form::<TokenErrorCode>(&request)?;
            self.device_authorization(authorization, &form, now).await
        }
        .await;
        match result {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(failure) => error_response(failure, "Basic realm=\"device_authorization\""),
        }
    }

    /// The revocation endpoint over HTTP (RFC 7009 §2).
    pub async fn revocation_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let (authorization, form) = match read_form::<RevocationErrorCode>(&request) {
            Ok(read) => read,
            Err(failure) => return error_response(failure, "Basic realm=\"revocation\""),
        };
        match self.revocation_by(authorization, &form, now).await {
            Ok(client_id) => {
                let mut response = Response::new(Bytes::new());
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response.extensions_mut().insert(EndpointEvent {
                    client_id: Some(client_id),
                    // The caller's words: only the two hints RFC 7009 §2.1 defines.
                    detail: form.get("token_type_hint").map(|hint| {
                        match hint {
                            "access_token" | "refresh_token" => hint,
                            _ => "other",
                        }
                        .to_owned()
                    }),
                    ..EndpointEvent::new(EndpointEventKind::TokenRevoked)
                });
                response
            }
            Err(failure) => {
                let event = refusal_event(&failure, authorization, &form, None);
                let mut response = error_response(failure, "Basic realm=\"revocation\"");
                if let Some(event) = event {
                    response.extensions_mut().insert(event);
                }
                response
            }
        }
    }

    /// The introspection endpoint over HTTP (RFC 7662 §2).
    pub async fn introspection_endpoint(
        &self,
        request: Request<Bytes>,
        now: UnixTime,
    ) -> Response<Bytes> {
        let result = async {
            let (authorization, form) = read_form::<IntrospectionErrorCode>(&request)?;
            self.introspection(authorization, &form, now).await
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
        let caller = request
            .extensions()
            .get::<crate::CallerKey>()
            .map_or("anonymous", |k| k.0.as_str());
        // One Authorization header at most; a repeated one presents no token.
        let authorization = authorization_header(&request).ok().flatten();
        let body = (request.method() == Method::POST
            && has_content_type(&request, "application/json"))
        .then(|| request.body().as_ref());
        let registration = RegistrationRequest::new(authorization, caller, body);
        let refused = |code: &str| EndpointEvent {
            detail: Some(code.to_owned()),
            ..EndpointEvent::new(EndpointEventKind::RegistrationRefused)
        };
        match self.registration(registration, now).await {
            Ok(registered) => {
                let mut response = json_response(StatusCode::CREATED, &registered);
                response.extensions_mut().insert(EndpointEvent {
                    client_id: Some(registered.client_id.clone()),
                    ..EndpointEvent::new(EndpointEventKind::ClientRegistered)
                });
                response
            }
            Err(RegistrationRefusal::InvalidInitialAccessToken) => {
                let mut response = json_response(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({ "error": "invalid_token", "error_description": "registration needs a valid initial access token (Authorization: Bearer)" }),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                response.extensions_mut().insert(refused("invalid_token"));
                response
            }
            Err(RegistrationRefusal::TooManyRegistrations { retry_after }) => {
                let mut response = json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &serde_json::json!({ "error": "invalid_request", "error_description": "too many registrations from this caller; try again later" }),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
                    .extensions_mut()
                    .insert(refused("too_many_registrations"));
                response
            }
            Err(RegistrationRefusal::Refused(error)) => {
                let mut response = plain_error_response(&error, error.code().http_status());
                // A failure of the server's own is no refusal of the caller's request.
                if error.code() != mcpauth_oauth_types::RegistrationErrorCode::ServerError {
                    response
                        .extensions_mut()
                        .insert(refused(&error.code().to_string()));
                }
                response
            }
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

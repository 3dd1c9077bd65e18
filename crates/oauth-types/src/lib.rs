//! OAuth 2.1 wire types for mcpauth: strict parsers, typed requests, secret newtypes and
//! one error-code enum per endpoint.
//!
//! This crate does no I/O: it never opens a socket, reads a file, the clock or a random
//! source (its `os` feature's `now` and `SystemClock` aside, there for the edges). It turns untrusted bytes (a form body, a query string, a JSON document, an
//! `Authorization` header value) into typed values, or into an error that names the RFC
//! error code and says what was wrong. Every parser is a fuzz target and never panics.
//!
//! ```
//! use mcpauth_oauth_types::{FormParams, TokenRequest, GrantType};
//!
//! let body = b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=v";
//! let form = FormParams::parse(body)?;
//! let request = TokenRequest::from_form(&form)?;
//! assert_eq!(request.grant_type(), Some(GrantType::AuthorizationCode));
//! # Ok::<(), mcpauth_oauth_types::ParseError>(())
//! ```

mod bearer;
mod client_auth;
mod error;
mod form;
mod random;
mod registration;
mod request;
mod response;
mod scope;
mod secret;
pub mod security_events;
mod time;

pub use bearer::{BearerError, parse_bearer_authorization, parse_dpop_authorization};
pub use client_auth::{BasicCredentials, parse_basic_authorization};
pub use error::{
    AuthorizeErrorCode, BearerErrorCode, ErrorBody, IntrospectionErrorCode, OAuthError,
    RegistrationErrorCode, RevocationErrorCode, TokenErrorCode, said,
};
pub use form::{FormParams, MAX_FORM_BYTES, ParseError};
pub use random::{RandomError, SecureRandom};
pub use registration::{ClientMetadata, MAX_REGISTRATION_BYTES};
pub use request::{
    AuthorizationRequest, BodyCredentials, DEVICE_CODE_GRANT, DeviceAuthorizationRequest,
    GrantType, IntrospectionRequest, JWT_BEARER_GRANT, RevocationRequest, TOKEN_EXCHANGE_GRANT,
    TokenRequest, TokenTypeHint,
};
pub use response::TokenResponse;
pub use scope::{Scope, ScopeError};
pub use secret::{
    AccessToken, Assertion, AuthorizationCode, ClientSecret, CodeVerifier, DeviceCode,
    RefreshToken, Secret, constant_time_eq,
};
pub use time::{Clock, ManualClock, UnixTime};
#[cfg(feature = "os")]
pub use time::{SystemClock, now};

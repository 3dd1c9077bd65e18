#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

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

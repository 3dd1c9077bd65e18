//! Error aliases and per-code constructors, and the one place where storage failures become
//! `server_error` (the source is kept for logs, never serialized).

use mcpauth_oauth_types::{
    AuthorizeErrorCode, OAuthError, RegistrationErrorCode, RevocationErrorCode, TokenErrorCode,
};

/// An error of the authorization endpoint.
pub type AuthorizeError = OAuthError<AuthorizeErrorCode>;
/// An error of the token endpoint.
pub type TokenError = OAuthError<TokenErrorCode>;
/// An error of the revocation endpoint.
pub type RevocationError = OAuthError<RevocationErrorCode>;
/// An error of the registration endpoint.
pub type RegistrationError = OAuthError<RegistrationErrorCode>;

/// Codes that have a `server_error`, so storage and RNG failures map the same way everywhere.
pub(crate) trait HasServerError: Copy {
    const SERVER_ERROR: Self;
}

impl HasServerError for AuthorizeErrorCode {
    const SERVER_ERROR: Self = Self::ServerError;
}
impl HasServerError for TokenErrorCode {
    const SERVER_ERROR: Self = Self::ServerError;
}
impl HasServerError for RevocationErrorCode {
    const SERVER_ERROR: Self = Self::ServerError;
}
impl HasServerError for RegistrationErrorCode {
    const SERVER_ERROR: Self = Self::ServerError;
}

/// A storage, randomness or signing failure: `server_error` with the cause kept for logs.
pub(crate) fn internal<C: HasServerError>(
    what: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> OAuthError<C> {
    OAuthError::new(C::SERVER_ERROR, what).with_source(source)
}

//! Error aliases and per-code constructors, and the one place where storage failures become
//! `server_error` (the source is kept for logs, never serialized).

use mcpauth_oauth_types::{
    AuthorizeErrorCode, IntrospectionErrorCode, OAuthError, RegistrationErrorCode,
    RevocationErrorCode, TokenErrorCode,
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
impl HasServerError for IntrospectionErrorCode {
    const SERVER_ERROR: Self = Self::ServerError;
}

/// Endpoints that authenticate clients (RFC 6749 §2.3) and so answer `invalid_request` and
/// `invalid_client`.
pub(crate) trait ClientAuthCodes: HasServerError {
    const INVALID_REQUEST: Self;
    const INVALID_CLIENT: Self;
    /// The HTTP status of this code.
    fn status(self) -> u16;
}

impl ClientAuthCodes for TokenErrorCode {
    const INVALID_REQUEST: Self = Self::InvalidRequest;
    const INVALID_CLIENT: Self = Self::InvalidClient;
    fn status(self) -> u16 {
        self.http_status()
    }
}
impl ClientAuthCodes for RevocationErrorCode {
    const INVALID_REQUEST: Self = Self::InvalidRequest;
    const INVALID_CLIENT: Self = Self::InvalidClient;
    fn status(self) -> u16 {
        self.http_status()
    }
}
impl ClientAuthCodes for IntrospectionErrorCode {
    const INVALID_REQUEST: Self = Self::InvalidRequest;
    const INVALID_CLIENT: Self = Self::InvalidClient;
    fn status(self) -> u16 {
        self.http_status()
    }
}

/// A storage, randomness or signing failure: `server_error` with the cause kept for logs.
pub(crate) fn internal<C: HasServerError>(
    what: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> OAuthError<C> {
    OAuthError::new(C::SERVER_ERROR, what).with_source(source)
}

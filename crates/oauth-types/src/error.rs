//! One error-code enum per endpoint (DESIGN §2b), so a code an endpoint may not send cannot
//! be constructed. Codes, statuses and descriptions come from one table per enum, copied from
//! the RFCs.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

macro_rules! error_codes {
    (
        $(#[$enum_meta:meta])*
        $name:ident {
            $( $(#[$meta:meta])* $variant:ident = ($wire:literal, $status:literal), )+
        }
    ) => {
        $(#[$enum_meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$meta])* $variant, )+
        }

        impl $name {
            /// The code as it appears on the wire (the `error` parameter).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $wire, )+ }
            }

            /// The HTTP status an endpoint answers with for this code.
            #[must_use]
            pub const fn http_status(self) -> u16 {
                match self { $( Self::$variant => $status, )+ }
            }

            /// Parses a wire code.
            #[must_use]
            pub fn from_wire(code: &str) -> Option<Self> {
                match code { $( $wire => Some(Self::$variant), )+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

error_codes! {
    /// Errors of the authorization endpoint (RFC 6749 §4.1.2.1, RFC 8707 §2).
    AuthorizeErrorCode {
        /// The request is missing a required parameter, includes an invalid parameter
        /// value, includes a parameter more than once, or is otherwise malformed.
        InvalidRequest = ("invalid_request", 400),
        /// The client is not authorized to request an authorization code using this method.
        UnauthorizedClient = ("unauthorized_client", 400),
        /// The resource owner or authorization server denied the request.
        AccessDenied = ("access_denied", 400),
        /// The authorization server does not support obtaining a code using this method.
        UnsupportedResponseType = ("unsupported_response_type", 400),
        /// The requested scope is invalid, unknown, or malformed.
        InvalidScope = ("invalid_scope", 400),
        /// The authorization server encountered an unexpected condition.
        ServerError = ("server_error", 500),
        /// The authorization server is temporarily unable to handle the request.
        TemporarilyUnavailable = ("temporarily_unavailable", 503),
        /// The requested resource is invalid, missing, unknown, or malformed (RFC 8707 §2).
        InvalidTarget = ("invalid_target", 400),
        /// The server needs the user to sign in and may not show a page (OpenID Connect Core
        /// §3.1.2.6: `prompt=none`), or cannot sign them in again (`prompt=login`).
        LoginRequired = ("login_required", 400),
        /// The server needs the user's interaction and may not ask for it (OpenID Connect
        /// Core §3.1.2.6: `prompt=none`).
        InteractionRequired = ("interaction_required", 400),
    }
}

error_codes! {
    /// Errors of the token endpoint (RFC 6749 §5.2, RFC 8628 §3.5, RFC 8707 §2).
    TokenErrorCode {
        /// The request is missing a required parameter, includes an unsupported parameter
        /// value, repeats a parameter, or is otherwise malformed.
        InvalidRequest = ("invalid_request", 400),
        /// Client authentication failed (unknown client, no or wrong credentials, or an
        /// unsupported authentication method).
        InvalidClient = ("invalid_client", 401),
        /// The grant or refresh token is invalid, expired, revoked, does not match the
        /// redirection URI, or was issued to another client.
        InvalidGrant = ("invalid_grant", 400),
        /// The authenticated client is not authorized to use this grant type.
        UnauthorizedClient = ("unauthorized_client", 400),
        /// The grant type is not supported by the authorization server.
        UnsupportedGrantType = ("unsupported_grant_type", 400),
        /// The requested scope is invalid, unknown, malformed, or exceeds the grant.
        InvalidScope = ("invalid_scope", 400),
        /// The requested resource is invalid, unknown, or exceeds the grant (RFC 8707 §2).
        InvalidTarget = ("invalid_target", 400),
        /// The device authorization is still pending (RFC 8628 §3.5).
        AuthorizationPending = ("authorization_pending", 400),
        /// The client polls too fast and must add 5 seconds to its interval (RFC 8628 §3.5).
        SlowDown = ("slow_down", 400),
        /// The end user denied the device authorization request (RFC 8628 §3.5).
        AccessDenied = ("access_denied", 400),
        /// The device code has expired (RFC 8628 §3.5).
        ExpiredToken = ("expired_token", 400),
        /// The DPoP proof is missing where one is required, invalid, or replayed (RFC 9449
        /// §5).
        InvalidDpopProof = ("invalid_dpop_proof", 400),
        /// The server requires a nonce in DPoP proofs: sign a new proof with the `DPoP-Nonce`
        /// of the response (RFC 9449 §8).
        UseDpopNonce = ("use_dpop_nonce", 400),
        /// The authorization server encountered an unexpected condition.
        ServerError = ("server_error", 500),
    }
}

error_codes! {
    /// Errors of the revocation endpoint (RFC 7009 §2.2.1, with RFC 6749 §5.2 codes).
    RevocationErrorCode {
        /// The request is malformed (for example, `token` is missing or repeated).
        InvalidRequest = ("invalid_request", 400),
        /// Client authentication failed.
        InvalidClient = ("invalid_client", 401),
        /// The token was issued to another client.
        UnauthorizedClient = ("unauthorized_client", 400),
        /// The server does not support the revocation of the presented token type.
        UnsupportedTokenType = ("unsupported_token_type", 400),
        /// The authorization server encountered an unexpected condition.
        ServerError = ("server_error", 500),
    }
}

error_codes! {
    /// Errors of the introspection endpoint (RFC 7662 §2.3, with RFC 6749 §5.2 codes).
    IntrospectionErrorCode {
        /// The request is malformed (for example, `token` is missing or repeated).
        InvalidRequest = ("invalid_request", 400),
        /// The caller did not authenticate, or its credentials are wrong.
        InvalidClient = ("invalid_client", 401),
        /// The caller authenticated but may not introspect: it is not a resource server
        /// (RFC 7662 §2.3: 403 for insufficient privileges; §4: tokens are revealed only to
        /// those that need them).
        UnauthorizedClient = ("unauthorized_client", 403),
        /// The authorization server encountered an unexpected condition.
        ServerError = ("server_error", 500),
    }
}

error_codes! {
    /// Errors of the dynamic client registration endpoint (RFC 7591 §3.2.2).
    RegistrationErrorCode {
        /// The request body is not a valid registration request.
        InvalidRequest = ("invalid_request", 400),
        /// The value of one or more redirection URIs is invalid.
        InvalidRedirectUri = ("invalid_redirect_uri", 400),
        /// The value of one of the client metadata fields is invalid.
        InvalidClientMetadata = ("invalid_client_metadata", 400),
        /// The software statement presented is invalid.
        InvalidSoftwareStatement = ("invalid_software_statement", 400),
        /// The software statement presented is not approved for use by this server.
        UnapprovedSoftwareStatement = ("unapproved_software_statement", 400),
        /// The authorization server encountered an unexpected condition.
        ServerError = ("server_error", 500),
    }
}

error_codes! {
    /// Errors of a protected resource (RFC 6750 §3.1).
    BearerErrorCode {
        /// The request is missing a required parameter, includes an unsupported parameter,
        /// repeats a parameter, or uses more than one method to send the token.
        InvalidRequest = ("invalid_request", 400),
        /// The access token is expired, revoked, malformed, or invalid for other reasons.
        InvalidToken = ("invalid_token", 401),
        /// The request requires higher privileges than provided by the access token.
        InsufficientScope = ("insufficient_scope", 403),
        /// The authentication behind the token does not meet the resource's requirements
        /// (RFC 9470 §3): here, no user stands behind it where one must.
        InsufficientUserAuthentication = ("insufficient_user_authentication", 401),
        /// The DPoP proof sent with a DPoP-bound token is missing or invalid (RFC 9449 §7.1).
        InvalidDpopProof = ("invalid_dpop_proof", 401),
        /// The resource server requires a nonce in DPoP proofs (RFC 9449 §9).
        UseDpopNonce = ("use_dpop_nonce", 401),
    }
}

/// An OAuth error: a code from one endpoint's enum, a public description, and an internal
/// source that is logged but never serialized.
pub struct OAuthError<C> {
    code: C,
    description: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl<C: Copy> OAuthError<C> {
    /// Creates an error with a description that is safe to show to the peer.
    #[must_use]
    pub fn new(code: C, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            source: None,
        }
    }

    /// Attaches an internal cause. It is kept for logs and never reaches the wire.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The error code.
    #[must_use]
    pub fn code(&self) -> C {
        self.code
    }

    /// The public `error_description`.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The internal cause, if any, for logging.
    #[must_use]
    pub fn internal_source(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<C: fmt::Debug> fmt::Debug for OAuthError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthError")
            .field("code", &self.code)
            .field("description", &self.description)
            .field("source", &self.source)
            .finish()
    }
}

impl<C: fmt::Display> fmt::Display for OAuthError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl<C: fmt::Display + fmt::Debug> StdError for OAuthError<C> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// The JSON error body of RFC 6749 §5.2 / RFC 7591 §3.2.2.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The error code.
    pub error: String,
    /// Human-readable text that helps the client developer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_description: Option<String>,
}

impl<C: fmt::Display> OAuthError<C> {
    /// The JSON body for this error. The internal source is left out.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.to_string(),
            error_description: if self.description.is_empty() {
                None
            } else {
                Some(self.description.to_string())
            },
        }
    }
}

/// An error and every cause behind it ([`StdError::source`]), joined with `: ` on one line,
/// as a person reads it (a command line's message, a log line). A cause whose text the
/// line already holds is not repeated.
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// assert_eq!(mcpauth_oauth_types::said(&io), "connection refused");
/// ```
#[must_use]
pub fn said(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_wire_form() {
        for code in [
            TokenErrorCode::InvalidGrant,
            TokenErrorCode::SlowDown,
            TokenErrorCode::InvalidTarget,
        ] {
            assert_eq!(TokenErrorCode::from_wire(code.as_str()), Some(code));
        }
        assert_eq!(TokenErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(BearerErrorCode::InsufficientScope.http_status(), 403);
    }

    #[test]
    fn error_body_never_contains_the_internal_source() {
        let error = OAuthError::new(TokenErrorCode::ServerError, "storage failed")
            .with_source("connection to db at secret-host:5432 refused");
        let json = serde_json::to_string(&error.body()).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"error":"server_error","error_description":"storage failed"}"#
        );
    }
}

//! The client's errors: one enum users can match on, each variant naming the step that failed
//! and, where there is one, the URL.

use mcpauth_oauth_types::{AuthorizeErrorCode, TokenErrorCode};

/// Anything that stops the client from getting a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Discovery failed: the MCP server's challenge, its protected-resource metadata, or the
    /// authorization server's metadata.
    #[error("discovery failed at {url}: {reason}")]
    Discovery {
        /// The URL that failed.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The client could not get an identity at the authorization server.
    #[error("client registration failed at {url}: {reason}")]
    Registration {
        /// The URL that failed.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The user (or the authorization server) refused the authorization.
    #[error("the authorization was refused: {error}{}", description_suffix(.description))]
    Denied {
        /// The OAuth error code (`access_denied`, …).
        error: ErrorCode,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// The user did not finish in time.
    #[error("the authorization was not completed within {seconds} s")]
    Timeout {
        /// The limit that passed.
        seconds: u64,
    },
    /// The authorization response cannot be trusted (wrong `state`, wrong `iss`, malformed).
    #[error("the authorization response was refused: {0}")]
    BadResponse(String),
    /// The token endpoint refused a request with an OAuth error (RFC 6749 §5.2).
    #[error("the token request to {url} failed: {error}{}", description_suffix(.description))]
    Token {
        /// The token endpoint.
        url: String,
        /// The OAuth error code.
        error: ErrorCode,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// The token endpoint's answer cannot be used (not JSON, not a bearer token, an error
    /// status without an OAuth error).
    #[error("the token endpoint {url} answered what cannot be used: {reason}")]
    BadTokenResponse {
        /// The token endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The `private_key_jwt` client assertion could not be signed (RFC 7523).
    #[error("cannot sign the client assertion: {0}")]
    ClientAssertion(String),
    /// The refresh token was refused, or there is none to use: the user must authorize
    /// again.
    #[error("the refresh token was refused by {url}: {}", refresh_reason(.error, .description))]
    Refresh {
        /// The token endpoint.
        url: String,
        /// The OAuth error code the server answered, if it answered one.
        error: Option<ErrorCode>,
        /// The server's description, or why no refresh was tried.
        description: Option<String>,
    },
    /// Stored tokens or registrations could not be read or written.
    #[error("token storage: {0}")]
    Storage(String),
    /// A request could not be sent or answered (connection, TLS, timeout, size). The
    /// transport's own error, when there is one, is the [`source`](std::error::Error::source)
    /// (a `reqwest::Error` from [`ReqwestClient`](crate::ReqwestClient)); print the whole
    /// chain with [`said`](crate::said).
    #[error("request to {url} failed: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
        /// The error behind it.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A URL is not acceptable (plain http off loopback, a query where none may be).
    #[error("refusing {url}: {reason}")]
    Insecure {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A DPoP key could not be made or read, or a proof could not be signed (RFC 9449).
    #[error("DPoP: {0}")]
    Dpop(String),
    /// The browser could not be opened, or the loopback listener could not start.
    #[error("browser: {0}")]
    Browser(String),
    /// No usable tokens are held and this client may not ask the user (it was built
    /// non-interactive).
    #[error("not authorized for {server}: authorize first (for example `mcpauth auth`)")]
    NotAuthorized {
        /// The MCP server.
        server: String,
    },
}

impl Error {
    /// Whether the user must authorize again: no usable tokens are held, or the
    /// authorization server refused the refresh token itself (`invalid_grant`, or no refresh
    /// token to try). A refusal for any other reason (`server_error`,
    /// `temporarily_unavailable`, a rate limit) is passing: the tokens are kept.
    #[must_use]
    pub fn needs_authorization(&self) -> bool {
        match self {
            Self::NotAuthorized { .. } => true,
            Self::Refresh { error, .. } => matches!(
                error,
                None | Some(ErrorCode::Token(TokenErrorCode::InvalidGrant))
            ),
            _ => false,
        }
    }
}

/// An OAuth error code a server answered with: one this client knows, typed by the endpoint
/// that sent it, or another (an extension, or a server out of spec).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// An authorization response's error (RFC 6749 §4.1.2.1, RFC 8707).
    Authorize(AuthorizeErrorCode),
    /// The token endpoint's (RFC 6749 §5.2, RFC 8628 §3.5, RFC 8707).
    Token(TokenErrorCode),
    /// A code this client does not know, cut to 64 characters.
    Other(String),
}

impl ErrorCode {
    /// An authorization response's `error`.
    pub(crate) fn authorize(wire: &str) -> Self {
        AuthorizeErrorCode::from_wire(wire).map_or_else(|| Self::other(wire), Self::Authorize)
    }

    /// A token endpoint's `error`.
    pub(crate) fn token(wire: &str) -> Self {
        TokenErrorCode::from_wire(wire).map_or_else(|| Self::other(wire), Self::Token)
    }

    fn other(wire: &str) -> Self {
        Self::Other(wire.chars().take(64).collect())
    }

    /// The code as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Authorize(code) => code.as_str(),
            Self::Token(code) => code.as_str(),
            Self::Other(code) => code,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn refresh_reason(error: &Option<ErrorCode>, description: &Option<String>) -> String {
    match (error, description) {
        (Some(error), _) => format!("{error}{}", description_suffix(description)),
        (None, Some(description)) => description.clone(),
        (None, None) => "no reason given".into(),
    }
}

fn description_suffix(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

impl Error {
    /// Whether trying again later may help (a network failure), as opposed to a refusal.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Network { .. })
    }
}

#[cfg(test)]
mod needs_authorization_tests {
    use super::*;

    fn refused(error: Option<ErrorCode>) -> Error {
        Error::Refresh {
            url: "https://as.example/token".into(),
            error,
            description: None,
        }
    }

    // Only a refresh token the server refused itself (or none to try) sends the user back to
    // authorize; a passing refusal keeps the tokens for the next try.
    #[test]
    fn only_a_dead_refresh_token_needs_a_new_authorization() {
        assert!(
            refused(Some(ErrorCode::Token(TokenErrorCode::InvalidGrant))).needs_authorization()
        );
        assert!(refused(None).needs_authorization());
        assert!(
            Error::NotAuthorized {
                server: "https://mcp.example/mcp".into()
            }
            .needs_authorization()
        );
        for passing in [TokenErrorCode::ServerError, TokenErrorCode::InvalidClient] {
            assert!(!refused(Some(ErrorCode::Token(passing))).needs_authorization());
        }
        assert!(!refused(Some(ErrorCode::other("temporarily_unavailable"))).needs_authorization());
    }
}

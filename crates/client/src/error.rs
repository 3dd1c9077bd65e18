//! The client's errors: one enum users can match on, each variant naming the step that failed
//! and, where there is one, the URL.

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
        error: String,
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
    /// The token endpoint refused a request.
    #[error("the token request to {url} failed: {error}{}", description_suffix(.description))]
    Token {
        /// The token endpoint.
        url: String,
        /// The OAuth error code, or what was wrong with the response.
        error: String,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// The refresh token was refused: the user must authorize again.
    #[error("the refresh token was refused by {url}: {error}")]
    Refresh {
        /// The token endpoint.
        url: String,
        /// The OAuth error code.
        error: String,
    },
    /// Stored tokens or registrations could not be read or written.
    #[error("token storage: {0}")]
    Storage(String),
    /// A request could not be sent or answered (connection, TLS, timeout, size).
    #[error("request to {url} failed: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A URL is not acceptable (plain http off loopback, a query where none may be).
    #[error("refusing {url}: {reason}")]
    Insecure {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
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

//! Why the server could not start, with the causes kept.

use crate::users;

/// An error and every cause behind it, on one line (the workspace's one chain printer).
pub use mcpauth_oauth_types::said;

/// A cause kept behind a [`StartError`] ([`std::error::Error::source`]).
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The server could not start. Each variant says what failed in words an operator can act
/// on; the error that caused it, if any, is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Storage failed.
    #[error("storage")]
    Store(#[from] mcpauth_store_sql::StoreError),
    /// The issuer is not valid.
    #[error("issuer `{issuer}`")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// Why.
        source: Cause,
    },
    /// The signing key could not be created or loaded.
    #[error("signing key: {message}")]
    Key {
        /// What failed, and what to change.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// Binding or serving failed.
    #[error("listening on {addr}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A user could not be created or changed.
    #[error(transparent)]
    User(#[from] users::UserError),
    /// Production mode refused the configuration.
    #[error("production mode refuses this configuration:\n  - {}", .0.join("\n  - "))]
    Production(Vec<String>),
    /// A client could not be registered.
    #[error("client: {message}")]
    Client {
        /// What failed.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// An upstream identity provider is misconfigured or unreachable.
    #[error("provider: {message}")]
    Provider {
        /// What failed, and what to change.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// An upstream identity provider could not be reached, or answered what cannot be used
    /// (its discovery document): not the configuration's fault, and worth trying again.
    #[error("upstream provider: {message}")]
    Upstream {
        /// What failed.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// A setting is not valid.
    #[error("configuration: {message}")]
    Config {
        /// What is wrong, and what to change.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
}

impl StartError {
    /// Whether the configuration is at fault (a setting, a combination, production mode's
    /// rules, the issuer, an upstream provider's settings): `mcpauth-server` exits with 78
    /// (`EX_CONFIG`) for these, 1 for the others.
    #[must_use]
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Issuer { .. } | Self::Production(_) | Self::Config { .. } | Self::Provider { .. }
        )
    }

    pub(crate) fn key(message: impl Into<String>) -> Self {
        Self::Key {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn key_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Key {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    pub(crate) fn client(message: impl Into<String>) -> Self {
        Self::Client {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn client_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Client {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    pub(crate) fn provider(message: impl Into<String>) -> Self {
        Self::Provider {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn provider_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Provider {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn config_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Config {
            message: message.into(),
            source: Some(cause.into()),
        }
    }
}

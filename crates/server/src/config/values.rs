//! The values options take: secrets (never printed), log formats, the forwarded header's name, the
//! token format, providers' secret variables.

use serde::Deserialize;

/// The variable holding provider `id`'s client secret: `MCPAUTH_PROVIDER_<ID>_CLIENT_SECRET`,
/// the id upper-cased with `-` as `_`.
#[must_use]
pub fn provider_secret_variable(id: &str) -> String {
    let mut name = String::from("MCPAUTH_PROVIDER_");
    name.push_str(&id.to_ascii_uppercase().replace('-', "_"));
    name.push_str("_CLIENT_SECRET");
    name
}

/// A configured secret: readable through [`expose`](Self::expose), never printed by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The header trusted proxies name the client in.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ForwardedHeaderName {
    /// `X-Forwarded-For` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

/// How access tokens are encoded.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TokenFormat {
    /// RFC 9068 JWTs.
    #[default]
    Jwt,
    /// Opaque tokens stored hashed.
    Opaque,
}

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

/// A configured secret: readable through `expose`, never printed by `Debug` (the workspace's
/// one secret wrapper).
pub use mcpauth_oauth_types::Secret;

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

//! The embedding application's hook into token contents (the `TokenMapper` of other MCP
//! authorization libraries): extra claims per token, decided by application code.

use mcpauth_oauth_types::GrantType;
use serde_json::{Map, Value};

/// What a token is being issued for.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TokenContext<'a> {
    /// The grant being redeemed.
    pub grant_type: GrantType,
    /// The subject (the user, or the client for `client_credentials`).
    pub subject: &'a str,
    /// The client the token is for.
    pub client_id: &'a str,
    /// The scope of the access token.
    pub scope: &'a str,
    /// The audience (resources) of the access token.
    pub audience: &'a [String],
}

/// Adds claims to access tokens.
///
/// The RFC 9068 claims (`iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `client_id`, `scope`) and
/// the delegation claims (`act`, RFC 8693 §4.1) are
/// the engine's: a customizer cannot replace them, and such keys are dropped.
pub trait TokenCustomizer: Send + Sync {
    /// Claims to add to the access token described by `context`.
    fn extra_claims(&self, context: &TokenContext<'_>) -> Map<String, Value>;
}

/// The claims the engine owns.
pub(crate) const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "act",
    "may_act",
    "cnf",
    "sub_type",
];

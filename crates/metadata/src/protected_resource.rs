//! RFC 9728 §2: protected-resource metadata.

use serde::{Deserialize, Serialize};

/// Protected-resource metadata (RFC 9728 §2), served by an MCP server so that clients find
/// its authorization server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (the MCP server's canonical URI).
    pub resource: String,
    /// Issuers of authorization servers that can issue tokens for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes used to access this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How bearer tokens may be sent (only `header` for MCP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Human-readable documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The JWS algorithms this resource accepts in DPoP proofs (RFC 9728 §2, RFC 9449): empty
    /// when it does not take DPoP-bound tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
}

impl ProtectedResourceMetadata {
    /// Metadata for `resource`, protected by the authorization server `issuer`, accepting
    /// tokens in the `Authorization` header only.
    #[must_use]
    pub fn new(resource: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: vec![issuer.into()],
            bearer_methods_supported: vec!["header".into()],
            ..Self::default()
        }
    }
}

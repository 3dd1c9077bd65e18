//! RFC 6749 §5.1: the successful token response.

use serde::{Deserialize, Serialize};

/// A successful token response (RFC 6749 §5.1). Serve it with `Cache-Control: no-store`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to the key of the request's DPoP proof (RFC 9449
    /// §5).
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// A refresh token, when the grant allows one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_token: Option<String>,
    /// The granted scope (RFC 6749 §5.1: required when it differs from the request).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    /// The type of the issued token (RFC 8693 §2.2.1; token exchange only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub issued_token_type: Option<String>,
    /// An OpenID Connect ID token (Core §3.1.3.3), when the grant's scope includes `openid`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_token: Option<String>,
}

impl TokenResponse {
    /// A response for an access token bound to a DPoP key (RFC 9449 §5): `token_type: DPoP`.
    #[must_use]
    pub fn dpop(access_token: String, expires_in: u64) -> Self {
        Self {
            token_type: "DPoP".into(),
            ..Self::bearer(access_token, expires_in)
        }
    }

    /// A bearer token response.
    #[must_use]
    pub fn bearer(access_token: String, expires_in: u64) -> Self {
        Self {
            access_token,
            token_type: "Bearer".into(),
            expires_in,
            refresh_token: None,
            scope: None,
            issued_token_type: None,
            id_token: None,
        }
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("issued_token_type", &self.issued_token_type)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

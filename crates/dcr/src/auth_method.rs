//! RFC 7591 §2 `token_endpoint_auth_method`.

use serde::{Deserialize, Serialize};

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenEndpointAuthMethod {
    /// A public client: no secret, PKCE proves possession.
    None,
    /// `client_secret_basic` (RFC 6749 §2.3.1, HTTP Basic).
    ClientSecretBasic,
    /// `client_secret_post` (RFC 6749 §2.3.1, form body).
    ClientSecretPost,
    /// `private_key_jwt` (RFC 7523 §2.2, a JWT signed with the client's key).
    PrivateKeyJwt,
}

impl TokenEndpointAuthMethod {
    /// The RFC 7591 name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses an RFC 7591 name.
    #[must_use]
    pub fn from_wire(value: &str) -> Option<Self> {
        [
            Self::None,
            Self::ClientSecretBasic,
            Self::ClientSecretPost,
            Self::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == value)
    }
}

//! Secrets at rest (DESIGN §3): codes, tokens and client secrets are high-entropy, so a plain
//! SHA-256 is enough and lets the store look them up by hash. Two kinds of hashed values are
//! not, and are hashed only so the database holds none in clear: a device's user code (eight
//! characters a person types), protected by its short life (15 minutes by default) and the
//! per-caller attempt limit; and the server's sign-in lockout keys (an email and an address).
//! Passwords are never hashed here (argon2id, in the server).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of a high-entropy secret (an authorization code, a refresh or opaque access
/// token, a device or user code, a client secret, a registration access token), base64url
/// without padding: what a model stores and looks up instead of the secret.
///
/// Made only by hashing ([`SecretHash::of`]), so a raw secret can never be stored or looked
/// up where its hash belongs; a model reads back what it stored with
/// [`SecretHash::from_stored`] (or through serde).
///
/// ```
/// use mcpauth_token_engine::SecretHash;
///
/// let hash = SecretHash::of("a-code");
/// assert_ne!(hash.as_str(), "a-code");
/// assert!(hash.matches("a-code"));
/// assert_eq!(SecretHash::from_stored(hash.as_str().to_owned()), hash);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hash of `secret`.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes())))
    }

    /// A hash this model stored earlier, read back from its storage. (Not a way to make
    /// one: that is [`SecretHash::of`].)
    #[must_use]
    pub fn from_stored(stored: impl Into<String>) -> Self {
        Self(stored.into())
    }

    /// Whether `secret` hashes to this, compared in constant time.
    #[must_use]
    pub fn matches(&self, secret: &str) -> bool {
        self.ct_eq(&Self::of(secret))
    }

    /// Whether two hashes are equal, compared in constant time (for a secret hashed once and
    /// checked against several).
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        mcpauth_oauth_types::constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }

    /// The hash as stored (43 base64url characters).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash as stored, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not the secret, but its first characters are enough to tell two apart.
        write!(f, "SecretHash({}…)", self.0.get(..8).unwrap_or(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_base64url_sha256_of_the_secret() {
        // SHA-256("abc"), RFC 6234 test vector, base64url without padding.
        assert_eq!(
            SecretHash::of("abc").as_str(),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn matching_a_secret_compares_hashes() {
        let hash = SecretHash::of("right");
        assert!(hash.matches("right"));
        assert!(!hash.matches("wrong"));
        assert!(!SecretHash::from_stored(String::new()).matches(""));
    }

    #[test]
    fn debug_shows_a_prefix_only() {
        let hash = SecretHash::of("abc");
        assert_eq!(format!("{hash:?}"), "SecretHash(ungWv48B…)");
    }
}

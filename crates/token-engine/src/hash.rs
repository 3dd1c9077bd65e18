//! Secrets at rest (DESIGN §3): codes, refresh tokens and client secrets are high-entropy, so
//! a plain SHA-256 is enough and lets the store look them up by hash.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// SHA-256 of a secret, base64url without padding. This is what a model stores and looks up.
#[must_use]
pub fn secret_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

//! Randomness, injected by the caller (rustls `SecureRandom` style). The engine never reads
//! the OS RNG itself; servers plug in the OS RNG, tests plug in a seeded source.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use mcpauth_oauth_types::{RandomError, SecureRandom};

/// 32 random bytes, base64url without padding (256 bits: codes, tokens, secrets).
///
/// # Errors
///
/// [`RandomError`] when `rng` fails.
pub fn random_token(rng: &dyn SecureRandom) -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// 16 random bytes, base64url (identifiers that are not secrets: grant and client ids).
pub(crate) fn identifier(rng: &dyn SecureRandom) -> Result<String, RandomError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

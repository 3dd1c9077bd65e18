//! Randomness, injected by the caller (rustls `SecureRandom` style). The engine never reads
//! the OS RNG itself; servers plug in the OS RNG, tests plug in a seeded source.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The random source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the random source failed")]
pub struct RandomError;

/// A cryptographically secure random source.
pub trait SecureRandom: Send + Sync {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    ///
    /// [`RandomError`] when no randomness is available; the engine answers `server_error`.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

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

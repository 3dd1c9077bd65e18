//! Randomness, injected by the caller (rustls's `SecureRandom` style). No protocol crate reads
//! the OS random source itself; servers plug in the OS's (the engine's `os` feature,
//! `OsRandom`), tests a seeded source.

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

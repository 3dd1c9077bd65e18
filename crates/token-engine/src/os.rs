//! The operating system's clock and random source, and new signing keys drawn from it: the
//! `os` feature (on by default), so an embedder can start an engine with this crate alone.
//!
//! Everything else in the engine takes time and randomness from its caller; this module is
//! where a caller that has nothing better finds the OS's. Build without default features to
//! be sure nothing in the engine reaches the OS (signing aside: see `keys.rs`).
//!
//! ```
//! use std::sync::Arc;
//! use mcpauth_token_engine::{EngineConfig, KeyAlgorithm, MemoryModel, OsRandom, SigningKey, TokenEngine, now};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = EngineConfig::new("https://auth.example.com".parse()?)?;
//! let key = SigningKey::generate(KeyAlgorithm::Es256)?;
//! let engine = TokenEngine::new(config, Arc::new(MemoryModel::new()), key, Arc::new(OsRandom));
//! let started = now();
//! # let _ = (engine, started);
//! # Ok(())
//! # }
//! ```

use crate::{KeyError, RandomError, SecureRandom, SigningKey};

/// The system clock lives in the lowest crate, so a resource server that needs no engine
/// reads it from there too.
pub use mcpauth_oauth_types::{SystemClock, now};

/// The operating system's random source (aws-lc's), for [`TokenEngine::new`](crate::TokenEngine::new).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    #[expect(
        clippy::disallowed_methods,
        reason = "the os feature is where the engine's callers find the OS random source"
    )]
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        aws_lc_rs::rand::fill(dest).map_err(|_| RandomError)
    }
}

/// The algorithms [`SigningKey::generate`] makes keys for. (RS256 keys are loaded, never
/// generated here: [`SigningKey::rs256_from_pkcs1_der`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ES256: ECDSA on P-256 with SHA-256, what MCP clients and resource servers expect.
    Es256,
    /// EdDSA with Ed25519.
    EdDsa,
}

impl SigningKey {
    /// A new key for `algorithm` from the OS random source. It lives as long as the
    /// process; to keep one across restarts, store [`generate_pkcs8`](Self::generate_pkcs8)'s
    /// bytes and load them.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the OS random source fails.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let der = Self::generate_pkcs8(algorithm)?;
        match algorithm {
            KeyAlgorithm::Es256 => Self::es256_from_pkcs8_der(&der),
            KeyAlgorithm::EdDsa => Self::ed25519_from_pkcs8_der(&der),
        }
    }

    /// A new private key for `algorithm` from the OS random source, as PKCS#8 DER: keep it
    /// secret, and load it with [`es256_from_pkcs8_der`](Self::es256_from_pkcs8_der) or
    /// [`ed25519_from_pkcs8_der`](Self::ed25519_from_pkcs8_der).
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the OS random source fails.
    #[expect(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "the os feature is where the engine's callers find the OS random source"
    )]
    pub fn generate_pkcs8(algorithm: KeyAlgorithm) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = match algorithm {
            KeyAlgorithm::Es256 => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map(|der| der.as_ref().to_vec()),
            KeyAlgorithm::EdDsa => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map(|der| der.as_ref().to_vec()),
        };
        der.map_err(|_| KeyError::Generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_publish_their_algorithm() {
        for (algorithm, name) in [
            (KeyAlgorithm::Es256, "ES256"),
            (KeyAlgorithm::EdDsa, "EdDSA"),
        ] {
            let key = SigningKey::generate(algorithm).unwrap();
            assert_eq!(key.algorithm_name(), name);
            assert_eq!(key.public_jwk().unwrap()["alg"], name);
        }
        assert_ne!(
            SigningKey::generate(KeyAlgorithm::Es256).unwrap().kid(),
            SigningKey::generate(KeyAlgorithm::Es256).unwrap().kid(),
            "each key is new"
        );
    }

    #[test]
    fn the_os_random_source_fills_what_it_is_given() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRandom.fill(&mut a).unwrap();
        OsRandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}

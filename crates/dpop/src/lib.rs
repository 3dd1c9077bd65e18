//! DPoP (RFC 9449): proof of possession of a key, checked on every request that carries a
//! sender-constrained token.
//!
//! A client signs a short JWT, the *DPoP proof*, for each HTTP request with a key it keeps, and
//! sends it in the `DPoP` header. The authorization server binds the tokens it issues to that
//! key's thumbprint (RFC 7638, `cnf.jkt`); a resource server accepts such a token only with a
//! fresh proof signed by the same key. A stolen token is useless without the key.
//!
//! This crate is the part both servers share, without I/O: [`verify_proof`] runs the checks of
//! RFC 9449 §4.3 against the request it came with and returns what the caller still has to do
//! with storage (record the proof's `jti` so it is used once, §11.1). Time is passed in.
//! Clients make proofs with a [`DpopKey`] ([`DpopKey::proof`]).
//!
//! ```
//! use mcpauth_dpop::{ProofPolicy, RequestContext, verify_proof};
//!
//! # fn handle(headers: &http::HeaderMap, now: u64) -> Result<(), mcpauth_dpop::ProofError> {
//! let policy = ProofPolicy::default();
//! let request = RequestContext::new("POST", "https://auth.example.com/token");
//! let dpop = headers.get_all("dpop").iter().map(|value| value.as_bytes());
//! let proof = verify_proof(dpop, &request, &policy, now)?;
//! // Bind the tokens to `proof.jkt`; refuse the request if `proof.replay_key()` was seen
//! // within `policy.replay_window()` seconds.
//! # let _ = proof;
//! # Ok(())
//! # }
//! ```

mod error;
mod htu;
mod nonce;
mod proof;
mod sign;
mod thumbprint;

pub use error::ProofError;
pub use nonce::NonceSource;
pub use proof::{ProofPolicy, RequestContext, VerifiedProof, verify_proof};
pub use sign::{DpopKey, KeyError, ProofRequest, SignError};
pub use thumbprint::{access_token_hash, jwk_thumbprint};

/// Re-exported so that callers name the same algorithm type the policy holds.
pub use jsonwebtoken::Algorithm;

/// The HTTP header a DPoP proof travels in (RFC 9449 §4.1).
pub const DPOP_HEADER: &str = "DPoP";

/// The response header a server names the nonce to use in (RFC 9449 §8).
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";

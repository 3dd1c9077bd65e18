#![doc = include_str!("../README.md")]

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

//! Why a proof was refused: RFC 9449's two error codes, with a description a developer can act
//! on. Nothing the caller sent is echoed back.

/// A DPoP proof that failed a check of RFC 9449 §4.3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// No `DPoP` header.
    #[error("a DPoP proof is required: send one in the DPoP header")]
    Missing,
    /// More than one `DPoP` header (§4.3 check 1).
    #[error("more than one DPoP header: send exactly one proof per request")]
    Repeated,
    /// Not a compact JWS with a JSON header and payload (§4.3 check 2).
    #[error("the DPoP proof is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt` (§4.3 check 4).
    #[error("the DPoP proof's typ header must be dpop+jwt")]
    Type,
    /// `alg` is missing, symmetric, `none`, or not accepted here (§4.3 check 5).
    #[error("the DPoP proof's alg is not accepted: sign with one of {0}")]
    Algorithm(String),
    /// `jwk` is missing, not a public key, or does not fit `alg` (§4.3 checks 6 and 7).
    #[error("the DPoP proof's jwk header is not usable: {0}")]
    Key(&'static str),
    /// The signature does not verify with the key in `jwk` (§4.3 check 6).
    #[error("the DPoP proof's signature does not verify with the key in its jwk header")]
    Signature,
    /// A required claim is missing or has the wrong type (§4.2, §4.3 check 3).
    #[error("the DPoP proof's {0} claim is missing or malformed")]
    Claim(&'static str),
    /// `htm` is not the request's method (§4.3 check 8).
    #[error("the DPoP proof's htm claim is not this request's method")]
    Method,
    /// `htu` is not the request's URI (§4.3 check 9).
    #[error("the DPoP proof's htu claim is not this request's URI (without query and fragment)")]
    Uri,
    /// `iat` is outside the accepted window (§4.3 check 11).
    #[error(
        "the DPoP proof's iat is outside the accepted window: make a fresh proof for each request"
    )]
    Time,
    /// `ath` is missing or is not the hash of the access token sent with it (§4.3 check 12).
    #[error("the DPoP proof's ath claim is not the hash of the access token it came with")]
    AccessTokenHash,
    /// The server asked for a nonce and the proof has none, or another (§4.3 check 10, §8).
    #[error("this server requires a DPoP nonce: sign a new proof with the DPoP-Nonce it sent")]
    UseNonce,
}

impl ProofError {
    /// The error code for the token endpoint's JSON error or a resource server's
    /// `WWW-Authenticate` challenge: `use_dpop_nonce` (§8, §9) or `invalid_dpop_proof` (§5, §7.1).
    #[must_use]
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::UseNonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }
}

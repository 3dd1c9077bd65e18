//! DPoP (RFC 9449) from the client's seat: a key for the tokens it binds, kept with them in the
//! token store; a proof on every token request and every request that carries a bound token;
//! and one retry with the server's nonce when it asks for one (§8, §9).
//!
//! A fresh key is made for each authorization (P-256, ES256: the algorithm every DPoP server
//! accepts) and lives exactly as long as the tokens it binds: logging out forgets both.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_dpop::{DpopKey, ProofRequest};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The algorithm this client signs proofs with.
pub const PROOF_ALGORITHM: &str = "ES256";

/// A DPoP private key as kept with the tokens bound to it: PKCS#8, base64url. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DpopKeyMaterial(String);

impl std::fmt::Debug for DpopKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopKeyMaterial([redacted])")
    }
}

fn key_error(reason: &str) -> Error {
    Error::Dpop(reason.to_owned())
}

impl DpopKeyMaterial {
    /// A new P-256 key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`Error::Dpop`] when the random source fails.
    pub fn generate() -> Result<Self, Error> {
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| key_error("the random source failed while making a DPoP key"))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(pkcs8.as_ref())))
    }

    /// The key, ready to sign proofs.
    ///
    /// # Errors
    ///
    /// [`Error::Dpop`] when the kept material is not a P-256 key (a damaged store).
    pub fn key(&self) -> Result<DpopKey, Error> {
        let der = URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| key_error("the DPoP key kept with these tokens is damaged"))?;
        DpopKey::from_pkcs8(&der)
            .map_err(|_| key_error("the DPoP key kept with these tokens is damaged"))
    }
}

/// A proof for a `method` request to `uri` made now, over the server's `nonce` when it gave one
/// and, for a resource request, the `access_token` it carries (`ath`).
///
/// # Errors
///
/// [`Error::Dpop`] when the URI cannot be a proof's `htu` or signing fails.
pub fn proof(
    key: &DpopKey,
    method: &str,
    uri: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
) -> Result<String, Error> {
    let jti = crate::authorize::random_value()?;
    let mut request = ProofRequest::new(method, uri, &jti, crate::session::now());
    if let Some(nonce) = nonce {
        request = request.nonce(nonce);
    }
    if let Some(token) = access_token {
        request = request.access_token(token);
    }
    key.proof(&request)
        .map_err(|e| key_error(&format!("no DPoP proof for {uri}: {e}")))
}

/// Whether an authorization server's metadata says it takes proofs this client can make.
#[must_use]
pub fn supported_by(metadata: &mcpauth_metadata::AuthorizationServerMetadata) -> bool {
    metadata
        .dpop_signing_alg_values_supported
        .iter()
        .any(|alg| alg == PROOF_ALGORITHM)
}

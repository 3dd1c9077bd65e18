//! Signing keys for RFC 9068 JWT access tokens and their RFC 7517 JWK Set.
//!
//! Keys are loaded from PKCS#8 DER; generating one needs the OS RNG and so happens at the
//! edge (the server), not here. The `kid` is the RFC 7638 JWK thumbprint.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a PKCS#8 P-256 private key.
    #[error("not a PKCS#8 DER-encoded P-256 (ES256) private key")]
    NotAnEs256Pkcs8Key,
}

/// An ES256 signing key with its public JWK.
pub struct SigningKey {
    kid: String,
    encoding_key: EncodingKey,
    public_jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads an ES256 key from PKCS#8 DER.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotAnEs256Pkcs8Key`].
    pub fn es256_from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| KeyError::NotAnEs256Pkcs8Key)?;
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        let (x, y) = match (point.first(), point.get(1..33), point.get(33..65)) {
            (Some(0x04), Some(x), Some(y)) if point.len() == 65 => {
                (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
            }
            _ => return Err(KeyError::NotAnEs256Pkcs8Key),
        };
        // RFC 7638 §3.2: required members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let public_jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        });
        Ok(Self {
            kid,
            encoding_key: EncodingKey::from_ec_der(der),
            public_jwk,
        })
    }

    /// The key id (RFC 7638 thumbprint).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    #[must_use]
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding_key
    }
}

/// The JWK Set document (RFC 7517 §5) for `keys`.
#[must_use]
pub fn jwk_set(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
}

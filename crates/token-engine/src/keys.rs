//! Signing keys for RFC 9068 JWT access tokens and their RFC 7517 JWK Set.
//!
//! Keys are loaded from PKCS#8 DER, or generated from the OS random source with the `os`
//! feature ([`SigningKey::generate`]). The `kid` is the RFC 7638 JWK thumbprint. A [`KeySet`] signs
//! with its current key and still verifies (and publishes) retired keys, so keys rotate
//! without invalidating live tokens.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A key could not be loaded or generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The bytes are not a PKCS#8 P-256 private key.
    #[error("not a PKCS#8 DER-encoded P-256 (ES256) private key")]
    NotAnEs256Pkcs8Key,
    /// The bytes are not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 DER-encoded Ed25519 (EdDSA) private key")]
    NotAnEd25519Pkcs8Key,
    /// The bytes are not a PKCS#1 RSA private key of at least 2048 bits.
    #[error("not a PKCS#1 DER-encoded RSA private key of at least 2048 bits")]
    NotAnRsaKey,
    /// An HS256 secret must have at least 32 bytes (RFC 7518 §3.2: at least the hash size).
    #[error("an HS256 secret must be at least 32 bytes")]
    ShortSecret,
    /// A new key could not be generated: the OS random source failed.
    #[error("a new key could not be generated: the operating system's random source failed")]
    Generation,
}

/// The private key, parsed once. `jsonwebtoken::encode` parses the PKCS#8 key on every call
/// (for P-256 that includes a scalar multiplication to check the public key), which cost as
/// much again as the signature itself: issuance signs with these instead.
enum PrivateKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
    /// HMAC is cheap to key: `jsonwebtoken` signs.
    Hs256,
}

/// Signing a JWT failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignError {
    #[error("the claims or header do not serialize: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the signature failed")]
    Crypto,
    #[error(transparent)]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// A signing key with its public JWK.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    private_key: PrivateKey,
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    /// `None` for symmetric keys, which are never published.
    public_jwk: Option<Value>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The one place the engine reaches the OS outside the `os` feature: aws-lc draws an ECDSA
/// signature's nonce (and RSA's blinding) from the OS inside `sign`, and takes no other random
/// source. A caller's `SecureRandom` cannot stand in, and a deterministic nonce would need a
/// signing implementation of our own (RFC 6979), which is worse than this exception.
#[expect(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "aws-lc's ECDSA and RSA signing take only its own OS random source"
)]
fn signing_nonces() -> aws_lc_rs::rand::SystemRandom {
    aws_lc_rs::rand::SystemRandom::new()
}

/// RFC 7638 §3.2: the thumbprint of the required members, in lexicographic order.
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl SigningKey {
    /// Loads an ES256 (P-256) key from PKCS#8 DER.
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
        let kid = thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        let decoding_key =
            DecodingKey::from_ec_components(&x, &y).map_err(|_| KeyError::NotAnEs256Pkcs8Key)?;
        let public_jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256" });
        Ok(Self {
            kid,
            algorithm: Algorithm::ES256,
            private_key: PrivateKey::Es256(pair),
            encoding_key: EncodingKey::from_ec_der(der),
            decoding_key,
            public_jwk: Some(public_jwk),
        })
    }

    /// Loads an EdDSA (Ed25519) key from PKCS#8 DER.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotAnEd25519Pkcs8Key`].
    pub fn ed25519_from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| KeyError::NotAnEd25519Pkcs8Key)?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        let decoding_key =
            DecodingKey::from_ed_components(&x).map_err(|_| KeyError::NotAnEd25519Pkcs8Key)?;
        let public_jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA" });
        Ok(Self {
            kid,
            algorithm: Algorithm::EdDSA,
            private_key: PrivateKey::EdDsa(pair),
            encoding_key: EncodingKey::from_ed_der(der),
            decoding_key,
            public_jwk: Some(public_jwk),
        })
    }

    /// Loads an RS256 key from PKCS#1 `RSAPrivateKey` DER (RFC 8017), 2048 bits or more.
    ///
    /// # Errors
    ///
    /// [`KeyError::NotAnRsaKey`].
    pub fn rs256_from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair =
            aws_lc_rs::signature::RsaKeyPair::from_der(der).map_err(|_| KeyError::NotAnRsaKey)?;
        if pair.public_modulus_len() < 256 {
            return Err(KeyError::NotAnRsaKey);
        }
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        let decoding_key =
            DecodingKey::from_rsa_components(&n, &e).map_err(|_| KeyError::NotAnRsaKey)?;
        let public_jwk =
            json!({ "kty": "RSA", "n": n, "e": e, "kid": kid, "use": "sig", "alg": "RS256" });
        Ok(Self {
            kid,
            algorithm: Algorithm::RS256,
            private_key: PrivateKey::Rs256(pair),
            encoding_key: EncodingKey::from_rsa_der(der),
            decoding_key,
            public_jwk: Some(public_jwk),
        })
    }

    /// An HS256 key: a secret shared with the resource servers, which verify with the same
    /// secret. It is never published in the JWK Set.
    ///
    /// # Security Warning
    ///
    /// Every holder of the secret can mint tokens. Prefer an asymmetric key unless the
    /// authorization and resource servers are one trust domain.
    ///
    /// # Errors
    ///
    /// [`KeyError::ShortSecret`] under 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret);
        }
        // Not a thumbprint of the secret itself: a keyed label that reveals nothing usable.
        let kid = format!(
            "hs256-{}",
            &URL_SAFE_NO_PAD.encode(
                Sha256::new()
                    .chain_update(b"mcpauth-kid")
                    .chain_update(secret)
                    .finalize()
            )[..16]
        );
        Ok(Self {
            kid,
            algorithm: Algorithm::HS256,
            private_key: PrivateKey::Hs256,
            encoding_key: EncodingKey::from_secret(secret),
            decoding_key: DecodingKey::from_secret(secret),
            public_jwk: None,
        })
    }

    /// The key id (RFC 7638 thumbprint).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm name (`ES256`, `EdDSA`, `RS256`, `HS256`).
    #[must_use]
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::HS256 => "HS256",
            _ => "ES256",
        }
    }

    /// The public key as a JWK; `None` for a shared secret (HS256), which is never published.
    #[must_use]
    pub fn public_jwk(&self) -> Option<&Value> {
        self.public_jwk.as_ref()
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A JWS in compact serialization (RFC 7515 §7.1) of `claims` under `header`, as
    /// `jsonwebtoken::encode` would make it, signed with the key parsed at load time.
    pub(crate) fn sign_jwt<T: serde::Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &T,
    ) -> Result<String, SignError> {
        let mut jws = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut jws);
        let signature = match &self.private_key {
            PrivateKey::Es256(pair) => pair
                .sign(&signing_nonces(), jws.as_bytes())
                .map_err(|_| SignError::Crypto)?
                .as_ref()
                .to_vec(),
            PrivateKey::EdDsa(pair) => pair.sign(jws.as_bytes()).as_ref().to_vec(),
            PrivateKey::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &signing_nonces(),
                    jws.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| SignError::Crypto)?;
                signature
            }
            PrivateKey::Hs256 => {
                return Ok(jsonwebtoken::encode(header, claims, &self.encoding_key)?);
            }
        };
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding_key
    }
}

/// The keys of an authorization server: one that signs, and retired ones that still verify
/// and stay published until the tokens they signed have expired.
#[derive(Debug)]
pub struct KeySet {
    current: SigningKey,
    retired: Vec<SigningKey>,
}

impl KeySet {
    /// A set that signs with `current`.
    #[must_use]
    pub fn new(current: SigningKey) -> Self {
        Self {
            current,
            retired: Vec::new(),
        }
    }

    /// Adds a retired key: published and accepted, never used to sign.
    #[must_use]
    pub fn with_retired(mut self, key: SigningKey) -> Self {
        if key.kid != self.current.kid && !self.retired.iter().any(|k| k.kid == key.kid) {
            self.retired.push(key);
        }
        self
    }

    /// The key that signs.
    #[must_use]
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Every key, current first.
    pub fn iter(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.retired.iter())
    }

    /// The key with this id.
    #[must_use]
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.iter().find(|k| k.kid == kid)
    }

    /// The JWK Set document (RFC 7517 §5).
    #[must_use]
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.iter().filter_map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
    }
}

impl From<SigningKey> for KeySet {
    fn from(key: SigningKey) -> Self {
        Self::new(key)
    }
}

/// The JWK Set document (RFC 7517 §5) for `keys`.
#[must_use]
pub fn jwk_set(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().filter_map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    fn keys() -> Vec<SigningKey> {
        let rng = signing_nonces();
        vec![
            SigningKey::es256_from_pkcs8_der(
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .unwrap()
                    .as_ref(),
            )
            .unwrap(),
            SigningKey::ed25519_from_pkcs8_der(
                Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref(),
            )
            .unwrap(),
            SigningKey::rs256_from_pkcs1_der(include_bytes!(
                "../tests/data/rsa2048-test-key.pkcs1.der"
            ))
            .unwrap(),
            SigningKey::hs256(&[7; 32]).unwrap(),
        ]
    }

    // RFC 7515 §7.1: the compact serialization `jsonwebtoken` makes and verifies, signed with the
    // key parsed once.
    #[test]
    fn signed_tokens_match_jsonwebtoken_and_verify() {
        let claims =
            json!({ "sub": "alice", "exp": 4_000_000_000_u64, "aud": "https://mcp.example" });
        for key in keys() {
            let mut header = jsonwebtoken::Header::new(key.algorithm());
            header.typ = Some("at+jwt".into());
            header.kid = Some(key.kid().to_owned());
            let ours = key.sign_jwt(&header, &claims).unwrap();
            let theirs = jsonwebtoken::encode(&header, &claims, &key.encoding_key).unwrap();
            let prefix = |jws: &str| jws.rsplit_once('.').unwrap().0.to_owned();
            assert_eq!(prefix(&ours), prefix(&theirs), "{}", key.algorithm_name());
            let mut validation = jsonwebtoken::Validation::new(key.algorithm());
            validation.set_audience(&["https://mcp.example"]);
            let decoded =
                jsonwebtoken::decode::<Value>(&ours, key.decoding_key(), &validation).unwrap();
            assert_eq!(decoded.claims["sub"], "alice", "{}", key.algorithm_name());
        }
    }
}

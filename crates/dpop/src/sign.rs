//! Making proofs (RFC 9449 §4.2), for clients: a P-256 key (ES256, the algorithm every DPoP
//! server accepts) and a proof per request, with the request's method and URI, a fresh `jti`
//! and `iat`, the server's nonce when it asked for one (§8, §9) and, at a resource server, the
//! hash of the access token (`ath`, §7).
//!
//! The key comes in as PKCS#8 bytes and the `jti` and time as arguments, so this module draws
//! no randomness and reads no clock: the caller generates, stores and reloads the key.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::thumbprint::{access_token_hash, jwk_thumbprint};

/// A DPoP key a client proves possession of: ECDSA P-256 (ES256).
pub struct DpopKey {
    encoding: EncodingKey,
    jwk: serde_json::Value,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The key is not an unencrypted PKCS#8 ECDSA P-256 private key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the DPoP key is not a PKCS#8 ECDSA P-256 private key")]
#[non_exhaustive]
pub struct KeyError;

/// A proof could not be made: the request URI is not an absolute `http(s)` URI, or signing
/// failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The request URI cannot be a proof's `htu`.
    #[error("the request URI is not an absolute http or https URI")]
    Uri,
    /// The signature could not be made.
    #[error("signing the DPoP proof failed")]
    Signature,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

/// One request's proof, before it is signed.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct ProofRequest<'a> {
    method: &'a str,
    uri: &'a str,
    jti: &'a str,
    iat: u64,
    nonce: Option<&'a str>,
    access_token: Option<&'a str>,
}

impl<'a> ProofRequest<'a> {
    /// A proof for a `method` request to `uri` (its query and fragment are left out of `htu`),
    /// identified by `jti` (at least 96 random bits, new for every proof), made at `iat`
    /// (seconds since the Unix epoch).
    pub fn new(method: &'a str, uri: &'a str, jti: &'a str, iat: u64) -> Self {
        Self {
            method,
            uri,
            jti,
            iat,
            nonce: None,
            access_token: None,
        }
    }

    /// Signs over the nonce the server sent in `DPoP-Nonce`.
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// For a resource request: signs over the hash of the access token sent with it (`ath`).
    pub fn access_token(mut self, access_token: &'a str) -> Self {
        self.access_token = Some(access_token);
        self
    }
}

impl DpopKey {
    /// The key in `pkcs8` (an unencrypted PKCS#8 document of an ECDSA P-256 private key, as
    /// `aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8` makes them).
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the bytes are not such a key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| KeyError)?;
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
            return Err(KeyError);
        };
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        });
        let thumbprint = jwk_thumbprint(&jwk).ok_or(KeyError)?;
        Ok(Self {
            encoding: EncodingKey::from_ec_der(pkcs8),
            jwk,
            thumbprint,
        })
    }

    /// The public key as a JWK (what proofs carry in their `jwk` header).
    #[must_use]
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// The key's SHA-256 JWK thumbprint (RFC 7638): what bound tokens carry in `cnf.jkt`, and
    /// what an authorization request sends as `dpop_jkt` (RFC 9449 §10).
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A signed proof for `request`, to send in the `DPoP` header.
    ///
    /// # Errors
    ///
    /// [`SignError`] when the URI is not an absolute `http(s)` URI, or signing fails.
    pub fn proof(&self, request: &ProofRequest<'_>) -> Result<String, SignError> {
        let htu = htu_of(request.uri).ok_or(SignError::Uri)?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk =
            Some(serde_json::from_value(self.jwk.clone()).map_err(|_| SignError::Signature)?);
        let claims = ProofClaims {
            jti: request.jti,
            htm: request.method,
            htu: &htu,
            iat: request.iat,
            nonce: request.nonce,
            ath: request.access_token.map(access_token_hash),
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|_| SignError::Signature)
    }
}

/// The `htu` of a request to `uri`: the URI without its query and fragment (§4.2).
fn htu_of(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.host_str().is_none()
    {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

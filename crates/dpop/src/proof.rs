//! RFC 9449 §4.3: checking a DPoP proof against the request it came with.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::error::ProofError;
use crate::htu::same_target;
use crate::thumbprint::{access_token_hash, jwk_thumbprint};

/// Longest proof accepted, in bytes: an RSA-4096 key and signature fit with room to spare.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// Longest `jti` accepted: RFC 9449 asks for 96 random bits or more; 256 bytes of identifier is
/// already more than any client sends, and bounds what a replay cache stores.
const MAX_JTI_LEN: usize = 256;

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_LEN: usize = 256;

/// Members of a JWK that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2,
/// §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What a server accepts in a proof.
#[derive(Clone, Debug)]
pub struct ProofPolicy {
    algorithms: Vec<Algorithm>,
    max_age: u64,
    max_future: u64,
}

impl Default for ProofPolicy {
    /// ES256, EdDSA (Ed25519), PS256 and RS256 (RSA keys of 2048 bits or more); a proof made up
    /// to 300 seconds ago, or up to 10 seconds ahead of this server's clock.
    fn default() -> Self {
        Self {
            algorithms: vec![
                Algorithm::ES256,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::RS256,
            ],
            max_age: 300,
            max_future: 10,
        }
    }
}

impl ProofPolicy {
    /// Accepts only `algorithms` (asymmetric ones; others are ignored). Advertise the same
    /// list as `dpop_signing_alg_values_supported`.
    #[must_use]
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms
            .into_iter()
            .filter(|a| asymmetric_name(*a).is_some())
            .collect();
        self
    }

    /// Accepts proofs whose `iat` is at most `seconds` in the past (default 300).
    #[must_use]
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = seconds;
        self
    }

    /// Accepts proofs whose `iat` is at most `seconds` in the future, for clients whose clock
    /// runs ahead (default 10).
    #[must_use]
    pub fn max_future(mut self, seconds: u64) -> Self {
        self.max_future = seconds;
        self
    }

    /// The algorithms accepted, as `dpop_signing_alg_values_supported` lists them (RFC 9449
    /// §5.1).
    #[must_use]
    pub fn algorithm_names(&self) -> Vec<&'static str> {
        self.algorithms
            .iter()
            .filter_map(|a| asymmetric_name(*a))
            .collect()
    }

    /// How long a proof's [`replay_key`](VerifiedProof::replay_key) must be remembered: any
    /// proof older than this is refused by its `iat` anyway.
    #[must_use]
    pub fn replay_window(&self) -> u64 {
        self.max_age.saturating_add(self.max_future)
    }
}

/// The request a proof came with, as the server knows it.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    method: &'a str,
    uri: &'a str,
    nonce: Option<&'a str>,
    access_token: Option<&'a str>,
}

impl<'a> RequestContext<'a> {
    /// A request with `method` to `uri`: the absolute URI as this server publishes it (its
    /// issuer or resource URL and the path), not as `Host` or a proxy's headers claim it.
    #[must_use]
    pub fn new(method: &'a str, uri: &'a str) -> Self {
        Self {
            method,
            uri,
            nonce: None,
            access_token: None,
        }
    }

    /// Requires the proof to carry `nonce`, the value this server sent in `DPoP-Nonce`
    /// (RFC 9449 §8, §9).
    #[must_use]
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The access token sent with the proof (`Authorization: DPoP …`): the proof must carry
    /// its hash in `ath` (RFC 9449 §4.3 check 12).
    #[must_use]
    pub fn access_token(mut self, access_token: &'a str) -> Self {
        self.access_token = Some(access_token);
        self
    }
}

/// A proof that passed every check of RFC 9449 §4.3 that needs no storage.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedProof {
    /// The SHA-256 JWK thumbprint of the proof's key (RFC 7638): what tokens are bound to
    /// (`cnf.jkt`), and what a bound token's `cnf.jkt` must equal.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: u64,
}

impl VerifiedProof {
    /// The key under which to remember this proof for [`ProofPolicy::replay_window`] seconds,
    /// refusing the request if it is already there (RFC 9449 §11.1): its key and its `jti`,
    /// since two clients may pick the same `jti`.
    #[must_use]
    pub fn replay_key(&self) -> String {
        format!("dpop:{}:{}", self.jkt, self.jti)
    }
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    ath: Option<String>,
}

/// Checks the `DPoP` header values of a request (every one received: more than one is an
/// error) against the request and `policy`, at `now` (seconds since the Unix epoch).
///
/// What is left to the caller: that the proof's [`replay_key`](VerifiedProof::replay_key) was
/// not seen before, and, for a bound token, that its `cnf.jkt` is [`VerifiedProof::jkt`].
///
/// # Errors
///
/// The first check that failed, as a [`ProofError`].
pub fn verify_proof(
    headers: &[&str],
    request: &RequestContext<'_>,
    policy: &ProofPolicy,
    now: u64,
) -> Result<VerifiedProof, ProofError> {
    let proof = match headers {
        [] => return Err(ProofError::Missing),
        [one] => one.trim(),
        _ => return Err(ProofError::Repeated),
    };
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed("longer than 8 KiB"));
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed("not three base64url parts"));
    };

    // The header is read here rather than by jsonwebtoken, whose typed header refuses unknown
    // algorithms (such as `none`) before they can be named, and drops private key members.
    let header: serde_json::Map<String, serde_json::Value> = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(ProofError::Malformed("the header is not base64url JSON"))?;
    let typ = header.get("typ").and_then(serde_json::Value::as_str);
    // Media types compare case-insensitively (RFC 7515 §4.1.9).
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(ProofError::Type);
    }
    let algorithm = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .and_then(|name| name.parse::<Algorithm>().ok())
        .filter(|a| policy.algorithms.contains(a))
        .ok_or_else(|| ProofError::Algorithm(policy.algorithm_names().join(", ")))?;
    let jwk = public_jwk(header.get("jwk"), algorithm)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Key("not a valid public key"))?;
    let jkt = jwk_thumbprint(&jwk).ok_or(ProofError::Key("a key type with no thumbprint"))?;

    // The signature, then the claims. No time is read here: `exp` and `nbf` mean nothing in
    // a proof, `iat` is checked below against the `now` passed in.
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = match jsonwebtoken::decode::<serde_json::Value>(proof, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => ProofError::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => {
                    ProofError::Key("not a valid public key for its alg")
                }
                _ => ProofError::Malformed("the payload is not base64url JSON"),
            });
        }
    };
    let claims = claims_of(claims)?;

    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::Claim("jti"));
    }
    // Methods are case-sensitive (RFC 9110 §9.1).
    if claims.htm != request.method {
        return Err(ProofError::Method);
    }
    if !same_target(&claims.htu, request.uri) {
        return Err(ProofError::Uri);
    }
    if let Some(expected) = request.nonce
        && !claims
            .nonce
            .as_deref()
            .is_some_and(|nonce| bool::from(nonce.as_bytes().ct_eq(expected.as_bytes())))
    {
        return Err(ProofError::UseNonce);
    }
    if claims.iat.saturating_add(policy.max_age) < now
        || claims.iat > now.saturating_add(policy.max_future)
    {
        return Err(ProofError::Time);
    }
    if let Some(token) = request.access_token {
        let expected = access_token_hash(token);
        if !claims
            .ath
            .as_deref()
            .is_some_and(|ath| bool::from(ath.as_bytes().ct_eq(expected.as_bytes())))
        {
            return Err(ProofError::AccessTokenHash);
        }
    }
    Ok(VerifiedProof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// The claims, each required one named when it is missing or of the wrong type (`iat` a
/// number: a string `iat` is refused, not read).
fn claims_of(claims: serde_json::Value) -> Result<Claims, ProofError> {
    let object = claims
        .as_object()
        .ok_or(ProofError::Malformed("the payload is not a JSON object"))?;
    for (name, ok) in [
        (
            "jti",
            object.get("jti").is_some_and(serde_json::Value::is_string),
        ),
        (
            "htm",
            object.get("htm").is_some_and(serde_json::Value::is_string),
        ),
        (
            "htu",
            object.get("htu").is_some_and(serde_json::Value::is_string),
        ),
        (
            "iat",
            object.get("iat").is_some_and(serde_json::Value::is_u64),
        ),
    ] {
        if !ok {
            return Err(ProofError::Claim(name));
        }
    }
    for name in ["nonce", "ath"] {
        if object.get(name).is_some_and(|v| !v.is_string()) {
            return Err(ProofError::Claim(name));
        }
    }
    serde_json::from_value(claims).map_err(|_| ProofError::Malformed("the claims"))
}

/// The `jwk` header as a public key fit for `algorithm` (RFC 9449 §4.3 checks 6 and 7).
fn public_jwk(jwk: Option<&serde_json::Value>, algorithm: Algorithm) -> Result<Jwk, ProofError> {
    let object = jwk
        .and_then(serde_json::Value::as_object)
        .ok_or(ProofError::Key("missing"))?;
    if PRIVATE_MEMBERS.iter().any(|m| object.contains_key(*m)) {
        return Err(ProofError::Key("it holds private key material"));
    }
    let kty = object.get("kty").and_then(serde_json::Value::as_str);
    let crv = object.get("crv").and_then(serde_json::Value::as_str);
    let fits = match algorithm {
        Algorithm::ES256 => kty == Some("EC") && crv == Some("P-256"),
        Algorithm::ES384 => kty == Some("EC") && crv == Some("P-384"),
        Algorithm::EdDSA => kty == Some("OKP") && crv == Some("Ed25519"),
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => kty == Some("RSA"),
        _ => false,
    };
    if !fits {
        return Err(ProofError::Key("its kty or crv does not fit the alg"));
    }
    if kty == Some("RSA") {
        let modulus = object
            .get("n")
            .and_then(serde_json::Value::as_str)
            .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
            .ok_or(ProofError::Key("an RSA key without a modulus"))?;
        let significant = modulus.iter().skip_while(|b| **b == 0).count();
        if significant < MIN_RSA_MODULUS_LEN {
            return Err(ProofError::Key("an RSA key shorter than 2048 bits"));
        }
    }
    serde_json::from_value(serde_json::Value::Object(object.clone()))
        .map_err(|_| ProofError::Key("not a valid JWK"))
}

/// The name of an asymmetric signature algorithm this crate checks proofs with; `None` for
/// the others (HMAC, and any the `jsonwebtoken` crate adds later until they are reviewed here).
fn asymmetric_name(algorithm: Algorithm) -> Option<&'static str> {
    Some(match algorithm {
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => return None,
    })
}

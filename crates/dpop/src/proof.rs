//! RFC 9449 §4.3: checking a DPoP proof against the request it came with.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::error::ProofError;
use crate::htu::same_target;
use crate::nonce::NonceSource;
use crate::thumbprint::{access_token_hash, jwk_thumbprint};

/// Longest proof accepted, in bytes: an RSA-4096 key and signature fit with room to spare.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// Largest RSA modulus accepted, in bits: bounds the CPU an anonymous proof can cost.
const MAX_RSA_BITS: usize = 4096;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Longest `jti` accepted: RFC 9449 asks for 96 random bits or more; 256 bytes of identifier is
/// already more than any client sends, and bounds what a replay cache stores.
const MAX_JTI_LEN: usize = 256;

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
    /// ES256, EdDSA (Ed25519), PS256 and RS256 (RSA keys of 2048 to 4096 bits); a proof made
    /// up to 300 seconds ago, or up to 10 seconds ahead of this server's clock.
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

    /// How old (by its `iat`) a proof may be, in seconds: one is refused once `iat` plus this
    /// has passed, so a replay cache may forget it then.
    #[must_use]
    pub fn max_age_seconds(&self) -> u64 {
        self.max_age
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
    nonce: Option<ExpectedNonce<'a>>,
    access_token: Option<&'a str>,
}

#[derive(Clone, Copy, Debug)]
enum ExpectedNonce<'a> {
    Exactly(&'a str),
    IssuedBy(&'a NonceSource),
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
        self.nonce = Some(ExpectedNonce::Exactly(nonce));
        self
    }

    /// Requires the proof to carry a nonce that `source` issued and still accepts (RFC 9449
    /// §8, §9): the way to require nonces across instances without storing them.
    #[must_use]
    pub fn nonce_from(mut self, source: &'a NonceSource) -> Self {
        self.nonce = Some(ExpectedNonce::IssuedBy(source));
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

    /// Whether the proof's key is the one a token is bound to (its `cnf.jkt`, RFC 9449 §6.1;
    /// the second half of §4.3 check 12). A bound token with a proof by another key is
    /// `invalid_token` at a resource server (§7.1).
    #[must_use]
    pub fn is_bound_to(&self, jkt: &str) -> bool {
        bool::from(self.jkt.as_bytes().ct_eq(jkt.as_bytes()))
    }
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: serde_json::Number,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    ath: Option<String>,
}

/// Checks the `DPoP` header values of a request against the request and `policy`, at `now`
/// (seconds since the Unix epoch). Pass every value received, as bytes (for `http`:
/// `headers.get_all("dpop").iter().map(|v| v.as_bytes())`): more than one is an error, and a
/// value that is not UTF-8 is one too, not a value to skip.
///
/// What is left to the caller: that the proof's [`replay_key`](VerifiedProof::replay_key) was
/// not seen before (key replays by it, never by the proof's text: an ECDSA signature can be
/// re-encoded), and, for a bound token, [`VerifiedProof::is_bound_to`] its `cnf.jkt`.
/// `RequestContext`'s URI must be the canonical one this server publishes.
///
/// # Errors
///
/// The first check that failed, as a [`ProofError`].
pub fn verify_proof<'h>(
    headers: impl IntoIterator<Item = &'h [u8]>,
    request: &RequestContext<'_>,
    policy: &ProofPolicy,
    now: u64,
) -> Result<VerifiedProof, ProofError> {
    let mut headers = headers.into_iter();
    let proof = match (headers.next(), headers.next()) {
        (None, _) => return Err(ProofError::Missing),
        (Some(one), None) => std::str::from_utf8(one)
            .map_err(|_| ProofError::Malformed("the header value is not text"))?
            .trim(),
        (Some(_), Some(_)) => return Err(ProofError::Repeated),
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
    // Extensions this checker does not implement must not be ignored (RFC 7515 §4.1.11): an
    // unencoded payload (RFC 7797) would be read differently here and by another verifier.
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(ProofError::Malformed(
            "crit and b64 headers (RFC 7515 §4.1.11, RFC 7797) are not supported",
        ));
    }
    let jwk_json = header.get("jwk");
    let jwk = public_jwk(jwk_json, algorithm)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Key("not a valid public key"))?;
    let jkt = jwk_json
        .and_then(jwk_thumbprint)
        .ok_or(ProofError::Key("a key with no RFC 7638 thumbprint"))?;

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
            use jsonwebtoken::errors::ErrorKind;
            return Err(match e.kind() {
                ErrorKind::InvalidSignature => ProofError::Signature,
                ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_) => {
                    ProofError::Key("not a valid public key for its alg")
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    ProofError::Algorithm(policy.algorithm_names().join(", "))
                }
                ErrorKind::InvalidToken => ProofError::Malformed("not three base64url parts"),
                ErrorKind::Base64(_) => ProofError::Malformed("a part is not base64url"),
                ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    ProofError::Malformed("the header or the payload is not the JSON a JWT has")
                }
                _ => ProofError::Malformed("refused by the JWT parser"),
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
    if let Some(expected) = request.nonce {
        let accepted = claims.nonce.as_deref().is_some_and(|nonce| match expected {
            ExpectedNonce::Exactly(expected) => {
                bool::from(nonce.as_bytes().ct_eq(expected.as_bytes()))
            }
            ExpectedNonce::IssuedBy(source) => source.accepts(nonce, now),
        });
        if !accepted {
            return Err(ProofError::UseNonce);
        }
    }
    let iat = numeric_date(&claims.iat).ok_or(ProofError::Claim("iat"))?;
    if iat.saturating_add(policy.max_age) < now || iat > now.saturating_add(policy.max_future) {
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
        iat,
    })
}

/// A JWT NumericDate (RFC 7519 §2): whole seconds, or a fraction of one (rounded down); not
/// negative.
fn numeric_date(number: &serde_json::Number) -> Option<u64> {
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    let seconds = number.as_f64().filter(|f| f.is_finite() && *f >= 0.0)?;
    // In range: a float at or above 2^64 saturates to u64::MAX, a date no proof is near.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked finite and not negative; saturates above u64::MAX"
    )]
    Some(seconds.floor() as u64)
}

/// The claims, each required one named when it is missing or of the wrong type (`iat` a
/// NumericDate: a string `iat` is refused, not read).
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
            object
                .get("iat")
                .and_then(serde_json::Value::as_number)
                .and_then(numeric_date)
                .is_some(),
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
    // Each member at its one length (RFC 7518 §6.2.1, RFC 8037 §2), so one key has one
    // encoding and one thumbprint: shorter or longer coordinates, or a DER-wrapped Ed25519 key,
    // could otherwise verify as the same key under another `jkt`.
    let decoded = |name: &'static str| {
        object
            .get(name)
            .and_then(serde_json::Value::as_str)
            .and_then(|value| URL_SAFE_NO_PAD.decode(value).ok())
            .ok_or(ProofError::Key("a member is missing or not base64url"))
    };
    match (kty, crv) {
        (Some("EC"), Some(curve)) => {
            let length = if curve == "P-256" { 32 } else { 48 };
            if decoded("x")?.len() != length || decoded("y")?.len() != length {
                return Err(ProofError::Key("an EC coordinate of the wrong length"));
            }
        }
        (Some("OKP"), _) => {
            if decoded("x")?.len() != 32 {
                return Err(ProofError::Key("an Ed25519 key that is not 32 bytes"));
            }
        }
        _ => {
            let (modulus, exponent) = (decoded("n")?, decoded("e")?);
            let bits = match modulus.first() {
                Some(&first) if first != 0 => {
                    (modulus.len() - 1) * 8 + (8 - first.leading_zeros() as usize)
                }
                _ => 0,
            };
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(ProofError::Key(
                    "an RSA modulus outside 2048 to 4096 bits, or with a leading zero",
                ));
            }
            if exponent.is_empty() || exponent.len() > 4 || exponent.first() == Some(&0) {
                return Err(ProofError::Key("an RSA exponent that is not 1 to 4 bytes"));
            }
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

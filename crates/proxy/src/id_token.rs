//! ID-token validation (OpenID Connect Core §3.1.3.7), against the provider's JWK Set, the
//! nonce sent with the authorization request and the caller's clock.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth_token_engine::UnixTime;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use crate::provider::Provider;

/// Clock skew allowed on `exp` and `iat`, in seconds.
const LEEWAY: u64 = 60;

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not a JWT, or claims that are not what the specification says they are.
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    /// The signature algorithm is not one accepted from this provider (`none`, HMAC and
    /// algorithms the provider does not publish are never accepted).
    #[error("the ID token's signature algorithm is not accepted")]
    AlgorithmNotAllowed,
    /// No key of the provider's JWK Set has this `kid` (the caller may refetch the set
    /// once: the provider may have rotated its keys).
    #[error("the ID token is signed with a key the provider does not publish")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the ID token's signature does not verify")]
    BadSignature,
    /// `iss` is not the provider (§3.1.3.7 step 2).
    #[error("the ID token was issued by `{0}`, not by this provider")]
    WrongIssuer(String),
    /// `aud` does not contain our client id, or `azp` names another client (steps 3–5).
    #[error("the ID token is not for this client")]
    WrongAudience,
    /// `exp` has passed (step 9).
    #[error("the ID token has expired")]
    Expired,
    /// `iat` is in the future (step 10).
    #[error("the ID token is issued in the future")]
    IssuedInTheFuture,
    /// `nonce` is missing or not the one sent (step 11): a replayed or injected token.
    #[error("the ID token's nonce is not the one this sign-in sent")]
    WrongNonce,
}

/// Whether `jwk` can verify `alg`: the key type must fit and a published `alg` must match.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, Algorithm::RS256 | Algorithm::PS256),
        AlgorithmParameters::EllipticCurve(ec) => {
            ec.curve == EllipticCurve::P256 && alg == Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(_) => alg == Algorithm::EdDSA,
        _ => false,
    };
    let use_fits = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature);
    let alg_fits = jwk
        .common
        .key_algorithm
        .is_none_or(|named| named.to_string() == format!("{alg:?}"));
    type_fits && use_fits && alg_fits
}

fn number(claims: &Value, name: &'static str) -> Result<Option<u64>, IdTokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(IdTokenError::Malformed("a time claim is not a number")),
    }
}

/// Validates `token` from `provider`, signed by a key of `jwks` (the provider's JWK Set
/// document), for the sign-in that sent `nonce`, at `now` (seconds since the epoch).
/// Returns the token's claims.
///
/// # Errors
///
/// [`IdTokenError`] naming the first check that failed.
pub fn validate(
    provider: &Provider,
    jwks: &[u8],
    token: &str,
    nonce: &str,
    now: UnixTime,
) -> Result<Value, IdTokenError> {
    let now = now.0;
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| IdTokenError::Malformed("not a signed JWT"))?;
    if !provider.id_token_algorithms.contains(&header.alg) {
        return Err(IdTokenError::AlgorithmNotAllowed);
    }
    let set: JwkSet = serde_json::from_slice(jwks)
        .map_err(|_| IdTokenError::Malformed("the provider's JWK Set does not parse"))?;
    let candidates: Vec<&Jwk> = set
        .keys
        .iter()
        .filter(|jwk| match &header.kid {
            Some(kid) => jwk.common.key_id.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(|jwk| key_fits(jwk, header.alg))
        .collect();
    if candidates.is_empty() {
        return Err(IdTokenError::UnknownKey);
    }
    let mut validation = Validation::new(header.alg);
    // Time, issuer and audience are checked below, against the caller's clock and the
    // provider's issuer rule.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut claims = None;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key, &validation) {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or(IdTokenError::BadSignature)?;

    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::Malformed("iss is missing"))?;
    let issuer_ok = provider
        .issuer_rule
        .as_ref()
        .is_some_and(|rule| rule.accepts(iss, &claims));
    if !issuer_ok {
        return Err(IdTokenError::WrongIssuer(iss.chars().take(200).collect()));
    }
    let audience: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Malformed("aud is missing")),
    };
    if !audience.contains(&provider.client_id.as_str()) {
        return Err(IdTokenError::WrongAudience);
    }
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != provider.client_id => return Err(IdTokenError::WrongAudience),
        None if audience.len() > 1 => return Err(IdTokenError::WrongAudience),
        _ => {}
    }
    let exp = number(&claims, "exp")?.ok_or(IdTokenError::Malformed("exp is missing"))?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err(IdTokenError::Expired);
    }
    let iat = number(&claims, "iat")?.ok_or(IdTokenError::Malformed("iat is missing"))?;
    if iat > now.saturating_add(LEEWAY) {
        return Err(IdTokenError::IssuedInTheFuture);
    }
    let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(nonce.as_bytes())) {
        return Err(IdTokenError::WrongNonce);
    }
    Ok(claims)
}

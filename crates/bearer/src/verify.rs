//! RFC 9068 §4: validating a JWT access token.
//!
//! - The key comes from a JWK Set the caller supplies; `jku`/`x5u` headers are never followed.
//! - Algorithm allowlist per key (a key's `alg`, or the one its curve implies), asymmetric
//!   only, so an HS256 token signed with a public key is refused.
//! - `typ` must be `at+jwt` (or `application/at+jwt`).
//! - `iss` must equal the expected issuer exactly; `aud` must contain this resource.
//! - `exp` (required), `nbf` and `iat` must be JSON numbers, checked against the caller's
//!   `now` with at most 60 seconds of leeway. (A string `exp` is refused, not ignored.)
//! - A token bound to a key (`cnf`: DPoP, RFC 9449 §6; mTLS, RFC 8705) is refused: presented as
//!   a bearer token, nobody proved the key.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth_oauth_types::{Scope, UnixTime};
use serde_json::Value;

/// Why a token was refused. Every variant is an `invalid_token` (RFC 6750 §3.1); `Display`
/// is a safe `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWT, or its header or claims are not the expected JSON.
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    /// The header names a key this verifier does not have. Refresh the JWK Set and retry.
    #[error("the access token was signed with an unknown key")]
    UnknownKey,
    /// The algorithm is not the one allowed for the key.
    #[error("the access token uses an algorithm not allowed for its key")]
    AlgorithmNotAllowed,
    /// The signature does not verify.
    #[error("the access token signature is invalid")]
    BadSignature,
    /// `typ` is not `at+jwt`.
    #[error("the token is not an RFC 9068 access token (typ must be at+jwt)")]
    WrongType,
    /// `iss` is not the expected issuer.
    #[error("the access token was issued by another authorization server")]
    WrongIssuer,
    /// `aud` does not contain this resource.
    #[error("the access token is not intended for this resource")]
    WrongAudience,
    /// `exp` is in the past.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// The authorization server's introspection says the token is not active (unknown,
    /// expired or revoked; RFC 7662 §2.2).
    #[error("the access token is not active")]
    Inactive,
    /// The token is bound to a key (a `cnf` claim or introspection member: DPoP's `jkt`, RFC
    /// 9449 §6, or a certificate's `x5t#S256`, RFC 8705): whoever presents it must prove that
    /// key, which a bearer token request does not. Refused, never accepted as a bearer token.
    #[error(
        "the access token is bound to a key (cnf) and cannot be used as a bearer token: present it with proof of that key"
    )]
    SenderConstrained,
    /// Presented with the DPoP scheme, the token is not bound to a key (no `cnf.jkt`): a
    /// bearer token goes with the Bearer scheme.
    #[error("the access token is not bound to a key: present it with the Bearer scheme")]
    NotBound,
    /// The authorization server said access ended (a Shared Signals event: the grant
    /// revoked, the user disabled, the client or the signing key removed).
    #[error("the access token has been revoked")]
    Revoked,
    /// Presented with the DPoP scheme, the token is bound some way this verifier cannot check
    /// (a `cnf` other than `jkt` alone), or is not a JWT.
    #[error(
        "this resource server accepts the DPoP scheme for JWT access tokens bound by cnf.jkt alone"
    )]
    UnsupportedBinding,
}

/// The identity a verified token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// `sub`: the user.
    pub subject: String,
    /// `client_id`: the client acting for the user.
    pub client_id: String,
    /// `scope`.
    pub scope: Scope,
    /// `aud`.
    pub audience: Vec<String>,
    /// `exp`.
    pub expires_at: u64,
    /// `jti`, if present.
    pub jti: Option<String>,
    /// Who stands behind the token: its `sub_type` claim (or introspection member).
    pub subject_type: SubjectType,
    /// `iat`, if present: a revocation of a user or client ends the tokens issued before it.
    pub issued_at: Option<u64>,
    /// The `kid` of the key that signed it (a JWT's header; none for introspected tokens).
    pub key_id: Option<String>,
}

/// Who stands behind an access token: a user who authorized it, or the client acting for
/// itself (`client_credentials`). mcpauth's authorization server says so in the `sub_type`
/// claim; other servers may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectType {
    /// `sub_type: user`: a user authorized it; `sub` is the user.
    User,
    /// `sub_type: client`: no user; the client acts for itself.
    Client,
    /// No (known) `sub_type`: the authorization server does not say.
    Unstated,
}

impl SubjectType {
    pub(crate) fn from_claims(claims: &Value) -> Self {
        match claims.get("sub_type").and_then(Value::as_str) {
            Some("user") => Self::User,
            Some("client") => Self::Client,
            _ => Self::Unstated,
        }
    }
}

impl VerifiedToken {
    /// Whether the authorization server says a user stands behind the token. `false` for
    /// machine tokens and for tokens whose issuer does not say: where a person must have
    /// agreed, refuse both.
    #[must_use]
    pub fn has_user(&self) -> bool {
        self.subject_type == SubjectType::User
    }
}

struct VerificationKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

/// Verifies access tokens for one resource from one issuer.
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    leeway: u64,
    keys: HashMap<String, VerificationKey>,
    keyless: Vec<VerificationKey>,
    /// HS256 secrets shared with the authorization server, by `kid`; kept across JWK Set
    /// refreshes (they are never published).
    shared: HashMap<String, VerificationKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn algorithm_for(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        _ => None,
    }?;
    match jwk.common.key_algorithm.map(|a| a.to_string()) {
        None => Some(implied),
        Some(named) if named == format!("{implied:?}") => Some(implied),
        Some(named) if matches!(implied, Algorithm::RS256) => match named.as_str() {
            "RS384" => Some(Algorithm::RS384),
            "RS512" => Some(Algorithm::RS512),
            "PS256" => Some(Algorithm::PS256),
            _ => None,
        },
        Some(_) => None,
    }
}

pub(crate) fn number(claims: &Value, name: &str) -> Result<Option<u64>, VerifyError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(VerifyError::Malformed),
    }
}

pub(crate) fn string(claims: &Value, name: &str) -> Result<String, VerifyError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(VerifyError::Malformed)
}

impl TokenVerifier {
    /// A verifier for tokens from `issuer` whose audience includes `audience` (the resource
    /// identifier of this MCP server). It has no keys until [`Self::set_jwks`].
    #[must_use]
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: 30,
            keys: HashMap::new(),
            keyless: Vec::new(),
            shared: HashMap::new(),
        }
    }

    /// The issuer whose tokens this verifier takes.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Clock-skew leeway in seconds, capped at 60 (DESIGN §3b).
    pub fn leeway(&mut self, seconds: u64) -> &mut Self {
        self.leeway = seconds.min(60);
        self
    }

    /// Replaces the keys with the signing keys of a JWK Set document. Keys for encryption,
    /// symmetric keys and keys of unknown types are skipped. Returns how many were loaded.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] when the document is not a JWK Set.
    pub fn set_jwks(&mut self, document: &[u8]) -> Result<usize, VerifyError> {
        let set: JwkSet = serde_json::from_slice(document).map_err(|_| VerifyError::Malformed)?;
        self.keys.clear();
        self.keyless.clear();
        for jwk in &set.keys {
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
            {
                continue;
            }
            let (Some(algorithm), Ok(key)) = (algorithm_for(jwk), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    self.keys
                        .insert(kid.clone(), VerificationKey { key, algorithm });
                }
                None => self.keyless.push(VerificationKey { key, algorithm }),
            }
        }
        Ok(self.keys.len() + self.keyless.len())
    }

    /// Accepts HS256 tokens with header `kid` signed with `secret` (shared with the
    /// authorization server, which never publishes it).
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] for a secret shorter than 32 bytes (RFC 7518 §3.2).
    pub fn add_shared_secret(
        &mut self,
        kid: impl Into<String>,
        secret: &[u8],
    ) -> Result<(), VerifyError> {
        if secret.len() < 32 {
            return Err(VerifyError::Malformed);
        }
        self.shared.insert(
            kid.into(),
            VerificationKey {
                key: DecodingKey::from_secret(secret),
                algorithm: Algorithm::HS256,
            },
        );
        Ok(())
    }

    /// Whether a key with this id is loaded.
    #[must_use]
    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The `kid` of a token's header, to decide whether to refresh the JWK Set.
    #[must_use]
    pub fn key_id_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
    }

    /// Verifies `token` at time `now`.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first check that failed.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<VerifiedToken, VerifyError> {
        let (verified, claims) = self.verify_claims(token, now)?;
        if claims.get("cnf").is_some() {
            return Err(VerifyError::SenderConstrained);
        }
        Ok(verified)
    }

    /// Verifies a token presented with the DPoP scheme (RFC 9449 §7.1): as
    /// [`verify`](Self::verify), and it must be bound to a key by `cnf.jkt` (§6.1), returned
    /// beside it. The caller then checks the request's DPoP proof (`mcpauth-dpop`) with this
    /// token's hash and that the proof's key has this thumbprint.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming the first check that failed; [`VerifyError::NotBound`] for a
    /// token with no `cnf.jkt`.
    pub fn verify_bound(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<(VerifiedToken, String), VerifyError> {
        let (verified, claims) = self.verify_claims(token, now)?;
        let cnf = claims.get("cnf").ok_or(VerifyError::NotBound)?;
        // Bound by DPoP's `jkt` and nothing else: a certificate binding (RFC 8705), alone or
        // beside it, is one a DPoP proof does not discharge.
        let jkt = cnf
            .as_object()
            .filter(|members| members.len() == 1)
            .and_then(|members| members.get("jkt"))
            .and_then(Value::as_str)
            .ok_or(VerifyError::UnsupportedBinding)?;
        Ok((verified, jkt.to_owned()))
    }

    /// The header and claims of `token` if its `typ` passes `typ_ok` and its signature verifies
    /// with one of the keys held (by `kid`, or any key for a token without one), under the
    /// algorithm allowed for that key. Nothing else is checked.
    pub(crate) fn signed_claims(
        &self,
        token: &str,
        typ_ok: impl Fn(&str) -> bool,
    ) -> Result<(jsonwebtoken::Header, Value), VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if !header.typ.as_deref().is_some_and(typ_ok) {
            return Err(VerifyError::WrongType);
        }
        let candidates: Vec<&VerificationKey> = match &header.kid {
            Some(kid) => vec![
                self.keys
                    .get(kid)
                    .or_else(|| self.shared.get(kid))
                    .ok_or(VerifyError::UnknownKey)?,
            ],
            None => self.keyless.iter().chain(self.keys.values()).collect(),
        };
        let mut claims = None;
        let mut last_error = VerifyError::UnknownKey;
        for candidate in candidates {
            if candidate.algorithm != header.alg {
                last_error = VerifyError::AlgorithmNotAllowed;
                continue;
            }
            let mut validation = Validation::new(candidate.algorithm);
            // Time, issuer and audience are checked below against the caller's `now`.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            match jsonwebtoken::decode::<Value>(token, &candidate.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => {
                    last_error = match e.kind() {
                        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                            VerifyError::BadSignature
                        }
                        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                            VerifyError::AlgorithmNotAllowed
                        }
                        _ => VerifyError::Malformed,
                    }
                }
            }
        }
        let claims = claims.ok_or(last_error)?;
        Ok((header, claims))
    }

    /// Every check but the `cnf` one; the claims beside the token.
    fn verify_claims(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<(VerifiedToken, Value), VerifyError> {
        let now = now.0;
        let (header, claims) = self.signed_claims(token, |typ| {
            typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
        })?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(VerifyError::WrongIssuer);
        }
        let audience: Vec<String> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => return Err(VerifyError::WrongAudience),
        };
        if !audience.contains(&self.audience) {
            return Err(VerifyError::WrongAudience);
        }
        let exp = number(&claims, "exp")?.ok_or(VerifyError::Malformed)?;
        if exp.saturating_add(self.leeway) <= now {
            return Err(VerifyError::Expired);
        }
        for name in ["nbf", "iat"] {
            if number(&claims, name)?.is_some_and(|t| t > now.saturating_add(self.leeway)) {
                return Err(VerifyError::NotYetValid);
            }
        }
        let scope = match claims.get("scope") {
            None => Scope::default(),
            Some(Value::String(s)) if s.is_empty() => Scope::default(),
            Some(Value::String(s)) => Scope::parse(s).map_err(|_| VerifyError::Malformed)?,
            Some(_) => return Err(VerifyError::Malformed),
        };
        let verified = VerifiedToken {
            subject: string(&claims, "sub")?,
            client_id: string(&claims, "client_id")?,
            scope,
            audience,
            expires_at: exp,
            jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
            subject_type: SubjectType::from_claims(&claims),
            issued_at: number(&claims, "iat")?,
            key_id: header.kid,
        };
        Ok((verified, claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn verification_never_panics_on_arbitrary_tokens(token in "\\PC{0,300}", jwks in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut verifier = TokenVerifier::new("https://as.example", "https://rs.example/mcp");
            let _ = verifier.set_jwks(&jwks);
            prop_assert!(verifier.verify(&token, UnixTime(0)).is_err());
        }

        #[test]
        fn verification_never_panics_on_jwt_shaped_tokens(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,60}", c in "[A-Za-z0-9_-]{0,90}") {
            let verifier = TokenVerifier::new("https://as.example", "https://rs.example/mcp");
            let token = format!("{a}.{b}.{c}");
            prop_assert!(verifier.verify(&token, UnixTime(0)).is_err());
        }
    }
}

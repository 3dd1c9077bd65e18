//! RFC 7591 §2.3 and §3.1.1: software statements, signed JWTs that vouch for a client's
//! metadata. Accepted only from configured issuers; their claims take precedence over the
//! same members sent in plain JSON ("the values in the software statement take precedence").

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth_oauth_types::{ClientMetadata, OAuthError, RegistrationErrorCode, UnixTime};
use serde_json::Value;

use crate::RegistrationError;

/// An issuer whose software statements are trusted, with its public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedStatementIssuer {
    /// The statement's `iss`.
    pub issuer: String,
    /// The issuer's JWK Set document.
    pub jwks: Value,
}

impl TrustedStatementIssuer {
    /// An issuer and its JWK Set.
    #[must_use]
    pub fn new(issuer: impl Into<String>, jwks: Value) -> Self {
        Self {
            issuer: issuer.into(),
            jwks,
        }
    }
}

/// Claims of the JWT itself, not client metadata.
const JWT_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

fn invalid(description: &'static str) -> RegistrationError {
    OAuthError::new(RegistrationErrorCode::InvalidSoftwareStatement, description)
}

fn unapproved(description: &'static str) -> RegistrationError {
    OAuthError::new(
        RegistrationErrorCode::UnapprovedSoftwareStatement,
        description,
    )
}

/// Verifies `metadata.software_statement` against `issuers` at `now` and overlays its claims
/// on the metadata, like [`verify_software_statement`], without saying who signed it.
///
/// # Errors
///
/// As [`verify_software_statement`].
pub fn apply_software_statement(
    metadata: ClientMetadata,
    issuers: &[TrustedStatementIssuer],
    required: bool,
    now: UnixTime,
) -> Result<ClientMetadata, RegistrationError> {
    verify_software_statement(metadata, issuers, required, now).map(|(metadata, _)| metadata)
}

/// Verifies `metadata.software_statement` against `issuers` at `now` and overlays its claims
/// on the metadata, returning it with the issuer of a verified statement (`None` when no
/// statement was verified). Without trusted issuers a statement is ignored (§3.1.1: a server that
/// does not support them "MUST ignore the software statement"), unless `required`.
///
/// # Errors
///
/// `invalid_software_statement` for a malformed, badly signed or expired statement;
/// `unapproved_software_statement` for an untrusted issuer or a missing required statement.
pub fn verify_software_statement(
    metadata: ClientMetadata,
    issuers: &[TrustedStatementIssuer],
    required: bool,
    now: UnixTime,
) -> Result<(ClientMetadata, Option<String>), RegistrationError> {
    let Some(statement) = metadata.software_statement.clone() else {
        return if required {
            Err(unapproved(
                "a software statement from a trusted issuer is required",
            ))
        } else {
            Ok((metadata, None))
        };
    };
    if issuers.is_empty() {
        return if required {
            Err(unapproved("no software statement issuer is trusted"))
        } else {
            Ok((metadata, None))
        };
    }
    let unverified = jsonwebtoken::dangerous::insecure_decode::<Value>(&statement)
        .map_err(|_| invalid("the software statement is not a JWT"))?;
    let issuer = unverified
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the software statement has no iss"))?
        .to_owned();
    let trusted = issuers
        .iter()
        .find(|t| t.issuer == issuer.as_str())
        .ok_or_else(|| unapproved("the software statement's issuer is not trusted here"))?;
    let alg = unverified.header.alg;
    if !matches!(
        alg,
        Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::PS256
            | Algorithm::EdDSA
    ) {
        return Err(invalid(
            "the software statement must be signed with an asymmetric algorithm",
        ));
    }
    let keys: JwkSet = serde_json::from_value(trusted.jwks.clone())
        .map_err(|_| unapproved("the trusted issuer's keys do not parse"))?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = keys
        .keys
        .iter()
        .filter(|k| unverified.header.kid.is_none() || k.common.key_id == unverified.header.kid)
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .find_map(|key| jsonwebtoken::decode::<Value>(&statement, &key, &validation).ok())
        .ok_or_else(|| invalid("the software statement's signature does not verify"))?
        .claims;
    match claims.get("exp") {
        None => {}
        Some(exp) => match exp.as_u64() {
            Some(exp) if exp > now.0 => {}
            Some(_) => return Err(invalid("the software statement has expired")),
            None => return Err(invalid("the software statement's exp is not a number")),
        },
    }
    let Value::Object(mut merged) =
        serde_json::to_value(&metadata).map_err(|_| invalid("metadata does not serialize"))?
    else {
        return Err(invalid("metadata does not serialize"));
    };
    if let Value::Object(statement_claims) = claims {
        for (name, value) in statement_claims {
            if !JWT_CLAIMS.contains(&name.as_str()) && name != "software_statement" {
                merged.insert(name, value);
            }
        }
    }
    let metadata = serde_json::from_value(Value::Object(merged))
        .map_err(|_| invalid("the software statement's claims are not valid client metadata"))?;
    Ok((metadata, Some(issuer)))
}

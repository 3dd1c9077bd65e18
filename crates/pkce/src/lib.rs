#![doc = include_str!("../README.md")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_oauth_types::{CodeVerifier, constant_time_eq};
use sha2::{Digest, Sha256};

/// Why a PKCE parameter was refused. `Display` is a public `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// `code_challenge_method` is `plain` or unknown.
    #[error("code_challenge_method must be S256 (plain is not supported)")]
    UnsupportedMethod,
    /// `code_challenge` is present without `code_challenge_method`. RFC 7636 §4.3 would
    /// default to `plain`, a downgrade, so it is refused.
    #[error("code_challenge_method is required and must be S256")]
    MissingMethod,
    /// The challenge is not 43 characters of base64url (a SHA-256 digest).
    #[error("code_challenge must be the 43-character base64url SHA-256 of the code_verifier")]
    MalformedChallenge,
    /// The verifier is not 43 to 128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
    #[error("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")]
    MalformedVerifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// A validated `S256` code challenge (RFC 7636 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Validates a `code_challenge` and its `code_challenge_method` from an authorization
    /// request.
    ///
    /// # Errors
    ///
    /// [`PkceError::MissingMethod`], [`PkceError::UnsupportedMethod`] or
    /// [`PkceError::MalformedChallenge`].
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        match method {
            None => return Err(PkceError::MissingMethod),
            Some("S256") => {}
            Some(_) => return Err(PkceError::UnsupportedMethod),
        }
        // BASE64URL(SHA256(...)) without padding is always exactly 43 characters.
        if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).map(|d| d.len()) != Ok(32) {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Rebuilds a challenge from storage without validation of the method (it is always
    /// `S256` when stored by this crate).
    #[must_use]
    pub fn from_stored(challenge: String) -> Self {
        Self(challenge)
    }

    /// The challenge string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: checks `BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge`,
    /// in constant time.
    ///
    /// # Errors
    ///
    /// [`PkceError::MalformedVerifier`] or [`PkceError::Mismatch`].
    pub fn verify(&self, verifier: &CodeVerifier) -> Result<(), PkceError> {
        let computed = challenge_for(verifier)?;
        if constant_time_eq(computed.0.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }
}

/// Computes the `S256` challenge of a verifier (RFC 7636 §4.2).
///
/// # Errors
///
/// [`PkceError::MalformedVerifier`] when the verifier breaks RFC 7636 §4.1.
pub fn challenge_for(verifier: &CodeVerifier) -> Result<CodeChallenge, PkceError> {
    let value = verifier.secret();
    let valid_len = (43..=128).contains(&value.len());
    if !valid_len
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(PkceError::MalformedVerifier);
    }
    Ok(CodeChallenge(
        URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Computed independently of this crate:
    // printf %s "$VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

    // RFC 7636 §4.2: code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier))).
    #[test]
    fn computes_s256_as_base64url_of_sha256() -> Result<(), PkceError> {
        let challenge = challenge_for(&CodeVerifier::new(RFC_VERIFIER.into()))?;
        assert_eq!(challenge.as_str(), RFC_CHALLENGE);
        Ok(())
    }

    // OAuth 2.1 §4.1.1: S256 only.
    #[test]
    fn rejects_plain_code_challenge_method() {
        assert_eq!(
            CodeChallenge::parse(RFC_VERIFIER, Some("plain")),
            Err(PkceError::UnsupportedMethod)
        );
    }

    // DESIGN §3b: a challenge without a method would default to plain; refuse instead.
    #[test]
    fn rejects_code_challenge_without_method() {
        assert_eq!(
            CodeChallenge::parse(RFC_CHALLENGE, None),
            Err(PkceError::MissingMethod)
        );
    }

    #[test]
    fn rejects_wrong_verifier() -> Result<(), PkceError> {
        let challenge = CodeChallenge::parse(RFC_CHALLENGE, Some("S256"))?;
        let wrong = CodeVerifier::new("a".repeat(43));
        assert_eq!(challenge.verify(&wrong), Err(PkceError::Mismatch));
        Ok(())
    }

    // RFC 7636 §4.1: 43..=128 unreserved characters.
    #[test]
    fn rejects_malformed_verifiers() {
        for bad in ["short", &"a".repeat(129), &format!("{}+", "a".repeat(43))] {
            assert_eq!(
                challenge_for(&CodeVerifier::new(bad.to_string())).err(),
                Some(PkceError::MalformedVerifier)
            );
        }
    }

    #[test]
    fn rejects_malformed_challenges() {
        for bad in ["", "abc", &"*".repeat(43), &"A".repeat(44)] {
            assert_eq!(
                CodeChallenge::parse(bad, Some("S256")),
                Err(PkceError::MalformedChallenge)
            );
        }
    }

    proptest! {
        #[test]
        fn challenge_parser_never_panics(challenge in "\\PC{0,64}", method in proptest::option::of("\\PC{0,8}")) {
            let _ = CodeChallenge::parse(&challenge, method.as_deref());
        }

        #[test]
        fn every_valid_verifier_verifies_against_its_own_challenge(v in "[A-Za-z0-9._~-]{43,128}") {
            let challenge = challenge_for(&CodeVerifier::new(v.clone()));
            prop_assert!(challenge.is_ok());
            if let Ok(challenge) = challenge {
                prop_assert!(challenge.verify(&CodeVerifier::new(v)).is_ok());
            }
        }
    }
}

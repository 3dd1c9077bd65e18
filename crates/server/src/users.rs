//! User accounts: normalised emails and argon2id password hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The email is not an address.
    #[error("`{0}` is not an email address")]
    BadEmail(String),
    /// The password is too short.
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Trims and lower-cases an email address, and checks its shape.
///
/// # Errors
///
/// [`UserError::BadEmail`].
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(UserError::BadEmail(email.chars().take(64).collect()))
    }
}

/// Hashes a password with argon2id (OWASP parameters: the `argon2` crate's defaults, 19 MiB,
/// 2 iterations) and a random salt from the OS.
///
/// # Errors
///
/// [`UserError::WeakPassword`] or [`UserError::Hash`].
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| UserError::Hash("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Checks a password against a stored hash (constant-time inside argon2).
#[must_use]
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A valid hash of a random password, to verify against when the user does not exist, so a
/// failed login takes as long whether or not the email is registered.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("dummy-password-never-matches").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_emails() -> Result<(), UserError> {
        assert_eq!(
            normalize_email("  Alice@Example.COM ")?,
            "alice@example.com"
        );
        assert!(normalize_email("alice").is_err());
        assert!(normalize_email("alice@localhost").is_err());
        assert!(normalize_email("a b@example.com").is_err());
        Ok(())
    }

    #[test]
    fn hashes_with_argon2id_and_verifies() -> Result<(), UserError> {
        let hash = hash_password("correct horse battery")?;
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong password", &hash));
        assert!(matches!(
            hash_password("short"),
            Err(UserError::WeakPassword)
        ));
        Ok(())
    }
}

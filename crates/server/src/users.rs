//! User accounts: normalised emails and argon2id password hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Passwords shorter than this are refused (NIST SP 800-63B §3.1.1.2: at least 8).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Passwords longer than this are refused: far beyond any passphrase, and it bounds the work
/// one login attempt can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The most common passwords of breach corpora that are 8 characters or longer: refused
/// (NIST SP 800-63B §3.1.1.2 asks to check passwords against such a list; composition rules
/// are not asked for, and not imposed).
const COMMON_PASSWORDS: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "password",
    "password1",
    "password12",
    "password123",
    "password!",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "iloveyou",
    "iloveyou1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "abc12345",
    "abcd1234",
    "11111111",
    "00000000",
    "88888888",
    "87654321",
    "123123123",
    "987654321",
    "changeme",
    "letmein1",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "computer",
    "michelle",
    "jennifer",
    "corvette",
    "mercedes",
    "master123",
    "admin123",
    "administrator",
    "secret123",
    "aa123456",
    "asdfghjkl",
    "asdf1234",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "1234qwer",
    "qwer1234",
    "password1234",
    "monkey123",
    "dragon123",
    "shadow123",
    "liverpool",
    "chocolate",
    "butterfly",
    "passwort",
    "motdepasse",
    "contraseña",
    "00000000000",
    "123454321",
    "zxcvbnm1",
];

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
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes long")]
    LongPassword,
    /// The password is one of the most common ones.
    #[error(
        "the password is too easy to guess: it is one of the most common passwords; choose a few unrelated words"
    )]
    CommonPassword,
    /// The password contains the email address, or the part of it before the `@`.
    #[error(
        "the password is too easy to guess: it contains the email address (or its part before the @)"
    )]
    PasswordContainsEmail,
    /// A user with this email already exists.
    #[error(
        "a user with the email `{0}` already exists: `mcpauth-server user passwd {0}` sets a new password"
    )]
    UserExists(String),
    /// No user has this email.
    #[error("no user has the email `{0}`")]
    UnknownUser(String),
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

/// The password policy: at least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] bytes, not a common password, and not the email address or its
/// local part (case-insensitively). No composition rules.
///
/// # Errors
///
/// [`UserError::WeakPassword`], [`UserError::LongPassword`] or
/// [`UserError::CommonPassword`], [`UserError::PasswordContainsEmail`].
pub fn check_password_policy(password: &str, email: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::LongPassword);
    }
    let lowered = password.to_lowercase();
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    let contains_identity =
        lowered.contains(&email) || (local.chars().count() >= 4 && lowered.contains(local));
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err(UserError::CommonPassword);
    }
    if contains_identity {
        return Err(UserError::PasswordContainsEmail);
    }
    Ok(())
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

/// The engine's view of the server's users ([`mcpauth_token_engine::SubjectStatus`]): a
/// subject is active while its account exists and is not disabled.
#[derive(Debug, Clone)]
pub struct ActiveUsers(pub mcpauth_store_sql::SqlStore);

#[async_trait::async_trait]
impl mcpauth_token_engine::SubjectStatus for ActiveUsers {
    async fn is_active(
        &self,
        subject: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self
            .0
            .find_user_by_id(subject)
            .await?
            .is_some_and(|user| !user.disabled))
    }
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
    fn the_password_policy_refuses_short_long_common_and_identity_passwords() {
        let email = "alice.smith@example.com";
        assert!(check_password_policy("correct horse battery", email).is_ok());
        assert!(matches!(
            check_password_policy("short", email),
            Err(UserError::WeakPassword)
        ));
        assert!(matches!(
            check_password_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1), email),
            Err(UserError::LongPassword)
        ));
        for common in ["Password123", "12345678"] {
            assert!(
                matches!(
                    check_password_policy(common, email),
                    Err(UserError::CommonPassword)
                ),
                "{common}"
            );
        }
        for identity in ["alice.smith2024", "ALICE.SMITH@EXAMPLE.COM!"] {
            assert!(
                matches!(
                    check_password_policy(identity, email),
                    Err(UserError::PasswordContainsEmail)
                ),
                "{identity}"
            );
        }
        // Every listed password is long enough to pass the length rule: the list is what refuses it.
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| p.chars().count() >= MIN_PASSWORD_CHARS)
        );
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

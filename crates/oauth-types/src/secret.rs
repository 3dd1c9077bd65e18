//! Secret newtypes (DESIGN §2b): `Debug` prints `[redacted]`, comparison is constant-time,
//! and exposing the value is an explicit, named call.

use subtle::ConstantTimeEq;

/// Compares two byte strings in time that depends only on their lengths.
///
/// Use it for every comparison of a secret with a value a request controls.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            #[must_use]
            pub fn new(value: String) -> Self {
                Self(value)
            }

            /// Returns the secret value.
            ///
            /// # Security Warning
            ///
            /// Leaking this value may compromise the security of the OAuth flow: never log
            /// it, put it in an error, or compare it with `==`.
            #[must_use]
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Consumes the wrapper and returns the secret value (see [`Self::secret`]).
            #[must_use]
            pub fn into_secret(self) -> String {
                self.0
            }

            /// Compares with another value in constant time.
            #[must_use]
            pub fn ct_eq_str(&self, other: &str) -> bool {
                constant_time_eq(self.0.as_bytes(), other.as_bytes())
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth client secret (RFC 6749 §2.3.1).
    #[derive(Clone)]
    ClientSecret
);
secret_type!(
    /// An authorization code (RFC 6749 §4.1.2). Single use, so it is intentionally not
    /// `Clone`.
    AuthorizationCode
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5).
    #[derive(Clone)]
    RefreshToken
);
secret_type!(
    /// An access token (RFC 6749 §1.4).
    #[derive(Clone)]
    AccessToken
);
secret_type!(
    /// A device code (RFC 8628 §3.2). Polled repeatedly, so it is `Clone`.
    #[derive(Clone)]
    DeviceCode
);
secret_type!(
    /// A JWT presented as an authorization grant (RFC 7523 §2.1): an identity assertion, a
    /// workload token. Whoever holds it may obtain tokens with it, so it is never printed.
    Assertion
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1). Single use, so it is intentionally not `Clone`.
    CodeVerifier
);
secret_type!(
    /// Any other secret an operator configures (an initial access token, a key-encryption
    /// key, a metrics token): the one wrapper for them, read from configuration files as a
    /// plain string.
    #[derive(Clone, serde::Deserialize)]
    #[serde(transparent)]
    Secret
);

impl Secret {
    /// The secret value (the name an operator's code reads best with).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Compared in constant time, like every secret here.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq_str(&other.0)
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_secrets() {
        let secret = ClientSecret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
        let code = AuthorizationCode::new("abc".into());
        assert_eq!(format!("{code:?}"), "AuthorizationCode([redacted])");
    }

    #[test]
    fn compares_in_constant_time_helper() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(RefreshToken::new("x".into()).ct_eq_str("x"));
        assert_eq!(Secret::from("a"), Secret::new("a".into()));
        assert_ne!(Secret::from("a"), Secret::from("b"));
        assert_eq!(format!("{:?}", Secret::from("a")), "Secret([redacted])");
    }
}

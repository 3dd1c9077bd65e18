//! RFC 6749 §3.3: access-token scope, a space-delimited list of scope tokens
//! (`scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`).

use std::fmt;

/// A set of scope tokens, in the order first given, without duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Scope {
    tokens: Vec<String>,
}

/// A scope string is not valid RFC 6749 §3.3 syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// A character outside `%x21 / %x23-5B / %x5D-7E` appears in a scope token.
    #[error(
        "scope contains a character that RFC 6749 §3.3 does not allow (only printable ASCII except `\"` and `\\`, separated by single spaces)"
    )]
    InvalidCharacter,
    /// Two spaces in a row, or a leading or trailing space.
    #[error("scope tokens must be separated by exactly one space")]
    EmptyToken,
    /// More tokens than accepted.
    #[error("scope has more than 64 tokens")]
    TooManyTokens,
}

const MAX_TOKENS: usize = 64;

impl Scope {
    /// Parses a `scope` parameter.
    ///
    /// # Errors
    ///
    /// A [`ScopeError`] when the syntax is not RFC 6749 §3.3.
    pub fn parse(value: &str) -> Result<Self, ScopeError> {
        let mut tokens: Vec<String> = Vec::new();
        for token in value.split(' ') {
            if token.is_empty() {
                return Err(ScopeError::EmptyToken);
            }
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(ScopeError::InvalidCharacter);
            }
            if !tokens.iter().any(|t| t == token) {
                if tokens.len() == MAX_TOKENS {
                    return Err(ScopeError::TooManyTokens);
                }
                tokens.push(token.to_owned());
            }
        }
        Ok(Self { tokens })
    }

    /// A scope as stored: its RFC 6749 §3.3 string, or the empty string for no scope (a
    /// grant may carry none).
    ///
    /// # Errors
    ///
    /// A [`ScopeError`] when a non-empty value is not RFC 6749 §3.3 syntax.
    pub fn from_stored(value: &str) -> Result<Self, ScopeError> {
        if value.is_empty() {
            Ok(Self::default())
        } else {
            Self::parse(value)
        }
    }

    /// Builds a scope from tokens that are already known to be valid (server configuration).
    #[must_use]
    pub fn from_tokens<S: Into<String>>(tokens: impl IntoIterator<Item = S>) -> Self {
        let mut scope = Self::default();
        for token in tokens {
            let token = token.into();
            if !scope.tokens.contains(&token) {
                scope.tokens.push(token);
            }
        }
        scope
    }

    /// The tokens, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(String::as_str)
    }

    /// Whether there are no tokens.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `token` is in the set.
    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.tokens.iter().any(|t| t == token)
    }

    /// Whether every token of `self` is in `other`.
    #[must_use]
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.tokens.iter().all(|t| other.contains(t))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tokens.join(" "))
    }
}

/// Stored and sent as its space-separated string (the empty string for no scope).
impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_stored(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_space_delimited_tokens_in_order_without_duplicates() -> Result<(), ScopeError> {
        let scope = Scope::parse("mcp:tools read mcp:tools")?;
        assert_eq!(scope.iter().collect::<Vec<_>>(), ["mcp:tools", "read"]);
        assert_eq!(scope.to_string(), "mcp:tools read");
        Ok(())
    }

    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    #[test]
    fn rejects_characters_outside_the_scope_token_grammar() {
        assert_eq!(Scope::parse("a\"b"), Err(ScopeError::InvalidCharacter));
        assert_eq!(Scope::parse("a\\b"), Err(ScopeError::InvalidCharacter));
        assert_eq!(Scope::parse("caf\u{e9}"), Err(ScopeError::InvalidCharacter));
        assert_eq!(Scope::parse("a  b"), Err(ScopeError::EmptyToken));
        assert_eq!(Scope::parse(" a"), Err(ScopeError::EmptyToken));
    }

    #[test]
    fn a_stored_scope_round_trips_through_serde_and_may_be_empty() {
        let scope = Scope::parse("mcp:tools read").unwrap_or_default();
        let json = serde_json::to_string(&scope).unwrap_or_default();
        assert_eq!(json, "\"mcp:tools read\"");
        assert_eq!(serde_json::from_str::<Scope>(&json).ok(), Some(scope));
        assert_eq!(
            serde_json::from_str::<Scope>("\"\"").ok(),
            Some(Scope::default())
        );
        assert!(serde_json::from_str::<Scope>("\"a  b\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(input in "\\PC{0,80}") {
            if let Ok(scope) = Scope::parse(&input) {
                prop_assert_eq!(Scope::parse(&scope.to_string()), Ok(scope));
            }
        }
    }
}

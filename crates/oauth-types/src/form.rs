//! RFC 6749 §3.1 / §3.2 / Appendix B: `application/x-www-form-urlencoded` bodies and query
//! strings, parsed strictly.
//!
//! - The input is size-limited ([`MAX_FORM_BYTES`]) and so is the number of parameters.
//! - "Request and response parameters MUST NOT be included more than once": a repeated
//!   parameter is an error naming it. Only parameters defined as multi-valued (RFC 8707
//!   `resource`) may repeat.
//! - "Parameters sent without a value MUST be treated as if they were omitted".
//! - Unknown parameters are kept but ignored by the typed requests.

use std::fmt;

/// Largest form body or query string accepted, in bytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Most parameters accepted in one form.
const MAX_PARAMS: usize = 128;
/// Parameters that RFCs define as repeatable (RFC 8707 `resource`, RFC 8693 `audience`).
const MULTI_VALUED: &[&str] = &["resource", "audience"];

/// A request could not be parsed. Every variant maps to `invalid_request` (or the endpoint's
/// equivalent); [`fmt::Display`] is a public `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is larger than the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The input has more parameters than accepted.
    TooManyParameters,
    /// A parameter that must appear at most once appears more than once.
    Repeated(String),
    /// A required parameter is missing.
    Missing(&'static str),
    /// A parameter has a value that is not allowed.
    Invalid {
        /// The parameter.
        parameter: &'static str,
        /// Why the value is wrong, and what is expected.
        reason: &'static str,
    },
    /// The body is not the JSON document expected.
    Json(String),
    /// The `Authorization` header is not valid HTTP Basic credentials.
    BadBasicCredentials(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "request is larger than {limit} bytes"),
            Self::TooManyParameters => write!(f, "request has more than {MAX_PARAMS} parameters"),
            Self::Repeated(name) => write!(f, "parameter `{name}` is included more than once"),
            Self::Missing(name) => write!(f, "required parameter `{name}` is missing"),
            Self::Invalid { parameter, reason } => write!(f, "parameter `{parameter}` {reason}"),
            Self::Json(reason) => write!(f, "request body is not valid: {reason}"),
            Self::BadBasicCredentials(reason) => {
                write!(
                    f,
                    "Authorization header is not valid Basic credentials: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parsed form parameters, in order, without empty values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
}

impl fmt::Debug for FormParams {
    // Values may be secrets (client_secret, code, refresh_token): print names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormParams")
            .field(
                "names",
                &self
                    .pairs
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl FormParams {
    /// Parses a form body or query string (without the leading `?`).
    ///
    /// # Errors
    ///
    /// [`ParseError::TooLarge`], [`ParseError::TooManyParameters`] or
    /// [`ParseError::Repeated`].
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        if input.len() > MAX_FORM_BYTES {
            return Err(ParseError::TooLarge {
                limit: MAX_FORM_BYTES,
            });
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if pairs.len() == MAX_PARAMS {
                return Err(ParseError::TooManyParameters);
            }
            if !MULTI_VALUED.contains(&name.as_ref()) && pairs.iter().any(|(k, _)| *k == name) {
                return Err(ParseError::Repeated(truncate_for_display(&name)));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of a single-valued parameter.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required single-valued parameter.
    ///
    /// # Errors
    ///
    /// [`ParseError::Missing`] when it is absent.
    pub fn require(&self, name: &'static str) -> Result<&str, ParseError> {
        self.get(name).ok_or(ParseError::Missing(name))
    }

    /// All values of a multi-valued parameter, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the parameter is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Builds a form from pairs (for tests and clients); no validation.
    #[must_use]
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Error messages echo parameter names; cap them so a hostile name cannot bloat a response.
fn truncate_for_display(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
    #[test]
    fn rejects_repeated_parameters() {
        assert_eq!(
            FormParams::parse(b"code=a&code=b"),
            Err(ParseError::Repeated("code".into()))
        );
    }

    // RFC 8707 §2: "multiple resource parameters MAY be used".
    #[test]
    fn accepts_repeated_resource_parameters() -> Result<(), ParseError> {
        let form = FormParams::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb")?;
        assert_eq!(
            form.get_all("resource").collect::<Vec<_>>(),
            ["https://a", "https://b"]
        );
        Ok(())
    }

    // RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were omitted."
    #[test]
    fn treats_empty_values_as_omitted() -> Result<(), ParseError> {
        let form = FormParams::parse(b"scope=&state=x&scope=read")?;
        assert_eq!(form.get("scope"), Some("read"));
        assert_eq!(form.get("state"), Some("x"));
        Ok(())
    }

    #[test]
    fn decodes_plus_and_percent_escapes() -> Result<(), ParseError> {
        let form = FormParams::parse(b"scope=a+b%20c")?;
        assert_eq!(form.get("scope"), Some("a b c"));
        Ok(())
    }

    #[test]
    fn rejects_oversized_input() {
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        assert_eq!(
            FormParams::parse(&big),
            Err(ParseError::TooLarge {
                limit: MAX_FORM_BYTES
            })
        );
    }

    #[test]
    fn debug_output_hides_values() -> Result<(), ParseError> {
        let form = FormParams::parse(b"client_secret=hunter2")?;
        assert!(!format!("{form:?}").contains("hunter2"));
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = FormParams::parse(&input);
        }

        #[test]
        fn parsed_single_valued_parameters_are_unique(input in "[a-c=&%+0-9]{0,64}") {
            if let Ok(form) = FormParams::parse(input.as_bytes()) {
                for name in ["a", "b", "c"] {
                    prop_assert!(form.get_all(name).count() <= 1);
                }
            }
        }
    }
}

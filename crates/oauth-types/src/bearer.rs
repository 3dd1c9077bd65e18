//! RFC 6750 §2.1: the `Authorization: Bearer` credential. One parser for every place that
//! reads one: the resource server's access tokens, the registration endpoint's initial access
//! tokens and RFC 7592's registration access tokens.

/// An `Authorization` value names the Bearer scheme but carries no usable token (RFC 6750
/// §3.1 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// The value after `Bearer` is not RFC 6750 `b64token` syntax.
    #[error("the bearer token is not valid b64token syntax (RFC 6750 §2.1)")]
    Malformed,
    /// `Bearer` with no token after it.
    #[error("the Authorization header names the Bearer scheme but carries no token")]
    Empty,
}

/// Longest token accepted (before its `=` padding): far beyond any JWT this ecosystem signs.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The token of an `Authorization` header value that uses the Bearer scheme (the scheme is
/// case-insensitive, RFC 7235 §2.1); `Ok(None)` for another scheme.
///
/// ```
/// use mcpauth_oauth_types::{BearerError, parse_bearer_authorization};
///
/// assert_eq!(parse_bearer_authorization("Bearer abc.def"), Ok(Some("abc.def")));
/// assert_eq!(parse_bearer_authorization("Basic YTpi"), Ok(None));
/// assert_eq!(parse_bearer_authorization("Bearer"), Err(BearerError::Empty));
/// ```
///
/// # Errors
///
/// [`BearerError`] when the scheme is Bearer but the token is missing or not `b64token`.
pub fn parse_bearer_authorization(value: &str) -> Result<Option<&str>, BearerError> {
    parse_token_authorization(value, "bearer")
}

/// The token of an `Authorization` header value that uses the DPoP scheme (RFC 9449 §7.1: a
/// DPoP-bound access token, with its proof in the `DPoP` header; the token has the same
/// `token68` syntax); `Ok(None)` for another scheme.
///
/// ```
/// use mcpauth_oauth_types::parse_dpop_authorization;
///
/// assert_eq!(parse_dpop_authorization("DPoP abc.def"), Ok(Some("abc.def")));
/// assert_eq!(parse_dpop_authorization("Bearer abc.def"), Ok(None));
/// ```
///
/// # Errors
///
/// [`BearerError`] when the scheme is DPoP but the token is missing or malformed.
pub fn parse_dpop_authorization(value: &str) -> Result<Option<&str>, BearerError> {
    parse_token_authorization(value, "dpop")
}

/// `scheme` (lowercase) followed by one `b64token`/`token68`.
fn parse_token_authorization<'v>(
    value: &'v str,
    scheme: &str,
) -> Result<Option<&'v str>, BearerError> {
    let Some((named, token)) = value.split_once(' ') else {
        // RFC 6750 §3.1: a request naming the scheme without a token is malformed, not
        // unauthenticated.
        if value.trim().eq_ignore_ascii_case(scheme) {
            return Err(BearerError::Empty);
        }
        return Ok(None);
    };
    if !named.eq_ignore_ascii_case(scheme) {
        return Ok(None);
    }
    let token = token.trim_start_matches(' ');
    if token.trim_end().is_empty() {
        return Err(BearerError::Empty);
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || body.len() > MAX_TOKEN_BYTES
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(BearerError::Malformed);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(
            parse_bearer_authorization("Bearer abc.def-_~+/="),
            Ok(Some("abc.def-_~+/="))
        );
        assert_eq!(parse_bearer_authorization("bEaReR abc"), Ok(Some("abc")));
        assert_eq!(parse_bearer_authorization("Basic abc"), Ok(None));
        assert_eq!(parse_bearer_authorization(""), Ok(None));
    }

    #[test]
    fn a_token_outside_b64token_syntax_is_malformed() {
        for value in ["Bearer a b", "Bearer a=b", "Bearer a\"b", "Bearer ==="] {
            assert_eq!(
                parse_bearer_authorization(value),
                Err(BearerError::Malformed),
                "{value:?}"
            );
        }
    }

    #[test]
    fn bearer_with_no_token_is_empty() {
        for value in ["Bearer", "bearer", "Bearer ", "Bearer    "] {
            assert_eq!(
                parse_bearer_authorization(value),
                Err(BearerError::Empty),
                "{value:?}"
            );
        }
    }
}

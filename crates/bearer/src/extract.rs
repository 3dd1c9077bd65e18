//! RFC 6750 §2.1: the `Authorization: Bearer` request header, and RFC 9449 §7.1's
//! `Authorization: DPoP` for tokens bound to a key. The MCP specification forbids tokens in the
//! query string, and this crate does not read the form body either (RFC 6750 §2.2, §2.3).

use http::HeaderMap;
use mcpauth_oauth_types::{BearerError, parse_bearer_authorization, parse_dpop_authorization};

/// The request does not carry a usable bearer token (RFC 6750 §3.1 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    Repeated,
    /// The value after `Bearer` (or `DPoP`) is not `b64token` syntax.
    #[error("the access token is not valid b64token syntax (RFC 6750 §2.1)")]
    Malformed,
    /// `Authorization: Bearer` (or `DPoP`) with no token after it.
    #[error("the Authorization header names the Bearer or DPoP scheme but carries no token")]
    Empty,
}

/// Returns the bearer token of a request, `Ok(None)` if there is no `Authorization: Bearer`
/// header at all.
///
/// # Errors
///
/// [`ExtractError`] when the header is repeated or the token is malformed.
pub fn extract_bearer(headers: &HeaderMap) -> Result<Option<&str>, ExtractError> {
    Ok(match extract_access_token(headers)? {
        Some((TokenScheme::Bearer, token)) => Some(token),
        _ => None,
    })
}

/// How a request presents its access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenScheme {
    /// `Authorization: Bearer` (RFC 6750): whoever holds the token may use it.
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1): a token bound to a key, with a proof of that
    /// key in the `DPoP` header.
    DPoP,
}

/// Returns the access token of a request and the scheme it came with, `Ok(None)` if there is
/// no `Authorization` header with the Bearer or DPoP scheme.
///
/// # Errors
///
/// [`ExtractError`] when the header is repeated or the token is malformed.
pub fn extract_access_token(
    headers: &HeaderMap,
) -> Result<Option<(TokenScheme, &str)>, ExtractError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ExtractError::Repeated);
    }
    let value = value.to_str().map_err(|_| ExtractError::Malformed)?;
    let refused = |e: BearerError| match e {
        BearerError::Empty => ExtractError::Empty,
        _ => ExtractError::Malformed,
    };
    if let Some(token) = parse_bearer_authorization(value).map_err(refused)? {
        return Ok(Some((TokenScheme::Bearer, token)));
    }
    Ok(parse_dpop_authorization(value)
        .map_err(refused)?
        .map(|token| (TokenScheme::DPoP, token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            if let Ok(v) = v.parse() {
                map.append(http::header::AUTHORIZATION, v);
            }
        }
        map
    }

    #[test]
    fn the_dpop_scheme_is_told_apart_from_bearer() {
        assert_eq!(
            extract_access_token(&headers(&["DPoP eyJ.a.b"])),
            Ok(Some((TokenScheme::DPoP, "eyJ.a.b")))
        );
        assert_eq!(
            extract_access_token(&headers(&["dpop eyJ.a.b"])),
            Ok(Some((TokenScheme::DPoP, "eyJ.a.b")))
        );
        assert_eq!(
            extract_access_token(&headers(&["Bearer eyJ.a.b"])),
            Ok(Some((TokenScheme::Bearer, "eyJ.a.b")))
        );
        // A DPoP-scheme token is not a bearer token.
        assert_eq!(extract_bearer(&headers(&["DPoP eyJ.a.b"])), Ok(None));
        assert_eq!(
            extract_access_token(&headers(&["DPoP"])),
            Err(ExtractError::Empty)
        );
        assert_eq!(
            extract_access_token(&headers(&["DPoP a b"])),
            Err(ExtractError::Malformed)
        );
        assert_eq!(extract_access_token(&headers(&["Basic YTpi"])), Ok(None));
    }

    #[test]
    fn extracts_bearer_tokens_case_insensitively() {
        assert_eq!(
            extract_bearer(&headers(&["Bearer abc.def-_~+/="])),
            Ok(Some("abc.def-_~+/="))
        );
        assert_eq!(extract_bearer(&headers(&["bearer abc"])), Ok(Some("abc")));
        assert_eq!(extract_bearer(&headers(&[])), Ok(None));
        assert_eq!(extract_bearer(&headers(&["Basic abc"])), Ok(None));
    }

    // RFC 6750 §3.1: invalid_request for "more than one method" or a malformed request.
    #[test]
    fn rejects_repeated_headers_and_malformed_tokens() {
        assert_eq!(
            extract_bearer(&headers(&["Bearer a", "Bearer b"])),
            Err(ExtractError::Repeated)
        );
        assert_eq!(
            extract_bearer(&headers(&["Bearer a b"])),
            Err(ExtractError::Malformed)
        );
        assert_eq!(
            extract_bearer(&headers(&["Bearer a=b"])),
            Err(ExtractError::Malformed)
        );
    }

    // RFC 6750 §3.1: a request that names the Bearer scheme without a token is malformed
    // (invalid_request, 400), not unauthenticated.
    #[test]
    fn bearer_with_no_token_is_invalid_request() {
        for value in ["Bearer", "bearer", "Bearer ", "Bearer    "] {
            assert_eq!(
                extract_bearer(&headers(&[value])),
                Err(ExtractError::Empty),
                "{value:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn extraction_never_panics(value in "\\PC{0,200}") {
            let _ = extract_bearer(&headers(&[&value]));
            let _ = extract_bearer(&headers(&[&format!("Bearer {value}")]));
        }
    }
}

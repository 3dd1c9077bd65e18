//! RFC 6749 §2.3.1: HTTP Basic client authentication.
//!
//! "The client identifier is encoded using the application/x-www-form-urlencoded encoding
//! algorithm per Appendix B, and the encoded value is used as the username; the client
//! password is encoded using the same algorithm and used as the password." Many servers
//! forget to decode; we decode, so a secret containing `:` or `%` works.

use base64::Engine as _;

use crate::form::ParseError;
use crate::secret::ClientSecret;

/// Client credentials from an `Authorization: Basic` header.
#[derive(Debug)]
#[non_exhaustive]
pub struct BasicCredentials {
    /// The decoded client identifier.
    pub client_id: String,
    /// The decoded client secret.
    pub client_secret: ClientSecret,
}

/// Parses an `Authorization` header value as Basic client credentials.
///
/// Returns `Ok(None)` when the header uses another scheme (for example `Bearer`).
///
/// # Errors
///
/// [`ParseError::BadBasicCredentials`] when the scheme is Basic but the value is not valid.
pub fn parse_basic_authorization(header: &str) -> Result<Option<BasicCredentials>, ParseError> {
    let Some((scheme, rest)) = header.split_once(' ') else {
        // `Basic` with nothing after it is Basic without credentials, not another scheme.
        if header.trim().eq_ignore_ascii_case("basic") {
            return Err(ParseError::BadBasicCredentials("no credentials"));
        }
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let encoded = rest.trim_matches(' ');
    if encoded.len() > 4096 {
        return Err(ParseError::BadBasicCredentials("too long"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| ParseError::BadBasicCredentials("not base64"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| ParseError::BadBasicCredentials("not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or(ParseError::BadBasicCredentials(
            "no `:` between client_id and client_secret",
        ))?;
    let client_id = form_decode(id).ok_or(ParseError::BadBasicCredentials(
        "client_id is not form-urlencoded",
    ))?;
    let client_secret = form_decode(secret).ok_or(ParseError::BadBasicCredentials(
        "client_secret is not form-urlencoded",
    ))?;
    if client_id.is_empty() {
        return Err(ParseError::BadBasicCredentials("empty client_id"));
    }
    Ok(Some(BasicCredentials {
        client_id,
        client_secret: ClientSecret::new(client_secret),
    }))
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space, `%XX` a byte).
fn form_decode(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(bytes.next()?)?;
                let lo = hex_value(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    // RFC 6749 §2.3.1: the id and secret are form-urlencoded before base64.
    #[test]
    fn decodes_form_urlencoded_credentials() -> Result<(), ParseError> {
        let creds = parse_basic_authorization(&basic("my%3Aclient:s%2Bcr%25t+x"))?;
        let creds = creds.ok_or(ParseError::Missing("creds"))?;
        assert_eq!(creds.client_id, "my:client");
        assert_eq!(creds.client_secret.secret(), "s+cr%t x");
        Ok(())
    }

    #[test]
    fn ignores_other_schemes() -> Result<(), ParseError> {
        assert!(parse_basic_authorization("Bearer abc")?.is_none());
        Ok(())
    }

    #[test]
    fn rejects_malformed_basic_values() {
        assert!(parse_basic_authorization("Basic !!!").is_err());
        assert!(parse_basic_authorization(&basic("no-colon")).is_err());
        assert!(parse_basic_authorization(&basic("bad%zz:secret")).is_err());
    }

    proptest! {
        #[test]
        fn basic_parser_never_panics(input in "\\PC{0,200}") {
            let _ = parse_basic_authorization(&input);
            let _ = parse_basic_authorization(&format!("Basic {input}"));
        }
    }
}

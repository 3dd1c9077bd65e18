//! RFC 9449 §4.3 check 9: the proof's `htu` names the request's URI, ignoring its query and
//! fragment, compared after syntax-based (RFC 3986 §6.2.2) and scheme-based (§6.2.3)
//! normalization, as §4.3 recommends against false negatives.
//!
//! The `url` crate's parser already lowercases the scheme and host, resolves dot segments,
//! turns an empty path into `/` and drops a default port; what remains by hand is the case of
//! percent-encodings and the decoding of percent-encoded unreserved characters (§6.2.2.1–2).

/// Whether `htu` and `request_uri` name the same resource. Either being unparsable, not
/// `http`/`https`, or carrying user information makes them differ.
pub(crate) fn same_target(htu: &str, request_uri: &str) -> bool {
    match (normalized(htu), normalized(request_uri)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn normalized(uri: &str) -> Option<String> {
    // Not URI characters (RFC 3986 §2), yet the WHATWG parser would quietly turn a backslash
    // into a slash and drop tabs and newlines: refused instead.
    if uri
        .bytes()
        .any(|b| b == b'\\' || b.is_ascii_control() || b == b' ')
    {
        return None;
    }
    let url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
        return None;
    }
    if url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!(
        "{}://{host}:{port}{}",
        url.scheme(),
        normalize_percent_encoding(url.path())
    ))
}

/// Uppercases the hex digits of each percent-encoding and decodes those of unreserved
/// characters (`ALPHA / DIGIT / "-" / "." / "_" / "~"`).
fn normalize_percent_encoding(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%'
            && let (Some(&high), Some(&low)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) =
                (char::from(high).to_digit(16), char::from(low).to_digit(16))
            && let Ok(decoded) = u8::try_from(h * 16 + l)
        {
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(high.to_ascii_uppercase()));
                out.push(char::from(low.to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        // The parser leaves only ASCII in a path (everything else is percent-encoded).
        out.push(char::from(byte));
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::same_target;

    #[test]
    fn query_and_fragment_are_ignored() {
        assert!(same_target(
            "https://rs.example.com/mcp",
            "https://rs.example.com/mcp?session=1#x"
        ));
        assert!(same_target(
            "https://rs.example.com/mcp?a=b",
            "https://rs.example.com/mcp"
        ));
    }

    #[test]
    fn syntax_and_scheme_based_normalization_apply() {
        // Case of scheme and host, default port, dot segments, empty path.
        assert!(same_target(
            "HTTPS://Auth.Example.COM:443/a/./b/../token",
            "https://auth.example.com/a/token"
        ));
        assert!(same_target(
            "https://auth.example.com",
            "https://auth.example.com/"
        ));
        assert!(same_target("http://127.0.0.1:80/x", "http://127.0.0.1/x"));
        // Percent-encoding: hex case, and unreserved characters decoded.
        assert!(same_target(
            "https://a.example/%7euser/%2f",
            "https://a.example/~user/%2F"
        ));
    }

    #[test]
    fn a_different_scheme_host_port_or_path_does_not_match() {
        let request = "https://auth.example.com/token";
        for htu in [
            "http://auth.example.com/token",
            "https://auth.example.org/token",
            "https://auth.example.com:8443/token",
            "https://auth.example.com/token/",
            "https://auth.example.com/Token",
            "https://auth.example.com/other",
            "https://user@auth.example.com/token",
            "https://user:pw@auth.example.com/token",
            "https://auth.example.com\\token",
            "https://auth.example.com/to\tken",
            "https://auth.example.com/to\nken",
            "https://auth.example.com/to ken",
            "/token",
            "urn:x:token",
            "",
        ] {
            assert!(!same_target(htu, request), "{htu}");
        }
    }
}

//! RFC 9110 §11.6.1 `WWW-Authenticate` parsing, for the `Bearer` challenge of RFC 6750 §3
//! with RFC 9728 §5.1's `resource_metadata`.
//!
//! A header may hold several challenges (`Basic realm="x", Bearer scope="a b"`), and a
//! response several headers; parameters may be tokens or quoted strings with `\` escapes.
//! The parser never panics and takes only what it understands: a malformed header yields
//! no challenge rather than a guess.

/// One challenge: its scheme and parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Challenge {
    /// The scheme, as sent (compare case-insensitively).
    pub scheme: String,
    /// `token68` credentials, for schemes that use them.
    pub token68: Option<String>,
    /// The parameters, names lower-cased, in order; a repeated name keeps its first value.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The parameter `name` (case-insensitive).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a `Bearer` (or `DPoP`, RFC 9449 §7.1) challenge tells an MCP client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BearerChallenge {
    /// RFC 9728 §5.1: where the protected-resource metadata is.
    pub resource_metadata: Option<String>,
    /// RFC 6750 §3: the scope the request needs (space-separated).
    pub scope: Option<String>,
    /// RFC 6750 §3.1: `invalid_token`, `insufficient_scope`, `invalid_request`; RFC 9449
    /// §7.1, §9: `invalid_dpop_proof`, `use_dpop_nonce`.
    pub error: Option<String>,
    /// A human description of the error.
    pub error_description: Option<String>,
    /// The realm.
    pub realm: Option<String>,
    /// Whether the challenge was a `DPoP` one (RFC 9449 §7.1).
    pub dpop: bool,
}

impl BearerChallenge {
    /// What the `Bearer` and `DPoP` challenges among `headers` (each a `WWW-Authenticate`
    /// value) say: the one that names an error, else the `Bearer` one, else the `DPoP` one;
    /// parameters it lacks (`resource_metadata`, `scope`) are taken from the other.
    #[must_use]
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let challenges: Vec<Challenge> = headers.into_iter().flat_map(parse).collect();
        let of = |scheme: &str| {
            challenges
                .iter()
                .find(|c| c.scheme.eq_ignore_ascii_case(scheme))
                .map(|c| Self {
                    resource_metadata: c.param("resource_metadata").map(str::to_owned),
                    scope: c.param("scope").map(str::to_owned),
                    error: c.param("error").map(str::to_owned),
                    error_description: c.param("error_description").map(str::to_owned),
                    realm: c.param("realm").map(str::to_owned),
                    dpop: scheme == "DPoP",
                })
        };
        let (bearer, dpop) = (of("Bearer"), of("DPoP"));
        let (mut chosen, other) = match (bearer, dpop) {
            (Some(b), Some(d)) if b.error.is_none() && d.error.is_some() => (d, Some(b)),
            (Some(b), d) => (b, d),
            (None, Some(d)) => (d, None),
            (None, None) => return None,
        };
        if let Some(other) = other {
            chosen.resource_metadata = chosen.resource_metadata.or(other.resource_metadata);
            chosen.scope = chosen.scope.or(other.scope);
        }
        Some(chosen)
    }

    /// Whether the resource server wants a nonce in DPoP proofs (RFC 9449 §9): sign a new
    /// proof with its `DPoP-Nonce`.
    #[must_use]
    pub fn is_use_dpop_nonce(&self) -> bool {
        self.error.as_deref() == Some("use_dpop_nonce")
    }

    /// Whether this challenge asks for more scope (RFC 6750 §3.1 `insufficient_scope`).
    #[must_use]
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §11.2 `token68` characters (before the trailing `=`s).
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at.saturating_add(offset)).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        let token = self.bytes.get(start..self.at)?;
        (!token.is_empty()).then(|| String::from_utf8_lossy(token).into_owned())
    }

    /// A quoted string with `\` escapes; `None` when unterminated.
    fn quoted(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    let escaped = self.peek_at(1)?;
                    out.push(escaped);
                    self.at += 2;
                }
                b => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }

    /// Whether a `name = value` parameter starts here (rather than a new challenge).
    fn at_param(&self) -> bool {
        let mut i = self.at;
        while self.bytes.get(i).copied().is_some_and(is_tchar) {
            i += 1;
        }
        if i == self.at {
            return false;
        }
        while matches!(self.bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if self.bytes.get(i) != Some(&b'=') {
            return false;
        }
        i += 1;
        while matches!(self.bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        // A value follows; `==`, `=,` or `=` at the end are token68 padding.
        self.bytes
            .get(i)
            .is_some_and(|&b| b == b'"' || (is_tchar(b) && b != b'='))
    }
}

/// Every challenge in one `WWW-Authenticate` value; stops at the first malformed part.
#[must_use]
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut cursor = Cursor {
        bytes: header.as_bytes(),
        at: 0,
    };
    let mut challenges = Vec::new();
    loop {
        cursor.skip_separators();
        if cursor.peek().is_none() {
            return challenges;
        }
        let Some(scheme) = cursor.token() else {
            return challenges;
        };
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        cursor.skip_ows();
        // token68: `Basic dXNlcjpwYXNz==`, followed by a comma or the end.
        if !cursor.at_param() && cursor.peek().is_some_and(is_token68_char) {
            let start = cursor.at;
            while cursor.peek().is_some_and(is_token68_char) {
                cursor.at += 1;
            }
            while cursor.peek() == Some(b'=') {
                cursor.at += 1;
            }
            challenge.token68 = cursor
                .bytes
                .get(start..cursor.at)
                .map(|t| String::from_utf8_lossy(t).into_owned());
            cursor.skip_ows();
            if !matches!(cursor.peek(), None | Some(b',')) {
                return challenges;
            }
            challenges.push(challenge);
            continue;
        }
        // auth-params, comma-separated, until something that is not `name = value`.
        loop {
            cursor.skip_ows();
            if !cursor.at_param() {
                break;
            }
            let Some(name) = cursor.token() else {
                break;
            };
            cursor.skip_ows();
            cursor.at += 1; // the `=`
            cursor.skip_ows();
            let value = if cursor.peek() == Some(b'"') {
                match cursor.quoted() {
                    Some(value) => value,
                    None => {
                        challenges.push(challenge);
                        return challenges;
                    }
                }
            } else {
                match cursor.token() {
                    Some(value) => value,
                    None => {
                        challenges.push(challenge);
                        return challenges;
                    }
                }
            };
            let name = name.to_ascii_lowercase();
            if !challenge.params.iter().any(|(n, _)| *n == name) {
                challenge.params.push((name, value));
            }
            cursor.skip_ows();
            match cursor.peek() {
                Some(b',') => {
                    // Another parameter, or the next challenge.
                    let mark = cursor.at;
                    cursor.skip_separators();
                    if !cursor.at_param() {
                        cursor.at = mark;
                        break;
                    }
                }
                None => break,
                Some(_) => {
                    challenges.push(challenge);
                    return challenges;
                }
            }
        }
        challenges.push(challenge);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    // RFC 9728 §5.1's example, and the MCP specification's.
    #[test]
    fn reads_resource_metadata_and_scope_from_a_bearer_challenge() {
        let c = BearerChallenge::from_headers([
            r#"Bearer resource_metadata="https://resource.example.com/.well-known/oauth-protected-resource", scope="files:read files:write""#,
        ])
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://resource.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(c.error, None);
    }

    // RFC 6750 §3 examples: realm, error, error_description; insufficient_scope.
    #[test]
    fn reads_rfc_6750_errors() {
        let c = BearerChallenge::from_headers([
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        ])
        .unwrap();
        assert_eq!(c.realm.as_deref(), Some("example"));
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(
            c.error_description.as_deref(),
            Some("The access token expired")
        );
        let c = BearerChallenge::from_headers([
            r#"Bearer error="insufficient_scope", scope="mcp:tools mcp:admin""#,
        ])
        .unwrap();
        assert!(c.is_insufficient_scope());
    }

    // RFC 9110 §11.6.1: several challenges in one header, token68, escapes, case.
    #[test]
    fn finds_bearer_among_several_challenges() {
        let all = parse(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", bearer Scope="a", error=invalid_token"#,
        );
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(all[0].param("type"), Some("1"));
        assert_eq!(all[1].scheme, "Basic");
        let bearer = BearerChallenge::from_headers([
            r#"Newauth realm="apps", type=1, Basic realm="simple", bearer Scope="a", error=invalid_token"#,
        ])
        .unwrap();
        assert_eq!(bearer.scope.as_deref(), Some("a"));
        assert_eq!(bearer.error.as_deref(), Some("invalid_token"));
        let basic = parse("Basic dXNlcjpwYXNz==, Bearer");
        assert_eq!(basic[0].token68.as_deref(), Some("dXNlcjpwYXNz=="));
        assert_eq!(basic[1].scheme, "Bearer");
    }

    // A repeated parameter keeps its first value: a later one cannot redirect discovery.
    #[test]
    fn a_repeated_parameter_keeps_its_first_value() {
        let c = BearerChallenge::from_headers([
            r#"Bearer resource_metadata="https://good.example/m", resource_metadata="https://evil.example/m""#,
        ])
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://good.example/m")
        );
    }

    #[test]
    fn malformed_headers_give_no_guess() {
        assert_eq!(BearerChallenge::from_headers([""]), None);
        assert_eq!(BearerChallenge::from_headers(["Basic realm=\"x\""]), None);
        let unterminated = BearerChallenge::from_headers([r#"Bearer scope="a b"#]).unwrap();
        assert_eq!(unterminated.scope, None);
        assert!(parse("\"").is_empty());
        assert!(parse("=").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(header in ".{0,200}") {
            let _ = parse(&header);
            let _ = BearerChallenge::from_headers([header.as_str()]);
        }

        #[test]
        fn quoted_values_round_trip(value in "[ -~]{0,40}") {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            let header = format!("Bearer scope=\"{escaped}\", error=invalid_token");
            let c = BearerChallenge::from_headers([header.as_str()]).unwrap();
            proptest::prop_assert_eq!(c.scope.as_deref(), Some(value.as_str()));
            proptest::prop_assert_eq!(c.error.as_deref(), Some("invalid_token"));
        }
    }
}

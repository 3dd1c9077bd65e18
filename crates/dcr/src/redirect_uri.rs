//! Redirection URIs: the registration policy (RFC 6749 §3.1.2, RFC 8252 §7) and matching at
//! use time (RFC 8252 §7.3: only the port of a loopback URI may vary).
//!
//! Matching is plain string comparison against the registered value. Never prefix,
//! substring or normalised matching: those are how open redirects happen.

use url::{Host, Url};

/// Schemes that must never be a redirection target.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "vbscript", "file", "about", "blob"];

fn loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Checks a redirection URI a client wants to register. Returns a public reason on refusal.
///
/// Accepted: `https` URIs; `http` URIs on `127.0.0.1`, `[::1]` or `localhost` (RFC 8252
/// §7.3); private-use schemes in reverse-DNS form such as `com.example.app:/cb` (RFC 8252
/// §7.1). Refused: fragments (RFC 6749 §3.1.2), userinfo, wildcards, and script or data
/// schemes.
///
/// # Errors
///
/// A description of the problem, fit for `error_description`.
pub fn validate_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.contains('*') {
        return Err("redirect URIs must not contain wildcards");
    }
    // The WHATWG URL parser repairs `https:///host` and `https:\\host` into a different URL
    // than the one written; registered strings are compared as written, so refuse them.
    if uri.contains('\\') || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("redirect URIs must not contain backslashes, spaces or control characters");
    }
    let lower = uri.to_ascii_lowercase();
    if (lower.starts_with("http:") || lower.starts_with("https:"))
        && !(lower.starts_with("http://") || lower.starts_with("https://"))
    {
        return Err("http(s) redirect URIs must start with scheme://host");
    }
    if lower.starts_with("http:///") || lower.starts_with("https:///") {
        return Err("redirect URIs must have a host");
    }
    let url = Url::parse(uri).map_err(|_| "redirect URIs must be absolute URIs")?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err("redirect URIs must not contain a fragment (RFC 6749 §3.1.2)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("redirect URIs must not contain user information");
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "https" => Err("https redirect URIs must have a host"),
        "http" if loopback_host(&url) => Ok(()),
        "http" => Err(
            "http redirect URIs are allowed only on 127.0.0.1, [::1] or localhost (RFC 8252 §7.3); use https",
        ),
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => {
            Err("this redirect URI scheme is not allowed")
        }
        // RFC 8252 §7.1: private-use schemes are reverse domain names, so they have a dot.
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(
            "custom redirect URI schemes must be reverse domain names such as com.example.app (RFC 8252 §7.1)",
        ),
    }
}

/// Whether `requested` matches the registered `registered` URI: equal strings, or both
/// loopback `http` URIs that differ only in the port (RFC 8252 §7.3).
#[must_use]
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    reg.scheme() == "http"
        && req.scheme() == "http"
        && loopback_host(&reg)
        && reg.host_str() == req.host_str()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && reg.fragment().is_none()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
        // Url normalises; also compare the raw strings minus the port, so that percent
        // escapes and case in the path must match exactly as registered.
        && strip_port(registered) == strip_port(requested)
}

/// `http://127.0.0.1:1234/cb` → `http://127.0.0.1/cb` on the raw string.
fn strip_port(uri: &str) -> String {
    let Some(rest) = uri.strip_prefix("http://") else {
        return uri.to_owned();
    };
    let (authority, path) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |i| rest.split_at(i));
    let host = match authority.rsplit_once(':') {
        // `[::1]:80`: the colon after `]` is the port separator; inside brackets it is not.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    format!("http://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_loopback_and_private_use_redirect_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8976/callback",
            "http://[::1]:3000/cb",
            "http://localhost:6274/oauth/callback",
            "com.example.app:/oauth2redirect",
            "https://app.example.com/cb?tenant=1",
        ] {
            assert_eq!(validate_redirect_uri(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_dangerous_redirect_uris() {
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "https://*.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "myapp:/cb",
            "/relative",
            "",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    // RFC 8252 §7.3: "The authorization server MUST allow any port to be specified at the
    // time of the request for loopback IP redirect URIs".
    #[test]
    fn loopback_redirect_uris_match_with_any_port() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_uri_matches(
            "http://127.0.0.1:80/cb",
            "http://127.0.0.1:9/cb"
        ));
        assert!(redirect_uri_matches(
            "http://[::1]:1/cb",
            "http://[::1]:2/cb"
        ));
        assert!(redirect_uri_matches(
            "http://localhost/cb",
            "http://localhost:8080/cb"
        ));
    }

    #[test]
    fn everything_else_must_match_exactly() {
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb?x=1"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://APP.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.2/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://localhost/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/CB"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/a%2Fb",
            "http://127.0.0.1:1/a/b"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://evil@127.0.0.1:1/cb"
        ));
    }

    proptest::proptest! {
        #[test]
        fn redirect_uri_policy_never_panics(a in "\\PC{0,80}", b in "\\PC{0,80}") {
            let _ = validate_redirect_uri(&a);
            proptest::prop_assert!(redirect_uri_matches(&a, &a));
            if redirect_uri_matches(&a, &b) && a != b {
                proptest::prop_assert!(b.starts_with("http://"));
            }
        }
    }
}

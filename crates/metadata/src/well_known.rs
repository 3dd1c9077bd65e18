//! RFC 8414 §3.1 and RFC 9728 §3.1: well-known URLs, built by inserting the well-known
//! suffix between the host and the path ("path insertion").

use url::Url;

/// A URL cannot serve as an issuer or resource identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WellKnownError {
    /// RFC 8414 §2: the issuer must use `https` (plain `http` is accepted only for loopback
    /// hosts, for development).
    #[error("`{0}` must use https (http is allowed only on 127.0.0.1, [::1] or localhost)")]
    NotHttps(String),
    /// RFC 8414 §2 / RFC 9728 §1.2: no query or fragment.
    #[error("`{0}` must not have a query or fragment")]
    QueryOrFragment(String),
    /// The URL has no host.
    #[error("`{0}` has no host")]
    NoHost(String),
}

/// Whether `url` is `http` on a loopback host (RFC 8252 §7.3 / development use).
#[must_use]
pub fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// Checks that `issuer` is a valid RFC 8414 §2 issuer identifier.
///
/// # Errors
///
/// A [`WellKnownError`] saying what is wrong.
pub fn validate_issuer(issuer: &Url) -> Result<(), WellKnownError> {
    if issuer.scheme() != "https" && !is_loopback_http(issuer) {
        return Err(WellKnownError::NotHttps(issuer.to_string()));
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(WellKnownError::QueryOrFragment(issuer.to_string()));
    }
    if issuer.host().is_none() {
        return Err(WellKnownError::NoHost(issuer.to_string()));
    }
    Ok(())
}

fn insert(base: &Url, suffix: &str) -> Result<Url, WellKnownError> {
    validate_issuer(base)?;
    let path = base.path().trim_end_matches('/');
    let mut out = base.clone();
    out.set_path(&format!("/.well-known/{suffix}{path}"));
    Ok(out)
}

/// RFC 8414 §3.1: `https://as.example/tenant` →
/// `https://as.example/.well-known/oauth-authorization-server/tenant`.
///
/// # Errors
///
/// A [`WellKnownError`] when `issuer` is not a valid issuer.
pub fn authorization_server_metadata_url(issuer: &Url) -> Result<Url, WellKnownError> {
    insert(issuer, "oauth-authorization-server")
}

/// RFC 9728 §3.1: `https://mcp.example/mcp` →
/// `https://mcp.example/.well-known/oauth-protected-resource/mcp`.
///
/// # Errors
///
/// A [`WellKnownError`] when `resource` is not https (or loopback http), or has a query or
/// fragment.
pub fn protected_resource_metadata_url(resource: &Url) -> Result<Url, WellKnownError> {
    insert(resource, "oauth-protected-resource")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    // RFC 8414 §3.1 example.
    #[test]
    fn inserts_the_well_known_suffix_before_the_issuer_path() -> Result<(), WellKnownError> {
        assert_eq!(
            authorization_server_metadata_url(&url("https://example.com/issuer1"))?.as_str(),
            "https://example.com/.well-known/oauth-authorization-server/issuer1"
        );
        assert_eq!(
            authorization_server_metadata_url(&url("https://example.com"))?.as_str(),
            "https://example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            authorization_server_metadata_url(&url("https://example.com/"))?.as_str(),
            "https://example.com/.well-known/oauth-authorization-server"
        );
        Ok(())
    }

    // RFC 9728 §3.1 example.
    #[test]
    fn builds_protected_resource_metadata_urls() -> Result<(), WellKnownError> {
        assert_eq!(
            protected_resource_metadata_url(&url("https://resource.example.com/resource1"))?
                .as_str(),
            "https://resource.example.com/.well-known/oauth-protected-resource/resource1"
        );
        assert_eq!(
            protected_resource_metadata_url(&url("http://127.0.0.1:3000/mcp"))?.as_str(),
            "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp"
        );
        Ok(())
    }

    // RFC 8414 §2: "a case-sensitive URL that uses the "https" scheme and has no query or
    // fragment components".
    #[test]
    fn rejects_issuers_that_are_not_https_or_have_a_query() {
        assert!(validate_issuer(&url("http://auth.example.com")).is_err());
        assert!(validate_issuer(&url("https://auth.example.com/?a=b")).is_err());
        assert!(validate_issuer(&url("https://auth.example.com/#f")).is_err());
        assert!(validate_issuer(&url("http://localhost:8080")).is_ok());
        assert!(validate_issuer(&url("http://[::1]:8080")).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn well_known_urls_never_panic_and_keep_the_origin(input in "\\PC{0,120}") {
            if let Ok(url) = Url::parse(&input) {
                if let Ok(out) = authorization_server_metadata_url(&url) {
                    proptest::prop_assert_eq!(out.origin(), url.origin());
                    proptest::prop_assert!(out.path().starts_with("/.well-known/oauth-authorization-server"));
                }
                let _ = protected_resource_metadata_url(&url);
            }
        }
    }
}

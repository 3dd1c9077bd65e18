//! From an MCP server's URL to its authorization server, as the MCP authorization
//! specification prescribes (2025-06-18, 2025-11-25, 2026-07-28):
//!
//! 1. The `401`'s `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (RFC 9728 §5.1).
//! 2. Protected-resource metadata (RFC 9728): the header's URL, else the path-inserted
//!    well-known URL, else the root one. Its `resource` must be this server (§3.3).
//! 3. Authorization-server metadata for the first listed issuer, trying in order
//!    (RFC 8414 §3.1 path insertion, then OpenID Connect Discovery):
//!    with a path `/.well-known/oauth-authorization-server/{path}`,
//!    `/.well-known/openid-configuration/{path}`, `/{path}/.well-known/openid-configuration`;
//!    without one `/.well-known/oauth-authorization-server`, `/.well-known/openid-configuration`.
//!    Its `issuer` must be the one asked for (RFC 8414 §3.3), and it must list `S256` in
//!    `code_challenge_methods_supported`: the specification says to refuse otherwise. With
//!    loopback http allowed, its endpoints must sit on its own origin or the MCP server's.
//! 4. Servers of the 2025-03-26 revision publish no protected-resource metadata: the
//!    authorization server is then the MCP server's origin (the metadata's `issuer` must be
//!    that origin, RFC 8414 §3.3), and when it publishes no metadata either, its endpoints are
//!    `/authorize`, `/token` and `/register`.
//!
//! The candidate lists and the checks are pure functions; [`discover`] runs them over an
//! [`HttpClient`].

use mcpauth_metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Error;
use crate::challenge::BearerChallenge;
use crate::http::{HttpClient, UrlPolicy, get_json};

/// Everything discovery learned: what to ask for, and from whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Discovered {
    /// The MCP server's URL as given.
    pub server: String,
    /// The `resource` to send with every authorization and token request (RFC 8707): the
    /// protected-resource metadata's `resource`, else the server's URL.
    pub resource: String,
    /// The protected-resource metadata, when the server publishes it.
    pub protected_resource: Option<ProtectedResourceMetadata>,
    /// The authorization server's metadata (for a 2025-03-26 server without any, the
    /// default endpoints).
    pub authorization_server: AuthorizationServerMetadata,
    /// Where the metadata came from (`None`: defaults for a 2025-03-26 server).
    pub metadata_url: Option<String>,
    /// The scope to ask for: the challenge's `scope`, else the metadata's
    /// `scopes_supported`, else none.
    pub scope: Option<String>,
}

impl Discovered {
    /// The issuer credentials and tokens are kept under: client ids are unique per
    /// authorization server (RFC 6749 §2.2). The metadata's `issuer`, checked against where
    /// the metadata came from: the issuer the protected-resource document named, or for a
    /// 2025-03-26 server one on the origin its metadata was fetched from, so a server cannot
    /// file what it gets under another origin's name.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.authorization_server.issuer
    }
}

/// Which issuer authorization-server metadata must name (RFC 8414 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpectedIssuer<'a> {
    /// Exactly this one: the issuer a protected-resource document listed.
    Exactly(&'a Url),
    /// One on this origin: a 2025-03-26 server's metadata, fetched from the MCP server's
    /// origin (its issuer may carry a path, never another origin).
    OnOrigin(&'a Url),
}

/// RFC 9728 §3.1 and the MCP specification: where to look for protected-resource metadata.
#[must_use]
pub fn protected_resource_candidates(server: &Url, header_url: Option<&Url>) -> Vec<Url> {
    let mut candidates: Vec<Url> = header_url.into_iter().cloned().collect();
    let path = server.path().trim_end_matches('/');
    let mut root = server.clone();
    root.set_query(None);
    root.set_fragment(None);
    if !path.is_empty() {
        let mut inserted = root.clone();
        inserted.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        candidates.push(inserted);
    }
    root.set_path("/.well-known/oauth-protected-resource");
    candidates.push(root);
    candidates.dedup();
    candidates
}

/// The MCP specification's order of authorization-server metadata URLs for `issuer`.
#[must_use]
pub fn authorization_server_candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut base = issuer.clone();
    base.set_query(None);
    base.set_fragment(None);
    let at = |p: String| {
        let mut url = base.clone();
        url.set_path(&p);
        url
    };
    if path.is_empty() {
        vec![
            at("/.well-known/oauth-authorization-server".into()),
            at("/.well-known/openid-configuration".into()),
        ]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    }
}

/// RFC 9728 §3.3: the metadata's `resource` must be identical to the resource identifier the
/// metadata URL was derived from: this server's URL (a trailing slash, another path, another
/// origin: all refused), or, for the document at the origin's root well-known URL (no path
/// inserted), the origin itself. A server cannot hand the client another resource's metadata.
/// Returns the `resource` to send: the server's own URL, or that origin.
///
/// # Errors
///
/// [`Error::Discovery`] when it names another resource, or lists no authorization server.
pub fn check_protected_resource(
    metadata: &ProtectedResourceMetadata,
    server: &Url,
    metadata_url: &Url,
) -> Result<String, Error> {
    let mut origin = server.clone();
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    let mut root_document = origin.clone();
    root_document.set_path("/.well-known/oauth-protected-resource");
    let resource = Url::parse(&metadata.resource).ok();
    let identical = resource.as_ref().is_some_and(|r| {
        r == server || (*metadata_url == root_document && *r == origin && r.query().is_none())
    });
    if !identical {
        return Err(Error::Discovery {
            url: metadata_url.to_string(),
            reason: format!(
                "the metadata is for resource `{}`, not for {server}: RFC 9728 §3.3 requires it identical to the resource the metadata URL names",
                metadata.resource
            ),
        });
    }
    if metadata.authorization_servers.is_empty() {
        return Err(Error::Discovery {
            url: metadata_url.to_string(),
            reason: "the metadata lists no authorization_servers".into(),
        });
    }
    Ok(match resource {
        Some(r) if r == *server => server.to_string(),
        _ => metadata.resource.clone(),
    })
}

/// RFC 8414 §3.3 and the MCP specification's PKCE rule, and the URL policy for every
/// endpoint the client will use. `expected` says which issuer the metadata must name: the one
/// the protected-resource document listed, or for a 2025-03-26 server one on the origin the
/// metadata was fetched from. `server` is the MCP server the user named: with loopback http allowed,
/// an endpoint on a loopback host must be on the issuer's origin or the server's, never on
/// another local port (a local service a hostile server would point the client at).
///
/// # Errors
///
/// [`Error::Discovery`] or [`Error::Insecure`] naming the problem.
pub fn check_authorization_server(
    metadata: &AuthorizationServerMetadata,
    expected: ExpectedIssuer<'_>,
    metadata_url: &Url,
    policy: UrlPolicy,
    server: &Url,
) -> Result<(), Error> {
    let fail = |reason: String| Error::Discovery {
        url: metadata_url.to_string(),
        reason,
    };
    let named = Url::parse(&metadata.issuer).ok();
    let issuer = match expected {
        ExpectedIssuer::Exactly(issuer) => {
            if !same_issuer(&metadata.issuer, issuer.as_str()) {
                return Err(fail(format!(
                    "the metadata names issuer `{}`, not `{issuer}` (RFC 8414 §3.3: a mix-up defence)",
                    metadata.issuer
                )));
            }
            issuer.clone()
        }
        ExpectedIssuer::OnOrigin(origin) => match named {
            Some(named) if named.origin() == origin.origin() => named,
            _ => {
                return Err(fail(format!(
                    "the metadata names issuer `{}`, which is not on {} where it was fetched \
                     (RFC 8414 §3.3)",
                    metadata.issuer,
                    origin.origin().ascii_serialization()
                )));
            }
        },
    };
    let issuer = &issuer;
    if !metadata
        .code_challenge_methods_supported
        .iter()
        .any(|m| m == "S256")
    {
        return Err(fail(
            "code_challenge_methods_supported does not list S256: the MCP specification requires \
             refusing an authorization server that does not advertise PKCE"
                .into(),
        ));
    }
    for endpoint in [
        &metadata.authorization_endpoint,
        &metadata.token_endpoint,
        &metadata.registration_endpoint,
        &metadata.revocation_endpoint,
        &metadata.device_authorization_endpoint,
    ]
    .into_iter()
    .flatten()
    {
        let url = policy.check(endpoint)?;
        let origin = url.origin();
        if is_loopback_host(&url) && origin != issuer.origin() && origin != server.origin() {
            return Err(Error::Insecure {
                url: endpoint.clone(),
                reason: format!(
                    "a loopback endpoint on another origin than the authorization server's ({}) \
                     or the MCP server's: it could be any local service",
                    issuer.origin().ascii_serialization()
                ),
            });
        }
    }
    if metadata.token_endpoint.is_none() {
        return Err(fail("the metadata has no token_endpoint".into()));
    }
    Ok(())
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}

/// Issuers compare as strings, forgiving only a trailing slash on a bare origin (`url`
/// adds one when parsing `https://as.example`).
pub(crate) fn same_issuer(a: &str, b: &str) -> bool {
    a == b || a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// What a fetch of a candidate URL gave.
pub(crate) enum Fetched<T> {
    Found(T),
    /// Not there (any non-2xx status): try the next candidate.
    Absent,
}

pub(crate) async fn fetch_document<T: serde::de::DeserializeOwned>(
    http: &dyn HttpClient,
    url: &Url,
) -> Result<Fetched<T>, Error> {
    let response = http.send(get_json(url)?).await?;
    if !response.status().is_success() {
        return Ok(Fetched::Absent);
    }
    serde_json::from_slice(response.body())
        .map(Fetched::Found)
        .map_err(|e| Error::Discovery {
            url: url.to_string(),
            reason: format!("the document does not parse: {e}"),
        })
}

/// Runs discovery for the MCP server at `server`, given the `Bearer` challenge of its `401`
/// (if it sent one).
///
/// # Errors
///
/// [`Error::Discovery`] naming the URL that failed, [`Error::Insecure`], [`Error::Network`].
pub async fn discover(
    http: &dyn HttpClient,
    server: &str,
    challenge: Option<&BearerChallenge>,
    policy: UrlPolicy,
) -> Result<Discovered, Error> {
    let server_url = policy.check(server)?;
    let header_url = challenge
        .and_then(|c| c.resource_metadata.as_deref())
        .map(|u| policy.check(u))
        .transpose()?;

    let mut protected = None;
    for url in protected_resource_candidates(&server_url, header_url.as_ref()) {
        if let Fetched::Found(metadata) =
            fetch_document::<ProtectedResourceMetadata>(http, &url).await?
        {
            let resource = check_protected_resource(&metadata, &server_url, &url)?;
            protected = Some((metadata, resource));
            break;
        }
    }

    let (issuer, resource, protected_resource) = match protected {
        Some((metadata, resource)) => {
            let issuer = metadata
                .authorization_servers
                .first()
                .map(|i| policy.check(i))
                .transpose()?
                .ok_or_else(|| Error::Discovery {
                    url: server.to_owned(),
                    reason: "no authorization server is listed".into(),
                })?;
            (issuer, resource, Some(metadata))
        }
        None => {
            // 2025-03-26: the MCP server's origin is the authorization server.
            let mut origin = server_url.clone();
            origin.set_path("/");
            origin.set_query(None);
            (origin, server_url.to_string(), None)
        }
    };

    let mut found = None;
    for url in authorization_server_candidates(&issuer) {
        if let Fetched::Found(metadata) =
            fetch_document::<AuthorizationServerMetadata>(http, &url).await?
        {
            // For a 2025-03-26 server the issuer must be on the origin the metadata came
            // from: credentials are kept per issuer, and a server must not claim another's.
            let expected = if protected_resource.is_some() {
                ExpectedIssuer::Exactly(&issuer)
            } else {
                ExpectedIssuer::OnOrigin(&issuer)
            };
            check_authorization_server(&metadata, expected, &url, policy, &server_url)?;
            found = Some((metadata, url));
            break;
        }
    }
    let (authorization_server, metadata_url) = match found {
        Some((metadata, url)) => (metadata, Some(url.to_string())),
        None if protected_resource.is_none() => (legacy_defaults(&issuer), None),
        None => {
            return Err(Error::Discovery {
                url: issuer.to_string(),
                reason: format!(
                    "the authorization server publishes no metadata (tried {})",
                    authorization_server_candidates(&issuer)
                        .iter()
                        .map(Url::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    };

    let scope = challenge
        .and_then(|c| c.scope.clone())
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            protected_resource
                .as_ref()
                .filter(|m| !m.scopes_supported.is_empty())
                .map(|m| m.scopes_supported.join(" "))
        });
    Ok(Discovered {
        server: server.to_owned(),
        resource,
        protected_resource,
        authorization_server,
        metadata_url,
        scope,
    })
}

/// The 2025-03-26 revision's default endpoints, for a server that publishes no metadata.
fn legacy_defaults(origin: &Url) -> AuthorizationServerMetadata {
    let at = |path: &str| {
        let mut url = origin.clone();
        url.set_path(path);
        Some(url.to_string())
    };
    let mut metadata = AuthorizationServerMetadata::new(origin.as_str().trim_end_matches('/'));
    metadata.authorization_endpoint = at("/authorize");
    metadata.token_endpoint = at("/token");
    metadata.registration_endpoint = at("/register");
    metadata.code_challenge_methods_supported = vec!["S256".into()];
    metadata
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strings(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(String::from).collect()
    }

    // The MCP specification's examples of both orders.
    #[test]
    fn candidate_urls_follow_the_specifications_order() {
        assert_eq!(
            strings(authorization_server_candidates(&url(
                "https://auth.example.com/tenant1"
            ))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strings(authorization_server_candidates(&url(
                "https://auth.example.com"
            ))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strings(protected_resource_candidates(
                &url("https://example.com/public/mcp"),
                Some(&url("https://example.com/meta"))
            )),
            [
                "https://example.com/meta",
                "https://example.com/.well-known/oauth-protected-resource/public/mcp",
                "https://example.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strings(protected_resource_candidates(
                &url("https://example.com/"),
                None
            )),
            ["https://example.com/.well-known/oauth-protected-resource"]
        );
    }

    // RFC 9728 §3.3: metadata for another resource is not used; "identical" means identical.
    #[test]
    fn protected_resource_metadata_must_name_this_server_exactly() {
        let meta_url = url("https://mcp.example/.well-known/oauth-protected-resource/mcp");
        let server = url("https://mcp.example/mcp");
        let doc = |resource: &str| ProtectedResourceMetadata::new(resource, "https://as.example");
        assert_eq!(
            check_protected_resource(&doc("https://mcp.example/mcp"), &server, &meta_url).unwrap(),
            "https://mcp.example/mcp",
            "the resource sent is the server's own"
        );
        // The root document (no path inserted) is for the origin.
        let root_url = url("https://mcp.example/.well-known/oauth-protected-resource");
        assert_eq!(
            check_protected_resource(&doc("https://mcp.example"), &server, &root_url).unwrap(),
            "https://mcp.example"
        );
        assert!(
            check_protected_resource(&doc("https://mcp.example/other"), &server, &root_url)
                .is_err()
        );
        for other in [
            "https://mcp.example/mcp/",
            "https://mcp.example",
            "https://mcp.example/",
            "https://evil.example/mcp",
            "https://mcp.example/other",
            "https://mcp.example/mc",
            "https://mcp.example/mcp?x=1",
            "http://mcp.example/mcp",
            "https://mcp.example:8443/mcp",
            "not a url",
        ] {
            assert!(
                check_protected_resource(&doc(other), &server, &meta_url).is_err(),
                "{other}"
            );
        }
    }

    // RFC 8414 §3.3 issuer match; the MCP rule on PKCE; endpoints under the URL policy.
    #[test]
    fn authorization_server_metadata_is_checked() {
        let issuer = url("https://as.example/tenant");
        let server = url("https://mcp.example/mcp");
        let meta_url = url("https://as.example/.well-known/oauth-authorization-server/tenant");
        let mut doc = AuthorizationServerMetadata::new("https://as.example/tenant");
        doc.token_endpoint = Some("https://as.example/tenant/token".into());
        doc.authorization_endpoint = Some("https://as.example/tenant/authorize".into());
        doc.code_challenge_methods_supported = vec!["S256".into()];
        let policy = UrlPolicy::https_only();
        let check = |doc: &AuthorizationServerMetadata, policy| {
            check_authorization_server(
                doc,
                ExpectedIssuer::Exactly(&issuer),
                &meta_url,
                policy,
                &server,
            )
        };
        assert!(check(&doc, policy).is_ok());

        let mut other = doc.clone();
        other.issuer = "https://evil.example/tenant".into();
        assert!(check(&other, policy).is_err());

        let mut no_pkce = doc.clone();
        no_pkce.code_challenge_methods_supported = vec![];
        let refused = check(&no_pkce, policy).unwrap_err().to_string();
        assert!(
            refused.contains("S256") && refused.contains(meta_url.as_str()),
            "{refused}"
        );
        let mut plain_only = doc.clone();
        plain_only.code_challenge_methods_supported = vec!["plain".into()];
        assert!(check(&plain_only, policy).is_err());

        let mut http_endpoint = doc;
        http_endpoint.token_endpoint = Some("http://as.example/token".into());
        assert!(matches!(
            check(&http_endpoint, policy),
            Err(Error::Insecure { .. })
        ));
    }

    // RFC 8414 §3.3 for a 2025-03-26 server: the metadata found at the MCP server's origin
    // must name an issuer on that origin, so credentials are never kept under another's.
    #[test]
    fn legacy_metadata_must_name_an_issuer_on_the_origin_it_came_from() {
        let origin = url("https://mcp.example/");
        let server = url("https://mcp.example/mcp");
        let meta_url = url("https://mcp.example/.well-known/oauth-authorization-server");
        let mut doc = AuthorizationServerMetadata::new("https://mcp.example");
        doc.token_endpoint = Some("https://mcp.example/token".into());
        doc.code_challenge_methods_supported = vec!["S256".into()];
        let policy = UrlPolicy::https_only();
        let check = |doc: &AuthorizationServerMetadata| {
            check_authorization_server(
                doc,
                ExpectedIssuer::OnOrigin(&origin),
                &meta_url,
                policy,
                &server,
            )
        };
        assert!(check(&doc).is_ok());
        doc.issuer = "https://mcp.example/oauth".into();
        assert!(check(&doc).is_ok(), "a path on the same origin");
        doc.issuer = "https://accounts.example".into();
        assert!(check(&doc).is_err());
    }

    // With loopback http allowed, an endpoint on a loopback host must be on the issuer's or
    // the MCP server's origin, never on another local port.
    #[test]
    fn loopback_endpoints_stay_on_the_origins_the_user_reached() {
        let issuer = url("http://127.0.0.1:8080");
        let server = url("http://127.0.0.1:3000/mcp");
        let meta_url = url("http://127.0.0.1:8080/.well-known/oauth-authorization-server");
        let policy = UrlPolicy::allowing_loopback_http();
        let with = |endpoint: &str| {
            let mut doc = AuthorizationServerMetadata::new("http://127.0.0.1:8080");
            doc.code_challenge_methods_supported = vec!["S256".into()];
            doc.token_endpoint = Some(endpoint.into());
            check_authorization_server(
                &doc,
                ExpectedIssuer::Exactly(&issuer),
                &meta_url,
                policy,
                &server,
            )
        };
        assert!(with("http://127.0.0.1:8080/token").is_ok());
        assert!(with("http://127.0.0.1:3000/token").is_ok());
        for elsewhere in [
            "http://127.0.0.1:6379/token",
            "http://localhost:8080/token",
            "http://[::1]:8080/token",
        ] {
            assert!(
                matches!(with(elsewhere), Err(Error::Insecure { .. })),
                "{elsewhere}"
            );
        }
    }
}

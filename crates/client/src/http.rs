//! How the client talks HTTP: a small trait over `http` types (tests and embedders plug in
//! their own), the reqwest implementation (rustls, no redirects, a time limit, a size cap,
//! no private addresses but the MCP server's own), and the URL policy every discovered URL
//! must pass.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::Error;

/// The most bytes read from any response: metadata documents and token responses are small.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends requests.
#[async_trait::async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends `request`; any status is a response, only a failure to get one is an error.
    ///
    /// # Errors
    ///
    /// [`Error::Network`] naming the URL.
    async fn send(&self, request: http::Request<Vec<u8>>)
    -> Result<http::Response<Vec<u8>>, Error>;
}

/// Which URLs the client accepts from discovery and registration: https, and plain http only
/// on loopback when allowed (development servers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlPolicy {
    /// Accept `http://127.0.0.1`, `http://[::1]` and `http://localhost` URLs (and loopback
    /// addresses in general).
    pub allow_loopback_http: bool,
    /// Let discovered URLs (the authorization server, its endpoints, the metadata URL a
    /// `401` names) reach private, link-local and other non-public addresses. Off, only the
    /// MCP server's own host may be on such an address: a server the user did not run
    /// cannot send the client into the user's network (MCP security best practices, SSRF).
    pub allow_private_network: bool,
}

impl UrlPolicy {
    /// https only.
    #[must_use]
    pub fn https_only() -> Self {
        Self::default()
    }

    /// https, and http on loopback hosts (development).
    #[must_use]
    pub fn allowing_loopback_http() -> Self {
        Self {
            allow_loopback_http: true,
            allow_private_network: false,
        }
    }

    /// Whether the client may connect to `ip` for a host other than the MCP server's.
    #[must_use]
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        mcpauth_fetch::is_public_address(ip)
            || (self.allow_loopback_http && ip.is_loopback())
            || self.allow_private_network
    }

    /// Parses `url` and checks it against the policy.
    ///
    /// # Errors
    ///
    /// [`Error::Insecure`] saying why.
    pub fn check(&self, url: &str) -> Result<Url, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::Insecure {
            url: url.to_owned(),
            reason: format!("not a URL: {e}"),
        })?;
        let fine = parsed.scheme() == "https"
            || (self.allow_loopback_http && mcpauth_metadata::is_loopback_http(&parsed));
        if !fine {
            return Err(Error::Insecure {
                url: url.to_owned(),
                reason: if mcpauth_metadata::is_loopback_http(&parsed) {
                    "plain http is refused unless allowed for a development server on loopback \
                     (`--allow-http` in the mcpauth CLI, `allow_loopback_http()` in the library)"
                        .into()
                } else {
                    "only https URLs are accepted (http only on loopback, for development)".into()
                },
            });
        }
        if parsed.fragment().is_some() || !parsed.username().is_empty() {
            return Err(Error::Insecure {
                url: url.to_owned(),
                reason: "no fragment or user name is allowed".into(),
            });
        }
        Ok(parsed)
    }
}

/// The real client: rustls, no redirects (a redirect could move a token request elsewhere),
/// [`REQUEST_TIMEOUT`], at most [`MAX_RESPONSE_BYTES`]. Built [`for_server`](Self::for_server)
/// (what [`OAuthClient`](crate::OAuthClient) does), it connects to non-public addresses only
/// for the MCP server's own host, as [`UrlPolicy::allow_private_network`] says: every name is
/// resolved and checked before connecting, and the connection goes to a checked address (no
/// DNS rebinding between check and use). Behind an HTTP proxy (`HTTPS_PROXY`) the proxy
/// resolves names, so only IP-literal URLs are checked here.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
    guard: Option<AddressGuard>,
}

/// The MCP server's host (trusted: the user chose it) and what other hosts may resolve to.
#[derive(Debug, Clone)]
struct AddressGuard {
    server_host: String,
    policy: UrlPolicy,
}

impl AddressGuard {
    fn refusal(&self, host: &str, addresses: &[IpAddr]) -> String {
        let listed: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        format!(
            "{host} is not the MCP server's host and resolves only to private or reserved \
             addresses ({}): an MCP server may not send the client into your network. If this \
             authorization server is on your own network, allow private networks \
             (`allow_private_network`, `mcpauth auth --allow-private-network`)",
            listed.join(", ")
        )
    }
}

impl reqwest::dns::Resolve for AddressGuard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if host.eq_ignore_ascii_case(&guard.server_host) {
                return Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs);
            }
            let checked: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| guard.policy.allows_address(addr.ip()))
                .collect();
            if checked.is_empty() {
                let ips: Vec<IpAddr> = resolved.iter().map(SocketAddr::ip).collect();
                return Err(guard.refusal(&host, &ips).into());
            }
            Ok(Box::new(checked.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl ReqwestClient {
    /// A client with the defaults above and no address checks (for a caller that checks
    /// URLs itself).
    ///
    /// # Errors
    ///
    /// [`Error::Network`] when the TLS backend cannot start.
    pub fn new() -> Result<Self, Error> {
        Self::build(None)
    }

    /// A client for the MCP server at `server`: any address for its host; for every other
    /// host, only addresses `policy` allows ([`UrlPolicy::allows_address`]).
    ///
    /// # Errors
    ///
    /// [`Error::Network`] when the TLS backend cannot start.
    pub fn for_server(server: &Url, policy: UrlPolicy) -> Result<Self, Error> {
        Self::build(Some(AddressGuard {
            server_host: server.host_str().unwrap_or_default().to_owned(),
            policy,
        }))
    }

    fn build(guard: Option<AddressGuard>) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("mcpauth-client/", env!("CARGO_PKG_VERSION")));
        if let Some(guard) = &guard {
            builder = builder.dns_resolver(Arc::new(guard.clone()));
        }
        let client = builder.build().map_err(|e| Error::Network {
            url: String::new(),
            reason: "the HTTP client could not start".into(),
            source: Some(Box::new(e)),
        })?;
        Ok(Self { client, guard })
    }

    /// The refusal for an IP-literal URL the guard does not allow (names are checked when
    /// they are resolved).
    fn refuse_literal(&self, url: &str) -> Option<Error> {
        let guard = self.guard.as_ref()?;
        let url = Url::parse(url).ok()?;
        let host = url.host_str()?;
        if host.eq_ignore_ascii_case(&guard.server_host) {
            return None;
        }
        let ip = match url.host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        (!guard.policy.allows_address(ip)).then(|| Error::Insecure {
            url: url.to_string(),
            reason: guard.refusal(host, &[ip]),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestClient {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        let url = request.uri().to_string();
        let fail = |reason: &str, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            Error::Network {
                url: url.clone(),
                reason: reason.to_owned(),
                source,
            }
        };
        if let Some(refusal) = self.refuse_literal(&url) {
            return Err(refusal);
        }
        let (parts, body) = request.into_parts();
        let mut response = self
            .client
            .request(parts.method, url.as_str())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                fail(
                    "the request could not be sent",
                    Some(Box::new(e.without_url())),
                )
            })?;
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            fail(
                "the response could not be read",
                Some(Box::new(e.without_url())),
            )
        })? {
            if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                return Err(fail(
                    &format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
                    None,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| fail("the response could not be built", Some(Box::new(e))))
    }
}

/// A GET asking for JSON.
pub(crate) fn get_json(url: &Url) -> Result<http::Request<Vec<u8>>, Error> {
    http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| Error::Network {
            url: url.to_string(),
            reason: "the request could not be built".into(),
            source: Some(Box::new(e)),
        })
}

/// A form POST (RFC 6749 §3.2: `application/x-www-form-urlencoded`).
pub(crate) fn post_form(
    url: &Url,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Result<http::Request<Vec<u8>>, Error> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut request = http::Request::post(url.as_str())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json");
    if let Some((id, secret)) = basic {
        // RFC 6749 §2.3.1: each part form-urlencoded before base64.
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", encode(id), encode(secret)),
        );
        request = request.header(http::header::AUTHORIZATION, format!("Basic {credentials}"));
    }
    request.body(body.into_bytes()).map_err(|e| Error::Network {
        url: url.to_string(),
        reason: "the request could not be built".into(),
        source: Some(Box::new(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_policy_takes_https_and_opt_in_loopback_http() {
        let strict = UrlPolicy::https_only();
        assert!(strict.check("https://as.example/x").is_ok());
        assert!(strict.check("http://127.0.0.1:8080/").is_err());
        assert!(strict.check("http://as.example/").is_err());
        assert!(strict.check("javascript:alert(1)").is_err());
        assert!(strict.check("https://user@as.example/").is_err());
        assert!(strict.check("https://as.example/#f").is_err());
        let dev = UrlPolicy::allowing_loopback_http();
        assert!(dev.check("http://127.0.0.1:8080/").is_ok());
        assert!(dev.check("http://[::1]:8080/").is_ok());
        assert!(dev.check("http://localhost/").is_ok());
        assert!(dev.check("http://10.0.0.1/").is_err());
    }
}

#![doc = include_str!("../README.md")]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::{Host, Url};

/// What a fetch may do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchPolicy {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Time limit for the whole exchange.
    pub timeout: Duration,
    /// Allow `http` and loopback addresses (127.0.0.0/8, ::1). For tests and local
    /// development only: it opens the loopback interface to whoever can name a URL.
    pub insecure_allow_loopback: bool,
    /// Trust only these root certificates (DER) instead of the platform's (a private PKI,
    /// or a test's self-signed certificate). Empty: the platform's roots.
    pub root_certificates_only: Vec<Vec<u8>>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 5 * 1024,
            timeout: Duration::from_secs(5),
            insecure_allow_loopback: false,
            root_certificates_only: Vec::new(),
        }
    }
}

/// Why a fetch was refused or failed. `Display` is safe to show to a client developer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not https (or allowed loopback http), or has no host.
    #[error("the URL must be https with a host")]
    BadUrl,
    /// The host resolves to (or is) an address that must not be fetched.
    #[error("the URL's host resolves to a private, loopback or reserved address")]
    ForbiddenAddress,
    /// The host does not resolve.
    #[error("the URL's host does not resolve")]
    Unresolvable,
    /// The server answered with a redirect, which is not followed.
    #[error("the server answered with a redirect; redirects are not followed")]
    Redirect,
    /// The server answered with another non-success status.
    #[error("the server answered with HTTP status {0}")]
    Status(u16),
    /// The body is larger than allowed.
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
    /// The exchange took too long.
    #[error("the server did not answer in time")]
    Timeout,
    /// Another transport failure.
    #[error("the document could not be fetched: {0}")]
    Transport(String),
}

/// A fetched document.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fetched {
    /// The body.
    pub body: Bytes,
    /// `Cache-Control: max-age` in seconds (0 for `no-store`/`no-cache`), if given.
    pub max_age: Option<u64>,
}

/// Whether an address may be fetched from.
#[must_use]
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 shared address space
                || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15 benchmarking
                || a >= 240) // 240.0.0.0/4 reserved
        }
        IpAddr::V6(v6) => {
            // 64:ff9b:1::/48 is local-use NAT64 space (RFC 8215): a site may place the IPv4
            // address anywhere in it (RFC 6052 §2.2 layouts), and it routes inside the site.
            let [first, second, third, fourth, ..] = v6.segments();
            if v6.is_loopback()
                || v6.is_unspecified()
                || (first, second, third) == (0x64, 0xff9b, 1)
            {
                return false;
            }
            // Addresses that carry an IPv4 address reach it: judge them by it.
            let embedded = embedded_ipv4(v6);
            if !embedded.is_empty() {
                return embedded
                    .into_iter()
                    .all(|v4| is_public_address(IpAddr::V4(v4)));
            }
            !(v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10 link local
                || (first & 0xffc0) == 0xfec0 // fec0::/10 site local (deprecated, still private)
                || (first == 0x0100 && second == 0 && third == 0 && fourth == 0) // 100::/64 discard
                || (first == 0x2001 && second == 0x0db8)) // 2001:db8::/32 documentation
        }
    }
}

/// The IPv4 addresses an IPv6 address embeds, by the transition mechanisms that route to
/// them: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96` (deprecated), NAT64
/// `64:ff9b::/96` (RFC 6052; the local-use `64:ff9b:1::/48` is refused whole), 6to4
/// `2002::/16` (RFC 3056), and Teredo `2001::/32` (RFC 4380: its server and its obfuscated
/// client). Empty for every other address.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Vec<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let segments = v6.segments();
    let octets = v6.octets();
    let last32 = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    match segments {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => vec![last32],
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => vec![last32],
        [0x2002, ..] => vec![Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])],
        [0x2001, 0, ..] => {
            let server = Ipv4Addr::new(octets[4], octets[5], octets[6], octets[7]);
            let client = Ipv4Addr::from(!u32::from(last32));
            vec![server, client]
        }
        _ => Vec::new(),
    }
}

fn allowed(ip: IpAddr, policy: &FetchPolicy) -> bool {
    is_public_address(ip) || (policy.insecure_allow_loopback && ip.is_loopback())
}

/// Resolves names and keeps only allowed addresses, so reqwest connects to checked ones.
struct CheckedResolver {
    policy: FetchPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let checked: Vec<SocketAddr> = resolved
                .filter(|addr| allowed(addr.ip(), &policy))
                .collect();
            if checked.is_empty() {
                return Err(Box::new(FetchError::ForbiddenAddress)
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(checked.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An HTTP client that fetches only what [`FetchPolicy`] allows.
#[derive(Clone, Debug)]
pub struct SafeFetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(0);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            max_age = seconds.trim_matches('"').parse().ok();
        }
    }
    max_age
}

impl SafeFetcher {
    /// A fetcher for `policy`.
    ///
    /// # Errors
    ///
    /// [`FetchError::Transport`] if the HTTP client cannot be built.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder();
        if !policy.root_certificates_only.is_empty() {
            let roots = policy
                .root_certificates_only
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            builder = builder.tls_certs_only(roots);
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .no_proxy()
            .user_agent("mcpauth")
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { client, policy })
    }

    /// Fetches `url` under the policy.
    ///
    /// # Errors
    ///
    /// A [`FetchError`] naming the rule that refused it or the failure.
    pub async fn fetch(&self, url: &Url) -> Result<Fetched, FetchError> {
        let host = url.host().ok_or(FetchError::BadUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.policy.insecure_allow_loopback => {}
            _ => return Err(FetchError::BadUrl),
        }
        // reqwest does not resolve IP literals: check them here.
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if literal.is_some_and(|ip| !allowed(ip, &self.policy)) {
            return Err(FetchError::ForbiddenAddress);
        }
        if url.scheme() == "http"
            && !literal.is_some_and(|ip| ip.is_loopback())
            && url.host_str() != Some("localhost")
        {
            return Err(FetchError::BadUrl);
        }
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.policy.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.policy.max_bytes));
        }
        let max_age = max_age(response.headers());
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.policy.max_bytes {
                return Err(FetchError::TooLarge(self.policy.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body: body.freeze(),
            max_age,
        })
    }
}

fn classify(error: reqwest::Error) -> FetchError {
    if error.is_timeout() {
        return FetchError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(FetchError::ForbiddenAddress) = current.downcast_ref::<FetchError>() {
            return FetchError::ForbiddenAddress;
        }
        if current
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        {
            return FetchError::Unresolvable;
        }
        source = current.source();
    }
    FetchError::Transport(error.without_url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_private_and_reserved_addresses() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
            "198.18.0.1",
            "240.0.0.1",
            "fec0::1",
            "100::1",
        ] {
            assert!(
                !is_public_address(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::5db8:d822",   // NAT64 of 93.184.216.34
            "2002:5db8:d822::1",    // 6to4 of 93.184.216.34
            "::ffff:93.184.216.34", // IPv4-mapped
        ] {
            assert!(
                is_public_address(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
    }

    // SSRF: an IPv6 address that embeds an IPv4 address reaches that address, so it is
    // judged by it (NAT64, IPv4-compatible, IPv4-mapped, 6to4, Teredo).
    #[test]
    fn addresses_embedding_ipv4_are_judged_by_the_embedded_address() {
        let private =
            |ip: &str| !is_public_address(ip.parse().unwrap_or(IpAddr::from([1, 1, 1, 1])));
        for ip in [
            "64:ff9b::7f00:1",             // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe",          // NAT64 of 169.254.169.254
            "64:ff9b:1::a00:1",            // local-use NAT64 of 10.0.0.1
            "64:ff9b:1:a00:1::",           // local-use NAT64, /64 layout (RFC 6052 §2.2)
            "64:ff9b:1::5db8:d822",        // local-use NAT64 of a public address: still local
            "::7f00:1",                    // IPv4-compatible 127.0.0.1
            "::a9fe:a9fe",                 // IPv4-compatible 169.254.169.254
            "::ffff:169.254.169.254",      // IPv4-mapped
            "2002:7f00:1::1",              // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",            // 6to4 of 192.168.1.1
            "2001:0:5db8:d822::3fff:fffe", // Teredo, client 192.0.0.1 (obfuscated)
            "2001:0:a00:1::1",             // Teredo, server 10.0.0.1
        ] {
            assert!(private(ip), "{ip} must be refused");
        }
        assert!(
            !private("2001:0:5db8:d822::a247:27dd"),
            "Teredo with a public server and client (93.184.216.34) is public"
        );
    }

    #[test]
    fn reads_cache_control() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            reqwest::header::HeaderValue::from_static("public, max-age=600"),
        );
        assert_eq!(max_age(&headers), Some(600));
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            reqwest::header::HeaderValue::from_static("no-store"),
        );
        assert_eq!(max_age(&headers), Some(0));
    }
}

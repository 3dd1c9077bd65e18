//! The client's real address behind reverse proxies, and the key per-address limits count it
//! under.
//!
//! A request's TCP peer is the client, unless the peer is one of the operator's
//! [`TrustedProxies`]: then the client is read from the header that proxy writes
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded`), walking from the right past every trusted
//! hop to the first address a trusted proxy vouches for. A header from any other peer is
//! ignored, so a client cannot choose its own address by sending one. A value that does not
//! parse (`unknown`, an obfuscated RFC 7239 identifier) stops the walk at the hop that
//! reported it.
//!
//! Per-address limits key an IPv6 client by its /64 ([`caller_key`]): one host usually holds
//! a whole /64, and could otherwise take a fresh address for every request.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Which header the trusted proxies write the client's address in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// A `trusted_proxies` entry is not an address or CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR network (like 10.0.0.0/8, 127.0.0.1 or fd00::/8)")]
pub struct InvalidProxy(pub String);

/// The reverse proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// No proxy is trusted: the TCP peer is always the client.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts the proxies at `entries` (addresses, or CIDR networks) to write the client's
    /// address in `header`.
    ///
    /// # Errors
    ///
    /// [`InvalidProxy`] naming the first entry that does not parse.
    pub fn new<S: AsRef<str>>(
        entries: &[S],
        header: ForwardedHeader,
    ) -> Result<Self, InvalidProxy> {
        let networks = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| InvalidProxy(entry.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks, header })
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    #[must_use]
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded(headers),
        };
        // From the right: each trusted hop vouches for the one before it.
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(address) = hop else {
                // An address the proxy could not or would not give: stop at the proxy.
                return client;
            };
            client = canonical(*address);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key per-address limits count `ip` under: an IPv4 address as is, an IPv6 address by its
/// /64 network (`2001:db8:1:2::/64`).
#[must_use]
pub fn caller_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            let network = std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0);
            format!("{network}/64")
        }
    }
}

/// Every value of header `name`, in order, split at commas. An element that is not text
/// stays in its place (as one that names no address), so bytes a client put in front cannot
/// hide the hops its proxies appended after them.
fn elements<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|element| std::str::from_utf8(element).unwrap_or("\u{fffd}").trim())
        .filter(|v| !v.is_empty())
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`.
fn address(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, port) = value.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    elements(headers, "x-forwarded-for")
        .into_iter()
        .map(address)
        .collect()
}

/// RFC 7239 §4: `for=` of each forwarded element.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    elements(headers, "forwarded")
        .into_iter()
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| address(value))?
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let none = TrustedProxies::none();
        let forged = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(
            none.client_address(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );
        let proxies = TrustedProxies::new(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor).unwrap();
        assert_eq!(
            proxies.client_address(ip("198.51.100.1"), &forged),
            ip("198.51.100.1"),
            "a header from an untrusted peer changes nothing"
        );
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right_past_trusted_hops() {
        let proxies =
            TrustedProxies::new(&["10.0.0.0/8", "127.0.0.1"], ForwardedHeader::XForwardedFor)
                .unwrap();
        // The client forged the first entry; the trusted proxies appended the rest.
        let chain = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &chain),
            ip("203.0.113.9")
        );
        let all_trusted = headers("x-forwarded-for", &["10.2.2.2"]);
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &all_trusted),
            ip("10.2.2.2")
        );
        let unknown = headers("x-forwarded-for", &["unknown, 10.3.3.3"]);
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &unknown),
            ip("10.3.3.3"),
            "an unparseable hop stops the walk at the proxy that reported it"
        );
        assert_eq!(
            proxies.client_address(ip("::ffff:127.0.0.1"), &chain),
            ip("203.0.113.9"),
            "an IPv4-mapped peer is its IPv4 address"
        );
        // Bytes that are not text in the client's part hide nothing the proxy appended.
        let mut binary = HeaderMap::new();
        binary.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &binary),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_is_read_when_configured_and_only_then() {
        let proxies = TrustedProxies::new(&["127.0.0.1"], ForwardedHeader::Forwarded).unwrap();
        let value = headers(
            "forwarded",
            &[r#"for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https"#],
        );
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &value),
            ip("2001:db8:cafe::17")
        );
        let xff_only = TrustedProxies::new(&["127.0.0.1"], ForwardedHeader::XForwardedFor).unwrap();
        assert_eq!(
            xff_only.client_address(ip("127.0.0.1"), &value),
            ip("127.0.0.1"),
            "a proxy configured for X-Forwarded-For does not read Forwarded"
        );
        let obfuscated = headers("forwarded", &["for=_hidden"]);
        assert_eq!(
            proxies.client_address(ip("127.0.0.1"), &obfuscated),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv6_callers_are_keyed_by_their_64() {
        assert_eq!(caller_key(ip("203.0.113.9")), "203.0.113.9");
        assert_eq!(caller_key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(
            caller_key(ip("2001:db8:1:2:ffff::1")),
            caller_key(ip("2001:db8:1:2::9")),
            "one /64, one key"
        );
        assert_eq!(caller_key(ip("::ffff:203.0.113.9")), "203.0.113.9");
    }

    #[test]
    fn entries_that_are_not_addresses_are_refused_by_name() {
        assert_eq!(
            TrustedProxies::new(&["10.0.0.0/8", "proxy.example"], ForwardedHeader::default()),
            Err(InvalidProxy("proxy.example".into()))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_header_yields_the_peer_or_an_address_from_it(value in "\\PC{0,120}") {
            let proxies = TrustedProxies::new(&["127.0.0.1"], ForwardedHeader::Forwarded).unwrap();
            let mut map = HeaderMap::new();
            if let Ok(v) = value.parse() {
                map.insert("forwarded", v);
            }
            let _ = proxies.client_address(ip("127.0.0.1"), &map);
        }
    }
}

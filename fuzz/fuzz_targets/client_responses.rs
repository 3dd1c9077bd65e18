//! What an MCP server and its authorization server send an MCP client (`mcpauth-client`):
//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1) and the protected-resource
//! (RFC 9728) and authorization-server (RFC 8414) metadata with the client's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_client::UrlPolicy;
use mcpauth_client::challenge::{self, BearerChallenge};
use mcpauth_client::discovery::{
    ExpectedIssuer, check_authorization_server, check_protected_resource,
};
use mcpauth_metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};

// Four parts separated by NUL bytes, so the seeds in `fuzz/seeds/client_responses` stay
// readable: a header, a second header, resource metadata, authorization-server metadata.
fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (header, other_header) = (
        String::from_utf8_lossy(next()),
        String::from_utf8_lossy(next()),
    );
    let (header, other_header) = (header.as_ref(), other_header.as_ref());
    let (resource_metadata, server_metadata) = (next(), next());
    for parsed in challenge::parse(header) {
        // Scheme names are tokens: never empty, never with spaces.
        assert!(
            !parsed.scheme.is_empty() && !parsed.scheme.contains(' '),
            "{parsed:?}"
        );
    }
    if let Some(bearer) = BearerChallenge::from_headers([header, other_header]) {
        let _ = bearer.is_insufficient_scope();
    }

    let Ok(server) = url::Url::parse("https://mcp.example.com/mcp") else {
        return;
    };
    let Ok(metadata_url) =
        url::Url::parse("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
    else {
        return;
    };
    if let Ok(metadata) = serde_json::from_slice::<ProtectedResourceMetadata>(resource_metadata) {
        if let Ok(resource) = check_protected_resource(&metadata, &server, &metadata_url) {
            // RFC 9728 §3.3: the accepted resource is the server's own URL, identical (the
            // path-inserted document names nothing else).
            assert_eq!(resource, server.as_str());
        }
    }
    let Ok(issuer) = url::Url::parse("https://auth.example.com") else {
        return;
    };
    if let Ok(metadata) = serde_json::from_slice::<AuthorizationServerMetadata>(server_metadata) {
        if check_authorization_server(
            &metadata,
            ExpectedIssuer::Exactly(&issuer),
            &metadata_url,
            UrlPolicy::default(),
            &server,
        )
        .is_ok()
        {
            // The MCP specification: never use a server that does not advertise S256.
            assert!(
                metadata
                    .code_challenge_methods_supported
                    .iter()
                    .any(|m| m == "S256")
            );
        }
        let loopback = UrlPolicy::allowing_loopback_http();
        if let Ok(local) = url::Url::parse("http://127.0.0.1:8080")
            && check_authorization_server(
                &metadata,
                ExpectedIssuer::Exactly(&local),
                &metadata_url,
                loopback,
                &server,
            )
            .is_ok()
        {
            // With loopback allowed, no accepted endpoint is on another local origin.
            for endpoint in [&metadata.token_endpoint, &metadata.authorization_endpoint]
                .into_iter()
                .flatten()
            {
                if let Ok(url) = url::Url::parse(endpoint)
                    && url.host_str().is_some_and(|h| h.starts_with("127."))
                {
                    assert_eq!(url.origin(), local.origin());
                }
            }
        }
    }
});

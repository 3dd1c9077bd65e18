//! What an MCP server and its authorization server send an MCP client (`mcpauth-client`):
//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1) and the protected-resource
//! (RFC 9728) and authorization-server (RFC 8414) metadata with the client's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_client::UrlPolicy;
use mcpauth_client::challenge::{self, BearerChallenge};
use mcpauth_client::discovery::{check_authorization_server, check_protected_resource};
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
            // RFC 9728 §3.3: the accepted resource is on the server's own origin.
            let resource = url::Url::parse(&resource).ok();
            assert_eq!(resource.map(|r| r.origin()), Some(server.origin()));
        }
    }
    let Ok(issuer) = url::Url::parse("https://auth.example.com") else {
        return;
    };
    if let Ok(metadata) = serde_json::from_slice::<AuthorizationServerMetadata>(server_metadata) {
        if check_authorization_server(
            &metadata,
            Some(&issuer),
            &metadata_url,
            UrlPolicy::default(),
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
        let _ = check_authorization_server(&metadata, None, &metadata_url, UrlPolicy::default());
    }
});

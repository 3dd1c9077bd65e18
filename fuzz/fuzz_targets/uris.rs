//! Redirect-URI policy and matching (RFC 8252 §7) and well-known URL construction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::{redirect_uri_matches, validate_redirect_uri};

fuzz_target!(|input: (&str, &str)| {
    let (registered, requested) = input;
    let _ = validate_redirect_uri(registered);
    // Matching is reflexive and never matches a fragment.
    assert!(redirect_uri_matches(registered, registered));
    if redirect_uri_matches(registered, requested) && registered != requested {
        assert!(!requested.contains('#'));
        assert!(requested.starts_with("http://"));
    }
    if let Ok(url) = url::Url::parse(registered) {
        let _ = mcpauth_metadata::authorization_server_metadata_url(&url);
        let _ = mcpauth_metadata::protected_resource_metadata_url(&url);
    }
});

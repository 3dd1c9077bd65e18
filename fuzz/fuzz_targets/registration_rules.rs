//! RFC 7591 registration requests through the registration rules (`mcpauth-dcr`): parsing,
//! validation, defaults. Whatever is accepted must keep the rules' promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_dcr::{RegistrationRules, validate_client_metadata, validate_redirect_uri};

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = mcpauth_oauth_types::ClientMetadata::from_json(data) else {
        return;
    };
    let rules = RegistrationRules::default();
    if let Ok((method, registered)) = validate_client_metadata(metadata, &rules) {
        // Every redirect URI that was accepted passes the redirect-URI policy on its own,
        // and the method recorded is the one returned.
        for uri in &registered.redirect_uris {
            assert!(
                validate_redirect_uri(uri).is_ok(),
                "accepted redirect URI {uri:?} fails the policy"
            );
            assert!(
                !uri.contains('#'),
                "accepted redirect URI {uri:?} has a fragment"
            );
        }
        assert_eq!(
            registered.token_endpoint_auth_method.as_deref(),
            Some(method.as_str())
        );
        assert!(!registered.grant_types.is_empty());
        // The implicit grant and the password grant are gone from OAuth 2.1.
        assert!(
            !registered
                .grant_types
                .iter()
                .any(|g| g == "implicit" || g == "password")
        );
        assert!(
            !registered
                .response_types
                .iter()
                .any(|r| r.split(' ').any(|part| part == "token"))
        );
    }
});

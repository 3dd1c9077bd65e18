//! Form bodies and query strings, then every typed request built from them (token,
//! authorization, revocation/introspection, device authorization).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_oauth_types::{
    AuthorizationRequest, DeviceAuthorizationRequest, FormParams, RevocationRequest, TokenRequest,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = FormParams::parse(data) {
        let _ = TokenRequest::from_form(&form);
        let _ = AuthorizationRequest::from_form(&form);
        let _ = RevocationRequest::from_form(&form);
        let _ = DeviceAuthorizationRequest::from_form(&form);
    }
});

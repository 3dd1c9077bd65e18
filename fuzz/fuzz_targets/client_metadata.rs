//! RFC 7591 registration request bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mcpauth_oauth_types::ClientMetadata::from_json(data);
});

//! `Authorization: Basic` client credentials (RFC 6749 §2.3.1).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let _ = mcpauth_oauth_types::parse_basic_authorization(data);
});

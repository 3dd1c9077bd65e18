//! Bearer extraction, JWK Set documents and JWT verification (RFC 6750, RFC 7517, RFC 9068).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_bearer::{TokenVerifier, extract_bearer};

const JWKS: &[u8] = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":"UcagIZVNGVD0S8c_5xPLoiv3n1BmaFUkdpXogMGnaws","y":"waf1xlbp8TIsn5f-37UxTesyq2R9fvo7Ut5LpGiZ63k"}]}"#;

fuzz_target!(|input: (&[u8], &str)| {
    let (jwks, token) = input;
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(token) {
        headers.insert(http::header::AUTHORIZATION, value);
        let _ = extract_bearer(&headers);
    }
    let mut verifier =
        TokenVerifier::new("https://auth.example.com", "https://mcp.example.com/mcp");
    let _ = verifier.set_jwks(jwks);
    let _ = verifier.verify(token, mcpauth_bearer::UnixTime(1_800_000_000));
    let _ = verifier.set_jwks(JWKS);
    let _ = verifier.verify(token, mcpauth_bearer::UnixTime(1_800_000_000));
});

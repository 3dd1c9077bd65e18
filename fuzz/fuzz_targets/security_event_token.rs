//! Security Event Tokens (RFC 8417) as a resource server's revocation receiver reads them from
//! a Shared Signals stream: raw strings, tokens built from arbitrary header and payload text,
//! and arbitrary claims under a valid `secevent+jwt` header signed with the issuer's (fixed
//! Ed25519) key, so the claim checks and the event reading are reached. Whatever comes in,
//! verification answers without panicking; an event is accepted only when signed by the
//! issuer's key, from the issuer, for this receiver; and what it ends, added to a revocation
//! list, never panics either.
#![no_main]

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcpauth_bearer::{RevocationList, TokenVerifier, UnixTime};

/// RFC 8032 §7.1's first test key.
const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://auth.example.com";
const RECEIVER: &str = "the-mcp-server";

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    raw: String,
    header: String,
    payload: String,
    signature: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Ok(key) = Ed25519KeyPair::from_seed_unchecked(&SEED) else {
        return;
    };
    let jwks = serde_json::json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
    }]});
    let mut verifier = TokenVerifier::new(ISSUER, "https://mcp.example.com/mcp");
    if verifier.set_jwks(jwks.to_string().as_bytes()).is_err() {
        return;
    }
    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text.as_bytes());
    let header = serde_json::json!({ "typ": "secevent+jwt", "alg": "EdDSA", "kid": "k1" });
    let message = format!("{}.{}", encode(&header.to_string()), encode(&input.payload));
    let signed = format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()).as_ref())
    );
    let built = format!(
        "{}.{}.{}",
        encode(&input.header),
        encode(&input.payload),
        URL_SAFE_NO_PAD.encode(&input.signature)
    );
    let mut list = RevocationList::new();
    for set in [input.raw.as_str(), built.as_str(), signed.as_str()] {
        if let Ok(event) = verifier.verify_security_event(set, RECEIVER, UnixTime(NOW)) {
            // Only the really signed token can verify, and only one naming this issuer and
            // this receiver.
            assert_eq!(set, signed);
            let claims: serde_json::Value =
                serde_json::from_str(&input.payload).expect("accepted claims are JSON");
            assert_eq!(claims["iss"], ISSUER);
            let aud = &claims["aud"];
            assert!(
                aud == RECEIVER
                    || aud
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v == RECEIVER))
            );
            assert!(!event.jti.is_empty());
            for revocation in &event.revocations {
                list.add(revocation, NOW + 3600);
            }
            list.forget_before(NOW);
        }
    }
});

//! RFC 9449 DPoP proofs as any client could send them: the raw header value; a proof built
//! from arbitrary header and payload text; and arbitrary claims under a valid header, signed
//! with a fixed Ed25519 key (deterministic signatures), so the claim checks are reached. An
//! accepted proof must name the fixed key's thumbprint.
#![no_main]

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcpauth_dpop::{NonceSource, ProofPolicy, RequestContext, jwk_thumbprint, verify_proof};

/// RFC 8032 §7.1's first test key.
const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    raw: Vec<u8>,
    header: String,
    payload: String,
    signature: Vec<u8>,
    method: String,
    uri: String,
    with_nonce: bool,
    with_token: bool,
}

fuzz_target!(|input: Input| {
    let Ok(key) = Ed25519KeyPair::from_seed_unchecked(&SEED) else {
        return;
    };
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
    });
    let nonces = NonceSource::new(&SEED, 60);
    let now = 1_800_000_000;
    let mut request = RequestContext::new("POST", "https://auth.example.com/token");
    if input.with_nonce {
        request = request.nonce_from(&nonces);
    }
    if input.with_token {
        request = request.access_token("an-access-token");
    }
    let policy = ProofPolicy::default();
    let _ = verify_proof([input.raw.as_slice()], &request, &policy, now);

    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text.as_bytes());
    let built = format!(
        "{}.{}.{}",
        encode(&input.header),
        encode(&input.payload),
        URL_SAFE_NO_PAD.encode(&input.signature),
    );
    let _ = verify_proof([built.as_bytes()], &request, &policy, now);

    // Arbitrary claims (and request) under a valid header, really signed.
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk});
    let message = format!("{}.{}", encode(&header.to_string()), encode(&input.payload));
    let signature = key.sign(message.as_bytes());
    let signed = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let fuzzed_request = RequestContext::new(&input.method, &input.uri);
    for request in [&request, &fuzzed_request] {
        if let Ok(proof) = verify_proof([signed.as_bytes()], request, &policy, now) {
            assert_eq!(Some(proof.jkt), jwk_thumbprint(&jwk));
        }
    }
});

//! RFC 9449 DPoP proofs as any client could send them: the raw header value, and a proof built
//! from arbitrary header and payload JSON (so the checks past base64 and JSON are reached).
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcpauth_dpop::{ProofPolicy, RequestContext, verify_proof};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    raw: String,
    header: String,
    payload: String,
    signature: Vec<u8>,
    with_nonce: bool,
    with_token: bool,
}

fuzz_target!(|input: Input| {
    let mut request = RequestContext::new("POST", "https://auth.example.com/token");
    if input.with_nonce {
        request = request.nonce("server-nonce");
    }
    if input.with_token {
        request = request.access_token("an-access-token");
    }
    let policy = ProofPolicy::default();
    let _ = verify_proof(&[&input.raw], &request, &policy, 1_800_000_000);
    let built = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(input.header.as_bytes()),
        URL_SAFE_NO_PAD.encode(input.payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(&input.signature),
    );
    let _ = verify_proof(&[&built], &request, &policy, 1_800_000_000);
});

//! RFC 9449 §4.2: the proofs a client makes with [`DpopKey`] pass every check of §4.3 the
//! server runs, and carry what the request needs (nonce, `ath`, `htu` without the query).
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests: a failed unwrap is a failed test; keys come from the OS random source"
)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use mcpauth_dpop::{
    DpopKey, NonceSource, ProofError, ProofPolicy, ProofRequest, RequestContext, SignError,
    jwk_thumbprint, verify_proof,
};

const NOW: u64 = 1_800_000_000;

fn key() -> DpopKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    DpopKey::from_pkcs8(pkcs8.as_ref()).unwrap()
}

#[test]
fn a_proof_made_with_a_key_verifies_and_names_its_thumbprint() {
    let key = key();
    let proof = key
        .proof(&ProofRequest::new(
            "POST",
            "https://auth.example.com/token?ignored=1#frag",
            "jti-1",
            NOW,
        ))
        .unwrap();
    let request = RequestContext::new("POST", "https://auth.example.com/token");
    let verified =
        verify_proof([proof.as_bytes()], &request, &ProofPolicy::default(), NOW).unwrap();
    assert_eq!(verified.jkt, key.thumbprint());
    assert_eq!(
        jwk_thumbprint(key.public_jwk()).as_deref(),
        Some(key.thumbprint())
    );
    assert_eq!(verified.jti, "jti-1");
}

#[test]
fn a_proof_signs_over_the_nonce_and_the_access_token_hash() {
    let key = key();
    let nonces = NonceSource::new(&[7; 32], 60);
    let nonce = nonces.current(NOW);
    let proof = key
        .proof(
            &ProofRequest::new("GET", "https://mcp.example.com/mcp", "jti-2", NOW)
                .nonce(&nonce)
                .access_token("token-value"),
        )
        .unwrap();
    let request = RequestContext::new("GET", "https://mcp.example.com/mcp")
        .nonce_from(&nonces)
        .access_token("token-value");
    verify_proof([proof.as_bytes()], &request, &ProofPolicy::default(), NOW).unwrap();
    // The same proof with another token fails ath (§4.3 check 12).
    let other = RequestContext::new("GET", "https://mcp.example.com/mcp")
        .nonce_from(&nonces)
        .access_token("another-token");
    assert_eq!(
        verify_proof([proof.as_bytes()], &other, &ProofPolicy::default(), NOW),
        Err(ProofError::AccessTokenHash)
    );
}

#[test]
fn a_key_that_is_not_pkcs8_p256_is_refused_and_a_uri_that_is_not_http_cannot_be_signed() {
    assert!(DpopKey::from_pkcs8(b"not a key").is_err());
    let key = key();
    for uri in [
        "mailto:a@example.com",
        "/token",
        "https://user@example.com/token",
    ] {
        assert_eq!(
            key.proof(&ProofRequest::new("POST", uri, "j", NOW)),
            Err(SignError::Uri),
            "{uri}"
        );
    }
}

#[test]
fn a_keys_debug_shows_its_thumbprint_only() {
    let key = key();
    let shown = format!("{key:?}");
    assert!(shown.contains(key.thumbprint()));
    assert!(!shown.contains("encoding"));
}

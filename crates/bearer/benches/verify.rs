//! Bearer verification on a warm key set, beside raw ES256 verification measured in the same
//! run.
//!
//! `cargo bench -p mcpauth-bearer --bench verify`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark"
)]
// The baselines sign and verify with aws-lc directly, and draw their keys from the OS.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "benchmark baselines"
)]

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_lite_block_on::block_on;
use mcpauth_bearer::{Revocation, RevocationList, TokenVerifier, extract_bearer};
use mcpauth_oauth_types::{ClientMetadata, FormParams};
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime};

const NOW: UnixTime = UnixTime(1_800_000_000);
const RESOURCE: &str = "https://mcp.example.com/mcp";
/// A 2048-bit test key (generating one per run would take seconds).
const RSA_PKCS1_DER: &[u8] =
    include_bytes!("../../token-engine/tests/data/rsa2048-test-key.pkcs1.der");

mod futures_lite_block_on {
    /// The memory model never really waits, so a Tokio current-thread runtime suffices.
    pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}

fn bench(c: &mut Criterion) {
    let der = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let (token, verifier) =
        token_and_verifier(SigningKey::es256_from_pkcs8_der(der.as_ref()).unwrap());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );

    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref()).unwrap();
    let message = [7u8; 300];
    let signature = pair
        .sign(&aws_lc_rs::rand::SystemRandom::new(), &message)
        .unwrap();
    let public = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        pair.public_key().as_ref().to_vec(),
    );

    let mut group = c.benchmark_group("bearer");
    group.bench_function("primitive_es256_verify", |b| {
        b.iter(|| {
            public
                .verify(black_box(&message), signature.as_ref())
                .unwrap()
        })
    });
    group.bench_function("extract_and_verify_jwt", |b| {
        b.iter(|| {
            let token = extract_bearer(black_box(&headers)).unwrap().unwrap();
            verifier.verify(token, NOW.plus(1)).unwrap()
        })
    });
    // Issue 26: the same, with a resource server's revocation list checked as the receiver
    // checks it (behind its lock), holding an hour of revocations of a busy server: ten
    // thousand grants, a thousand users, a hundred clients, a few keys. The token is none of
    // them, so every lookup is made.
    let mut revocations = RevocationList::new();
    for i in 0..10_000 {
        revocations.add(&Revocation::Grant(format!("grant-{i}")), NOW.0 + 3600);
    }
    for i in 0..1_000 {
        revocations.add(
            &Revocation::User {
                subject: format!("user-{i}"),
                before: NOW.0,
            },
            NOW.0 + 3600,
        );
    }
    for i in 0..100 {
        revocations.add(
            &Revocation::Client {
                client_id: format!("client-{i}"),
                before: NOW.0,
            },
            NOW.0 + 3600,
        );
    }
    for i in 0..4 {
        revocations.add(&Revocation::Key(format!("key-{i}")), NOW.0 + 3600);
    }
    let revocations = std::sync::RwLock::new(revocations);
    group.bench_function("extract_verify_and_check_revocations", |b| {
        b.iter(|| {
            let token = extract_bearer(black_box(&headers)).unwrap().unwrap();
            let verified = verifier.verify(token, NOW.plus(1)).unwrap();
            assert!(!revocations.read().unwrap().revokes(&verified));
            verified
        })
    });

    // The other algorithms, each beside its own primitive verify.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ed_der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(ed_der.as_ref()).unwrap();
    let ed_signature = ed.sign(&message);
    let ed_public = UnparsedPublicKey::new(&ED25519, ed.public_key().as_ref().to_vec());
    group.bench_function("primitive_eddsa_verify", |b| {
        b.iter(|| {
            ed_public
                .verify(black_box(&message), ed_signature.as_ref())
                .unwrap()
        })
    });
    let (token, verifier) =
        token_and_verifier(SigningKey::ed25519_from_pkcs8_der(ed_der.as_ref()).unwrap());
    group.bench_function("verify_jwt_eddsa", |b| {
        b.iter(|| verifier.verify(black_box(&token), NOW.plus(1)).unwrap())
    });

    let rsa = RsaKeyPair::from_der(RSA_PKCS1_DER).unwrap();
    let mut rsa_signature = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut rsa_signature)
        .unwrap();
    let rsa_public = UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    group.bench_function("primitive_rs256_verify", |b| {
        b.iter(|| {
            rsa_public
                .verify(black_box(&message), &rsa_signature)
                .unwrap()
        })
    });
    let (token, verifier) =
        token_and_verifier(SigningKey::rs256_from_pkcs1_der(RSA_PKCS1_DER).unwrap());
    group.bench_function("verify_jwt_rs256", |b| {
        b.iter(|| verifier.verify(black_box(&token), NOW.plus(1)).unwrap())
    });
    group.finish();
}

/// An access token signed with `key` and a verifier holding that key's JWK Set.
fn token_and_verifier(key: SigningKey) -> (String, TokenVerifier) {
    let config = EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap();
    let engine = TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(3)),
    );
    let mut machine = ClientMetadata::default();
    machine.grant_types = vec!["client_credentials".into()];
    machine.token_endpoint_auth_method = Some("client_secret_post".into());
    let client = block_on(engine.register_client(machine, NOW)).unwrap();
    let secret = client.client_secret.unwrap();
    let form = FormParams::from_pairs([
        ("grant_type", "client_credentials"),
        ("resource", RESOURCE),
        ("client_id", client.client_id.as_str()),
        ("client_secret", secret.as_str()),
    ]);
    let token = block_on(engine.token(None, &form, NOW))
        .unwrap()
        .access_token;
    let mut verifier = TokenVerifier::new("https://auth.example.com", RESOURCE);
    verifier
        .set_jwks(&serde_json::to_vec(&engine.jwks()).unwrap())
        .unwrap();
    (token, verifier)
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Grant throughput on the memory model, each beside the raw cost of the primitives it is
//! built from (ES256 sign/verify, SHA-256), measured in the same run so figures can be read
//! as ratios.
//!
//! `cargo bench -p mcpauth-token-engine --bench engine`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark"
)]
// The baselines sign and verify with aws-lc directly, and draw their keys from the OS.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "benchmark baselines"
)]

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use mcpauth_oauth_types::{ClientMetadata, FormParams};
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime,
};
use sha2::Digest as _;

const NOW: UnixTime = UnixTime(1_800_000_000);
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const REDIRECT: &str = "http://127.0.0.1/cb";
/// A 2048-bit test key (generating one per run would take seconds).
const RSA_PKCS1_DER: &[u8] = include_bytes!("../tests/data/rsa2048-test-key.pkcs1.der");

fn pkcs8() -> Vec<u8> {
    EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap()
    .as_ref()
    .to_vec()
}

fn primitives(c: &mut Criterion) {
    let der = pkcs8();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let message = [7u8; 300];
    let signature = pair.sign(&rng, &message).unwrap();
    let public = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        pair.public_key().as_ref().to_vec(),
    );
    let mut group = c.benchmark_group("primitive");
    group.bench_function("es256_sign", |b| {
        b.iter(|| pair.sign(&rng, black_box(&message)).unwrap())
    });
    group.bench_function("es256_verify", |b| {
        b.iter(|| {
            public
                .verify(black_box(&message), signature.as_ref())
                .unwrap()
        })
    });
    group.bench_function("sha256_32_bytes", |b| {
        b.iter(|| sha2::Sha256::digest(black_box([1u8; 32])))
    });

    let ed_der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(ed_der.as_ref()).unwrap();
    let ed_signature = ed.sign(&message);
    let ed_public = UnparsedPublicKey::new(&ED25519, ed.public_key().as_ref().to_vec());
    group.bench_function("eddsa_sign", |b| b.iter(|| ed.sign(black_box(&message))));
    group.bench_function("eddsa_verify", |b| {
        b.iter(|| {
            ed_public
                .verify(black_box(&message), ed_signature.as_ref())
                .unwrap()
        })
    });

    let rsa = RsaKeyPair::from_der(RSA_PKCS1_DER).unwrap();
    let mut rsa_signature = vec![0u8; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut rsa_signature)
        .unwrap();
    let rsa_public = UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    group.bench_function("rs256_sign", |b| {
        let mut out = vec![0u8; rsa.public_modulus_len()];
        b.iter(|| {
            rsa.sign(&RSA_PKCS1_SHA256, &rng, black_box(&message), &mut out)
                .unwrap()
        })
    });
    group.bench_function("rs256_verify", |b| {
        b.iter(|| {
            rsa_public
                .verify(black_box(&message), &rsa_signature)
                .unwrap()
        })
    });
    group.finish();
}

/// The checks and parsers on every token request, each a small fraction of a signature.
fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    let challenge = mcpauth_pkce::CodeChallenge::parse(CHALLENGE, Some("S256")).unwrap();
    let verifier = mcpauth_oauth_types::CodeVerifier::new(VERIFIER.into());
    group.bench_function("pkce_s256_verify", |b| {
        b.iter(|| black_box(&challenge).verify(black_box(&verifier)).unwrap())
    });
    // What a client-secret check is: SHA-256 of the presented secret, compared in constant
    // time with the stored hash (never a slow password hash per request).
    let secret = "7uab1HRNWxwbY9U9xmjWtr6NGgb3MmZG6dJ5P_GYyHY";
    let stored = mcpauth_token_engine::SecretHash::of(secret);
    group.bench_function("client_secret_check", |b| {
        b.iter(|| assert!(stored.matches(black_box(secret))))
    });
    let body = format!(
        "grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri={}&code_verifier={VERIFIER}&client_id=s6BhdRkqt3&resource={}",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(RESOURCE.as_bytes()).collect::<String>(),
    );
    group.bench_function("parse_token_request", |b| {
        b.iter(|| {
            let form = FormParams::parse(black_box(body.as_bytes())).unwrap();
            mcpauth_oauth_types::TokenRequest::from_form(&form).unwrap()
        })
    });
    let registration = br#"{"client_name":"Example MCP client","redirect_uris":["http://127.0.0.1:53682/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none","application_type":"native","scope":"mcp:tools"}"#;
    group.bench_function("parse_registration_request", |b| {
        b.iter(|| serde_json::from_slice::<ClientMetadata>(black_box(registration)).unwrap())
    });
    group.finish();
}

struct Bench {
    engine: TokenEngine<MemoryModel>,
    public_client: String,
    machine_basic: String,
}

fn setup() -> Bench {
    setup_with(SigningKey::es256_from_pkcs8_der(&pkcs8()).unwrap())
}

fn setup_with(key: SigningKey) -> Bench {
    let config = EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap();
    let engine = TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(1)),
    );
    let mut public = ClientMetadata::default();
    public.redirect_uris = vec![REDIRECT.into()];
    let public_client = block_on(engine.register_client(public, NOW))
        .unwrap()
        .client_id;
    let mut machine = ClientMetadata::default();
    machine.grant_types = vec!["client_credentials".into()];
    machine.token_endpoint_auth_method = Some("client_secret_basic".into());
    let registered = block_on(engine.register_client(machine, NOW)).unwrap();
    let credentials = format!(
        "{}:{}",
        registered.client_id,
        registered.client_secret.unwrap()
    );
    let machine_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    Bench {
        engine,
        public_client,
        machine_basic,
    }
}

fn code(bench: &Bench) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", bench.public_client.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("resource", RESOURCE),
        ])
        .finish();
    let AuthorizeOutcome::NeedsConsent(pending) =
        block_on(bench.engine.authorize(query.as_bytes(), NOW))
    else {
        panic!("consent expected")
    };
    let redirect = block_on(bench.engine.approve(pending, "alice", NOW)).unwrap();
    url::Url::parse(&redirect.location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

/// JWT issuance per algorithm: a `client_credentials` grant is one signature, so each is
/// read beside the primitive sign of the same algorithm.
fn signing_per_algorithm(c: &mut Criterion) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let keys = [
        ("es256", SigningKey::es256_from_pkcs8_der(&pkcs8()).unwrap()),
        (
            "eddsa",
            SigningKey::ed25519_from_pkcs8_der(
                Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref(),
            )
            .unwrap(),
        ),
        (
            "rs256",
            SigningKey::rs256_from_pkcs1_der(RSA_PKCS1_DER).unwrap(),
        ),
    ];
    let mut group = c.benchmark_group("jwt_issue");
    for (name, key) in keys {
        let bench = setup_with(key);
        let form =
            FormParams::from_pairs([("grant_type", "client_credentials"), ("resource", RESOURCE)]);
        group.bench_function(name, |b| {
            b.iter(|| {
                block_on(
                    bench
                        .engine
                        .token(Some(&bench.machine_basic), black_box(&form), NOW),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn grants(c: &mut Criterion) {
    let bench = setup();
    let mut group = c.benchmark_group("grant");

    let form =
        FormParams::from_pairs([("grant_type", "client_credentials"), ("resource", RESOURCE)]);
    group.bench_function("client_credentials", |b| {
        b.iter(|| {
            block_on(
                bench
                    .engine
                    .token(Some(&bench.machine_basic), black_box(&form), NOW),
            )
            .unwrap()
        })
    });

    group.bench_function("authorization_code_redemption", |b| {
        b.iter_batched(
            || code(&bench),
            |code| {
                let form = FormParams::from_pairs([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                    ("client_id", bench.public_client.as_str()),
                ]);
                block_on(bench.engine.token(None, &form, NOW)).unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    let first = {
        let form = FormParams::from_pairs([
            ("grant_type", "authorization_code"),
            ("code", code(&bench).as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", bench.public_client.as_str()),
        ]);
        block_on(bench.engine.token(None, &form, NOW))
            .unwrap()
            .refresh_token
            .unwrap()
    };
    // Steady-state rotation: every iteration redeems the token the previous one received.
    let latest = RefCell::new(first);
    group.bench_function("refresh_rotation", |b| {
        b.iter(|| {
            let current = latest.borrow().clone();
            let form = FormParams::from_pairs([
                ("grant_type", "refresh_token"),
                ("refresh_token", current.as_str()),
                ("client_id", bench.public_client.as_str()),
            ]);
            let response = block_on(bench.engine.token(None, &form, NOW)).unwrap();
            *latest.borrow_mut() = response.refresh_token.unwrap();
        })
    });

    // RFC 8628: a device code approved on the verification page, redeemed by the device.
    let mut device = ClientMetadata::default();
    device.grant_types = vec![mcpauth_token_engine::DEVICE_CODE_GRANT.into()];
    device.token_endpoint_auth_method = Some("none".into());
    let device_client = block_on(bench.engine.register_client(device, NOW))
        .unwrap()
        .client_id;
    let device_code_rounds = AtomicU64::new(0);
    group.bench_function("device_code_redemption", |b| {
        b.iter_batched(
            || {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("client_id", device_client.as_str()),
                        ("resource", RESOURCE),
                    ])
                    .finish();
                let request = http::Request::post("/device_authorization")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(bytes::Bytes::from(body))
                    .unwrap();
                let response = block_on(bench.engine.device_authorization_endpoint(request, NOW));
                let started: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
                let user_code = started["user_code"]
                    .as_str()
                    .unwrap_or_else(|| panic!("the device authorization was refused: {started}"));
                // The verification page's lookup (limited per caller: one caller per round).
                let caller = format!(
                    "page-{}",
                    device_code_rounds.fetch_add(1, Ordering::Relaxed)
                );
                let pending =
                    block_on(bench.engine.device_lookup(user_code, &caller, NOW)).unwrap();
                block_on(bench.engine.approve_device(pending, "alice", NOW)).unwrap();
                started["device_code"].as_str().unwrap().to_owned()
            },
            |device_code| {
                let form = FormParams::from_pairs([
                    ("grant_type", mcpauth_token_engine::DEVICE_CODE_GRANT),
                    ("device_code", device_code.as_str()),
                    ("client_id", device_client.as_str()),
                ]);
                block_on(bench.engine.token(None, &form, NOW)).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, primitives, checks, grants, signing_per_algorithm);
criterion_main!(benches);

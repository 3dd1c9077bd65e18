//! Signing keys: EdDSA beside ES256, and rotation without invalidating live tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use mcpauth_token_engine::ClientStore as _;

use std::sync::Arc;

use common::*;
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    EngineConfig, KeyAlgorithm, KeySet, MemoryModel, SigningKey, TokenEngine,
};

fn ed25519() -> SigningKey {
    SigningKey::generate(KeyAlgorithm::EdDsa).unwrap()
}

fn es256_der() -> Vec<u8> {
    SigningKey::generate_pkcs8(KeyAlgorithm::Es256).unwrap()
}

/// Registers a `client_secret_post` machine client; returns its id and secret.
async fn machine_client(engine: &TokenEngine<MemoryModel>) -> (String, String) {
    let mut machine = ClientMetadata::default();
    machine.grant_types = vec!["client_credentials".into()];
    machine.token_endpoint_auth_method = Some("client_secret_post".into());
    let client = engine.register_client(machine, NOW).await.unwrap();
    (client.client_id, client.client_secret.unwrap())
}

/// A client_credentials token from a fresh machine client.
async fn machine_token(engine: &TokenEngine<MemoryModel>) -> String {
    let (id, secret) = machine_client(engine).await;
    cc_token(engine, &id, &secret).await
}

async fn cc_token(engine: &TokenEngine<MemoryModel>, id: &str, secret: &str) -> String {
    let form = mcpauth_oauth_types::FormParams::from_pairs([
        ("grant_type", "client_credentials"),
        ("resource", RESOURCE),
        ("client_id", id),
        ("client_secret", secret),
    ]);
    engine.token(None, &form, NOW).await.unwrap().access_token
}

// RFC 8037: EdDSA (Ed25519) keys sign access tokens and are published as OKP JWKs.
#[tokio::test]
async fn eddsa_keys_sign_access_tokens() {
    let key = ed25519();
    let kid = key.kid().to_owned();
    let engine = TokenEngine::new(
        EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(4)),
    );
    let jwks = engine.jwks();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    let token = machine_token(&engine).await;
    let header = jwt_part(&token, 0);
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("EdDSA"), Some(kid.as_str()))
    );
}

// Rotation: a new current key signs; the retired key stays published and its tokens stay
// valid at introspection until they expire.
#[tokio::test]
async fn retired_keys_still_verify_and_stay_published() {
    let model = Arc::new(MemoryModel::new());
    let config = EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap();
    let old_der = es256_der();
    let before = TokenEngine::new(
        config.clone(),
        model.clone(),
        SigningKey::es256_from_pkcs8_der(&old_der).unwrap(),
        Arc::new(SeededRandom::new(5)),
    );
    let (client_id, secret) = machine_client(&before).await;
    // It introspects its own tokens below, as a resource server would.
    let mut record = model
        .find_client(&mcpauth_token_engine::ClientId::from(client_id.as_str()))
        .await
        .unwrap()
        .unwrap();
    record.resource_server = true;
    assert!(model.update_client(record).await.unwrap());
    let old_token = cc_token(&before, &client_id, &secret).await;

    let old_key = SigningKey::es256_from_pkcs8_der(&old_der).unwrap();
    let old_kid = old_key.kid().to_owned();
    let keys = KeySet::new(ed25519()).with_retired(old_key);
    let after = TokenEngine::new(config, model, keys, Arc::new(SeededRandom::new(6)));
    let kids: Vec<String> = after.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&old_kid));
    let new_token = cc_token(&after, &client_id, &secret).await;
    assert_eq!(
        jwt_part(&new_token, 0)["alg"],
        "EdDSA",
        "the current key signs"
    );
    let introspect = |token: String| {
        let form = mcpauth_oauth_types::FormParams::from_pairs([
            ("token", token.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ]);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_pairs(&form))
            .finish();
        let request = http::Request::post("/introspect")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bytes::Bytes::from(body))
            .unwrap();
        after.introspection_endpoint(request, NOW.plus(1))
    };
    let old = introspect(old_token).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(old.body()).unwrap()["active"],
        true,
        "tokens of the retired key stay valid"
    );
    let new = introspect(new_token).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(new.body()).unwrap()["active"],
        true
    );
}

fn form_pairs(form: &mcpauth_oauth_types::FormParams) -> Vec<(String, String)> {
    ["token", "client_id", "client_secret"]
        .iter()
        .filter_map(|k| form.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect()
}

// RFC 7518 §3.3: RS256 keys sign access tokens and are published as RSA JWKs.
#[tokio::test]
async fn rs256_keys_sign_access_tokens() {
    let key = SigningKey::rs256_from_pkcs1_der(include_bytes!("data/rsa2048-test-key.pkcs1.der"))
        .unwrap();
    let engine = TokenEngine::new(
        EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(12)),
    );
    let jwks = engine.jwks();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["e"], "AQAB");
    let token = machine_token(&engine).await;
    assert_eq!(jwt_part(&token, 0)["alg"], "RS256");
    assert!(SigningKey::rs256_from_pkcs1_der(b"not a key").is_err());
}

// RFC 7518 §3.2: HS256 with a shared secret of at least 32 bytes; never published.
#[tokio::test]
async fn hs256_keys_are_never_published() {
    assert!(
        SigningKey::hs256(&[7u8; 31]).is_err(),
        "secrets shorter than the hash are refused"
    );
    let key = SigningKey::hs256(&[7u8; 32]).unwrap();
    assert!(key.public_jwk().is_none());
    let engine = TokenEngine::new(
        EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(13)),
    );
    assert_eq!(engine.jwks()["keys"], serde_json::json!([]));
    let token = machine_token(&engine).await;
    assert_eq!(jwt_part(&token, 0)["alg"], "HS256");
}

//! RFC 7523 client assertions: arbitrary `client_assertion` values through the token
//! endpoint of an engine with a `private_key_jwt` client. Only panics count.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime};

fn engine() -> Option<&'static (TokenEngine<MemoryModel>, String)> {
    static ENGINE: OnceLock<Option<(TokenEngine<MemoryModel>, String)>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
            let der = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .ok()?;
            let key = SigningKey::es256_from_pkcs8_der(der.as_ref()).ok()?;
            let client_key = SigningKey::es256_from_pkcs8_der(der.as_ref()).ok()?;
            let config = EngineConfig::new("https://auth.example.com".parse().ok()?).ok()?;
            let engine = TokenEngine::new(
                config,
                Arc::new(MemoryModel::new()),
                key,
                Arc::new(SeededRandom::new(9)),
            );
            let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
            metadata.token_endpoint_auth_method = Some("private_key_jwt".into());
            metadata.grant_types = vec!["client_credentials".into()];
            metadata.jwks = Some(serde_json::json!({ "keys": [client_key.public_jwk()] }));
            let client = futures::executor::block_on(
                engine.register_client(metadata, UnixTime(1_800_000_000)),
            )
            .ok()?;
            Some((engine, client.client_id))
        })
        .as_ref()
}

fuzz_target!(|assertion: &str| {
    let Some((engine, client_id)) = engine() else {
        return;
    };
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("resource", "https://api.example.com/mcp"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("client_id", client_id),
        ])
        .finish();
    let mut request = http::Request::new(Bytes::from(body));
    *request.method_mut() = http::Method::POST;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let response =
        futures::executor::block_on(engine.token_endpoint(request, UnixTime(1_800_000_000)));
    assert_ne!(
        response.status(),
        http::StatusCode::OK,
        "an arbitrary assertion authenticated"
    );
});

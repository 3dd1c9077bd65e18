//! Client ID Metadata Documents: arbitrary bytes handed to the engine as a fetched document.
//! Only panics count, and nothing invalid may be cached.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    DocumentFetch, EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime,
};

const CLIENT_URL: &str = "https://app.example.com/oauth/client.json";

fn engine() -> Option<&'static TokenEngine<MemoryModel>> {
    static ENGINE: OnceLock<Option<TokenEngine<MemoryModel>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let der = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .ok()?;
            let key = SigningKey::ed25519_from_pkcs8_der(der.as_ref()).ok()?;
            let mut config = EngineConfig::new("https://auth.example.com".parse().ok()?).ok()?;
            config.client_metadata_documents(true);
            Some(TokenEngine::new(
                config,
                Arc::new(MemoryModel::new()),
                key,
                Arc::new(SeededRandom::new(10)),
            ))
        })
        .as_ref()
}

fuzz_target!(|document: &[u8]| {
    let Some(engine) = engine() else { return };
    let now = UnixTime(1_800_000_000);
    let Ok(url) = CLIENT_URL.parse() else { return };
    let fetch = DocumentFetch::for_authorization(url, Some("http://127.0.0.1/callback".into()));
    let _ = futures::executor::block_on(engine.accept_client_metadata_document(
        &fetch,
        document,
        now,
        now.plus(60),
    ));
});

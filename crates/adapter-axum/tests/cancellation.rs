#![allow(clippy::unwrap_used, reason = "tests")]
//! A request whose client hangs up still runs to completion: its future is not dropped half
//! way (inside a database transaction, that would leave the connection in the transaction).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use mcpauth_adapter_axum::{AuthorizationServer, Interaction, now, router};
use mcpauth_http::HttpResponse;
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{
    EngineConfig, MemoryModel, PendingAuthorization, RandomError, SecureRandom, SigningKey,
    TokenEngine,
};

/// Deterministic bytes: this test needs identifiers, not secrecy.
struct Counter(AtomicU8);

impl SecureRandom for Counter {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        for byte in dest {
            *byte = self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Takes its time, then records that it finished.
struct Slow(Arc<AtomicBool>);

#[async_trait::async_trait]
impl Interaction for Slow {
    async fn begin(
        &self,
        _pending: PendingAuthorization,
        _request: &http::request::Parts,
    ) -> HttpResponse {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.store(true, Ordering::SeqCst);
        http::Response::new(bytes::Bytes::from_static(b"done"))
    }
}

#[tokio::test]
async fn a_request_runs_to_completion_when_its_client_hangs_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let engine = Arc::new(TokenEngine::new(
        EngineConfig::new(issuer.parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        SigningKey::hs256(&[7; 32]).unwrap(),
        Arc::new(Counter(AtomicU8::new(0))),
    ));
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    let client = engine.register_client(metadata, now()).await.unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let app = router(Arc::new(AuthorizationServer::new(
        engine,
        Arc::new(Slow(finished.clone())),
    )));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let query = format!(
        "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb\
         &code_challenge=ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc&code_challenge_method=S256\
         &resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
        client.client_id
    );
    let hung_up = reqwest::Client::new()
        .get(format!("{issuer}/authorize?{query}"))
        .timeout(Duration::from_millis(50))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        finished.load(Ordering::SeqCst),
        "the request was dropped with its client"
    );
}

//! A request whose client hangs up still runs to completion: its future is not dropped half
//! way (inside a database transaction, that would leave the connection in the transaction).
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mcpauth_http::{AuthorizationServer, HttpResponse, Interaction, OsRandom, now};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{
    EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
};

/// Takes its time, then records that it finished.
struct Slow(Arc<AtomicBool>);

#[async_trait::async_trait]
impl Interaction for Slow {
    async fn begin(&self, _: PendingAuthorization, _: &http::request::Parts) -> HttpResponse {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        self.0.store(true, Ordering::SeqCst);
        http::Response::new(Bytes::from_static(b"done"))
    }
}

#[actix_web::test]
async fn a_request_runs_to_completion_when_its_client_hangs_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let engine = Arc::new(TokenEngine::new(
        EngineConfig::new(issuer.parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        SigningKey::hs256(&[7; 32]).unwrap(),
        Arc::new(OsRandom),
    ));
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    let client = engine.register_client(metadata, now()).await.unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let server = Arc::new(AuthorizationServer::new(
        engine,
        Arc::new(Slow(finished.clone())),
    ));
    let running = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(mcpauth_adapter_actix::authorization_server(server.clone()))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = running.handle();
    actix_web::rt::spawn(running);

    // A raw connection, closed before the answer: actix drops the request with it.
    let query = format!(
        "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb\
         &code_challenge=ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc&code_challenge_method=S256\
         &resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
        client.client_id
    );
    let address = issuer.trim_start_matches("http://").to_owned();
    let mut stream = actix_web::rt::net::TcpStream::connect(&address)
        .await
        .unwrap();
    let request = format!("GET /authorize?{query} HTTP/1.1\r\nHost: {address}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    let done = finished.load(Ordering::SeqCst);
    handle.stop(false).await;
    assert!(done, "the request was dropped with its client");
}

//! The token engine on the in-memory model behind the axum adapter, for `scripts/bench` only:
//! the memory-model rows beside the MCP TypeScript SDK's demo authorization server, which is
//! in-memory too and approves every authorization at once. So does this: **every
//! authorization request is approved for one fixed user, with no sign-in**. Never deploy it.
//!
//! ```text
//! cargo run --release --example bench_memory_server -- 127.0.0.1:0
//! ```
//!
//! Listens on loopback only and prints one JSON line once it accepts connections:
//! `{"issuer", "machine_client_id", "machine_client_secret", "public_client_id"}` (a
//! `client_secret_basic` client for `client_credentials`, and a public client with redirect
//! URI `http://127.0.0.1/cb`). Tokens are ES256 JWTs; scope `mcp:tools`, any https or loopback
//! resource.

use std::process::ExitCode;
use std::sync::Arc;

use http::{StatusCode, header};
use mcpauth_adapter_axum::now;
use mcpauth_http::{AuthorizationServer, HttpResponse, Interaction, OsRandom};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{
    EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
};

/// Approves every request for `bench-user` (like the TypeScript SDK's demo provider).
struct ApproveEverything(Arc<TokenEngine<MemoryModel>>);

#[async_trait::async_trait]
impl Interaction for ApproveEverything {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        _request: &http::request::Parts,
    ) -> HttpResponse {
        let answer = match self.0.approve(pending, "bench-user", now()).await {
            Ok(redirect) => http::Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, redirect.location)
                .body(bytes::Bytes::new()),
            Err(e) => http::Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(e.to_string().into()),
        };
        answer.unwrap_or_default()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        return Err("this server approves everything: it listens on loopback only".into());
    }
    let issuer = format!("http://{address}");

    let mut config = EngineConfig::new(issuer.parse()?)?;
    config.scopes_supported(vec!["mcp:tools".into()]);
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .map_err(|_| "generating the signing key failed")?;
    let engine = Arc::new(TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        SigningKey::es256_from_pkcs8_der(pkcs8.as_ref())?,
        Arc::new(OsRandom),
    ));

    let mut machine = ClientMetadata::default();
    machine.grant_types = vec!["client_credentials".into()];
    machine.token_endpoint_auth_method = Some("client_secret_basic".into());
    machine.scope = Some("mcp:tools".into());
    let machine = engine.register_client(machine, now()).await?;
    let mut public = ClientMetadata::default();
    public.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    public.scope = Some("mcp:tools".into());
    let public = engine.register_client(public, now()).await?;

    let server =
        AuthorizationServer::new(engine.clone(), Arc::new(ApproveEverything(engine.clone())));
    let router = mcpauth_adapter_axum::router(Arc::new(server));
    println!(
        "{}",
        serde_json::json!({
            "issuer": issuer,
            "machine_client_id": machine.client_id,
            "machine_client_secret": machine.client_secret,
            "public_client_id": public.client_id,
        })
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

//! Runs the example MCP server.
//!
//! `MCPAUTH_ISSUER` (default `http://127.0.0.1:8080`) names the authorization server,
//! `EXAMPLE_LISTEN` (default `127.0.0.1:3000`) where to listen.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPAUTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let issuer = std::env::var("MCPAUTH_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let listen = std::env::var("EXAMPLE_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let resource = format!("http://{listen}/mcp");
    let jwks_uri = format!("{}/jwks.json", issuer.trim_end_matches('/'));
    let app = match mcpauth_example_mcp_server::app(&resource, &issuer, &jwks_uri) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%resource, %issuer, "example MCP server is ready");
    match axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

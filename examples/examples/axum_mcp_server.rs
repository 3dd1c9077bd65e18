//! An MCP server in axum, protected by mcpauth.
//!
//! ```text
//! cargo run -p mcpauth-server                  # the authorization server on :8080
//! cargo run --example axum_mcp_server          # this MCP server on http://127.0.0.1:3000/mcp
//! ```
//!
//! `MCPAUTH_ISSUER` names the authorization server (default `http://127.0.0.1:8080`),
//! `EXAMPLE_LISTEN` where to listen (default `127.0.0.1:3000`),
//! `EXAMPLE_REVOCATION_CLIENT_ID` and `EXAMPLE_REVOCATION_CLIENT_SECRET` a resource-server
//! client at the authorization server to receive its revocations with (pushed to `/ssf/push`
//! with `EXAMPLE_REVOCATION_PUSH=true`, else polled). The server prints
//! `listening on <resource>` once it accepts connections.

use std::process::ExitCode;

use mcpauth_adapter_axum::{BearerLayer, MetadataRouter, RevocationPushRouter};
use mcpauth_examples::{Settings, listen_tokio, mcp_service};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPAUTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut settings = Settings::from_env();
    if let Err(e) = settings.check_authorization_server().await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let (listener, resource, protection) = match listen_tokio(&settings) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };

    // Revocations from the authorization server's Shared Signals stream, when configured
    // (EXAMPLE_REVOCATION_CLIENT_ID and _SECRET); returns at once otherwise.
    tokio::spawn(protection.clone().receive_revocations());
    let app = axum::Router::new()
        // The MCP endpoint, behind the bearer layer: 401/403 challenges, tool scopes, limits.
        .nest_service("/mcp", mcp_service(protection.clone(), &resource))
        .layer(BearerLayer::new(protection.clone()))
        // The RFC 9728 document MCP clients discover the authorization server from; public.
        .merge(protection.metadata_router())
        // Where the authorization server pushes revocations, if it does; authenticated by the
        // credential this server gave it.
        .merge(protection.revocation_push_router())
        // The revocation receiver's metrics (Prometheus text); restrict it at your proxy.
        .route(
            "/metrics",
            axum::routing::get({
                let protection = protection.clone();
                move || async move {
                    protection
                        .revocation_metrics()
                        .prometheus(mcpauth_adapter_axum::now().0)
                }
            }),
        );

    println!("listening on {resource}");
    tracing::info!(%resource, issuer = %settings.issuer, "axum MCP server is ready");
    // rmcp answers in server-sent events, written in pieces: without TCP_NODELAY the last piece
    // can wait for the client's delayed ACK (40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! An MCP server on bare hyper 1.x, protected by mcpauth through `mcpauth_examples::hyper_glue`
//! (a framework with no adapter crate: the glue is written from docs/embedding.md).
//!
//! ```text
//! cargo run -p mcpauth-server                  # the authorization server on :8080
//! cargo run --example hyper_mcp_server         # this MCP server on http://127.0.0.1:3000/mcp
//! ```
//!
//! `MCPAUTH_ISSUER` names the authorization server (default `http://127.0.0.1:8080`),
//! `EXAMPLE_LISTEN` where to listen (default `127.0.0.1:3000`). The server prints
//! `listening on <resource>` once it accepts connections.

use std::process::ExitCode;
use std::sync::Arc;

use http_body_util::BodyExt as _;
use mcpauth_examples::hyper_glue::{Mcp, Mount, Protected, serve};
use mcpauth_examples::{Settings, listen_tokio, mcp_service};
use mcpauth_http::RouteRules;

#[tokio::main]
async fn main() -> ExitCode {
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
    // The official Rust MCP SDK's streamable-HTTP service, called as a tower service.
    let service = mcp_service(protection.clone(), &resource);
    let mcp: Mcp = Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            let Ok(response) = tower::Service::call(&mut service, request).await;
            response.map(|body| body.map_err(|e| match e {}).boxed_unsync())
        })
    });
    let mount = Arc::new(Mount {
        protected: vec![Protected {
            path: "/mcp".into(),
            resource: protection,
            rules: RouteRules::new(),
        }],
        mcp,
        // The authorization server is mcpauth-server, elsewhere.
        authorization: None,
    });
    println!("listening on {resource}");
    tokio::select! {
        served = serve(listener, mount) => {
            eprintln!("error: {served:?}");
            ExitCode::FAILURE
        }
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}

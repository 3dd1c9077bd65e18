//! A protected MCP endpoint in axum, checked by the shared resource-server conformance suite.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::sync::Arc;

use axum::routing::post;
use mcpauth_adapter_axum::{
    Authenticated, BearerLayer, MetadataRouter, ResourceServer, ResourceServerConfig,
};

#[tokio::test]
async fn routes_require_their_scopes_and_challenge_for_step_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&base).await;
    let resource = format!("{base}/mcp");
    let mut config = ResourceServerConfig::new(&resource, &base, format!("{base}/jwks.json"));
    config.required_scopes = vec!["mcp".into()];
    let protection = Arc::new(ResourceServer::new(config).unwrap());
    let app = mcpauth_adapter_axum::router(fixture.server())
        .route(
            "/mcp",
            post(|Authenticated(token): Authenticated| async move { token.subject })
                .layer(BearerLayer::new(protection.clone())),
        )
        .route(
            "/mcp/admin",
            post(|| async { "admin" })
                .layer(BearerLayer::new(protection.clone()).requiring(&["mcp", "admin"])),
        )
        .merge(protection.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    mcpauth_conformance::run_resource_server(&base, &fixture).await;
}

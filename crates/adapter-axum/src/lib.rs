//! axum glue for mcpauth: the authorization-server routes over
//! [`TokenEngine`](mcpauth_token_engine::TokenEngine), and a tower layer that protects an MCP
//! resource server with bearer tokens and serves its RFC 9728 metadata.
//!
//! Each handler extracts, calls the engine's `http`-level entry and returns its response; the
//! protocol lives in the engine. The adapter reads the clock (it is the I/O edge) and logs
//! internal errors the engine attached to its responses.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcpauth_adapter_axum::{BearerLayer, MetadataRouter, ResourceServer, ResourceServerConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ResourceServerConfig::new(
//!     "http://127.0.0.1:3000/mcp",
//!     "http://127.0.0.1:8080",
//!     "http://127.0.0.1:8080/jwks.json",
//! );
//! let resource = Arc::new(ResourceServer::new(config)?);
//! let app = axum::Router::new()
//!     .route("/mcp", axum::routing::post(|| async { "protected" }))
//!     .layer(BearerLayer::new(resource.clone()))
//!     .merge(resource.metadata_router());
//! # let _ = app; Ok(()) }
//! ```

mod authorization_server;
mod resource_server;

pub use authorization_server::{
    InteractionHandler, authorization_server_router, authorization_server_router_with_fetcher, now,
    router, show_error_page,
};
pub use mcpauth_http::AuthorizationServer;
pub use mcpauth_http::{ResourceServer, ResourceServerConfig, ResourceServerError};
pub use resource_server::{Authenticated, BearerLayer, BearerService, MetadataRouter};

//! axum glue for mcpauth: the authorization-server routes over
//! [`TokenEngine`](mcpauth_token_engine::TokenEngine), and a tower layer that protects an MCP
//! resource server with bearer tokens and serves its RFC 9728 metadata.
//!
//! Each handler converts the request, calls the framework-neutral service of `mcpauth-http`
//! and converts its response back; the protocol lives in the engine, the decisions about a
//! protected request in [`ResourceServer::admit`].
//!
//! ```
//! use std::sync::Arc;
//! use mcpauth_adapter_axum::{BearerLayer, MetadataRouter, ResourceServer, ResourceServerConfig};
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ResourceServerConfig::new(
//!     "http://127.0.0.1:3000/mcp",     // this MCP server: the audience tokens must name
//!     "http://127.0.0.1:8080",         // the authorization server it trusts
//!     "http://127.0.0.1:8080/jwks.json",
//! );
//! let resource = Arc::new(ResourceServer::new(config)?);
//! let app = axum::Router::new()
//!     .route("/mcp", axum::routing::post(|| async { "protected" }))
//!     .layer(BearerLayer::new(resource.clone()))
//!     .merge(resource.metadata_router());
//!
//! // No token: 401 with the challenge MCP clients discover the authorization server from.
//! let request = axum::http::Request::post("/mcp").body(axum::body::Body::empty())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 401);
//! let challenge = response.headers()["www-authenticate"].to_str()?;
//! assert!(challenge.contains("resource_metadata=\"http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp\""));
//!
//! // The RFC 9728 document is public.
//! let request = axum::http::Request::get("/.well-known/oauth-protected-resource/mcp")
//!     .body(axum::body::Body::empty())?;
//! assert_eq!(app.oneshot(request).await?.status(), 200);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "authorization-server")]
mod authorization_server;
mod resource_server;

#[cfg(feature = "authorization-server")]
pub use authorization_server::{router, show_error_page};
#[cfg(feature = "authorization-server")]
pub use mcpauth_http::{AuthorizationServer, Interaction};
pub use mcpauth_http::{ResourceServer, ResourceServerConfig, ResourceServerError, now};
pub use resource_server::{
    Authenticated, BearerLayer, BearerService, MetadataRouter, RevocationPushRouter,
};

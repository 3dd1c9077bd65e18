//! Framework-neutral HTTP services for mcpauth, so that each web-framework adapter is only
//! glue: convert the framework's request to an [`http::Request<Bytes>`], call
//! [`AuthorizationServer::handle`] (or [`ResourceServer::authenticate`] for a protected MCP
//! server), convert the [`http::Response<Bytes>`] back.
//!
//! [`AuthorizationServer`] answers every authorization-server endpoint the engine publishes,
//! below the issuer's path, and the RFC 8414 §3.1 metadata URL (the well-known segment goes
//! *before* the issuer's path, so an issuer `https://host/tenant` is answered at
//! `/.well-known/oauth-authorization-server/tenant`). It routes, checks methods, answers CORS
//! preflights, adds CORS and security headers, reads the clock, fetches Client ID Metadata
//! Documents when the engine asks for one, renders the error page for authorization errors
//! that must not be redirected (RFC 6749 §4.1.2.1), and logs the internal causes the engine
//! hid behind `server_error`. The protocol itself stays in the engine.
//!
//! ```no_run
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use mcpauth_http::{AuthorizationServer, Interaction, HttpResponse};
//! use mcpauth_token_engine::{MemoryModel, PendingAuthorization, TokenEngine};
//!
//! struct ConsentPage;
//!
//! #[async_trait::async_trait]
//! impl Interaction for ConsentPage {
//!     async fn begin(&self, pending: PendingAuthorization, _: &http::request::Parts) -> HttpResponse {
//!         // Store `pending`, send the user to your login/consent page, and later call
//!         // `engine.approve(...)` or `engine.deny(...)`.
//!         http::Response::new(Bytes::from_static(b"sign in"))
//!     }
//! }
//!
//! # async fn run(engine: Arc<TokenEngine<MemoryModel>>) {
//! let server = AuthorizationServer::new(engine, Arc::new(ConsentPage));
//! // In your framework's handler, for each of `server.route_paths()`:
//! let request = http::Request::get("/.well-known/oauth-authorization-server")
//!     .body(Bytes::new())
//!     .unwrap();
//! let response = server.handle(request).await;
//! assert_eq!(response.status(), 200);
//! # }
//! ```

mod authorization_server;
mod resource_server;
mod session_binding;
mod tool_scopes;

pub use authorization_server::{
    AuthorizationServer, HttpResponse, Interaction, MAX_BODY_BYTES, OsRandom, body_too_large, now,
    show_error_page,
};
pub use mcpauth_bearer::VerifiedToken;
pub use resource_server::{
    DEFAULT_MAX_BODY_BYTES, IntrospectionClient, ResourceServer, ResourceServerConfig,
    ResourceServerError,
};
pub use session_binding::{MAX_BOUND_SESSIONS, SESSION_HEADER};
pub use tool_scopes::ToolScopes;

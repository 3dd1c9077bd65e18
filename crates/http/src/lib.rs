//! Framework-neutral HTTP services for mcpauth, so that each web-framework adapter is only
//! glue: convert the framework's request to an [`http::Request<Bytes>`], call
//! [`AuthorizationServer::handle`], convert the [`http::Response<Bytes>`] back. A protected MCP
//! server admits each request with [`ResourceServer::admit`], a state machine with no
//! framework types ([`admission`]).
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
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use mcpauth_http::{AuthorizationServer, HttpResponse, Interaction, OsRandom};
//! use mcpauth_token_engine::{EngineConfig, KeyAlgorithm, MemoryModel, PendingAuthorization, SigningKey, TokenEngine};
//!
//! struct ConsentPage;
//!
//! #[async_trait::async_trait]
//! impl Interaction for ConsentPage {
//!     async fn begin(&self, pending: PendingAuthorization, _: &http::request::Parts) -> HttpResponse {
//!         // Keep `pending`, send the user to your sign-in and consent page, and later call
//!         // `engine.approve(pending, subject, now)` or `engine.deny(pending)`.
//!         http::Response::new(Bytes::from_static(b"sign in"))
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = EngineConfig::new("https://auth.example.com".parse()?)?;
//! let key = SigningKey::generate(KeyAlgorithm::Es256)?;
//! let engine = TokenEngine::new(config, Arc::new(MemoryModel::new()), key, Arc::new(OsRandom));
//! let server = AuthorizationServer::new(Arc::new(engine), Arc::new(ConsentPage));
//!
//! // In your framework's handler, for each of `server.route_paths()`:
//! let request = http::Request::get("/.well-known/oauth-authorization-server").body(Bytes::new())?;
//! let response = server.handle(request).await;
//! assert_eq!(response.status(), 200);
//! let metadata: serde_json::Value = serde_json::from_slice(response.body())?;
//! assert_eq!(metadata["token_endpoint"], "https://auth.example.com/token");
//! # Ok(())
//! # }
//! ```

pub mod admission;
#[cfg(feature = "authorization-server")]
mod authorization_server;
mod client_address;
#[cfg(feature = "authorization-server")]
mod engine_handle;
mod key_source;
mod resource_server;
mod response;
mod session_binding;
mod tool_scopes;

pub use admission::{Admission, Admitted, PendingBody, RouteRules};
#[cfg(feature = "authorization-server")]
pub use authorization_server::{
    AuthorizationServer, Interaction, MAX_BODY_BYTES, OsRandom, show_error_page,
};
pub use client_address::{ForwardedHeader, InvalidProxy, TrustedProxies, caller_key};
#[cfg(feature = "reqwest")]
pub use key_source::HttpKeySource;
pub use key_source::{KeySource, KeySourceError};
pub use mcpauth_bearer::{SubjectType, VerifiedToken};
/// The current time from the system clock (the lowest crate's; the edges read it).
pub use mcpauth_oauth_types::now;
pub use resource_server::{
    DEFAULT_MAX_BODY_BYTES, IntrospectionClient, MAX_PUSHED_EVENT_BYTES, ResourceServer,
    ResourceServerConfig, ResourceServerError, RevocationMetrics, RevocationStream,
    WhenUnreachable,
};
pub use response::{HttpResponse, body_too_large, endpoint_error};
pub use session_binding::{MAX_BOUND_SESSIONS, SESSION_HEADER};
pub use tool_scopes::{ToolNeeds, ToolScopes};

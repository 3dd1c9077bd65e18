//! One black-box HTTP conformance suite for every web-framework adapter, the way
//! node-oidc-provider runs its suite under several frameworks: each adapter's test mounts the
//! same [`Fixture`] in its framework, serves it on loopback, and calls [`run`]. The suite sends
//! real HTTP requests and checks exact answers: status, headers, JSON error bodies.
//!
//! [`attacker`] is the other side: a suite that attacks a deployed server (the real
//! `mcpauth-server` in its tests) and the resource server that trusts it.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let base = format!("http://{}", listener.local_addr().unwrap());
//! let fixture = mcpauth_conformance::Fixture::new(&format!("{base}/tenant")).await;
//! // Mount `fixture.server()` in the framework under test (here axum) and serve it:
//! let app = mcpauth_adapter_axum::router(fixture.server())
//!     .into_make_service_with_connect_info::<std::net::SocketAddr>();
//! let server = tokio::spawn(async move { axum::serve(listener, app).await });
//! mcpauth_conformance::run(&base, &fixture).await; // panics listing every mismatch
//! server.abort();
//! # }
//! ```

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing never panics (a missing key is Null); slices are indexed after a length check"
)]

pub mod attacker;

mod authorization_server;
mod check;
mod fixture;
mod resource_server;

pub use authorization_server::{client_credentials_token, run};
pub(crate) use check::{Answer, Check, assert_passed, no_redirects};
pub use fixture::{Fixture, REDIRECT, RESOURCE};
pub use resource_server::{
    PROTECTED_MAX_BODY_BYTES, people_only_mcp_config, protected_mcp_config, run_resource_server,
};

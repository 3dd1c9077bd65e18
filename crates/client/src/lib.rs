//! The MCP client's side of OAuth 2.1, as the MCP authorization specification prescribes
//! (2026-07-28, and servers of 2025-06-18 and 2025-11-25): from a `401` to a token.
//!
//! - [`challenge`]: the `WWW-Authenticate: Bearer` challenge (RFC 6750 §3, RFC 9728 §5.1).
//! - [`discovery`]: protected-resource metadata, then authorization-server metadata in the
//!   specification's order, with its checks (resource, issuer, PKCE S256), and the
//!   2025-03-26 fallbacks.
//! - [`http`]: the [`HttpClient`] trait, its reqwest implementation and the
//!   URL policy (https, loopback http only when allowed).
//! - [`registration`]: the client's identity per authorization server (pre-registered,
//!   Client ID Metadata Document, RFC 7591 dynamic registration).
//! - [`authorize`], [`loopback`], [`token`]: the authorization code flow with PKCE S256,
//!   `resource` and RFC 9207 `iss`, the loopback redirect listener, token requests.
//! - [`device`]: the device authorization grant (RFC 8628) for clients without a browser.
//! - [`store`]: [`TokenStore`], where identities and tokens are kept.
//! - `rmcp` (feature `rmcp`): the official Rust MCP SDK's streamable-HTTP client on these
//!   tokens, with refresh and step-up.
//! - [`OAuthClient`]: all of it for one MCP server, with [`OAuthClient::get_valid_token`].
//!
//! The pieces work on their own; here the first step of discovery, from the `401` of an MCP
//! server to the URLs the client will ask, runs without a network:
//!
//! ```
//! use mcpauth_client::BearerChallenge;
//! use mcpauth_client::discovery::{authorization_server_candidates, protected_resource_candidates};
//! use url::Url;
//!
//! let header = r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#;
//! let challenge = BearerChallenge::from_headers([header]).expect("a Bearer challenge");
//! assert_eq!(challenge.scope.as_deref(), Some("mcp:tools"));
//!
//! let server = Url::parse("https://mcp.example.com/mcp")?;
//! let header_url = challenge.resource_metadata.as_deref().map(Url::parse).transpose()?;
//! let where_to_look = protected_resource_candidates(&server, header_url.as_ref());
//! assert_eq!(where_to_look.len(), 2); // the header's URL, then the root well-known URL
//! let issuer = Url::parse("https://auth.example.com/tenant")?;
//! assert_eq!(
//!     authorization_server_candidates(&issuer)[0].as_str(),
//!     "https://auth.example.com/.well-known/oauth-authorization-server/tenant"
//! );
//! # Ok::<(), url::ParseError>(())
//! ```
//!
//! And all of it, for an application (it opens the user's browser, so it is not run here):
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcpauth_client::{FileStore, KeySource, OAuthClient};
//!
//! # async fn run() -> Result<(), mcpauth_client::Error> {
//! let store = FileStore::open("/home/me/.local/share/my-app", KeySource::Passphrase("…".into()))?;
//! let auth = OAuthClient::builder("https://mcp.example.com/mcp")
//!     .client_name("My MCP client")
//!     .store(Arc::new(store))
//!     .build()?;
//! let access_token = auth.get_valid_token().await?; // discovers, registers, signs in, refreshes
//! # let _ = access_token; Ok(()) }
//! ```

pub mod assertion;
pub mod authorize;
pub mod challenge;
pub mod device;
pub mod discovery;
pub mod dpop;
mod error;
pub mod http;
pub mod loopback;
pub mod registration;
#[cfg(feature = "rmcp")]
pub mod rmcp;
mod session;
pub mod store;
pub mod token;

pub use challenge::BearerChallenge;
pub use discovery::{Discovered, discover};
pub use error::{Error, ErrorCode};
pub use http::{HttpClient, ReqwestClient, UrlPolicy};
pub use mcpauth_oauth_types::said;
pub use registration::ClientCredentials;
pub use session::{
    Browser, LoggedOut, OAuthClient, OAuthClientBuilder, REFRESH_LEEWAY, ResourceAuthorization,
    SystemBrowser,
};
pub use store::{AccountStore, FileStore, KeySource, MemoryStore, StoreLock, TokenStore};
pub use token::TokenSet;

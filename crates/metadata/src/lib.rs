//! Discovery documents: RFC 8414 authorization-server metadata, RFC 9728 protected-resource
//! metadata, and their well-known URLs (with the path insertion both RFCs require).
//!
//! This crate builds and parses documents and URLs; it never fetches anything.
//!
//! ```
//! use mcpauth_metadata::{authorization_server_metadata_url, protected_resource_metadata_url};
//! use url::Url;
//!
//! let issuer = Url::parse("https://auth.example.com/tenant1")?;
//! assert_eq!(
//!     authorization_server_metadata_url(&issuer)?.as_str(),
//!     "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
//! );
//! let resource = Url::parse("https://mcp.example.com/mcp")?;
//! assert_eq!(
//!     protected_resource_metadata_url(&resource)?.as_str(),
//!     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod authorization_server;
mod protected_resource;
mod well_known;

pub use authorization_server::AuthorizationServerMetadata;
pub use protected_resource::ProtectedResourceMetadata;
pub use well_known::{
    WellKnownError, authorization_server_metadata_url, is_loopback_http,
    protected_resource_metadata_url, validate_issuer,
};

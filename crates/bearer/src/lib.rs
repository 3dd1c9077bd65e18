//! The resource-server side of MCP authorization, sans-IO: RFC 6750 bearer-token extraction,
//! RFC 9068 JWT access-token verification, and RFC 6750 §3 / RFC 9728 §5.1
//! `WWW-Authenticate` challenges carrying `resource_metadata`.
//!
//! This crate never fetches keys or reads the clock: the caller hands it a JWK Set and `now`.
//!
//! ```
//! use mcpauth_bearer::{Challenge, TokenVerifier, UnixTime, extract_bearer};
//!
//! let mut headers = http::HeaderMap::new();
//! headers.insert("authorization", "Bearer not-a-jwt".parse()?);
//! let token = extract_bearer(&headers)?.ok_or("no bearer token")?;
//! let verifier = TokenVerifier::new("https://auth.example.com", "https://mcp.example.com/mcp");
//! let error = verifier.verify(token, UnixTime(1_800_000_000)).unwrap_err();
//! let challenge = Challenge::new("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
//!     .invalid_token(&error.to_string());
//! assert_eq!(challenge.status(), 401);
//! assert!(challenge.header_value().starts_with("Bearer resource_metadata=\"https://mcp.example.com/"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod challenge;
mod extract;
mod introspection;
mod revocation;
mod verify;

pub use challenge::Challenge;
pub use extract::{ExtractError, TokenScheme, extract_access_token, extract_bearer};
pub use introspection::verify_introspection;
pub use mcpauth_oauth_types::UnixTime;
pub use revocation::{Revocation, RevocationList, SecurityEvent};
pub use verify::{SubjectType, TokenVerifier, VerifiedToken, VerifyError};

#![doc = include_str!("../README.md")]

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

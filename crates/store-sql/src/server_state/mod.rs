//! The `mcpauth-server` binary's own state: users, signing keys, login interactions and
//! browser sessions, sign-in lockout, and the housekeeping (listing clients, sweeping expired
//! rows). Ids of interactions and sessions are bearer secrets, stored hashed.

mod audit;
mod grants;
mod housekeeping;
mod interactions;
mod lockout;
mod security_events;
mod shared_secrets;
mod signing_keys;
mod users;

pub use audit::{AuditEntry, AuditFilter, AuditOutcome, AuditRecord};
pub use grants::{GrantFilter, GrantSummary};
pub use interactions::InteractionRow;
pub use lockout::LockoutPolicy;
pub use security_events::{Polled, PushEndpoint, SecurityEvent, SecurityEventKind, SsfStream};
pub use signing_keys::SigningKeyRow;
pub use users::UserRow;

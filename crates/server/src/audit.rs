//! The audit trail (issue 27): every action that grants, refuses or ends access, and every
//! administrator's action, is one row of `audit_events` (kept `audit_retention_days`) and one
//! log line with the target `mcpauth::audit` (a JSON object per line with `log_format =
//! "json"`). Each names the event, its outcome, the user and client it concerns, the
//! caller's address (after `trusted_proxies`) and, for the administrator's commands, the
//! actor. Secrets never appear: no password, token or code, and a failed sign-in names the
//! account only when it exists.
//!
//! A failure to write a record is logged and does not fail the action: the log line has
//! been written first.

use mcpauth_store_sql::SqlStore;
pub use mcpauth_store_sql::{AuditOutcome, AuditRecord};

/// The events recorded, by name (`audit_events.event`).
pub mod events {
    /// A password or federated sign-in: success (once the session is stored), or failure
    /// with why (`unknown account`, `wrong password`, `account disabled`, `no password
    /// (signs in upstream)`, `account locked`, `too many attempts from this address` once
    /// per address and hour, `through <provider>: <why>`).
    pub const SIGN_IN: &str = "sign_in";
    /// An account locked after repeated wrong passwords (for one caller, or for everyone).
    pub const ACCOUNT_LOCKED: &str = "account_locked";
    /// A user approved (success) or denied (failure) a client's request on the consent
    /// page.
    pub const CONSENT: &str = "consent";
    /// A user approved (success) or denied (failure) a device on the device page.
    pub const DEVICE_APPROVAL: &str = "device_approval";
    /// A user withdrew a client's consent on the account page (its grants revoked).
    pub const CONSENT_WITHDRAWN: &str = "consent_withdrawn";
    /// The administrator added a user.
    pub const USER_ADDED: &str = "user_added";
    /// The administrator disabled a user.
    pub const USER_DISABLED: &str = "user_disabled";
    /// The administrator enabled a user again.
    pub const USER_ENABLED: &str = "user_enabled";
    /// The administrator set a user's password.
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// The administrator registered a client.
    pub const CLIENT_ADDED: &str = "client_added";
    /// The administrator removed a client (its grants revoked).
    pub const CLIENT_REMOVED: &str = "client_removed";
    /// The administrator added a signing key.
    pub const KEY_ROTATED: &str = "key_rotated";
    /// The administrator removed a retired signing key.
    pub const KEY_REMOVED: &str = "key_removed";
}

/// Who acts in the administrator's commands.
pub(crate) const ADMIN: &str = "admin";

/// Writes `record`: the log line first, then the row.
pub(crate) async fn record(store: &SqlStore, record: AuditRecord) {
    tracing::info!(
        target: "mcpauth::audit",
        event = %record.event,
        outcome = record.outcome.as_str(),
        user = record.user_id.as_deref(),
        client = record.client_id.as_deref(),
        address = record.address.as_deref(),
        actor = record.actor.as_deref(),
        detail = record.detail.as_deref(),
        "audit"
    );
    if let Err(e) = store.record_audit(std::slice::from_ref(&record)).await {
        tracing::error!(error = %e, event = %record.event, "writing an audit record failed");
    }
}

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
//!
//! The token, revocation and registration endpoints answer thousands of times a second:
//! their records ([`mcpauth_token_engine::EndpointEvent`]) go through a bounded queue to one
//! writer task, which logs each and stores them a batch per statement, off the request's
//! path. When the database falls so far behind that the queue is full, records are dropped
//! and counted (`mcpauth_audit_records_dropped_total`) rather than slowing every token
//! request; the first drop is logged as an error.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use mcpauth_store_sql::SqlStore;
pub use mcpauth_store_sql::{AuditOutcome, AuditRecord};
use mcpauth_token_engine::{Clock, EndpointEvent, EndpointEventKind};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

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
    /// The administrator revoked a grant (the detail is its id).
    pub const GRANT_REVOKED: &str = "grant_revoked";
    /// The administrator let a user use the admin console.
    pub const ADMIN_GRANTED: &str = "admin_granted";
    /// The administrator took a user's use of the admin console away.
    pub const ADMIN_REVOKED: &str = "admin_revoked";
    /// The administrator ended the lock wrong passwords put on a user's account.
    pub const LOCKOUT_RESET: &str = "lockout_reset";
    /// The token endpoint issued tokens (the detail names the grant type; the user is whom
    /// they stand for, the client itself for `client_credentials`).
    pub const TOKEN_ISSUED: &str = "token_issued";
    /// An authorization code was presented again: the grant it came from is revoked.
    pub const CODE_REPLAYED: &str = "code_replayed";
    /// A rotated refresh token was presented again: its grant is revoked.
    pub const REFRESH_REPLAYED: &str = "refresh_replayed";
    /// A client failed to authenticate at the token or revocation endpoint (the client is
    /// the identifier it claimed).
    pub const CLIENT_AUTHENTICATION_FAILED: &str = "client_authentication_failed";
    /// A client revoked a token (RFC 7009; the detail is its `token_type_hint`).
    pub const TOKEN_REVOKED: &str = "token_revoked";
    /// A client registered itself (RFC 7591).
    pub const CLIENT_REGISTERED: &str = "client_registered";
    /// A registration was refused (the detail is the error code).
    pub const REGISTRATION_REFUSED: &str = "registration_refused";
}

/// Who acts in the administrator's commands.
pub(crate) const ADMIN: &str = "admin";

/// Writes `record`: the log line first, then the row.
pub(crate) async fn record(store: &SqlStore, record: AuditRecord) {
    log(&record);
    if let Err(e) = store.record_audit(std::slice::from_ref(&record)).await {
        tracing::error!(error = %e, event = %record.event, "writing an audit record failed");
    }
}

/// The record's log line (target `mcpauth::audit`).
fn log(record: &AuditRecord) {
    tracing::info!(
        target: "mcpauth::audit",
        event = %record.event,
        outcome = record.outcome.as_str(),
        user = record.user_id.as_deref(),
        client = record.client_id.as_deref(),
        address = record.address.as_deref(),
        actor = record.actor.as_deref(),
        detail = record.detail.as_deref(),
        repeated = record.repeated,
        "audit"
    );
}

/// How many records may wait for the writer: about a fifth of a second of the fastest token
/// issuance measured here (46,000 a second), so a database pause of that long drops none.
const QUEUE: usize = 8192;

/// The most records stored by one statement.
const BATCH: usize = 256;

enum Queued {
    Record(AuditRecord),
    /// Answered once every record queued before it is stored (or failed).
    Flush(oneshot::Sender<()>),
}

/// The queue to the audit writer task; clones share it. The task ends when every clone is
/// dropped, once it has stored what was queued.
#[derive(Clone)]
pub(crate) struct AuditQueue {
    sender: mpsc::Sender<Queued>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQueue")
            .field("queued", &(QUEUE - self.sender.capacity()))
            .finish_non_exhaustive()
    }
}

impl AuditQueue {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(store: SqlStore, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(receiver, store, metrics.clone()));
        Self {
            sender,
            metrics,
            clock,
        }
    }

    /// Queues `record`, or drops and counts it when the queue is full.
    pub(crate) fn push(&self, record: AuditRecord) {
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.sender.try_send(Queued::Record(record))
            && self.metrics.audit_dropped()
        {
            tracing::error!(
                "audit records are being dropped: the database does not keep up with the token endpoint (see mcpauth_audit_records_dropped_total)"
            );
        }
    }

    /// Waits until every record queued so far is stored (or its write failed).
    pub(crate) async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.sender.send(Queued::Flush(done)).await.is_ok() {
            let _ = stored.await;
        }
    }
}

/// The writer: takes what is queued, up to [`BATCH`] at once, logs each and stores them in
/// one statement; answers the flushes among them once stored.
async fn write_batches(mut queue: mpsc::Receiver<Queued>, store: SqlStore, metrics: Arc<Metrics>) {
    let mut received = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut received, BATCH).await > 0 {
        let mut records = Vec::with_capacity(received.len());
        let mut flushes = Vec::new();
        for queued in received.drain(..) {
            match queued {
                Queued::Record(record) => records.push(record),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        let records = coalesce(records);
        for record in &records {
            log(record);
        }
        match store.record_audit(&records).await {
            Ok(()) => metrics.audit_written(records.len()),
            Err(e) => tracing::error!(
                error = %e,
                records = records.len(),
                "writing audit records failed (their log lines were written)"
            ),
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// `records` with identical ones of the same second (a machine client's thousands of tokens,
/// a flood of failed authentications from one address) as one, `repeated` counting them; in
/// the order each first appeared.
fn coalesce(records: Vec<AuditRecord>) -> Vec<AuditRecord> {
    let mut first_of: std::collections::HashMap<AuditRecord, usize> =
        std::collections::HashMap::with_capacity(records.len());
    let mut kept: Vec<AuditRecord> = Vec::with_capacity(records.len());
    for record in records {
        match first_of.get(&record) {
            Some(&at) => {
                if let Some(first) = kept.get_mut(at) {
                    first.repeated = first.repeated.saturating_add(record.repeated);
                }
            }
            None => {
                first_of.insert(record.clone(), kept.len());
                kept.push(record);
            }
        }
    }
    kept
}

/// The record of an endpoint's event, from `address` at `now`.
fn record_of(
    event: EndpointEvent,
    address: Option<std::net::IpAddr>,
    now: mcpauth_token_engine::UnixTime,
) -> Option<AuditRecord> {
    use AuditOutcome::{Failure, Success};
    let (name, outcome) = match event.kind {
        EndpointEventKind::TokensIssued => (events::TOKEN_ISSUED, Success),
        EndpointEventKind::CodeReplayed => (events::CODE_REPLAYED, Failure),
        EndpointEventKind::RefreshReplayed => (events::REFRESH_REPLAYED, Failure),
        EndpointEventKind::ClientAuthenticationFailed => {
            (events::CLIENT_AUTHENTICATION_FAILED, Failure)
        }
        EndpointEventKind::TokenRevoked => (events::TOKEN_REVOKED, Success),
        EndpointEventKind::ClientRegistered => (events::CLIENT_REGISTERED, Success),
        EndpointEventKind::RegistrationRefused => (events::REGISTRATION_REFUSED, Failure),
        _ => return None,
    };
    let mut record = AuditRecord::new(name, outcome, now).address(address);
    if let Some(client_id) = &event.client_id {
        record = record.client(client_id);
    }
    if let Some(subject) = &event.subject {
        record = record.user(subject);
    }
    if let Some(detail) = &event.detail {
        record = record.detail(detail);
    }
    Some(record)
}

/// The layer that queues the [`EndpointEvent`] of an answer, with the caller's address
/// (after `trusted_proxies`: it runs inside that layer).
pub(crate) async fn endpoint_events(
    State(queue): State<AuditQueue>,
    request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let mut response = next.run(request).await;
    if let Some(event) = response.extensions_mut().remove::<EndpointEvent>()
        && let Some(record) = record_of(event, address, queue.clock.now())
    {
        queue.push(record);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_past_a_full_queue_are_dropped_and_counted_never_waited_for() {
        let metrics = Arc::new(Metrics::default());
        // A queue of one whose writer never reads: the second and third records find it full.
        let (sender, _unread) = mpsc::channel(1);
        let queue = AuditQueue {
            sender,
            metrics: metrics.clone(),
            clock: Arc::new(mcpauth_token_engine::ManualClock::new(
                mcpauth_token_engine::UnixTime(1),
            )),
        };
        for _ in 0..3 {
            queue.push(AuditRecord::new(
                events::TOKEN_ISSUED,
                AuditOutcome::Success,
                mcpauth_token_engine::UnixTime(1),
            ));
        }
        assert!(
            metrics
                .render()
                .contains("\nmcpauth_audit_records_dropped_total 2\n")
        );
    }

    #[test]
    fn identical_records_of_one_second_are_stored_once_with_their_count() {
        let at = |second| {
            AuditRecord::new(
                events::TOKEN_ISSUED,
                AuditOutcome::Success,
                mcpauth_token_engine::UnixTime(second),
            )
            .client("machine")
            .user("machine")
            .detail("client_credentials")
        };
        let other = at(1).client("another");
        let kept = coalesce(vec![at(1), at(1), other.clone(), at(1), at(2)]);
        let shape: Vec<_> = kept
            .iter()
            .map(|r| (r.occurred_at, r.client_id.as_deref(), r.repeated))
            .collect();
        assert_eq!(
            shape,
            [
                (1, Some("machine"), 3),
                (1, Some("another"), 1),
                (2, Some("machine"), 1)
            ]
        );
    }

    #[test]
    fn an_endpoint_event_becomes_a_record_with_the_callers_address() {
        let mut event = EndpointEvent::new(EndpointEventKind::ClientAuthenticationFailed);
        event.client_id = Some("c1".into());
        let record = record_of(
            event,
            Some(
                "::ffff:192.0.2.9"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0; 4])),
            ),
            mcpauth_token_engine::UnixTime(5),
        );
        assert_eq!(
            record.map(|r| (r.event, r.outcome, r.client_id, r.address)),
            Some((
                events::CLIENT_AUTHENTICATION_FAILED.to_owned(),
                AuditOutcome::Failure,
                Some("c1".to_owned()),
                Some("192.0.2.9".to_owned())
            ))
        );
    }
}

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
    /// The administrator removed a user for good (the record keeps its subject).
    pub const USER_REMOVED: &str = "user_removed";
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

/// How many records may wait for the writer: about a tenth of a second of the fastest token
/// issuance measured here (46,000 a second). The writer takes each in about a microsecond
/// (identical ones coalesce in memory, the database is written once a second), so the queue
/// fills only while a write is slow.
const QUEUE: usize = 4096;

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

    /// Queues `record`, or drops and counts it when the queue is full (or the writer is
    /// gone).
    pub(crate) fn push(&self, record: AuditRecord) {
        if self.sender.try_send(Queued::Record(record)).is_err() && self.metrics.audit_dropped() {
            tracing::error!(
                "audit records are being dropped: the database does not keep up with the endpoints (see mcpauth_audit_records_dropped_total)"
            );
        }
    }

    /// Queues `record`, waiting for room: for the rare records that must not be lost to a
    /// flood of others (a replayed code or refresh token is a theft in progress). The request
    /// that caused it waits, never the others.
    pub(crate) async fn push_waiting(&self, record: AuditRecord) {
        if self.sender.send(Queued::Record(record)).await.is_err() && self.metrics.audit_dropped() {
            tracing::error!("the audit writer is gone: audit records are being dropped");
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

/// Records waiting for their second to end, identical ones counted as one.
#[derive(Default)]
struct Pending {
    first_of: std::collections::HashMap<AuditRecord, usize>,
    records: Vec<AuditRecord>,
    /// The latest second among the records received.
    newest: u64,
}

impl Pending {
    /// What makes two records identical: all but their count.
    fn key(record: &AuditRecord) -> AuditRecord {
        let mut key = record.clone();
        key.repeated = 1;
        key
    }

    fn add(&mut self, record: AuditRecord) {
        self.newest = self.newest.max(record.occurred_at);
        // Records come from the queue one each: they are their own key, no copy needed.
        let first = if record.repeated == 1 {
            self.first_of.get(&record)
        } else {
            self.first_of.get(&Self::key(&record))
        };
        match first {
            Some(&at) => {
                if let Some(first) = self.records.get_mut(at) {
                    first.repeated = first.repeated.saturating_add(record.repeated);
                }
            }
            None => {
                self.first_of.insert(Self::key(&record), self.records.len());
                self.records.push(record);
            }
        }
    }

    /// The records of seconds before the newest (no identical record can join them any
    /// more), or all of them; in the order each first arrived.
    fn take(&mut self, all: bool) -> Vec<AuditRecord> {
        let newest = self.newest;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.records)
            .into_iter()
            .partition(|r| all || r.occurred_at < newest);
        self.first_of.clear();
        for (at, record) in waiting.iter().enumerate() {
            self.first_of.insert(Self::key(record), at);
        }
        self.records = waiting;
        done
    }
}

/// Logs and stores `records`.
async fn write(store: &SqlStore, metrics: &Metrics, records: &[AuditRecord]) {
    if records.is_empty() {
        return;
    }
    for record in records {
        log(record);
    }
    match store.record_audit(records).await {
        Ok(()) => metrics.audit_written(records.len()),
        Err(e) => tracing::error!(
            error = %e,
            records = records.len(),
            "writing audit records failed (their log lines were written)"
        ),
    }
}

/// The writer: takes what is queued, up to [`BATCH`] at once; identical records of one second
/// become one (a machine client's thousands of tokens a second, a flood of failed
/// authentications from one address), stored once their second has passed (at most a second
/// later); answers a flush once everything before it is stored.
async fn write_batches(mut queue: mpsc::Receiver<Queued>, store: SqlStore, metrics: Arc<Metrics>) {
    let mut received = Vec::with_capacity(BATCH);
    let mut pending = Pending::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            count = queue.recv_many(&mut received, BATCH) => {
                if count == 0 {
                    write(&store, &metrics, &pending.take(true)).await;
                    return;
                }
                let mut flushes = Vec::new();
                for queued in received.drain(..) {
                    match queued {
                        Queued::Record(record) => pending.add(record),
                        Queued::Flush(done) => flushes.push(done),
                    }
                }
                write(&store, &metrics, &pending.take(!flushes.is_empty())).await;
                for done in flushes {
                    let _ = done.send(());
                }
            }
            _ = tick.tick() => write(&store, &metrics, &pending.take(true)).await,
        }
    }
}

/// `records` with identical ones of the same second as one, `repeated` counting them; in the
/// order each first appeared.
#[cfg(test)]
fn coalesce(records: Vec<AuditRecord>) -> Vec<AuditRecord> {
    let mut pending = Pending::default();
    for record in records {
        pending.add(record);
    }
    pending.take(true)
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
    if let Some(event) = response.extensions_mut().remove::<EndpointEvent>() {
        let rare = matches!(
            event.kind,
            EndpointEventKind::CodeReplayed | EndpointEventKind::RefreshReplayed
        );
        if let Some(record) = record_of(event, address, queue.clock.now()) {
            if rare {
                queue.push_waiting(record).await;
            } else {
                queue.push(record);
            }
        }
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
    fn a_second_still_running_keeps_counting_across_batches() {
        let at = |second| {
            AuditRecord::new(
                events::CLIENT_AUTHENTICATION_FAILED,
                AuditOutcome::Failure,
                mcpauth_token_engine::UnixTime(second),
            )
            .client("guess")
        };
        let mut pending = Pending::default();
        pending.add(at(1));
        pending.add(at(2));
        pending.add(at(2));
        // Second 1 is over (a record of second 2 arrived); second 2 keeps waiting.
        let done = pending.take(false);
        assert_eq!(
            done.iter()
                .map(|r| (r.occurred_at, r.repeated))
                .collect::<Vec<_>>(),
            [(1, 1)]
        );
        pending.add(at(2));
        let rest = pending.take(true);
        assert_eq!(
            rest.iter()
                .map(|r| (r.occurred_at, r.repeated))
                .collect::<Vec<_>>(),
            [(2, 3)]
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

//! Security events and the Shared Signals streams that deliver them (RFC 8936 poll delivery).
//!
//! Events are written by the database itself: triggers (migration
//! `20261206000016_security_events.sql`) record one in the transaction of every change that
//! ends access, whoever makes it (the engine through the model, the account page, the admin
//! commands). Each stream lists the events its receiver has not acknowledged; a new stream
//! starts with every event still kept, so a resource server that starts (or restarts) learns
//! what was revoked while it was away. Events are kept for as long as a token they end may
//! live ([`SqlStore::sweep_security_events`]).

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

/// What ended access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecurityEventKind {
    /// A grant was revoked (RFC 7009 revocation, refresh-token or code reuse, consent
    /// withdrawn, its user disabled, its client removed): every token of the grant ends.
    GrantRevoked,
    /// A user was disabled: every token of the user ends.
    UserDisabled,
    /// A user's password changed: tokens issued to the user before it end.
    CredentialChanged,
    /// A client was removed: every token issued to it ends.
    ClientRemoved,
    /// A signing key was removed: every token it signed ends.
    KeyRemoved,
    /// A receiver asked the transmitter to prove its stream delivers (SSF §8.1.4): for that
    /// one stream, never fanned out, and not among [`ALL`](Self::ALL) (a stream cannot ask
    /// for it; every stream may get it).
    Verification,
}

impl SecurityEventKind {
    /// Every kind a stream may ask for, in this order.
    pub const ALL: [Self; 5] = [
        Self::GrantRevoked,
        Self::UserDisabled,
        Self::CredentialChanged,
        Self::ClientRemoved,
        Self::KeyRemoved,
    ];

    /// The name stored in `security_events.event_type`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GrantRevoked => "grant_revoked",
            Self::UserDisabled => "user_disabled",
            Self::CredentialChanged => "credential_changed",
            Self::ClientRemoved => "client_removed",
            Self::KeyRemoved => "key_removed",
            Self::Verification => "verification",
        }
    }

    /// The kind stored as `stored`.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownState`] for a name this version does not know.
    pub fn parse(stored: &str) -> Result<Self, StoreError> {
        Ok(match stored {
            "grant_revoked" => Self::GrantRevoked,
            "user_disabled" => Self::UserDisabled,
            "credential_changed" => Self::CredentialChanged,
            "client_removed" => Self::ClientRemoved,
            "key_removed" => Self::KeyRemoved,
            "verification" => Self::Verification,
            // Written by a newer version.
            _ => return Err(StoreError::UnknownState),
        })
    }
}

/// One recorded security event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityEvent {
    /// Its number, increasing in the order events were recorded (not a secret).
    pub event_id: i64,
    /// What happened.
    pub kind: SecurityEventKind,
    /// The grant revoked.
    pub grant_id: Option<String>,
    /// The client of the grant, or the client removed.
    pub client_id: Option<String>,
    /// The user of the grant, or the user disabled or whose password changed.
    pub subject: Option<String>,
    /// The signing key removed.
    pub kid: Option<String>,
    /// When it happened (Unix seconds).
    pub occurred_at: u64,
    /// A verification event's `state`, as its receiver gave it.
    pub state: Option<String>,
}

fn event_from(row: &impl Columns) -> Result<SecurityEvent, StoreError> {
    Ok(SecurityEvent {
        event_id: row.integer("event_id")?,
        kind: SecurityEventKind::parse(&row.text("event_type")?)?,
        grant_id: row.optional_text("grant_id")?,
        client_id: row.optional_text("client_id")?,
        subject: row.optional_text("subject")?,
        kid: row.optional_text("kid")?,
        occurred_at: u64::try_from(row.integer("occurred_at")?)
            .map_err(|_| StoreError::TimeOutOfRange)?,
        state: row.optional_text("state")?,
    })
}

/// Where a push stream's events go (RFC 8935; SSF §8.1.1 `delivery`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushEndpoint {
    /// The receiver's endpoint, which each Security Event Token is posted to.
    pub url: String,
    /// The `Authorization` header value to send with each (the receiver's credential).
    pub authorization: Option<String>,
}

impl PushEndpoint {
    /// Pushes to `url`, sending `authorization` as the `Authorization` header if given.
    #[must_use]
    pub fn new(url: &str, authorization: Option<&str>) -> Self {
        Self {
            url: url.to_owned(),
            authorization: authorization.map(str::to_owned),
        }
    }
}

impl std::fmt::Debug for PushEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushEndpoint")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `DELETE` of `count` events pending on stream `$1` (the ids bound as `$2`…): only numbered
/// placeholders are formatted in, the values are bound.
fn forget_pending_sql(count: usize) -> String {
    let placeholders = (0..count)
        .map(|i| format!("${}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    format!("DELETE FROM ssf_pending WHERE stream_id = $1 AND event_id IN ({placeholders})")
}

/// A receiver's stream (Shared Signals Framework §8.1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SsfStream {
    /// Its id, chosen by the transmitter.
    pub stream_id: String,
    /// The receiver: the resource server's client id here.
    pub client_id: String,
    /// What the receiver said it is.
    pub description: Option<String>,
    /// The kinds of event it gets.
    pub kinds: Vec<SecurityEventKind>,
    /// When it was created.
    pub created_at: u64,
    /// When its receiver was last active (polled, asked for verification, or took a push).
    pub last_polled_at: u64,
    /// Where its events are pushed; `None` for a poll stream.
    pub push: Option<PushEndpoint>,
    /// Pushes that failed in a row.
    pub push_failures: u32,
}

fn stream_from(row: &impl Columns) -> Result<SsfStream, StoreError> {
    Ok(SsfStream {
        stream_id: row.text("stream_id")?,
        client_id: row.text("client_id")?,
        description: row.optional_text("description")?,
        kinds: row
            .text("event_types")?
            .split(',')
            .filter(|k| !k.is_empty())
            .map(SecurityEventKind::parse)
            .collect::<Result<_, _>>()?,
        created_at: u64::try_from(row.integer("created_at")?)
            .map_err(|_| StoreError::TimeOutOfRange)?,
        last_polled_at: u64::try_from(row.integer("last_polled_at")?)
            .map_err(|_| StoreError::TimeOutOfRange)?,
        push: row
            .optional_text("push_url")?
            .map(|url| -> Result<_, StoreError> {
                Ok(PushEndpoint {
                    url,
                    authorization: row.optional_text("push_authorization")?,
                })
            })
            .transpose()?,
        push_failures: u32::try_from(row.integer("push_failures")?).unwrap_or(u32::MAX),
    })
}

/// What a poll answers: the pending events, oldest first, and whether more wait.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Polled {
    /// Up to the requested number of unacknowledged events.
    pub events: Vec<SecurityEvent>,
    /// More events wait beyond these (RFC 8936 §2.4 `moreAvailable`).
    pub more_available: bool,
}

impl SqlStore {
    /// Creates the stream `stream_id` for the receiver `client_id`, for events of `kinds`,
    /// polled, or pushed to `push`, with every such event still kept pending on it.
    ///
    /// # Errors
    ///
    /// The database error (a duplicate `stream_id` among them); nothing is created.
    pub async fn create_ssf_stream(
        &self,
        stream_id: &str,
        client_id: &str,
        description: Option<&str>,
        kinds: &[SecurityEventKind],
        push: Option<&PushEndpoint>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        let event_types: String = kinds.iter().fold(",".to_owned(), |mut list, kind| {
            list.push_str(kind.as_str());
            list.push(',');
            list
        });
        let postgres = matches!(self.backend(), crate::Backend::Postgres);
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            // PostgreSQL: an event recorded by a transaction still running would be missed
            // both by the copy below (not committed yet) and by its fan-out (this stream not
            // committed yet). SHARE waits for those transactions and holds new ones until
            // this commits. (SQLite writes one at a time.)
            if postgres {
                sqlx::query("LOCK TABLE security_events IN SHARE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO ssf_streams \
                 (stream_id, client_id, description, event_types, created_at, last_polled_at, \
                 push_url, push_authorization) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
            )
            .bind(stream_id)
            .bind(client_id)
            .bind(description)
            .bind(&event_types)
            .bind(now)
            .bind(push.map(|p| p.url.as_str()))
            .bind(push.and_then(|p| p.authorization.as_deref()))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO ssf_pending (stream_id, event_id) SELECT $1, event_id \
                 FROM security_events WHERE $2 LIKE '%,' || event_type || ',%'",
            )
            .bind(stream_id)
            .bind(&event_types)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The stream `stream_id`, if it exists.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_ssf_stream(&self, stream_id: &str) -> Result<Option<SsfStream>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT * FROM ssf_streams WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(pool)
                .await?
                .map(|row| stream_from(&row))
                .transpose()
        })
    }

    /// Deletes the stream and what was pending on it. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// The database error; nothing is deleted.
    pub async fn delete_ssf_stream(&self, stream_id: &str) -> Result<bool, StoreError> {
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM ssf_pending WHERE stream_id = $1")
                .bind(stream_id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM ssf_streams WHERE stream_id = $1")
                .bind(stream_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(deleted > 0)
        })
    }

    /// The most acknowledgements one poll applies (RFC 8936 §2.4 `ack` and `setErrs`
    /// together): twice the most events one poll answers.
    pub const MAX_ACKNOWLEDGED: usize = 200;

    /// One poll of `stream_id` (RFC 8936 §2.4): forgets the `acknowledged` events (at most
    /// [`MAX_ACKNOWLEDGED`](Self::MAX_ACKNOWLEDGED), in one statement), then answers up to
    /// `max_events` of those still pending, oldest first. Acknowledging an event that is not
    /// pending does nothing. The stream's `last_polled_at` is written only when it is a
    /// minute old, so a poll with nothing to acknowledge writes nothing.
    ///
    /// # Errors
    ///
    /// The database error; nothing is acknowledged.
    pub async fn poll_ssf_stream(
        &self,
        stream: &SsfStream,
        acknowledged: &[i64],
        max_events: u32,
        now: UnixTime,
    ) -> Result<Polled, StoreError> {
        let acknowledged = acknowledged
            .get(..Self::MAX_ACKNOWLEDGED)
            .unwrap_or(acknowledged);
        let touch = now.0.saturating_sub(stream.last_polled_at) >= 60;
        let now = to_db(now.0)?;
        if !acknowledged.is_empty() || touch {
            on_pool_write!(self, |pool| {
                let mut tx = pool.begin().await?;
                if !acknowledged.is_empty() {
                    let sql = forget_pending_sql(acknowledged.len());
                    let mut delete =
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(&stream.stream_id);
                    for event_id in acknowledged {
                        delete = delete.bind(*event_id);
                    }
                    delete.execute(&mut *tx).await?;
                }
                if touch {
                    sqlx::query("UPDATE ssf_streams SET last_polled_at = $2 WHERE stream_id = $1")
                        .bind(&stream.stream_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            });
        }
        self.pending_ssf_events(&stream.stream_id, max_events).await
    }

    /// Up to `max_events` of the events pending on `stream_id`, oldest first; writes nothing.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn pending_ssf_events(
        &self,
        stream_id: &str,
        max_events: u32,
    ) -> Result<Polled, StoreError> {
        let limit = i64::from(max_events) + 1;
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT e.* FROM ssf_pending p JOIN security_events e ON e.event_id = p.event_id \
                 WHERE p.stream_id = $1 ORDER BY e.event_id LIMIT $2",
            )
            .bind(stream_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut events = rows.iter().map(event_from).collect::<Result<Vec<_>, _>>()?;
            let more_available = events.len() > max_events as usize;
            events.truncate(max_events as usize);
            Ok(Polled {
                events,
                more_available,
            })
        })
    }

    /// The shortest time between two verification requests of one stream, in seconds (SSF
    /// §8.1.1 `min_verification_interval`).
    pub const MIN_VERIFICATION_INTERVAL: u64 = 1;

    /// Records a verification event for `stream_id` only (SSF §8.1.4), carrying the
    /// receiver's `state`, in place of the stream's previous one (so each stream keeps at
    /// most one), and counts the request as the receiver's activity: a push stream waiting
    /// out a failure is due again at once (its receiver is evidently up). Returns `false`,
    /// recording nothing, when the previous request is less than
    /// [`MIN_VERIFICATION_INTERVAL`](Self::MIN_VERIFICATION_INTERVAL) old.
    ///
    /// # Errors
    ///
    /// The database error; nothing is recorded.
    pub async fn request_ssf_verification(
        &self,
        stream_id: &str,
        state: Option<&str>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let too_recent = to_db(now.0.saturating_sub(Self::MIN_VERIFICATION_INTERVAL))?;
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            // First, so that on PostgreSQL concurrent requests for one stream take turns (the
            // row's lock) and each stream keeps one verification.
            sqlx::query(
                "UPDATE ssf_streams SET last_polled_at = $2, \
                 push_due_at = CASE WHEN push_lease IS NULL THEN 0 ELSE push_due_at END, \
                 push_failures = CASE WHEN push_lease IS NULL THEN 0 ELSE push_failures END \
                 WHERE stream_id = $1",
            )
            .bind(stream_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let previous: Option<i64> = sqlx::query_scalar(
                "SELECT max(occurred_at) FROM security_events \
                 WHERE stream_id = $1 AND event_type = 'verification'",
            )
            .bind(stream_id)
            .fetch_one(&mut *tx)
            .await?;
            if previous.is_some_and(|at| at > too_recent) {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "DELETE FROM ssf_pending WHERE stream_id = $1 AND event_id IN \
                 (SELECT event_id FROM security_events \
                  WHERE stream_id = $1 AND event_type = 'verification')",
            )
            .bind(stream_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM security_events WHERE stream_id = $1 AND event_type = 'verification'",
            )
            .bind(stream_id)
            .execute(&mut *tx)
            .await?;
            let event_id: i64 = sqlx::query_scalar(
                "INSERT INTO security_events (event_type, stream_id, state, occurred_at) \
                 VALUES ('verification', $1, $2, $3) RETURNING event_id",
            )
            .bind(stream_id)
            .bind(state)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO ssf_pending (stream_id, event_id) VALUES ($1, $2)")
                .bind(stream_id)
                .bind(event_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Push streams with events pending whose next delivery is due at `now`.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn due_push_streams(&self, now: UnixTime) -> Result<Vec<SsfStream>, StoreError> {
        let now = to_db(now.0)?;
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT * FROM ssf_streams s WHERE push_url IS NOT NULL AND push_due_at <= $1 \
                 AND EXISTS (SELECT 1 FROM ssf_pending p WHERE p.stream_id = s.stream_id) \
                 ORDER BY push_due_at, stream_id LIMIT 64",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
            .iter()
            .map(stream_from)
            .collect()
        })
    }

    /// Claims the push stream `stream_id` for delivery until `lease_until` under the lease
    /// `lease` (a random value of the caller's), if it is due at `now` (no lease held, or
    /// the last one lapsed): whether this caller now holds it. Two instances never hold one
    /// stream at once; a holder that stops lets the lease lapse, and only the holder releases
    /// it ([`finish_push`](Self::finish_push)). The holder must be done before
    /// `lease_until`.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn claim_push_stream(
        &self,
        stream_id: &str,
        lease: &str,
        now: UnixTime,
        lease_until: UnixTime,
    ) -> Result<bool, StoreError> {
        let now = to_db(now.0)?;
        let lease_until = to_db(lease_until.0)?;
        on_pool_write!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE ssf_streams SET push_due_at = $3, push_lease = $4 \
                 WHERE stream_id = $1 AND push_url IS NOT NULL AND push_due_at <= $2",
            )
            .bind(stream_id)
            .bind(now)
            .bind(lease_until)
            .bind(lease)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Ends the delivery of `stream_id` under `lease`: forgets the `delivered` events (at
    /// most [`MAX_ACKNOWLEDGED`](Self::MAX_ACKNOWLEDGED)) and, if `lease` is still the
    /// stream's (not lapsed and claimed by another instance since), releases it: due again at
    /// once (`retry_at` `None`: every push answered, and the receiver counts as active at
    /// `now`) or at `retry_at` after a failure (counted in `push_failures`).
    ///
    /// # Errors
    ///
    /// The database error; nothing is forgotten.
    pub async fn finish_push(
        &self,
        stream_id: &str,
        lease: &str,
        delivered: &[i64],
        retry_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let delivered = delivered.get(..Self::MAX_ACKNOWLEDGED).unwrap_or(delivered);
        let now = to_db(now.0)?;
        let retry_at = retry_at.map(|t| to_db(t.0)).transpose()?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            if !delivered.is_empty() {
                let sql = forget_pending_sql(delivered.len());
                let mut delete = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(stream_id);
                for event_id in delivered {
                    delete = delete.bind(*event_id);
                }
                delete.execute(&mut *tx).await?;
            }
            match retry_at {
                None => sqlx::query(
                    "UPDATE ssf_streams SET push_due_at = 0, push_failures = 0, \
                     push_lease = NULL, last_polled_at = $2 WHERE stream_id = $1 AND push_lease = $3",
                )
                .bind(stream_id)
                .bind(now),
                Some(retry_at) => sqlx::query(
                    "UPDATE ssf_streams SET push_due_at = $2, push_failures = push_failures + 1, \
                     push_lease = NULL WHERE stream_id = $1 AND push_lease = $3",
                )
                .bind(stream_id)
                .bind(retry_at),
            }
            .bind(lease)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The streams `client_id` holds, oldest first.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn list_ssf_streams(&self, client_id: &str) -> Result<Vec<SsfStream>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT * FROM ssf_streams WHERE client_id = $1 ORDER BY created_at, stream_id",
            )
            .bind(client_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(stream_from)
            .collect()
        })
    }

    /// Deletes events that occurred before `events_before` (no token they end can still be
    /// alive), with their pending rows, and streams not polled since `streams_before` (their
    /// receivers are gone). Returns how many rows went.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn sweep_security_events(
        &self,
        events_before: UnixTime,
        streams_before: UnixTime,
    ) -> Result<u64, StoreError> {
        let events_before = to_db(events_before.0)?;
        let streams_before = to_db(streams_before.0)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut removed = sqlx::query(
                "DELETE FROM ssf_pending WHERE event_id IN \
                 (SELECT event_id FROM security_events WHERE occurred_at < $1) \
                 OR stream_id IN (SELECT stream_id FROM ssf_streams WHERE last_polled_at < $2)",
            )
            .bind(events_before)
            .bind(streams_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            removed += sqlx::query("DELETE FROM security_events WHERE occurred_at < $1")
                .bind(events_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            removed += sqlx::query("DELETE FROM ssf_streams WHERE last_polled_at < $1")
                .bind(streams_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(removed)
        })
    }
}

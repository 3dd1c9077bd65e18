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
}

impl SecurityEventKind {
    /// Every kind, in this order.
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
    })
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
    /// When its receiver last polled.
    pub last_polled_at: u64,
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
    /// with every such event still kept pending on it.
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
                 (stream_id, client_id, description, event_types, created_at, last_polled_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(stream_id)
            .bind(client_id)
            .bind(description)
            .bind(&event_types)
            .bind(now)
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
                    let placeholders = (0..acknowledged.len())
                        .map(|i| format!("${}", i + 2))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "DELETE FROM ssf_pending WHERE stream_id = $1 AND event_id IN ({placeholders})"
                    );
                    // Only numbered placeholders are formatted in; the values are bound.
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
        let limit = i64::from(max_events) + 1;
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT e.* FROM ssf_pending p JOIN security_events e ON e.event_id = p.event_id \
                 WHERE p.stream_id = $1 ORDER BY e.event_id LIMIT $2",
            )
            .bind(&stream.stream_id)
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

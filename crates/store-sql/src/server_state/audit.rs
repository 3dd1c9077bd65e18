//! The audit trail (issue 27): who did what, from which address, with what outcome. Each
//! record is one row of `audit_events`, written by `mcpauth-server` (sign-ins, consent, the
//! administrator's actions) and kept for the operator's retention
//! ([`SqlStore::sweep_audit_events`]). Text that may come from a caller (a client id, an
//! upstream provider's error) is kept to [`AuditRecord::MAX_TEXT`] characters without
//! control characters, so it cannot forge lines where the trail is printed.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

/// How an audited action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditOutcome {
    /// It was done.
    Success,
    /// It was refused or failed.
    Failure,
}

impl AuditOutcome {
    /// The name stored in `audit_events.outcome`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        match stored {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            _ => Err(StoreError::UnknownState),
        }
    }
}

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AuditRecord {
    /// When (Unix seconds).
    pub occurred_at: u64,
    /// What, as a short name (`sign_in`, `consent`, `user_disabled`, …).
    pub event: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The user it concerns (the `sub` of their tokens), when known.
    pub user_id: Option<String>,
    /// The client it concerns, when there is one.
    pub client_id: Option<String>,
    /// The caller's address, after trusted proxies; none for an administrator's command.
    pub address: Option<String>,
    /// Who acted, when not the user: `admin` for `mcpauth-server`'s commands.
    pub actor: Option<String>,
    /// A short, non-secret detail (why a sign-in failed, which key was rotated).
    pub detail: Option<String>,
    /// How many identical records of the same second this one stands for (at least 1).
    pub repeated: u64,
}

/// `text` without control characters (each shown as `?`), at most
/// [`AuditRecord::MAX_TEXT`] characters.
fn clean(text: &str) -> String {
    text.chars()
        .take(AuditRecord::MAX_TEXT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl AuditRecord {
    /// The most characters of any text field kept.
    pub const MAX_TEXT: usize = 200;

    /// A record of `event` at `occurred_at` ending with `outcome`; add what it concerns with
    /// the builder methods.
    #[must_use]
    pub fn new(event: &str, outcome: AuditOutcome, occurred_at: UnixTime) -> Self {
        Self {
            occurred_at: occurred_at.0,
            event: clean(event),
            outcome,
            user_id: None,
            client_id: None,
            address: None,
            actor: None,
            detail: None,
            repeated: 1,
        }
    }

    /// The user it concerns.
    #[must_use]
    pub fn user(mut self, user_id: &str) -> Self {
        self.user_id = Some(clean(user_id));
        self
    }

    /// The client it concerns.
    #[must_use]
    pub fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(clean(client_id));
        self
    }

    /// The caller's address (an IPv4 address mapped into IPv6 as the IPv4 one).
    #[must_use]
    pub fn address(mut self, address: Option<std::net::IpAddr>) -> Self {
        self.address = address.map(|a| a.to_canonical().to_string());
        self
    }

    /// Who acted.
    #[must_use]
    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = Some(clean(actor));
        self
    }

    /// A short, non-secret detail.
    #[must_use]
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = Some(clean(detail));
        self
    }
}

/// A stored [`AuditRecord`] with its number.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Increasing in the order records were written.
    pub audit_id: i64,
    /// The record.
    pub record: AuditRecord,
}

fn entry_from(row: &impl Columns) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        audit_id: row.integer("audit_id")?,
        record: AuditRecord {
            occurred_at: u64::try_from(row.integer("occurred_at")?)
                .map_err(|_| StoreError::TimeOutOfRange)?,
            event: row.text("event")?,
            outcome: AuditOutcome::parse(&row.text("outcome")?)?,
            user_id: row.optional_text("user_id")?,
            client_id: row.optional_text("client_id")?,
            address: row.optional_text("address")?,
            actor: row.optional_text("actor")?,
            detail: row.optional_text("detail")?,
            repeated: u64::try_from(row.integer("repeated")?).unwrap_or(1),
        },
    })
}

/// Which records [`SqlStore::audit_events`] answers: those matching every field given,
/// newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only this client's.
    pub client_id: Option<String>,
    /// Only from this address.
    pub address: Option<String>,
    /// Only this event.
    pub event: Option<String>,
    /// Only records older than this one (the next page).
    pub before: Option<i64>,
}

impl SqlStore {
    /// Writes `records` in one transaction (one statement per 256 records).
    ///
    /// # Errors
    ///
    /// The database error; nothing is written.
    pub async fn record_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        const INSERT: &str = "INSERT INTO audit_events (occurred_at, event, outcome, user_id, \
                              client_id, address, actor, detail, repeated) \
                              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        macro_rules! insert {
            ($record:expr) => {
                sqlx::query(INSERT)
                    .bind(to_db($record.occurred_at)?)
                    .bind(&$record.event)
                    .bind($record.outcome.as_str())
                    .bind(&$record.user_id)
                    .bind(&$record.client_id)
                    .bind(&$record.address)
                    .bind(&$record.actor)
                    .bind(&$record.detail)
                    .bind(to_db($record.repeated)?)
            };
        }
        match records {
            [] => Ok(()),
            [record] => on_pool_write!(self, |pool| {
                insert!(record).execute(pool).await?;
                Ok(())
            }),
            _ => {
                let mut rows = Vec::with_capacity(records.len());
                for record in records {
                    rows.push((to_db(record.occurred_at)?, to_db(record.repeated)?, record));
                }
                on_pool_write!(self, |pool| {
                    // Statements of 256, 128, …, 1 records (9 values each: below both
                    // databases' limits on bound values), all in one transaction. Nine
                    // shapes at most, so each connection prepares and caches nine
                    // statements, not one per batch size.
                    let mut tx = pool.begin().await?;
                    let mut rest = rows.as_slice();
                    while !rest.is_empty() {
                        let size = 1 << rest.len().min(256).ilog2();
                        let (chunk, tail) = rest.split_at(size);
                        rest = tail;
                        let mut insert = sqlx::QueryBuilder::new(
                            "INSERT INTO audit_events (occurred_at, event, outcome, user_id, \
                             client_id, address, actor, detail, repeated) ",
                        );
                        insert.push_values(chunk, |mut row, (occurred_at, repeated, record)| {
                            row.push_bind(*occurred_at)
                                .push_bind(&record.event)
                                .push_bind(record.outcome.as_str())
                                .push_bind(&record.user_id)
                                .push_bind(&record.client_id)
                                .push_bind(&record.address)
                                .push_bind(&record.actor)
                                .push_bind(&record.detail)
                                .push_bind(*repeated);
                        });
                        insert.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }
        }
    }

    /// Up to `limit` (at most 1000) records matching `filter`, newest first.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [
            ("user_id", &filter.user_id),
            ("client_id", &filter.client_id),
            ("address", &filter.address),
            ("event", &filter.event),
        ] {
            if let Some(value) = value {
                values.push(value);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        if filter.before.is_some() {
            conditions.push(format!("audit_id < ${}", values.len() + 1));
        }
        let limit_at = values.len() + usize::from(filter.before.is_some()) + 1;
        let sql = format!(
            "SELECT * FROM audit_events {} {} ORDER BY audit_id DESC LIMIT ${limit_at}",
            if conditions.is_empty() { "" } else { "WHERE" },
            conditions.join(" AND "),
        );
        let limit = i64::from(limit.min(1000));
        on_pool!(self, |pool| {
            // Only fixed column names and numbered placeholders are formatted in; the values
            // are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for value in &values {
                query = query.bind(*value);
            }
            if let Some(before) = filter.before {
                query = query.bind(before);
            }
            query
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(entry_from)
                .collect()
        })
    }

    /// When `client_id` last got tokens, as far as the trail (its retention) remembers: its
    /// newest `token_issued` record.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn client_last_issued(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT occurred_at FROM audit_events WHERE client_id = $1 \
                 AND event = 'token_issued' ORDER BY audit_id DESC LIMIT 1",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            row.map(|r| r.time("occurred_at")).transpose()
        })
    }

    /// Deletes records older than `before`, a batch at a time. Returns how many went.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn sweep_audit_events(&self, before: UnixTime) -> Result<u64, StoreError> {
        let before = to_db(before.0)?;
        let mut removed = 0;
        loop {
            let batch = on_pool_write!(self, |pool| {
                sqlx::query(
                    "DELETE FROM audit_events WHERE audit_id IN \
                     (SELECT audit_id FROM audit_events WHERE occurred_at < $1 LIMIT 1000)",
                )
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
            });
            removed += batch;
            if batch < 1000 {
                return Ok(removed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_text_is_kept_short_and_without_control_characters() {
        let record = AuditRecord::new("sign_in", AuditOutcome::Failure, UnixTime(1))
            .client("evil\u{1b}[2J\nforged row")
            .detail(&"x".repeat(500))
            .address(Some(
                "::ffff:192.0.2.1"
                    .parse()
                    .unwrap_or(std::net::IpAddr::from([0; 4])),
            ));
        assert_eq!(record.client_id.as_deref(), Some("evil?[2J?forged row"));
        assert_eq!(
            record.detail.map(|d| d.chars().count()),
            Some(AuditRecord::MAX_TEXT)
        );
        assert_eq!(record.address.as_deref(), Some("192.0.2.1"));
    }
}

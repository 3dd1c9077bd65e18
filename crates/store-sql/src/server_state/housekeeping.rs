//! What operators list and what the sweeper deletes: clients, unused registrations, sealed refresh
//! successors past their grace window, expired rows.

use crate::{Backend, Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

/// Rows deleted per statement by the sweep: small enough that no statement holds the write lock
/// for long on a busy database (on SQLite, grants wait for it: about 2 ms here).
const SWEEP_BATCH: u64 = 100;

/// After each full batch the sweep rests this many times as long as the batch took, so that it
/// takes at most a fifth of the database's write time while grants are waiting. A million
/// expired rows are no hurry; a p99 that doubles while they go is.
const SWEEP_REST_FACTOR: u32 = 4;

/// Rate-limit counters older than this are stale for every window in use (the longest is an
/// hour).
const RATE_LIMIT_RETENTION: u64 = 24 * 3600;

/// One batched delete per table with an expiry (the primary key picks the batch, which works
/// the same on both databases).
const SWEEPS: [&str; 8] = [
    "DELETE FROM authorization_codes WHERE code_hash IN (SELECT code_hash FROM authorization_codes WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM interactions WHERE id_hash IN (SELECT id_hash FROM interactions WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM device_authorizations WHERE device_code_hash IN (SELECT device_code_hash FROM device_authorizations WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM replay_cache WHERE cache_key IN (SELECT cache_key FROM replay_cache WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM access_tokens WHERE token_hash IN (SELECT token_hash FROM access_tokens WHERE expires_at <= $1 LIMIT 100)",
    "DELETE FROM upstream_requests WHERE state_hash IN (SELECT state_hash FROM upstream_requests WHERE expires_at <= $1 LIMIT 100)",
];

impl SqlStore {
    /// Every registered client, oldest first.
    ///
    /// # Errors
    ///
    /// The database error, or a record that does not parse.
    pub async fn list_clients(
        &self,
    ) -> Result<Vec<mcpauth_token_engine::ClientRecord>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query("SELECT record FROM clients ORDER BY created_at, client_id")
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| row.json("record")).collect()
        })
    }

    /// Deletes dynamically registered and metadata-document clients created before
    /// `created_before` that never completed an authorization (no grant): abandoned
    /// registrations and documents fetched for sign-ins nobody finished. Pre-registered
    /// clients and clients in use are kept. Returns how many went.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn delete_unused_registrations(
        &self,
        created_before: u64,
    ) -> Result<u64, StoreError> {
        // The one statement whose SQL differs: reading a field of the JSON record.
        let sql = match self.backend() {
            Backend::Sqlite => {
                "DELETE FROM clients WHERE created_at < $1 \
                 AND (json_extract(record, '$.registration_token_hash') IS NOT NULL \
                   OR json_extract(record, '$.document_expires_at') IS NOT NULL) \
                 AND NOT EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.client_id)"
            }
            Backend::Postgres => {
                "DELETE FROM clients WHERE created_at < $1 \
                 AND ((record::jsonb ->> 'registration_token_hash') IS NOT NULL \
                   OR (record::jsonb ->> 'document_expires_at') IS NOT NULL) \
                 AND NOT EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.client_id)"
            }
        };
        let created_before = to_db(created_before)?;
        let deleted = on_pool_write!(self, |pool| {
            sqlx::query(sql)
                .bind(created_before)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted > 0 {
            self.clients.clear();
        }
        Ok(deleted)
    }

    /// Forgets the sealed successors of refresh tokens rotated before `rotated_before` (now
    /// minus the refresh-reuse grace window, and a margin): after the window a replay revokes the
    /// family instead, so nothing needs them. Returns how many were forgotten.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn forget_refresh_successors(&self, rotated_before: u64) -> Result<u64, StoreError> {
        let rotated_before = to_db(rotated_before)?;
        Ok(on_pool_write!(self, |pool| {
            sqlx::query(
                "UPDATE refresh_tokens SET sealed_successor = NULL \
                 WHERE sealed_successor IS NOT NULL AND rotated_at < $1",
            )
            .bind(rotated_before)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Deletes expired codes, device authorizations, interactions, sessions, refresh tokens,
    /// one-time values, opaque access tokens, and day-old rate-limit counters and sign-in
    /// failure counts, in batches of 100 rows per statement, resting between them, so that no lock is held
    /// for long. Returns how many rows went.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn sweep_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let now = now.0;
        let stale_counters = to_db(now.saturating_sub(RATE_LIMIT_RETENTION))?;
        let now = to_db(now)?;
        let mut removed = 0;
        let counters = "DELETE FROM rate_limits WHERE limit_key IN (SELECT limit_key FROM rate_limits WHERE window_start <= $1 LIMIT 100)";
        // Locks last at most a day (LockoutPolicy), so a day-old row holds no lock.
        let failures = "DELETE FROM login_failures WHERE account_hash IN (SELECT account_hash FROM login_failures WHERE updated_at <= $1 LIMIT 100)";
        let batches = SWEEPS
            .iter()
            .map(|sql| (*sql, now))
            .chain([(counters, stale_counters), (failures, stale_counters)]);
        for (sql, now) in batches {
            loop {
                let started = std::time::Instant::now();
                let batch = on_pool_write!(self, |pool| {
                    sqlx::query(sql)
                        .bind(now)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
                removed += batch;
                // Each batch commits on its own; requests run in between.
                if batch < SWEEP_BATCH {
                    break;
                }
                tokio::time::sleep(started.elapsed() * SWEEP_REST_FACTOR).await;
            }
        }
        Ok(removed)
    }
}

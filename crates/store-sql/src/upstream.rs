//! Federated sign-ins waiting for their upstream callback (the `mcpauth-proxy` crate's
//! upstream requests), kept as opaque JSON: single use, shared by every instance.

use crate::{SqlStore, StoreError, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

impl SqlStore {
    /// Stores a waiting sign-in under `state_hash` until `expires_at`.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn save_upstream_request(
        &self,
        state_hash: &str,
        record: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let expires_at = to_db(expires_at)?;
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO upstream_requests (state_hash, record, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(state_hash)
            .bind(record)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes and returns the sign-in waiting under `state_hash`, unless it expired by
    /// `now`. One statement, so of two concurrent callbacks exactly one gets it, on any
    /// instance.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn take_upstream_request(
        &self,
        state_hash: &str,
        now: UnixTime,
    ) -> Result<Option<String>, StoreError> {
        let now = to_db(now.0)?;
        let record: Option<String> = on_pool_write!(self, |pool| {
            sqlx::query_scalar(
                "DELETE FROM upstream_requests WHERE state_hash = $1 AND expires_at > $2 RETURNING record",
            )
            .bind(state_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        Ok(record)
    }
}

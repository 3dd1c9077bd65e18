//! Secrets every instance must agree on without an operator configuring them (the DPoP nonce
//! key): the first instance to ask stores its candidate, and every instance reads the stored
//! one.

use crate::{Columns, SqlStore, StoreError, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

impl SqlStore {
    /// The secret stored under `name`, storing `candidate` first if there is none. Instances
    /// racing to store one all read the same winner. Kept in plain text: a secret here may
    /// only protect values that are not credentials (a nonce MAC key, say).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now: UnixTime,
    ) -> Result<Vec<u8>, StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO shared_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .bind(now)
            .execute(pool)
            .await?;
            sqlx::query("SELECT secret FROM shared_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await?
                .bytes("secret")
        })
    }
}

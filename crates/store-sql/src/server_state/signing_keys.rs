//! Signing keys: the PKCS#8 material (sealed once an encryption key is set), their ids and when
//! each starts signing.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

/// A stored signing key.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigningKeyRow {
    /// Key id.
    pub kid: String,
    /// JWS algorithm (`ES256`, `EdDSA`, `RS256`).
    pub algorithm: String,
    /// The private key as the server stored it (PKCS#8 DER, or encrypted by the server).
    pub material: Vec<u8>,
    /// When it was stored.
    pub created_at: u64,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Every stored signing key, newest first (the first one signs).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT kid, algorithm, private_key, created_at FROM signing_keys ORDER BY created_at DESC, seq DESC, kid",
            )
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(SigningKeyRow {
                        kid: r.text("kid")?,
                        algorithm: r.text("algorithm")?,
                        material: r.bytes("private_key")?,
                        created_at: r.time("created_at")?,
                    })
                })
                .collect()
        })
    }

    /// Stores a signing key (a rotation: it becomes the newest, so it signs from the next
    /// start or reload on).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_signing_key(
        &self,
        kid: &str,
        algorithm: &str,
        material: &[u8],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            sqlx::query("INSERT INTO signing_keys (kid, algorithm, private_key, created_at, seq) VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys))")
                .bind(kid)
                .bind(algorithm)
                .bind(material)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Deletes signing key `kid` (it is no longer published: tokens it signed stop
    /// verifying). Returns whether it existed.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let done = on_pool_write!(self, |pool| {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Stores `material` as the first signing key unless some key is already stored, and says
    /// whether it did. Instances starting at once on one database serialise on a lock row, so
    /// exactly one first key is ever created and every instance signs with it.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_first_signing_key(
        &self,
        kid: &str,
        algorithm: &str,
        material: &[u8],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Writing the lock row blocks the other instances' transactions until this one
            // ends (a row lock on PostgreSQL, the write lock on SQLite).
            sqlx::query("UPDATE store_locks SET name = name WHERE name = 'signing_keys'")
                .execute(&mut *tx)
                .await?;
            let existing = sqlx::query("SELECT COUNT(*) AS n FROM signing_keys")
                .fetch_one(&mut *tx)
                .await?
                .integer("n")?;
            if existing > 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("INSERT INTO signing_keys (kid, algorithm, private_key, created_at, seq) VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys))")
                .bind(kid)
                .bind(algorithm)
                .bind(material)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Replaces the stored material of key `kid` (to encrypt a key stored in plain text).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn replace_signing_key_material(
        &self,
        kid: &str,
        material: &[u8],
    ) -> Result<bool, StoreError> {
        let done = on_pool_write!(self, |pool| {
            sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
                .bind(material)
                .bind(kid)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}

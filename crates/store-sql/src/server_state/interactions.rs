//! Sign-in interactions and browser sessions: both ids are bearer secrets, stored as hashes.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::{SecretHash, UnixTime};

/// A login/consent interaction in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InteractionRow {
    /// JSON of the engine's pending authorization.
    pub pending: String,
    /// SHA-256 of the CSRF token of its forms.
    pub csrf_hash: SecretHash,
    /// The user, once logged in.
    pub user_id: Option<String>,
    /// When it stops working.
    pub expires_at: u64,
}

impl SqlStore {
    /// Stores a new interaction.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_interaction(
        &self,
        id_hash: &SecretHash,
        pending: &str,
        csrf_hash: &SecretHash,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let expires_at = to_db(expires_at)?;
        on_pool_write!(self, |pool| {
            sqlx::query("INSERT INTO interactions (id_hash, pending, csrf_hash, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(id_hash.as_str())
                .bind(pending)
                .bind(csrf_hash.as_str())
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Finds a live interaction.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_interaction(
        &self,
        id_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<InteractionRow>, StoreError> {
        let now = to_db(now.0)?;
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT pending, csrf_hash, user_id, expires_at FROM interactions WHERE id_hash = $1 AND expires_at > $2")
                .bind(id_hash.as_str())
                .bind(now)
                .fetch_optional(pool)
                .await?;
            row.map(|r| {
                Ok(InteractionRow {
                    pending: r.text("pending")?,
                    csrf_hash: SecretHash::from_stored(r.text("csrf_hash")?),
                    user_id: r.optional_text("user_id")?,
                    expires_at: r.time("expires_at")?,
                })
            })
            .transpose()
        })
    }

    /// Records who logged in for an interaction.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn set_interaction_user(
        &self,
        id_hash: &SecretHash,
        user_id: &str,
    ) -> Result<(), StoreError> {
        on_pool_write!(self, |pool| {
            sqlx::query("UPDATE interactions SET user_id = $1 WHERE id_hash = $2")
                .bind(user_id)
                .bind(id_hash.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Forgets who logged in for an interaction (they signed out: someone else may sign in).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn clear_interaction_user(&self, id_hash: &SecretHash) -> Result<(), StoreError> {
        on_pool_write!(self, |pool| {
            sqlx::query("UPDATE interactions SET user_id = NULL WHERE id_hash = $1")
                .bind(id_hash.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Deletes an interaction; `true` only for the one caller that deleted it, so a decision
    /// is taken once even if the form is posted twice (to two instances).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn take_interaction(&self, id_hash: &SecretHash) -> Result<bool, StoreError> {
        let done = on_pool_write!(self, |pool| {
            sqlx::query("DELETE FROM interactions WHERE id_hash = $1")
                .bind(id_hash.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Stores a browser session.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_session(
        &self,
        id_hash: &SecretHash,
        user_id: &str,
        now: UnixTime,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        let expires_at = to_db(expires_at)?;
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id_hash.as_str())
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The user of a live session.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn session_user(
        &self,
        id_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<String>, StoreError> {
        let now = to_db(now.0)?;
        on_pool!(self, |pool| {
            let row =
                sqlx::query("SELECT user_id FROM sessions WHERE id_hash = $1 AND expires_at > $2")
                    .bind(id_hash.as_str())
                    .bind(now)
                    .fetch_optional(pool)
                    .await?;
            row.map(|r| r.text("user_id")).transpose()
        })
    }

    /// Ends a session.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn delete_session(&self, id_hash: &SecretHash) -> Result<(), StoreError> {
        on_pool_write!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

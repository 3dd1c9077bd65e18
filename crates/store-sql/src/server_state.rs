//! The `mcpauth-server` binary's own state: users, signing keys, login interactions and
//! browser sessions. Ids of interactions and sessions are bearer secrets, stored hashed.

use sqlx::Row;

use crate::{SqlStore, StoreError, from_db, to_db};

/// A user account.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRow {
    /// Stable subject identifier.
    pub user_id: String,
    /// Normalised email address.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Whether the account is disabled.
    pub disabled: bool,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A login/consent interaction in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InteractionRow {
    /// JSON of the engine's pending authorization.
    pub pending: String,
    /// SHA-256 of the CSRF token of its forms.
    pub csrf_hash: String,
    /// The user, once logged in.
    pub user_id: Option<String>,
    /// When it stops working.
    pub expires_at: u64,
}

fn user_from(r: &sqlx::sqlite::SqliteRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        user_id: r.try_get("user_id")?,
        email: r.try_get("email")?,
        password_hash: r.try_get("password_hash")?,
        disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

impl SqlStore {
    /// Creates a user. Fails if the email is taken.
    ///
    /// # Errors
    ///
    /// The database error (a unique violation for a taken email).
    pub async fn create_user(
        &self,
        user_id: &str,
        email: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (user_id, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(email)
        .bind(password_hash)
        .bind(to_db(now)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Finds a user by normalised email.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, email, password_hash, disabled_at FROM users WHERE email = ?",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from(&r)).transpose()
    }

    /// Finds a user by id.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_user_by_id(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, email, password_hash, disabled_at FROM users WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from(&r)).transpose()
    }

    /// The newest signing key (PKCS#8 DER) for `algorithm`, if any.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn current_signing_key(
        &self,
        algorithm: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT private_key FROM signing_keys WHERE algorithm = ? ORDER BY created_at DESC, kid LIMIT 1")
            .bind(algorithm)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("private_key")).transpose()?)
    }

    /// Every stored signing key as (algorithm, PKCS#8 DER), newest first.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn signing_keys(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT algorithm, private_key FROM signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("algorithm")?, r.try_get("private_key")?)))
            .collect()
    }

    /// Stores a signing key.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_signing_key(
        &self,
        kid: &str,
        algorithm: &str,
        pkcs8_der: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO signing_keys (kid, algorithm, private_key, created_at) VALUES (?, ?, ?, ?)")
            .bind(kid)
            .bind(algorithm)
            .bind(pkcs8_der)
            .bind(to_db(now)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a new interaction.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_interaction(
        &self,
        id_hash: &str,
        pending: &str,
        csrf_hash: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO interactions (id_hash, pending, csrf_hash, expires_at) VALUES (?, ?, ?, ?)")
            .bind(id_hash)
            .bind(pending)
            .bind(csrf_hash)
            .bind(to_db(expires_at)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Finds a live interaction.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_interaction(
        &self,
        id_hash: &str,
        now: u64,
    ) -> Result<Option<InteractionRow>, StoreError> {
        let row = sqlx::query("SELECT pending, csrf_hash, user_id, expires_at FROM interactions WHERE id_hash = ? AND expires_at > ?")
            .bind(id_hash)
            .bind(to_db(now)?)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(InteractionRow {
                pending: r.try_get("pending")?,
                csrf_hash: r.try_get("csrf_hash")?,
                user_id: r.try_get("user_id")?,
                expires_at: from_db(r.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    /// Records who logged in for an interaction.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn set_interaction_user(
        &self,
        id_hash: &str,
        user_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE interactions SET user_id = ? WHERE id_hash = ?")
            .bind(user_id)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes an interaction; `true` only for the one caller that deleted it, so a decision
    /// is taken once even if the form is posted twice.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn take_interaction(&self, id_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM interactions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a browser session.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn insert_session(
        &self,
        id_hash: &str,
        user_id: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(to_db(now)?)
        .bind(to_db(expires_at)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live session.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn session_user(
        &self,
        id_hash: &str,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT user_id FROM sessions WHERE id_hash = ? AND expires_at > ?")
            .bind(id_hash)
            .bind(to_db(now)?)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("user_id")).transpose()?)
    }

    /// Ends a session.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes dynamically registered clients created before `created_before` that never
    /// completed an authorization (no grant): abandoned registrations. Pre-registered clients
    /// and clients in use are kept. Returns how many went.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn delete_unused_registrations(
        &self,
        created_before: u64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM clients WHERE created_at < ? \
             AND json_extract(record, '$.registration_token_hash') IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.client_id)",
        )
        .bind(to_db(created_before)?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes expired codes, device authorizations, interactions, sessions, refresh tokens past
    /// their expiry, and old rate-limit counters.
    /// Returns how many rows went.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn sweep_expired(&self, now: u64) -> Result<u64, StoreError> {
        let now = to_db(now)?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM authorization_codes WHERE expires_at <= ?",
            "DELETE FROM interactions WHERE expires_at <= ?",
            "DELETE FROM sessions WHERE expires_at <= ?",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?",
            "DELETE FROM device_authorizations WHERE expires_at <= ?",
            "DELETE FROM replay_cache WHERE expires_at <= ?",
            "DELETE FROM access_tokens WHERE expires_at <= ?",
        ] {
            removed += sqlx::query(sql)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}

//! Users: accounts with an argon2id password hash (or none, for federated accounts), disabled or
//! not.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

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
    /// When the account was created.
    pub created_at: u64,
    /// Whether the user may use the admin console and its API.
    pub admin: bool,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

fn user_from(r: &impl Columns) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        user_id: r.text("user_id")?,
        email: r.text("email")?,
        password_hash: r.text("password_hash")?,
        disabled: r.optional_integer("disabled_at")?.is_some(),
        created_at: u64::try_from(r.integer("created_at")?).unwrap_or_default(),
        admin: r.boolean("is_admin")?,
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
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (user_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user_id)
            .bind(email)
            .bind(password_hash)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Finds a user by normalised email.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT user_id, email, password_hash, disabled_at, created_at, is_admin FROM users WHERE email = $1",
            )
            .bind(email)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(user_from).transpose()
        })
    }

    /// Finds a user by id.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_user_by_id(&self, user_id: &str) -> Result<Option<UserRow>, StoreError> {
        // Read on every code redemption (is the subject still active?): on SQLite by the grant
        // path's readers, without a hand-off.
        self.read_row(
            "SELECT user_id, email, password_hash, disabled_at, created_at, is_admin FROM users WHERE user_id = $1",
            crate::statement::params![user_id],
            |r| user_from(r),
            user_from,
        )
        .await
    }

    /// Every user, by email.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT user_id, email, password_hash, disabled_at, created_at, is_admin FROM users ORDER BY email",
            )
            .fetch_all(pool)
            .await?;
            rows.iter().map(user_from).collect()
        })
    }

    /// Disables user `user_id` at `now` and, in the same transaction, cuts off everything it
    /// holds: its browser sessions and sign-ins in progress are deleted and every grant made
    /// to it is revoked (refresh
    /// tokens and opaque access tokens stop working; JWT access tokens run out at their
    /// `exp`). Returns whether the user exists.
    ///
    /// # Errors
    ///
    /// The database error; nothing is changed.
    pub async fn disable_user(&self, user_id: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.cut_off(user_id, now, &[]).await
    }

    /// In one transaction: marks `user_id` disabled at `now` (the trigger records the event
    /// resource servers receive), ends its sessions and sign-ins in progress, revokes its
    /// grants, then runs `then` (statements binding the user id). Returns whether the user
    /// existed.
    async fn cut_off(
        &self,
        user_id: &str,
        now: UnixTime,
        then: &[&'static str],
    ) -> Result<bool, StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let found = sqlx::query(
                "UPDATE users SET disabled_at = COALESCE(disabled_at, $2) WHERE user_id = $1",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            sqlx::query(
                "UPDATE grants SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // Sign-ins in progress end too: no consent page left open can approve.
            for statement in [
                "DELETE FROM sessions WHERE user_id = $1",
                "DELETE FROM interactions WHERE user_id = $1",
            ]
            .iter()
            .chain(then)
            {
                sqlx::query(*statement)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(found)
        })
    }

    /// Removes user `user_id`, in one transaction: first disabled as
    /// [`disable_user`](Self::disable_user) does (sessions and sign-ins in progress end, every
    /// grant is revoked, resource servers hear it), then its remembered consent, its links to
    /// upstream identities and the account itself are deleted. The audit trail keeps its
    /// subject. Returns whether the user existed.
    ///
    /// # Errors
    ///
    /// The database error; nothing is changed.
    pub async fn remove_user(&self, user_id: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.cut_off(
            user_id,
            now,
            &[
                "DELETE FROM consent_approvals WHERE user_id = $1",
                "DELETE FROM federated_identities WHERE user_id = $1",
                "DELETE FROM users WHERE user_id = $1",
            ],
        )
        .await
    }

    /// Marks user `user_id` an administrator, or not. Returns whether the user exists.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn set_user_admin(&self, user_id: &str, admin: bool) -> Result<bool, StoreError> {
        on_pool_write!(self, |pool| {
            let done = sqlx::query("UPDATE users SET is_admin = $2 WHERE user_id = $1")
                .bind(user_id)
                .bind(admin)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Enables user `user_id` again (its revoked grants stay revoked). Returns whether the
    /// user exists.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn enable_user(&self, user_id: &str) -> Result<bool, StoreError> {
        on_pool_write!(self, |pool| {
            let done = sqlx::query("UPDATE users SET disabled_at = NULL WHERE user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Replaces user `user_id`'s password hash and signs it out everywhere (its sessions and
    /// sign-ins in progress are deleted in the same transaction). Returns whether the user exists.
    ///
    /// # Errors
    ///
    /// The database error; nothing is changed.
    pub async fn set_user_password(
        &self,
        user_id: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let found = sqlx::query("UPDATE users SET password_hash = $2 WHERE user_id = $1")
                .bind(user_id)
                .bind(password_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM interactions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(found)
        })
    }
}

//! The `mcpauth-server` binary's own state: users, signing keys, login interactions and
//! browser sessions. Ids of interactions and sessions are bearer secrets, stored hashed.

use crate::{Backend, Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::{SecretHash, UnixTime};

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
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

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

/// When failed sign-ins lock an account: after [`after_failures`](Self::after_failures)
/// wrong passwords in a row, for [`first_lock`](Self::first_lock) seconds, each further lock
/// twice as long up to [`longest_lock`](Self::longest_lock) (at most a day). A day without
/// failures forgets earlier locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Wrong passwords in a row that lock the account (at least 1).
    pub after_failures: u32,
    /// Seconds the first lock lasts.
    pub first_lock: u64,
    /// Seconds the longest lock lasts.
    pub longest_lock: u64,
}

impl Default for LockoutPolicy {
    /// The sixth wrong password in a row locks for a minute, then 2, 4, … up to an hour.
    fn default() -> Self {
        Self {
            after_failures: 6,
            first_lock: 60,
            longest_lock: 3600,
        }
    }
}

impl LockoutPolicy {
    const DAY: u64 = 24 * 3600;

    /// Seconds the lock after `earlier_locks` previous ones lasts.
    #[must_use]
    pub fn lock_duration(&self, earlier_locks: u32) -> u64 {
        let longest = self.longest_lock.clamp(1, Self::DAY);
        self.first_lock
            .max(1)
            .saturating_mul(1u64.checked_shl(earlier_locks.min(32)).unwrap_or(u64::MAX))
            .min(longest)
    }

    fn forget_after(&self) -> u64 {
        Self::DAY
    }
}

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

fn user_from(r: &impl Columns) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        user_id: r.text("user_id")?,
        email: r.text("email")?,
        password_hash: r.text("password_hash")?,
        disabled: r.optional_integer("disabled_at")?.is_some(),
        created_at: u64::try_from(r.integer("created_at")?).unwrap_or_default(),
    })
}

/// Rows deleted per statement by the sweep: small enough that no statement holds its locks
/// for long on a busy database.
const SWEEP_BATCH: u64 = 500;

/// Rate-limit counters older than this are stale for every window in use (the longest is an
/// hour).
const RATE_LIMIT_RETENTION: u64 = 24 * 3600;

/// One batched delete per table with an expiry (the primary key picks the batch, which works
/// the same on both databases).
const SWEEPS: [&str; 8] = [
    "DELETE FROM authorization_codes WHERE code_hash IN (SELECT code_hash FROM authorization_codes WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM interactions WHERE id_hash IN (SELECT id_hash FROM interactions WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM sessions WHERE id_hash IN (SELECT id_hash FROM sessions WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM device_authorizations WHERE device_code_hash IN (SELECT device_code_hash FROM device_authorizations WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM replay_cache WHERE cache_key IN (SELECT cache_key FROM replay_cache WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM access_tokens WHERE token_hash IN (SELECT token_hash FROM access_tokens WHERE expires_at <= $1 LIMIT 500)",
    "DELETE FROM upstream_requests WHERE state_hash IN (SELECT state_hash FROM upstream_requests WHERE expires_at <= $1 LIMIT 500)",
];

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
                "SELECT user_id, email, password_hash, disabled_at, created_at FROM users WHERE email = $1",
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
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT user_id, email, password_hash, disabled_at, created_at FROM users WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(user_from).transpose()
        })
    }

    /// Every user, by email.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT user_id, email, password_hash, disabled_at, created_at FROM users ORDER BY email",
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
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            // Sign-ins in progress end too: no consent page left open can approve.
            sqlx::query("DELETE FROM interactions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE grants SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(found)
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

    /// When the account with `account_hash` is locked until, if it is locked at `now`.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn login_locked_until(
        &self,
        account_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<u64>, StoreError> {
        let now = to_db(now.0)?;
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT locked_until FROM login_failures WHERE account_hash = $1 AND locked_until > $2",
            )
            .bind(account_hash.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|r| r.time("locked_until")).transpose()
        })
    }

    /// Counts a wrong password for `account_hash`. When it is the
    /// [`after_failures`](LockoutPolicy::after_failures)th in a row, locks the account (each
    /// lock twice as long as the previous one, up to the longest) and returns until when.
    /// Safe under concurrency: the count is one atomic statement and only one caller turns
    /// it into a lock.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn record_login_failure(
        &self,
        account_hash: &SecretHash,
        now: UnixTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<u64>, StoreError> {
        let now = now.0;
        let quiet_since = to_db(now.saturating_sub(policy.forget_after()))?;
        let db_now = to_db(now)?;
        let (failures, lockouts) = on_pool_write!(self, |pool| {
            // After a quiet day the account starts afresh: earlier locks no longer lengthen the
            // next one.
            let row = sqlx::query(
                "INSERT INTO login_failures (account_hash, failures, lockouts, locked_until, updated_at) \
                 VALUES ($1, 1, 0, NULL, $2) \
                 ON CONFLICT (account_hash) DO UPDATE SET \
                   failures = CASE WHEN login_failures.updated_at < $3 THEN 1 ELSE login_failures.failures + 1 END, \
                   lockouts = CASE WHEN login_failures.updated_at < $3 THEN 0 ELSE login_failures.lockouts END, \
                   updated_at = excluded.updated_at \
                 RETURNING failures, lockouts",
            )
            .bind(account_hash.as_str())
            .bind(db_now)
            .bind(quiet_since)
            .fetch_one(pool)
            .await?;
            (row.integer("failures")?, row.integer("lockouts")?)
        });
        if failures < i64::from(policy.after_failures) {
            return Ok(None);
        }
        let until =
            now.saturating_add(policy.lock_duration(u32::try_from(lockouts).unwrap_or(u32::MAX)));
        let db_until = to_db(until)?;
        let locked = on_pool_write!(self, |pool| {
            sqlx::query(
                "UPDATE login_failures SET failures = 0, lockouts = lockouts + 1, locked_until = $2 \
                 WHERE account_hash = $1 AND failures >= $3 AND lockouts = $4",
            )
            .bind(account_hash.as_str())
            .bind(db_until)
            .bind(i64::from(policy.after_failures))
            .bind(lockouts)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok((locked > 0).then_some(until))
    }

    /// Forgets the failures and locks of `account_hash` (after a successful sign-in).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn clear_login_failures(&self, account_hash: &SecretHash) -> Result<(), StoreError> {
        on_pool_write!(self, |pool| {
            sqlx::query("DELETE FROM login_failures WHERE account_hash = $1")
                .bind(account_hash.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

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
        let deleted = on_pool!(self, |pool| {
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
    /// failure counts, in batches of a few hundred rows per statement so that no lock is held
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
        let counters = "DELETE FROM rate_limits WHERE limit_key IN (SELECT limit_key FROM rate_limits WHERE window_start <= $1 LIMIT 500)";
        // Locks last at most a day (LockoutPolicy), so a day-old row holds no lock.
        let failures = "DELETE FROM login_failures WHERE account_hash IN (SELECT account_hash FROM login_failures WHERE updated_at <= $1 LIMIT 500)";
        let batches = SWEEPS
            .iter()
            .map(|sql| (*sql, now))
            .chain([(counters, stale_counters), (failures, stale_counters)]);
        for (sql, now) in batches {
            loop {
                let batch = on_pool!(self, |pool| {
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
            }
        }
        Ok(removed)
    }
}

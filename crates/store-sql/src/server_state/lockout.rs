//! Per-account sign-in lockout with progressive backoff, counted in the shared database.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::{SecretHash, UnixTime};

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

impl SqlStore {
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
}

//! Local accounts of users who sign in at an upstream identity provider: which local user each
//! upstream account is, and (when the operator keeps them) its sealed upstream tokens.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

/// The password hash of accounts that sign in only upstream: not a PHC string, so no
/// password ever verifies against it.
pub const NO_PASSWORD: &str = "!federated";

/// One upstream account linked to a local user.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FederatedIdentityRow {
    /// The provider id (as configured).
    pub provider: String,
    /// The provider's stable id of the user.
    pub subject: String,
    /// The local user.
    pub user_id: String,
    /// The upstream tokens, sealed by the application (none: not kept).
    pub upstream_tokens: Option<String>,
    /// When the account was first linked.
    pub created_at: u64,
    /// When it last signed in or its tokens changed.
    pub updated_at: u64,
}

impl std::fmt::Debug for FederatedIdentityRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedIdentityRow")
            .field("provider", &self.provider)
            .field("subject", &self.subject)
            .field("user_id", &self.user_id)
            .field(
                "upstream_tokens",
                &self.upstream_tokens.as_ref().map(|_| "[sealed]"),
            )
            .finish_non_exhaustive()
    }
}

fn identity_from(row: &impl Columns) -> Result<FederatedIdentityRow, StoreError> {
    Ok(FederatedIdentityRow {
        provider: row.text("provider")?,
        subject: row.text("subject")?,
        user_id: row.text("user_id")?,
        upstream_tokens: row.optional_text("upstream_tokens")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

impl SqlStore {
    /// The local account linked to `provider`'s user `subject`, if any.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_federated_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<FederatedIdentityRow>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT provider, subject, user_id, upstream_tokens, created_at, updated_at \
                 FROM federated_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(provider)
            .bind(subject)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(identity_from).transpose()
        })
    }

    /// `user_id`'s link to `provider`, if any.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn find_federated_identity_of_user(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<FederatedIdentityRow>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT provider, subject, user_id, upstream_tokens, created_at, updated_at \
                 FROM federated_identities WHERE user_id = $1 AND provider = $2",
            )
            .bind(user_id)
            .bind(provider)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(identity_from).transpose()
        })
    }

    /// Creates local user `user_id` for `provider`'s user `subject` and links them, in one
    /// transaction. The user's `email` column gets `email` when no other account holds it,
    /// otherwise `provider:subject` (accounts are never merged by email). The account has no
    /// password ([`NO_PASSWORD`]).
    ///
    /// Returns the linked user id: `user_id`, or the one another request linked first when
    /// two first sign-ins of the same upstream user race.
    ///
    /// # Errors
    ///
    /// The database error; nothing is changed.
    pub async fn create_federated_user(
        &self,
        user_id: &str,
        email: Option<&str>,
        provider: &str,
        subject: &str,
        now: UnixTime,
    ) -> Result<String, StoreError> {
        let now = to_db(now.0)?;
        let fallback = format!("{provider}:{subject}");
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let linked = sqlx::query(
                "INSERT INTO federated_identities (provider, subject, user_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
            )
            .bind(provider)
            .bind(subject)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if linked == 0 {
                // Another request linked this upstream user first: sign in as its user.
                tx.rollback().await?;
                let existing: Option<String> = sqlx::query_scalar(
                    "SELECT user_id FROM federated_identities WHERE provider = $1 AND subject = $2",
                )
                .bind(provider)
                .bind(subject)
                .fetch_optional(pool)
                .await?;
                return existing.ok_or(StoreError::Conflict("federated identity vanished"));
            }
            let mut created = 0;
            for candidate in email.into_iter().chain([fallback.as_str()]) {
                created = sqlx::query(
                    "INSERT INTO users (user_id, email, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(user_id)
                .bind(candidate)
                .bind(NO_PASSWORD)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if created > 0 {
                    break;
                }
            }
            if created == 0 {
                return Err(StoreError::Conflict("no free email for the federated user"));
            }
            tx.commit().await?;
            Ok(user_id.to_owned())
        })
    }

    /// Records a sign-in of `provider`'s user `subject` at `now`, replacing its sealed
    /// upstream tokens (`None` clears them).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn set_federated_tokens(
        &self,
        provider: &str,
        subject: &str,
        upstream_tokens: Option<&str>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            sqlx::query(
                "UPDATE federated_identities SET upstream_tokens = $3, updated_at = $4, \
                 refresh_lease_until = NULL WHERE provider = $1 AND subject = $2",
            )
            .bind(provider)
            .bind(subject)
            .bind(upstream_tokens)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Replaces the sealed upstream tokens of `provider`'s user `subject` only if they are
    /// still `expected`: of two instances refreshing the same tokens, one wins and the other
    /// reads the winner's. Returns whether this call replaced them.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn replace_federated_tokens(
        &self,
        provider: &str,
        subject: &str,
        expected: &str,
        upstream_tokens: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            let done = sqlx::query(
                "UPDATE federated_identities SET upstream_tokens = $4, updated_at = $5, \
                 refresh_lease_until = NULL \
                 WHERE provider = $1 AND subject = $2 AND upstream_tokens = $3",
            )
            .bind(provider)
            .bind(subject)
            .bind(expected)
            .bind(upstream_tokens)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Claims the refresh of `provider`'s user `subject`'s tokens until `until`, if they are
    /// still `expected` and no other live claim holds them. Exactly one of several instances
    /// gets it, so a rotating upstream refresh token is spent once; the others wait for the
    /// winner's tokens. Returns whether this call claimed it.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn claim_federated_refresh(
        &self,
        provider: &str,
        subject: &str,
        expected: &str,
        now: UnixTime,
        until: u64,
    ) -> Result<bool, StoreError> {
        let now = now.0;
        let (now, until) = (to_db(now)?, to_db(until)?);
        on_pool_write!(self, |pool| {
            let done = sqlx::query(
                "UPDATE federated_identities SET refresh_lease_until = $5 \
                 WHERE provider = $1 AND subject = $2 AND upstream_tokens = $3 \
                 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $4)",
            )
            .bind(provider)
            .bind(subject)
            .bind(expected)
            .bind(now)
            .bind(until)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Gives up a refresh claim (the refresh failed), so another request may try at once.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn release_federated_refresh(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        on_pool_write!(self, |pool| {
            sqlx::query(
                "UPDATE federated_identities SET refresh_lease_until = NULL \
                 WHERE provider = $1 AND subject = $2",
            )
            .bind(provider)
            .bind(subject)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

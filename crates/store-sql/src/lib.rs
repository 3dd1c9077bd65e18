//! SQL storage for mcpauth: an [`OAuthServerModel`](mcpauth_token_engine::OAuthServerModel) on
//! SQLite (sqlx, embedded migrations), plus the state of the `mcpauth-server` binary (users,
//! signing keys, login interactions, sessions).
//!
//! Every atomic model call is one conditional statement or one transaction, so races are
//! decided by the database, never by process memory:
//! `UPDATE … SET consumed_at = ? WHERE code_hash = ? AND consumed_at IS NULL RETURNING …`.
//!
//! ```no_run
//! # async fn run() -> Result<(), mcpauth_store_sql::StoreError> {
//! let store = mcpauth_store_sql::SqlStore::connect("sqlite://mcpauth.db").await?;
//! # Ok(()) }
//! ```

mod model;
mod server_state;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use server_state::{InteractionRow, UserRow};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON column does not parse.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The database URL names an unsupported database.
    #[error("unsupported database URL `{0}`: use sqlite://PATH")]
    UnsupportedUrl(String),
    /// A stored integer is out of range.
    #[error("stored time is out of range")]
    TimeOutOfRange,
    /// A stored state name is unknown (written by a newer version?).
    #[error("stored state is unknown")]
    UnknownState,
}

/// SQL storage (SQLite).
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: SqlitePool,
}

impl SqlStore {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the URL is not `sqlite:`, the file cannot be opened, or a migration
    /// fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.chars().take(64).collect()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Whether the database answers (for readiness checks).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn to_db(t: u64) -> Result<i64, StoreError> {
    i64::try_from(t).map_err(|_| StoreError::TimeOutOfRange)
}

fn from_db(t: i64) -> Result<u64, StoreError> {
    u64::try_from(t).map_err(|_| StoreError::TimeOutOfRange)
}

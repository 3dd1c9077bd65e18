#![doc = include_str!("../README.md")]

mod client_cache;
mod consent;
mod federated;
mod model;
mod postgres;
mod server_state;
mod sqlite;
mod statement;
mod upstream;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

pub use consent::{ConsentRow, ResourceApproval, approvals_cover};
pub use federated::{FederatedIdentityRow, NO_PASSWORD};
pub use server_state::{
    AuditEntry, AuditFilter, AuditOutcome, AuditRecord, GrantFilter, GrantSummary, InteractionRow,
    LockoutPolicy, Polled, PushEndpoint, SecurityEvent, SecurityEventKind, SigningKeyRow,
    SsfStream, UserRow,
};

/// Writes a consistent copy of the SQLite database at `database_url` to `destination` (a new
/// file) while servers use it: `VACUUM INTO` reads one snapshot and takes no write lock, so
/// requests go on. The copy is a complete database; restore it by starting a server on it
/// (after [`check_sqlite_backup`]). Opens the database read-only, running no migration: a
/// newer binary can back up the database an older server still uses, before upgrading it.
///
/// # Errors
///
/// [`StoreError::BackupUnsupported`] for a PostgreSQL URL; the database error (no database
/// there, `destination` exists or cannot be written).
pub async fn backup_sqlite(
    database_url: &str,
    destination: &std::path::Path,
) -> Result<(), StoreError> {
    use sqlx::Connection as _;
    if !database_url.starts_with("sqlite:") {
        return Err(StoreError::BackupUnsupported);
    }
    let options = SqliteConnectOptions::from_str(database_url)?
        .read_only(true)
        .create_if_missing(false);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(destination.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(())
}

/// The versions of the SQLite migrations this version has, oldest first: a backup with one
/// it does not know was made by a newer version.
#[must_use]
pub fn sqlite_migration_versions() -> Vec<i64> {
    sqlx::migrate!("./migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .collect()
}

/// Checks that the file at `path` is a whole mcpauth SQLite database (SQLite's
/// `integrity_check` passes, and it has mcpauth's migrations), before it is restored; answers
/// the migrations it has.
///
/// # Errors
///
/// The database error (not a database, not readable), or [`StoreError::NotABackup`] naming
/// what is wrong.
pub async fn check_sqlite_backup(path: &std::path::Path) -> Result<Vec<i64>, StoreError> {
    use sqlx::Connection as _;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await?;
    if integrity != "ok" {
        return Err(StoreError::NotABackup(format!(
            "SQLite's integrity check fails: {}",
            integrity.chars().take(200).collect::<String>()
        )));
    }
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .map_err(|_| StoreError::NotABackup("it has no mcpauth migrations".to_owned()))?;
    connection.close().await?;
    if versions.is_empty() {
        return Err(StoreError::NotABackup(
            "it has no mcpauth migrations".to_owned(),
        ));
    }
    Ok(versions)
}

/// The applied migrations read from `_sqlx_migrations`: none when the table does not exist
/// yet (a database no migration has touched), the error otherwise.
fn applied_migrations(read: Result<Vec<i64>, sqlx::Error>) -> Result<Vec<i64>, StoreError> {
    match read {
        Ok(applied) => Ok(applied),
        Err(sqlx::Error::Database(e))
            // PostgreSQL's undefined_table; SQLite's message.
            if e.code().as_deref() == Some("42P01") || e.message().contains("no such table") =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// The versions `migrator` has that `applied` lacks, as [`StoreError::SchemaBehind`].
fn pending_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Result<(), StoreError> {
    let pending: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::SchemaBehind(pending))
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (or could not be reached in time).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite failed on the grant path (rusqlite: the OAuth model's statements).
    #[error("database error: {0}")]
    Sqlite(#[source] std::sync::Arc<rusqlite::Error>),
    /// The SQLite writer thread could not be started.
    #[error("could not start the SQLite writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
    /// The SQLite writer did not answer in time (a long queue, or another process holding the
    /// database's write lock). The write may still be committed after this.
    #[error("the SQLite writer did not answer within {0:?}")]
    WriteTimedOut(Duration),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Migrations are off ([`StoreOptions::migrate`]) and the database lacks some this version
    /// needs.
    #[error(
        "the database lacks {} migration(s) this version needs (the first: {}): run `mcpauth-server migrate`, or start with migrations on",
        .0.len(),
        .0.first().copied().unwrap_or_default()
    )]
    SchemaBehind(Vec<i64>),
    /// An online backup is for SQLite; PostgreSQL has its own tools.
    #[error(
        "online backup is for SQLite databases: back PostgreSQL up with pg_dump or your provider's snapshots (docs/deployment.md)"
    )]
    BackupUnsupported,
    /// A file to restore is not a whole mcpauth database.
    #[error("not an mcpauth backup: {0}")]
    NotABackup(String),
    /// A stored JSON column does not parse.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The database URL names an unsupported database (only its scheme is kept: the rest may
    /// hold a password).
    #[error(
        "unsupported database URL scheme `{0}`: use sqlite://PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl(String),
    /// A stored integer is out of range.
    #[error("stored time is out of range")]
    TimeOutOfRange,
    /// A stored state name is unknown (written by a newer version?).
    #[error("stored state is unknown")]
    UnknownState,
    /// A stored scope is not RFC 6749 §3.3 syntax.
    #[error("stored scope is corrupt: {0}")]
    CorruptScope(#[from] mcpauth_token_engine::ScopeError),
    /// `SqlStore` keeps its data in a file: an in-memory SQLite database would be a different
    /// one on every connection.
    #[error(
        "in-memory SQLite is not supported: use a file (sqlite://PATH), or MemoryModel for tests"
    )]
    InMemorySqlite,
    /// A write could not be made consistent with rows another request wrote at the same time.
    #[error("conflicting write: {0}")]
    Conflict(&'static str),
}

impl StoreError {
    /// Whether the database refused a write because a unique key (an email, an id) is
    /// already taken.
    #[must_use]
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            Self::Sqlite(e) => matches!(
                e.sqlite_error().map(|e| e.extended_code),
                Some(
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
            ),
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(std::sync::Arc::new(e))
    }
}

/// Which database a [`SqlStore`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite: one file, one machine.
    Sqlite,
    /// PostgreSQL: shared by any number of instances.
    Postgres,
}

/// A PostgreSQL connection idle this long is pinged before use (see `connect_with`).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Pool size and timeouts.
///
/// The timeouts bound how long a request can wait on the database: when it is down or
/// saturated, requests fail with `server_error` after at most `acquire_timeout` (+
/// `statement_timeout`) instead of hanging, and the pool reconnects by itself once the database
/// is back.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Most connections held open (default 10). On SQLite: sqlx's pool for the server's state,
    /// and the idle read connections the grant path keeps (at least one per core), besides its
    /// one writer connection. On PostgreSQL, shared: a third (at least two) for sqlx's pool
    /// for the server's state, the rest (at least one) for the grant path's connections (the
    /// OAuth model's statements, one round trip each).
    pub max_connections: u32,
    /// How long a request waits for a free or new connection (default 5 s).
    pub acquire_timeout: Duration,
    /// Longest a statement may run (default 5 s): PostgreSQL's `statement_timeout`, SQLite's
    /// busy timeout (how long to wait for another writer). On SQLite a grant's write is answered
    /// within `acquire_timeout` + `statement_timeout` or fails with
    /// [`StoreError::WriteTimedOut`].
    pub statement_timeout: Duration,
    /// How long a registered client's record is reused from memory (default 5 s; zero: read
    /// the database every time). Changes made through this store are seen at once; changes
    /// made by another instance (a client removed, a secret rotated) within this time.
    pub client_cache_ttl: Duration,
    /// Whether connecting applies the migrations this version has that the database lacks
    /// (default). Without, connecting refuses a database that lacks any
    /// ([`StoreError::SchemaBehind`]): for deployments that migrate as a separate step.
    pub migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            client_cache_ttl: Duration::from_secs(5),
            migrate: true,
        }
    }
}

impl StoreOptions {
    /// Sets [`migrate`](Self::migrate).
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`statement_timeout`](Self::statement_timeout).
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Sets [`client_cache_ttl`](Self::client_cache_ttl).
    #[must_use]
    pub fn client_cache_ttl(mut self, ttl: Duration) -> Self {
        self.client_cache_ttl = ttl;
        self
    }
}

#[derive(Clone, Debug)]
enum Pool {
    /// sqlx's pool for the server's state; the grant path's writer and readers.
    Sqlite(SqlitePool, std::sync::Arc<sqlite::Sqlite>),
    /// sqlx's pool for the server's state; the grant path's connections.
    Postgres(PgPool, std::sync::Arc<postgres::Connections>),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body is written once
/// and compiled once per database, so each arm is fully typed (no runtime type mapping).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool, _) => $body,
            $crate::Pool::Postgres($pool, _) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Like [`on_pool!`], for statements that write. SQLite runs one writer at a time and makes the
/// others wait in its busy handler, which sleeps (1 ms, 2 ms, 5 ms, … up to 100 ms) and retries:
/// under concurrent writes that sleeping, not the work, set the latency (p99 over 100 ms at 16
/// connections). Writers therefore queue here, in order, and never meet in SQLite; the grant
/// path's writer thread (`sqlite.rs`) takes the same lock. PostgreSQL handles concurrent
/// writers itself.
macro_rules! on_pool_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool, _) => {
                let _writer = $store.sqlite_writer.lock().await;
                $body
            }
            $crate::Pool::Postgres($pool, _) => $body,
        }
    };
}
pub(crate) use on_pool_write;

/// SQL storage on SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: Pool,
    clients: std::sync::Arc<client_cache::ClientCache>,
    /// Held by each SQLite write (see `on_pool_write!`).
    sqlite_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqlStore {
    /// Opens the database at `url` with default [`StoreOptions`] and applies pending
    /// migrations: `sqlite://PATH` (the file is created if missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (the database must exist).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the URL names another database, the database cannot be reached, or a
    /// migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with pool size and timeouts.
    ///
    /// Several instances may start at once on one PostgreSQL database: migrations run under
    /// an advisory lock.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        let sqlite_writer = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let pool = match scheme {
            "sqlite" => {
                if url.contains(":memory:") || url.contains("mode=memory") {
                    return Err(StoreError::InMemorySqlite);
                }
                let connect = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(options.statement_timeout)
                    .foreign_keys(true)
                    // These connections serve the server's own state (sign-in, consent,
                    // sessions): small tables, a 512 KiB page cache each (SQLite's default is 2 MiB).
                    .pragma("cache_size", "-512");
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    // A file does not hang up: pinging the connection's worker thread before
                    // every statement would double the thread hand-offs per query.
                    .test_before_acquire(false)
                    .connect_with(connect.clone())
                    .await?;
                let migrator = sqlx::migrate!("./migrations/sqlite");
                if options.migrate {
                    migrator.run(&pool).await?;
                } else {
                    let applied = applied_migrations(
                        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                            .fetch_all(&pool)
                            .await,
                    )?;
                    pending_migrations(&migrator, &applied)?;
                }
                let grants = sqlite::Sqlite::open(
                    connect.get_filename(),
                    options.statement_timeout,
                    // What a request may wait for sqlx: a connection, then its statement.
                    options.acquire_timeout + options.statement_timeout,
                    options.max_connections,
                    sqlite_writer.clone(),
                )?;
                Pool::Sqlite(pool, std::sync::Arc::new(grants))
            }
            "postgres" | "postgresql" => {
                let timeout_ms = options.statement_timeout.as_millis().to_string();
                // A session left inside a transaction (a caller cancelled between statements)
                // is ended by the server after twice the statement timeout, releasing its locks.
                let idle_ms = (options.statement_timeout.as_millis() * 2).to_string();
                let connect = PgConnectOptions::from_str(url)?
                    .application_name("mcpauth")
                    .options([
                        ("statement_timeout", timeout_ms.as_str()),
                        ("idle_in_transaction_session_timeout", idle_ms.as_str()),
                    ]);
                // One budget for both: a third (at least two) for the server's state, the rest
                // (at least one) for the grant path, which carries the load.
                let state_connections = (options.max_connections / 3).max(2);
                let grant_connections = options
                    .max_connections
                    .saturating_sub(state_connections)
                    .max(1);
                let pool = PgPoolOptions::new()
                    .max_connections(state_connections)
                    .acquire_timeout(options.acquire_timeout)
                    // Not a ping before every statement (a round trip each): only a connection
                    // that sat idle for a while (as every one does while the database restarts)
                    // is checked, and replaced when broken. Under load a connection was in use
                    // moments ago and goes straight to work.
                    .test_before_acquire(false)
                    .before_acquire(|connection, meta| {
                        Box::pin(async move {
                            if meta.idle_for < IDLE_BEFORE_PING {
                                return Ok(true);
                            }
                            // A failed ping is an error: the pool drops the connection
                            // without writing to its dead socket, and opens another.
                            sqlx::Connection::ping(connection).await.map(|()| true)
                        })
                    })
                    .connect_with(connect.clone())
                    .await?;
                let migrator = sqlx::migrate!("./migrations/postgres");
                if options.migrate {
                    migrator.run(&pool).await?;
                } else {
                    let applied = applied_migrations(
                        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                            .fetch_all(&pool)
                            .await,
                    )?;
                    pending_migrations(&migrator, &applied)?;
                }
                let grants =
                    postgres::Connections::new(connect, grant_connections, options.acquire_timeout);
                Pool::Postgres(pool, std::sync::Arc::new(grants))
            }
            other => return Err(StoreError::UnsupportedUrl(other.chars().take(16).collect())),
        };
        Ok(Self {
            pool,
            clients: std::sync::Arc::new(client_cache::ClientCache::new(options.client_cache_ttl)),
            sqlite_writer,
        })
    }

    /// The migrations applied to this database, oldest first (their versions).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Which database this store uses.
    #[must_use]
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(..) => Backend::Sqlite,
            Pool::Postgres(..) => Backend::Postgres,
        }
    }

    /// Whether the database answers (for readiness checks).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        if let Pool::Postgres(_, grants) = &self.pool {
            // The grant path's own connections answer too (they may be the ones refused).
            grants.execute(sqlx::query("SELECT 1")).await?;
        }
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        if let Pool::Sqlite(_, grants) = &self.pool
            && let Some(writer) = grants.close()
        {
            // The writer ends once the writes already queued are done.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        if let Pool::Postgres(_, grants) = &self.pool {
            grants.close().await;
        }
        on_pool!(self, |pool| pool.close().await);
    }
}

/// Typed column access shared by both databases' rows, so row decoding is written once.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn integer(&self, column: &str) -> Result<i64, StoreError>;
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;

    fn time(&self, column: &str) -> Result<u64, StoreError> {
        from_db(self.integer(column)?)
    }

    fn optional_time(&self, column: &str) -> Result<Option<u64>, StoreError> {
        self.optional_integer(column)?.map(from_db).transpose()
    }

    fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        Ok(serde_json::from_str(&self.text(column)?)?)
    }
}

macro_rules! impl_columns {
    ($($row:ty),*) => {$(
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn integer(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn boolean(&self, column: &str) -> Result<bool, StoreError> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get(column)?)
            }
        }
    )*};
}
impl_columns!(SqliteRow, PgRow);

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.get(column)?)
    }
    fn optional_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(column)?)
    }
    fn integer(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.get(column)?)
    }
    fn optional_integer(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.get(column)?)
    }
    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.get(column)?)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(column)?)
    }
}

fn to_db(t: u64) -> Result<i64, StoreError> {
    i64::try_from(t).map_err(|_| StoreError::TimeOutOfRange)
}

fn from_db(t: i64) -> Result<u64, StoreError> {
    u64::try_from(t).map_err(|_| StoreError::TimeOutOfRange)
}

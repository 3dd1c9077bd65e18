//! PostgreSQL's grant path: connections that cost one round trip per statement.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` and its `ReadyForQuery`), to
//! learn whether a cancelled statement left it mid-conversation. That is a second round trip
//! per statement: a code redemption made six where its three statements need three, and each
//! round trip over loopback TCP costs the server about as much CPU as the statement itself.
//!
//! Here a connection goes back to the idle list only when its statement ran to its end, or
//! failed with an ordinary error inside the database (a constraint, a timeout: sqlx reads the
//! rest of that answer before the connection's next statement), so its state is known without
//! asking. A statement whose future was dropped, that failed on the connection itself, or that
//! got an error which ends or poisons the session (the server shutting down, a cached plan
//! that no longer fits its table) takes its connection with it: closed, never reused. As with
//! the rest of the store, a connection idle for a while (as every one is after the database
//! restarted) is pinged before use and replaced when broken; connections are retired after
//! [`MAX_LIFETIME`] or [`MAX_IDLE`].
//!
//! The server's own state (users, sessions, consent pages) keeps sqlx's pool: its
//! transactions span several statements on one connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgQueryResult, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::IDLE_BEFORE_PING;

/// A connection this old is closed rather than reused (as sqlx's pool does): a backend's memory
/// does not grow forever, and connections spread again after a failover behind a proxy.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A connection idle this long is closed: a burst does not keep its backends for good.
const MAX_IDLE: Duration = Duration::from_secs(10 * 60);

/// How long a refused connection attempt waits before the next (doubling up to 100 ms), until
/// the acquire timeout: a database restarting for less than that is ridden out.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);

/// The grant path's PostgreSQL connections: at most `max` open, opened on demand, reused
/// most-recently-used first (a warm backend).
pub(crate) struct Connections {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    max: u32,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connect options: they hold the database password.
        f.debug_struct("Connections")
            .field("max", &self.max)
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

struct Idle {
    connection: PgConnection,
    opened: Instant,
    since: Instant,
}

/// One connection, held for one statement. Dropped without [`Lease::finish`] (the statement's
/// future was dropped), it closes its connection.
struct Lease<'a> {
    connections: &'a Connections,
    connection: PgConnection,
    opened: Instant,
    permit: SemaphorePermit<'a>,
}

impl Connections {
    pub(crate) fn new(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        let max = max.max(1);
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(usize::try_from(max).unwrap_or(1)),
            max,
            acquire_timeout,
        }
    }

    /// Runs a statement that returns at most one row.
    pub(crate) async fn fetch_optional(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let mut lease = self.acquire().await?;
        let result = query.fetch_optional(&mut lease.connection).await;
        lease.finish(result.as_ref().err());
        result
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<PgQueryResult, sqlx::Error> {
        let mut lease = self.acquire().await?;
        let result = query.execute(&mut lease.connection).await;
        lease.finish(result.as_ref().err());
        result
    }

    /// Waits (up to the acquire timeout) for the statements running now, then closes every
    /// connection; later statements fail with `PoolClosed`.
    pub(crate) async fn close(&self) {
        // The semaphore is fair: taking every permit waits for the statements holding one.
        let all =
            tokio::time::timeout(self.acquire_timeout, self.permits.acquire_many(self.max)).await;
        self.permits.close();
        drop(all);
        let idle = std::mem::take(&mut *self.lock_idle());
        for Idle { connection, .. } in idle {
            let _ = tokio::time::timeout(self.acquire_timeout, connection.close()).await;
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list is never left half-changed (push and pop only): a panic elsewhere while
        // it was held does not make it wrong.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn acquire(&self) -> Result<Lease<'_>, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let idle = self.lock_idle().pop();
            let Some(Idle {
                mut connection,
                opened,
                since,
            }) = idle
            else {
                let (connection, opened) = self.connect(deadline).await?;
                return Ok(Lease {
                    connections: self,
                    connection,
                    opened,
                    permit,
                });
            };
            if opened.elapsed() >= MAX_LIFETIME || since.elapsed() >= MAX_IDLE {
                let _ = tokio::time::timeout_at(deadline, connection.close()).await;
                continue;
            }
            if since.elapsed() >= IDLE_BEFORE_PING {
                match tokio::time::timeout_at(deadline, connection.ping()).await {
                    Ok(Ok(())) => {}
                    // Broken (the database restarted): drop it, try the next one.
                    Ok(Err(_)) => continue,
                    Err(_) => return Err(sqlx::Error::PoolTimedOut),
                }
            }
            return Ok(Lease {
                connections: self,
                connection,
                opened,
                permit,
            });
        }
    }

    /// Opens a connection, retrying while the database refuses or is starting up (as sqlx's
    /// pool does), until `deadline`.
    async fn connect(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(PgConnection, Instant), sqlx::Error> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let error =
                match tokio::time::timeout_at(deadline, PgConnection::connect_with(&self.options))
                    .await
                {
                    Ok(Ok(connection)) => return Ok((connection, Instant::now())),
                    Ok(Err(error)) => error,
                    Err(_) => return Err(sqlx::Error::PoolTimedOut),
                };
            let transient = match &error {
                sqlx::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                // too_many_connections, cannot_connect_now (starting up).
                sqlx::Error::Database(e) => {
                    matches!(e.code().as_deref(), Some("53300" | "57P03"))
                }
                _ => false,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !transient || left.is_zero() {
                return Err(error);
            }
            tokio::time::sleep(backoff.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }
}

/// Whether a connection is as good as new after its statement ended with `error`.
fn reusable_after(error: Option<&sqlx::Error>) -> bool {
    let Some(error) = error else {
        return true;
    };
    match error {
        // Never sent: arguments that could not be encoded.
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(e) => {
            let code = e.code();
            let code = code.as_deref().unwrap_or_default();
            // An ordinary error of the statement: its data (22), a constraint (23), a
            // serialization failure or deadlock (40), the statement timeout (57014). Anything
            // else may have ended the session (57P01 admin shutdown and other FATAL errors
            // arrive this way) or will repeat on this connection (0A000, a cached plan whose
            // table changed): a new connection costs little next to a second failed request.
            code.starts_with("22")
                || code.starts_with("23")
                || code.starts_with("40")
                || code == "57014"
        }
        _ => false,
    }
}

impl Lease<'_> {
    /// Gives the connection back after its statement ended, unless [`reusable_after`] says
    /// otherwise.
    fn finish(self, error: Option<&sqlx::Error>) {
        let Self {
            connections,
            connection,
            opened,
            permit,
        } = self;
        if reusable_after(error) {
            let mut idle = connections.lock_idle();
            // Checked under the lock `close()` empties the list with: nothing is put back
            // after it did.
            if !connections.permits.is_closed() {
                idle.push(Idle {
                    connection,
                    opened,
                    since: Instant::now(),
                });
            }
        }
        // Released after the push: whoever the permit wakes finds the connection idle.
        drop(permit);
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::Row;

    use super::*;

    fn connections(pg: &mcpauth_test_postgres::TempPostgres, name: &str, max: u32) -> Connections {
        let url = pg.create_database(name).unwrap();
        let options = PgConnectOptions::from_str(&url).unwrap();
        Connections::new(options, max, Duration::from_secs(5))
    }

    /// Backends connected to `database` (ours, not the test's own connection).
    async fn backends_on(admin: &mut PgConnection, database: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(database)
        .fetch_one(admin)
        .await
        .unwrap()
    }

    /// The backend process serving the statement: the same one means the same connection.
    async fn backend(connections: &Connections) -> i32 {
        let row = connections
            .fetch_optional(sqlx::query("SELECT pg_backend_pid() AS pid"))
            .await
            .unwrap()
            .unwrap();
        row.get("pid")
    }

    #[tokio::test]
    async fn a_connection_serves_statement_after_statement_and_survives_database_errors() {
        let pg = mcpauth_test_postgres::TempPostgres::start().unwrap();
        let connections = connections(&pg, "reuse", 4);
        let first = backend(&connections).await;
        assert_eq!(backend(&connections).await, first, "reused, not reopened");

        // An error inside the database leaves the connection usable: the same one answers next.
        let failed = connections
            .execute(sqlx::query("SELECT 1 / 0"))
            .await
            .unwrap_err();
        assert!(matches!(failed, sqlx::Error::Database(_)), "{failed}");
        assert_eq!(backend(&connections).await, first);

        // A unique violation too.
        connections
            .execute(sqlx::query("CREATE TABLE t (id INT PRIMARY KEY)"))
            .await
            .unwrap();
        let insert = || connections.execute(sqlx::query("INSERT INTO t VALUES (1)"));
        insert().await.unwrap();
        assert!(matches!(insert().await, Err(sqlx::Error::Database(_))));
        assert_eq!(backend(&connections).await, first);

        let mut admin = PgConnection::connect(&pg.url("reuse")).await.unwrap();
        assert_eq!(backends_on(&mut admin, "reuse").await, 1);
        connections.close().await;
        let closed = connections.execute(sqlx::query("SELECT 1")).await;
        assert!(matches!(closed, Err(sqlx::Error::PoolClosed)), "{closed:?}");
        assert_eq!(
            backends_on(&mut admin, "reuse").await,
            0,
            "closed, not left open"
        );
    }

    #[tokio::test]
    async fn a_connection_whose_session_the_database_ended_is_not_reused() {
        let pg = mcpauth_test_postgres::TempPostgres::start().unwrap();
        let connections = connections(&pg, "ended", 1);
        let first = backend(&connections).await;
        let mut admin = PgConnection::connect(&pg.url("ended")).await.unwrap();
        // As a restart or `pg_terminate_backend` does: the backend sends a FATAL error and
        // hangs up (the second argument waits until it is gone).
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
            .bind(first)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(ended);
        // The next statement finds the session over; the one after runs on a new connection.
        let _ = connections.execute(sqlx::query("SELECT 1")).await;
        let next = backend(&connections).await;
        assert_ne!(next, first);
    }

    #[tokio::test]
    async fn a_statement_dropped_midway_takes_its_connection_with_it() {
        let pg = mcpauth_test_postgres::TempPostgres::start().unwrap();
        // One connection at most: the next statement can only run once the dropped one gave
        // its place back, and must not run on the connection still waiting for `pg_sleep`.
        let connections = connections(&pg, "cancel", 1);
        let first = backend(&connections).await;
        let dropped = tokio::time::timeout(
            Duration::from_millis(100),
            connections.execute(sqlx::query("SELECT pg_sleep(3)")),
        )
        .await;
        assert!(dropped.is_err(), "the sleep was cut short by its caller");
        let next = backend(&connections).await;
        assert_ne!(next, first, "a fresh connection, not the one mid-statement");
        assert_eq!(backend(&connections).await, next);
    }
}

//! PostgreSQL's grant path: connections that cost one round trip per statement.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` and its `ReadyForQuery`), to
//! learn whether a cancelled statement left it mid-conversation. That is a second round trip
//! per statement: a code redemption made six where its three statements need three, and each
//! round trip over loopback TCP costs the server about as much CPU as the statement itself.
//!
//! Here a connection goes back to the idle list only when its statement ran to its end (or
//! failed inside the database, which sqlx reads to the end too), so its state is known without
//! asking. A statement whose future was dropped, or that failed on the connection itself,
//! takes its connection with it: dropped, closed, never reused. As with the rest of the store,
//! a connection idle for a while (as every one is after the database restarted) is pinged
//! before use and replaced when broken.
//!
//! The server's own state (users, sessions, consent pages) keeps sqlx's pool: it is not on a
//! grant's path, and its transactions span several statements.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgQueryResult, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::IDLE_BEFORE_PING;

/// The grant path's PostgreSQL connections: at most `max` open, opened on demand, reused
/// most-recently-used first (a warm backend).
#[derive(Debug)]
pub(crate) struct Connections {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    connection: PgConnection,
    since: Instant,
}

/// One connection, held for one statement. Dropped without [`Lease::finish`] (the statement's
/// future was dropped), it closes its connection.
struct Lease<'a> {
    connections: &'a Connections,
    connection: PgConnection,
    permit: SemaphorePermit<'a>,
}

impl Connections {
    pub(crate) fn new(options: PgConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(usize::try_from(max.max(1)).unwrap_or(1)),
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

    /// Closes the idle connections; later statements fail with `PoolClosed`. A statement
    /// running now ends normally and closes its connection.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.lock_idle());
        for Idle { connection, .. } in idle {
            let _ = connection.close().await;
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
            let connection = match idle {
                Some(idle) if idle.since.elapsed() < IDLE_BEFORE_PING => idle.connection,
                Some(Idle { mut connection, .. }) => {
                    match tokio::time::timeout_at(deadline, connection.ping()).await {
                        Ok(Ok(())) => connection,
                        // Broken (the database restarted): drop it, try the next one.
                        Ok(Err(_)) => continue,
                        Err(_) => return Err(sqlx::Error::PoolTimedOut),
                    }
                }
                None => {
                    tokio::time::timeout_at(deadline, PgConnection::connect_with(&self.options))
                        .await
                        .map_err(|_| sqlx::Error::PoolTimedOut)??
                }
            };
            return Ok(Lease {
                connections: self,
                connection,
                permit,
            });
        }
    }
}

impl Lease<'_> {
    /// Gives the connection back after its statement ended, unless the statement failed on
    /// the connection (input/output, protocol) rather than inside the database.
    fn finish(self, error: Option<&sqlx::Error>) {
        let Self {
            connections,
            connection,
            permit,
        } = self;
        // After an error inside the database sqlx reads the rest of its answer before the
        // connection's next statement; arguments it cannot encode are never sent.
        let reusable = matches!(
            error,
            None | Some(sqlx::Error::Database(_) | sqlx::Error::Encode(_))
        );
        if reusable && !connections.permits.is_closed() {
            connections.lock_idle().push(Idle {
                connection,
                since: Instant::now(),
            });
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

        connections.close().await;
        let closed = connections.execute(sqlx::query("SELECT 1")).await;
        assert!(matches!(closed, Err(sqlx::Error::PoolClosed)), "{closed:?}");
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

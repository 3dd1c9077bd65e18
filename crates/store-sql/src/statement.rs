//! Statements both databases run alike: one SQL text with `$N` placeholders (PostgreSQL's
//! positional parameters; to SQLite, `$1` is a parameter *named* `$1`, bound here by that
//! name, so the numbering means the same on both), one list of [`Param`]s, and one call that
//! runs it on whichever database the store has: on SQLite through the grant path's writer
//! thread or readers (`crate::sqlite`), on PostgreSQL through sqlx.

use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;

use crate::{Pool, SqlStore, StoreError};

/// One statement parameter, owned (a SQLite write runs on the writer thread, after the
/// caller's borrows have ended).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(i64),
    OptionalInt(Option<i64>),
    Text(String),
    OptionalText(Option<String>),
    Bool(bool),
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Self::OptionalInt(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<Option<&str>> for Param {
    fn from(value: Option<&str>) -> Self {
        Self::OptionalText(value.map(str::to_owned))
    }
}

impl From<Option<String>> for Param {
    fn from(value: Option<String>) -> Self {
        Self::OptionalText(value)
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// `[a, b, …]` as a `Vec<Param>`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::statement::Param::from($value)),*]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Int(value) => value.to_sql(),
            Self::OptionalInt(value) => value.to_sql(),
            Self::Text(value) => value.to_sql(),
            Self::OptionalText(value) => value.to_sql(),
            Self::Bool(value) => value.to_sql(),
        }
    }
}

/// The names SQLite gives `$1` … `$16`.
const NAMES: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

/// `params` bound by name to SQLite's `$1`, `$2`, …
fn sqlite_params(
    params: &[Param],
) -> Result<Vec<(&'static str, &dyn rusqlite::ToSql)>, StoreError> {
    if params.len() > NAMES.len() {
        return Err(rusqlite::Error::InvalidParameterCount(params.len(), NAMES.len()).into());
    }
    Ok(NAMES
        .iter()
        .copied()
        .zip(params.iter().map(|p| p as &dyn rusqlite::ToSql))
        .collect())
}

/// `query` with `params` bound to its next placeholders, for PostgreSQL.
pub(crate) fn bind_postgres<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &'q [Param],
) -> Query<'q, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(*value),
            Param::OptionalInt(value) => query.bind(*value),
            Param::Text(value) => query.bind(value.as_str()),
            Param::OptionalText(value) => query.bind(value.as_deref()),
            Param::Bool(value) => query.bind(*value),
        };
    }
    query
}

/// Runs `sql` on SQLite's `connection`; the number of rows it changed.
pub(crate) fn sqlite_execute(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Param],
) -> Result<usize, StoreError> {
    Ok(connection
        .prepare_cached(sql)?
        .execute(sqlite_params(params)?.as_slice())?)
}

/// The first row `sql` returns on SQLite's `connection`, decoded; `None` without one.
pub(crate) fn sqlite_row<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: &[Param],
    decode: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(sqlite_params(params)?.as_slice())?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

impl SqlStore {
    /// Runs a write that returns no rows; the number of rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<u64, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let changed = db.write(move |c| sqlite_execute(c, sql, &params)).await?;
                Ok(u64::try_from(changed).unwrap_or(u64::MAX))
            }
            Pool::Postgres(_, grants) => Ok(grants
                .execute(bind_postgres(sqlx::query(sql), &params))
                .await?
                .rows_affected()),
        }
    }

    /// Reads at most one row, decoded by `sqlite` or `postgres` (the same decoder, for each
    /// database's row type).
    pub(crate) async fn read_row<T>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        sqlite: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, StoreError>,
        postgres: impl FnOnce(&PgRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| sqlite_row(c, sql, &params, sqlite)),
            Pool::Postgres(_, grants) => postgres_row(grants, sql, &params, postgres).await,
        }
    }

    /// Runs a write that returns at most one row (`RETURNING`), decoded like
    /// [`read_row`](Self::read_row).
    pub(crate) async fn write_row<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        sqlite: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, StoreError> + Send + 'static,
        postgres: impl FnOnce(&PgRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.write(move |c| sqlite_row(c, sql, &params, sqlite)).await,
            Pool::Postgres(_, grants) => postgres_row(grants, sql, &params, postgres).await,
        }
    }
}

/// Runs `sql` on the grant path's PostgreSQL connections; its row, if any, decoded.
async fn postgres_row<T>(
    grants: &crate::postgres::Connections,
    sql: &'static str,
    params: &[Param],
    decode: impl FnOnce(&PgRow) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    grants
        .fetch_optional(bind_postgres(sqlx::query(sql), params))
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

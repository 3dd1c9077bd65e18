//! [`OAuthServerModel`](mcpauth_token_engine::OAuthServerModel) on SQL (SQLite or PostgreSQL).
//!
//! Each method matches on the store's pool: SQLite's branch runs on the grant path's writer
//! and readers (`crate::sqlite`, rusqlite, `?N` placeholders), PostgreSQL's on sqlx (`$N`).
//!
//! Atomicity comes from the database in the same way on both: a conditional `UPDATE … WHERE
//! <still in the old state> RETURNING` lets exactly one of concurrent callers win, because
//! PostgreSQL (READ COMMITTED) re-checks the `WHERE` against the row a concurrent winner
//! committed, and SQLite runs writers one at a time.

use async_trait::async_trait;
use mcpauth_token_engine::{
    AccessTokenRecord, AccessTokenStore, AuthorizationCodeRecord, ClientId, ClientRecord,
    ClientStore, CodeStore, ConsumeCode, DeviceAuthorizationRecord, DeviceDecision, DeviceState,
    DeviceStore, GrantId, GrantRecord, GrantStore, ModelBase, RateLimitKey, RateLimitStore,
    RefreshTokenRecord, RefreshTokenStore, ReplayStore, RotateRefresh, Scope, SecretHash, UnixTime,
};

use crate::sqlite::{execute, optional_row};
use crate::{Columns, Pool, SqlStore, StoreError, from_db, on_pool, to_db};

/// The columns of a refresh token, in the order `bind_refresh!` binds them.
macro_rules! refresh_columns {
    () => {
        "token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, rotated_at"
    };
}

/// Binds a refresh token's nine columns (see `refresh_columns!`) to `$query`'s next
/// placeholders: one list for every statement that stores one.
macro_rules! bind_refresh {
    ($query:expr, $token:expr, $resources:expr, $times:expr) => {
        $query
            .bind($token.token_hash.as_str())
            .bind($token.grant_id.as_str())
            .bind($token.client_id.as_str())
            .bind(&$token.subject)
            .bind($token.scope.to_string())
            .bind(&$resources)
            .bind($times.0)
            .bind($times.1)
            .bind($times.2)
    };
}

/// The insert of a refresh token, bound; used alone and inside the rotation transaction.
macro_rules! insert_refresh {
    ($token:expr, $resources:expr, $times:expr) => {
        bind_refresh!(
            sqlx::query(concat!(
                "INSERT INTO refresh_tokens (",
                refresh_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )),
            $token,
            $resources,
            $times
        )
    };
}

/// A `grant_live` column for a row of `$table` (which has a `grant_id`): whether its grant is
/// stored and not revoked, read in the same statement (`find_code_and_grant`,
/// `find_refresh_and_grant`).
macro_rules! grant_live {
    ($table:literal) => {
        concat!(
            "COALESCE((SELECT grants.revoked_at IS NULL FROM grants WHERE grants.grant_id = ",
            $table,
            ".grant_id), FALSE) AS grant_live"
        )
    };
}

/// The row of `$table` whose `$key` column is `$value`, decoded by `$decode`, with its grant's
/// state (`grant_live!`): one read on either database.
macro_rules! find_with_grant {
    ($store:expr, $table:literal, $key:literal, $value:expr, $decode:ident -> $record:ty) => {{
        fn decode<R: Columns>(row: &R) -> Result<($record, bool), StoreError> {
            Ok(($decode(row)?, row.boolean("grant_live")?))
        }
        match &$store.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(
                    c,
                    concat!(
                        "SELECT ",
                        $table,
                        ".*, ",
                        grant_live!($table),
                        " FROM ",
                        $table,
                        " WHERE ",
                        $key,
                        " = ?1"
                    ),
                    [$value],
                    |r| decode(r),
                )
            }),
            Pool::Postgres(pool) => {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $table,
                    ".*, ",
                    grant_live!($table),
                    " FROM ",
                    $table,
                    " WHERE ",
                    $key,
                    " = $1"
                ))
                .bind($value)
                .fetch_optional(pool)
                .await?;
                row.as_ref().map(decode).transpose()
            }
        }
    }};
}

/// What a rotation that matched no unrotated token found instead: the old token's grant and
/// rotation time, if it is there.
fn not_rotated(previous: Option<(String, Option<UnixTime>)>) -> RotateRefresh {
    match previous {
        Some((grant_id, Some(rotated_at))) => RotateRefresh::Reused {
            grant_id: GrantId::from(grant_id),
            rotated_at,
        },
        // Unrotated, yet the UPDATE matched nothing: swept in between, or never there.
        Some((_, None)) | None => RotateRefresh::NotFound,
    }
}

/// The insert of a grant, bound; used alone and inside the device-approval transaction.
macro_rules! insert_grant {
    ($grant:expr, $resources:expr, $times:expr) => {
        sqlx::query("INSERT INTO grants (grant_id, client_id, subject, scope, resources, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind($grant.grant_id.as_str())
            .bind($grant.client_id.as_str())
            .bind(&$grant.subject)
            .bind($grant.scope.to_string())
            .bind(&$resources)
            .bind($times.0)
            .bind($times.1)
    };
}

/// A grant with its columns converted (resources as JSON; created and revoked times), ready
/// for `insert_grant!`.
type BoundGrant = (GrantRecord, String, (i64, Option<i64>));

fn bound_grant(grant: GrantRecord) -> Result<BoundGrant, StoreError> {
    let resources = serde_json::to_string(&grant.resources)?;
    let times = (
        to_db(grant.created_at.0)?,
        grant.revoked_at.map(|t| to_db(t.0)).transpose()?,
    );
    Ok((grant, resources, times))
}

impl ModelBase for SqlStore {
    type Error = StoreError;

    fn devices(&self) -> Option<&dyn DeviceStore<Error = StoreError>> {
        Some(self)
    }

    fn opaque_tokens(&self) -> Option<&dyn AccessTokenStore<Error = StoreError>> {
        Some(self)
    }
}

fn time(row: &impl Columns, column: &str) -> Result<UnixTime, StoreError> {
    row.time(column).map(UnixTime)
}

fn optional_time(row: &impl Columns, column: &str) -> Result<Option<UnixTime>, StoreError> {
    Ok(row.optional_time(column)?.map(UnixTime))
}

fn grant_from(row: &impl Columns) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        grant_id: GrantId::from(row.text("grant_id")?),
        client_id: ClientId::from(row.text("client_id")?),
        subject: row.text("subject")?,
        scope: Scope::from_stored(&row.text("scope")?)?,
        resources: row.json("resources")?,
        created_at: time(row, "created_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

fn code_from(row: &impl Columns) -> Result<AuthorizationCodeRecord, StoreError> {
    Ok(AuthorizationCodeRecord {
        code_hash: SecretHash::from_stored(row.text("code_hash")?),
        grant_id: GrantId::from(row.text("grant_id")?),
        client_id: ClientId::from(row.text("client_id")?),
        redirect_uri: row.text("redirect_uri")?,
        redirect_uri_in_request: row.boolean("redirect_uri_in_request")?,
        code_challenge: row.text("code_challenge")?,
        subject: row.text("subject")?,
        scope: Scope::from_stored(&row.text("scope")?)?,
        resources: row.json("resources")?,
        expires_at: time(row, "expires_at")?,
        consumed_at: optional_time(row, "consumed_at")?,
    })
}

fn refresh_from(row: &impl Columns) -> Result<RefreshTokenRecord, StoreError> {
    Ok(RefreshTokenRecord {
        token_hash: SecretHash::from_stored(row.text("token_hash")?),
        grant_id: GrantId::from(row.text("grant_id")?),
        client_id: ClientId::from(row.text("client_id")?),
        subject: row.text("subject")?,
        scope: Scope::from_stored(&row.text("scope")?)?,
        resources: row.json("resources")?,
        issued_at: time(row, "issued_at")?,
        expires_at: time(row, "expires_at")?,
        rotated_at: optional_time(row, "rotated_at")?,
        sealed_successor: row.optional_text("sealed_successor")?,
    })
}

fn device_from(row: &impl Columns) -> Result<DeviceAuthorizationRecord, StoreError> {
    Ok(DeviceAuthorizationRecord {
        device_code_hash: SecretHash::from_stored(row.text("device_code_hash")?),
        user_code_hash: SecretHash::from_stored(row.text("user_code_hash")?),
        client_id: ClientId::from(row.text("client_id")?),
        scope: Scope::from_stored(&row.text("scope")?)?,
        resources: row.json("resources")?,
        expires_at: time(row, "expires_at")?,
        interval: from_db(row.integer("poll_interval")?)?,
        last_polled_at: optional_time(row, "last_polled_at")?,
        state: DeviceState::from_stored(&row.text("state")?).ok_or(StoreError::UnknownState)?,
        subject: row.optional_text("subject")?,
        grant_id: row.optional_text("grant_id")?.map(GrantId::from),
    })
}

fn access_token_from(row: &impl Columns) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        token_hash: SecretHash::from_stored(row.text("token_hash")?),
        grant_id: row.optional_text("grant_id")?.map(GrantId::from),
        client_id: ClientId::from(row.text("client_id")?),
        claims: row.json("claims")?,
        expires_at: time(row, "expires_at")?,
    })
}

/// SQLite's insert of a refresh token (see `refresh_columns!`).
fn sqlite_insert_refresh(
    connection: &rusqlite::Connection,
    (token, resources, times): &BoundRefresh,
) -> Result<(), StoreError> {
    execute(
        connection,
        concat!(
            "INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        rusqlite::params![
            token.token_hash.as_str(),
            token.grant_id.as_str(),
            token.client_id.as_str(),
            &token.subject,
            token.scope.to_string(),
            resources,
            times.0,
            times.1,
            times.2,
        ],
    )?;
    Ok(())
}

/// SQLite's insert of a grant.
fn sqlite_insert_grant(
    connection: &rusqlite::Connection,
    (grant, resources, times): &BoundGrant,
) -> Result<(), StoreError> {
    execute(
        connection,
        "INSERT INTO grants (grant_id, client_id, subject, scope, resources, created_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            grant.grant_id.as_str(),
            grant.client_id.as_str(),
            &grant.subject,
            grant.scope.to_string(),
            resources,
            times.0,
            times.1,
        ],
    )?;
    Ok(())
}

const SQLITE_FIND_CODE: &str = "SELECT * FROM authorization_codes WHERE code_hash = ?1";
const SQLITE_FIND_REFRESH: &str = "SELECT * FROM refresh_tokens WHERE token_hash = ?1";

#[async_trait]
impl ClientStore for SqlStore {
    async fn find_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        if let Some(cached) = self.clients.get(client_id) {
            return Ok(Some(cached));
        }
        let found: Option<ClientRecord> = match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(
                    c,
                    "SELECT record FROM clients WHERE client_id = ?1",
                    [client_id.as_str()],
                    |r| r.json("record"),
                )
            })?,
            Pool::Postgres(pool) => {
                let row = sqlx::query("SELECT record FROM clients WHERE client_id = $1")
                    .bind(client_id.as_str())
                    .fetch_optional(pool)
                    .await?;
                row.map(|r| r.json("record")).transpose()?
            }
        };
        if let Some(client) = &found {
            self.clients.put(client);
        }
        Ok(found)
    }

    async fn insert_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(&client)?;
        let created_at = to_db(client.created_at.0)?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let client_id = client.client_id.as_str().to_owned();
                db.write(move |c| {
                    execute(
                        c,
                        "INSERT INTO clients (client_id, record, created_at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![client_id, record, created_at],
                    )
                })
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO clients (client_id, record, created_at) VALUES ($1, $2, $3)",
                )
                .bind(client.client_id.as_str())
                .bind(&record)
                .bind(created_at)
                .execute(pool)
                .await?;
            }
        };
        Ok(())
    }

    async fn update_client(&self, client: ClientRecord) -> Result<bool, StoreError> {
        let record = serde_json::to_string(&client)?;
        self.clients.forget(&client.client_id);
        let done = match &self.pool {
            Pool::Sqlite(_, db) => {
                let client_id = client.client_id.as_str().to_owned();
                db.write(move |c| {
                    execute(
                        c,
                        "UPDATE clients SET record = ?1 WHERE client_id = ?2",
                        rusqlite::params![record, client_id],
                    )
                })
                .await?
            }
            Pool::Postgres(pool) => {
                let done = sqlx::query("UPDATE clients SET record = $1 WHERE client_id = $2")
                    .bind(&record)
                    .bind(client.client_id.as_str())
                    .execute(pool)
                    .await?
                    .rows_affected();
                usize::try_from(done).unwrap_or(usize::MAX)
            }
        };
        Ok(done == 1)
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StoreError> {
        self.clients.forget(client_id);
        let done = match &self.pool {
            Pool::Sqlite(_, db) => {
                let client_id = client_id.as_str().to_owned();
                db.write(move |c| {
                    execute(c, "DELETE FROM clients WHERE client_id = ?1", [client_id])
                })
                .await?
            }
            Pool::Postgres(pool) => {
                let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                    .bind(client_id.as_str())
                    .execute(pool)
                    .await?
                    .rows_affected();
                usize::try_from(done).unwrap_or(usize::MAX)
            }
        };
        Ok(done == 1)
    }

    async fn count_clients(&self) -> Result<u64, StoreError> {
        // Metadata-document clients count once they completed an authorization.
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                "SELECT COUNT(*) AS n FROM clients \
                 WHERE json_extract(record, '$.document_expires_at') IS NULL \
                 OR EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.client_id)"
            }
            crate::Backend::Postgres => {
                "SELECT COUNT(*) AS n FROM clients \
                 WHERE (record::jsonb ->> 'document_expires_at') IS NULL \
                 OR EXISTS (SELECT 1 FROM grants WHERE grants.client_id = clients.client_id)"
            }
        };
        on_pool!(self, |pool| {
            let row = sqlx::query(sql).fetch_one(pool).await?;
            from_db(row.integer("n")?)
        })
    }
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_grant(&self, grant: GrantRecord) -> Result<(), StoreError> {
        let bound = bound_grant(grant)?;
        match &self.pool {
            Pool::Sqlite(_, db) => db.write(move |c| sqlite_insert_grant(c, &bound)).await?,
            Pool::Postgres(pool) => {
                let (grant, resources, times) = &bound;
                insert_grant!(grant, resources, times).execute(pool).await?;
            }
        };
        Ok(())
    }

    async fn find_grant(&self, grant_id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(
                    c,
                    "SELECT * FROM grants WHERE grant_id = ?1",
                    [grant_id.as_str()],
                    |r| grant_from(r),
                )
            }),
            Pool::Postgres(pool) => {
                let row = sqlx::query("SELECT * FROM grants WHERE grant_id = $1")
                    .bind(grant_id.as_str())
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(grant_from).transpose()
            }
        }
    }

    async fn revoke_grant(&self, grant_id: &GrantId, now: UnixTime) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let grant_id = grant_id.as_str().to_owned();
                db.write(move |c| execute(c,
                    "UPDATE grants SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL",
                    rusqlite::params![now, grant_id]))
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(grant_id.as_str())
                .execute(pool)
                .await?;
            }
        };
        Ok(())
    }

    async fn revoke_client_grants(
        &self,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let client_id = client_id.as_str().to_owned();
                db.write(move |c| execute(c,
                    "UPDATE grants SET revoked_at = ?1 WHERE client_id = ?2 AND revoked_at IS NULL",
                    rusqlite::params![now, client_id]))
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(client_id.as_str())
                .execute(pool)
                .await?;
            }
        };
        Ok(())
    }
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn insert_code(&self, code: AuthorizationCodeRecord) -> Result<(), StoreError> {
        let resources = serde_json::to_string(&code.resources)?;
        let expires_at = to_db(code.expires_at.0)?;
        let consumed_at = code.consumed_at.map(|t| to_db(t.0)).transpose()?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                db.write(move |c| execute(c,
                    "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_in_request, code_challenge, subject, scope, resources, expires_at, consumed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    rusqlite::params![
                        code.code_hash.as_str(),
                        code.grant_id.as_str(),
                        code.client_id.as_str(),
                        &code.redirect_uri,
                        code.redirect_uri_in_request,
                        &code.code_challenge,
                        &code.subject,
                        code.scope.to_string(),
                        resources,
                        expires_at,
                        consumed_at,
                    ]))
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_in_request, code_challenge, subject, scope, resources, expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(code.code_hash.as_str())
                .bind(code.grant_id.as_str())
                .bind(code.client_id.as_str())
                .bind(&code.redirect_uri)
                .bind(code.redirect_uri_in_request)
                .bind(&code.code_challenge)
                .bind(&code.subject)
                .bind(code.scope.to_string())
                .bind(&resources)
                .bind(expires_at)
                .bind(consumed_at)
                .execute(pool)
                .await?;
            }
        };
        Ok(())
    }

    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(c, SQLITE_FIND_CODE, [code_hash.as_str()], |r| code_from(r))
            }),
            Pool::Postgres(pool) => {
                let row = sqlx::query("SELECT * FROM authorization_codes WHERE code_hash = $1")
                    .bind(code_hash.as_str())
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(code_from).transpose()
            }
        }
    }

    async fn find_code_and_grant(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<(AuthorizationCodeRecord, bool)>, StoreError> {
        find_with_grant!(
            self,
            "authorization_codes",
            "code_hash",
            code_hash.as_str(),
            code_from -> AuthorizationCodeRecord
        )
    }

    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        now: UnixTime,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<ConsumeCode, StoreError> {
        let now = to_db(now.0)?;
        let refresh = refresh.map(bound_refresh).transpose()?;
        let pool = match &self.pool {
            Pool::Postgres(pool) => pool,
            Pool::Sqlite(_, db) => {
                // SQLite: one write of the batch. The conditional UPDATE finds the code
                // unconsumed at most once (writes are serial); the refresh token is stored in
                // the same savepoint, or neither is.
                let code_hash = code_hash.as_str().to_owned();
                return db
                    .write(move |c| {
                        let consumed = optional_row(
                            c,
                            "UPDATE authorization_codes SET consumed_at = ?1 WHERE code_hash = ?2 AND consumed_at IS NULL RETURNING *",
                            rusqlite::params![now, code_hash],
                            |r| code_from(r),
                        )?;
                        if let Some(record) = consumed {
                            if let Some(refresh) = &refresh {
                                sqlite_insert_refresh(c, refresh)?;
                            }
                            return Ok(ConsumeCode::Fresh(record));
                        }
                        Ok(match optional_row(c, SQLITE_FIND_CODE, [&code_hash], |r| code_from(r))? {
                            Some(record) => ConsumeCode::Reused(record),
                            None => ConsumeCode::NotFound,
                        })
                    })
                    .await;
            }
        };
        // PostgreSQL: one statement, one round trip. The conditional UPDATE lets only one of
        // concurrent callers see its row come back, and the INSERT of the refresh token (fed
        // by that row) commits with it or, failing, undoes it: a statement is atomic.
        let row = match &refresh {
            Some((token, resources, times)) => {
                let consume = sqlx::query(concat!(
                    "WITH consumed AS (UPDATE authorization_codes SET consumed_at = $1 ",
                    "WHERE code_hash = $2 AND consumed_at IS NULL RETURNING *), ",
                    "issued AS (INSERT INTO refresh_tokens (",
                    refresh_columns!(),
                    ") SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM consumed ",
                    "RETURNING 1) SELECT consumed.* FROM consumed"
                ))
                .bind(now)
                .bind(code_hash.as_str());
                bind_refresh!(consume, token, resources, times)
                    .fetch_optional(pool)
                    .await?
            }
            None => {
                sqlx::query(
                    "UPDATE authorization_codes SET consumed_at = $1 WHERE code_hash = $2 \
                     AND consumed_at IS NULL RETURNING *",
                )
                .bind(now)
                .bind(code_hash.as_str())
                .fetch_optional(pool)
                .await?
            }
        };
        if let Some(row) = row {
            return Ok(ConsumeCode::Fresh(code_from(&row)?));
        }
        Ok(match self.find_code(code_hash).await? {
            Some(record) => ConsumeCode::Reused(record),
            None => ConsumeCode::NotFound,
        })
    }
}

/// A refresh token with its columns converted (resources as JSON; issued, expires and
/// rotated times), ready for `insert_refresh!`.
type BoundRefresh = (RefreshTokenRecord, String, (i64, i64, Option<i64>));

fn bound_refresh(token: RefreshTokenRecord) -> Result<BoundRefresh, StoreError> {
    let resources = serde_json::to_string(&token.resources)?;
    let times = (
        to_db(token.issued_at.0)?,
        to_db(token.expires_at.0)?,
        token.rotated_at.map(|t| to_db(t.0)).transpose()?,
    );
    Ok((token, resources, times))
}

#[async_trait]
impl RefreshTokenStore for SqlStore {
    async fn insert_refresh(&self, token: RefreshTokenRecord) -> Result<(), StoreError> {
        let bound = bound_refresh(token)?;
        match &self.pool {
            Pool::Sqlite(_, db) => db.write(move |c| sqlite_insert_refresh(c, &bound)).await?,
            Pool::Postgres(pool) => {
                let (token, resources, times) = &bound;
                insert_refresh!(token, resources, times)
                    .execute(pool)
                    .await?;
            }
        };
        Ok(())
    }

    async fn find_refresh(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(c, SQLITE_FIND_REFRESH, [token_hash.as_str()], |r| {
                    refresh_from(r)
                })
            }),
            Pool::Postgres(pool) => {
                let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash.as_str())
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(refresh_from).transpose()
            }
        }
    }

    async fn find_refresh_and_grant(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshTokenRecord, bool)>, StoreError> {
        find_with_grant!(
            self,
            "refresh_tokens",
            "token_hash",
            token_hash.as_str(),
            refresh_from -> RefreshTokenRecord
        )
    }

    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        new: RefreshTokenRecord,
        sealed_successor: Option<String>,
        now: UnixTime,
    ) -> Result<RotateRefresh, StoreError> {
        let bound = bound_refresh(new)?;
        let now = to_db(now.0)?;
        let pool = match &self.pool {
            Pool::Postgres(pool) => pool,
            Pool::Sqlite(_, db) => {
                // SQLite: one write of the batch (writes are serial, so a concurrent rotation
                // of the same token comes after this one and matches nothing).
                let old_hash = old_hash.as_str().to_owned();
                return db
                    .write(move |c| {
                        let updated = execute(
                            c,
                            "UPDATE refresh_tokens SET rotated_at = ?1, sealed_successor = ?3 WHERE token_hash = ?2 AND rotated_at IS NULL",
                            rusqlite::params![now, old_hash, sealed_successor],
                        )?;
                        if updated == 1 {
                            sqlite_insert_refresh(c, &bound)?;
                            return Ok(RotateRefresh::Rotated);
                        }
                        let previous = optional_row(
                            c,
                            "SELECT grant_id, rotated_at FROM refresh_tokens WHERE token_hash = ?1",
                            [&old_hash],
                            |row| Ok((row.text("grant_id")?, optional_time(row, "rotated_at")?)),
                        )?;
                        Ok(not_rotated(previous))
                    })
                    .await;
            }
        };
        // PostgreSQL: one statement, one round trip. The conditional UPDATE locks the old row,
        // so a concurrent rotation of the same token waits, then matches nothing; the new
        // token, inserted from the updated row, commits with the rotation or undoes it.
        let (new, resources, times) = &bound;
        let rotate = sqlx::query(concat!(
            "WITH rotated AS (UPDATE refresh_tokens SET rotated_at = $1, sealed_successor = $3 ",
            "WHERE token_hash = $2 AND rotated_at IS NULL RETURNING 1) ",
            "INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") SELECT $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM rotated"
        ))
        .bind(now)
        .bind(old_hash.as_str())
        .bind(&sealed_successor);
        let rotated = bind_refresh!(rotate, new, resources, times)
            .execute(pool)
            .await?;
        if rotated.rows_affected() == 1 {
            return Ok(RotateRefresh::Rotated);
        }
        let row =
            sqlx::query("SELECT grant_id, rotated_at FROM refresh_tokens WHERE token_hash = $1")
                .bind(old_hash.as_str())
                .fetch_optional(pool)
                .await?;
        let previous = match row {
            Some(row) => Some((row.text("grant_id")?, optional_time(&row, "rotated_at")?)),
            None => None,
        };
        Ok(not_rotated(previous))
    }
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn insert_device(&self, record: DeviceAuthorizationRecord) -> Result<(), StoreError> {
        let resources = serde_json::to_string(&record.resources)?;
        let expires_at = to_db(record.expires_at.0)?;
        let interval = to_db(record.interval)?;
        let last_polled_at = record.last_polled_at.map(|t| to_db(t.0)).transpose()?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                db.write(move |c| execute(c,
                    "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope, resources, expires_at, poll_interval, last_polled_at, state, subject, grant_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    rusqlite::params![
                        record.device_code_hash.as_str(),
                        record.user_code_hash.as_str(),
                        record.client_id.as_str(),
                        record.scope.to_string(),
                        resources,
                        expires_at,
                        interval,
                        last_polled_at,
                        record.state.as_str(),
                        &record.subject,
                        record.grant_id.as_ref().map(GrantId::as_str),
                    ]))
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope, resources, expires_at, poll_interval, last_polled_at, state, subject, grant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(record.device_code_hash.as_str())
                .bind(record.user_code_hash.as_str())
                .bind(record.client_id.as_str())
                .bind(record.scope.to_string())
                .bind(&resources)
                .bind(expires_at)
                .bind(interval)
                .bind(last_polled_at)
                .bind(record.state.as_str())
                .bind(&record.subject)
                .bind(record.grant_id.as_ref().map(GrantId::as_str))
                .execute(pool)
                .await?;
            }
        };
        Ok(())
    }

    async fn find_device_by_user_code(
        &self,
        user_code_hash: &SecretHash,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(
                    c,
                    "SELECT * FROM device_authorizations WHERE user_code_hash = ?1",
                    [user_code_hash.as_str()],
                    |r| device_from(r),
                )
            }),
            Pool::Postgres(pool) => {
                let row =
                    sqlx::query("SELECT * FROM device_authorizations WHERE user_code_hash = $1")
                        .bind(user_code_hash.as_str())
                        .fetch_optional(pool)
                        .await?;
                row.as_ref().map(device_from).transpose()
            }
        }
    }

    async fn poll_device(
        &self,
        device_code_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        let now = to_db(now.0)?;
        // One statement: SET expressions read the row as it was, so `previous_polled_at`
        // receives the stamp of the poll before this one, atomically with the new stamp.
        fn polled(row: &impl Columns) -> Result<DeviceAuthorizationRecord, StoreError> {
            let mut record = device_from(row)?;
            record.last_polled_at = optional_time(row, "previous_polled_at")?;
            Ok(record)
        }
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let device_code_hash = device_code_hash.as_str().to_owned();
                db.write(move |c| optional_row(c,
                    "UPDATE device_authorizations SET previous_polled_at = last_polled_at, last_polled_at = ?1 WHERE device_code_hash = ?2 RETURNING *",
                    rusqlite::params![now, device_code_hash], |r| polled(r)))
                .await
            }
            Pool::Postgres(pool) => {
                let row = sqlx::query(
                    "UPDATE device_authorizations SET previous_polled_at = last_polled_at, last_polled_at = $1 WHERE device_code_hash = $2 RETURNING *",
                )
                .bind(now)
                .bind(device_code_hash.as_str())
                .fetch_optional(pool)
                .await?;
                row.as_ref().map(polled).transpose()
            }
        }
    }

    async fn set_device_interval(
        &self,
        device_code_hash: &SecretHash,
        interval: u64,
    ) -> Result<(), StoreError> {
        let interval = to_db(interval)?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let device_code_hash = device_code_hash.as_str().to_owned();
                db.write(move |c| execute(c,
                    "UPDATE device_authorizations SET poll_interval = ?1 WHERE device_code_hash = ?2",
                    rusqlite::params![interval, device_code_hash]))
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE device_authorizations SET poll_interval = $1 WHERE device_code_hash = $2",
                )
                .bind(interval)
                .bind(device_code_hash.as_str())
                .execute(pool)
                .await?;
            }
        };
        Ok(())
    }

    async fn decide_device(
        &self,
        user_code_hash: &SecretHash,
        decision: DeviceDecision,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (state, grant) = match decision {
            DeviceDecision::Approve { grant } => (DeviceState::Approved, Some(grant)),
            _ => (DeviceState::Denied, None),
        };
        let subject = grant.as_ref().map(|g| g.subject.clone());
        let grant_id = grant.as_ref().map(|g| g.grant_id.as_str().to_owned());
        let grant = grant.map(bound_grant).transpose()?;
        let now = to_db(now.0)?;
        // The grant is stored only with a decision that was recorded.
        let pool = match &self.pool {
            Pool::Postgres(pool) => pool,
            Pool::Sqlite(_, db) => {
                let user_code_hash = user_code_hash.as_str().to_owned();
                return db
                    .write(move |c| {
                        let done = execute(c,
                            "UPDATE device_authorizations SET state = ?1, subject = ?2, grant_id = ?3 WHERE user_code_hash = ?4 AND state = 'pending' AND expires_at > ?5",
                            rusqlite::params![state.as_str(), subject, grant_id, user_code_hash, now],
                        )?;
                        if done == 1 && let Some(grant) = &grant {
                            sqlite_insert_grant(c, grant)?;
                        }
                        Ok(done == 1)
                    })
                    .await;
            }
        };
        let mut tx = pool.begin().await?;
        let done = sqlx::query(
            "UPDATE device_authorizations SET state = $1, subject = $2, grant_id = $3 WHERE user_code_hash = $4 AND state = 'pending' AND expires_at > $5",
        )
        .bind(state.as_str())
        .bind(&subject)
        .bind(&grant_id)
        .bind(user_code_hash.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 1 {
            if let Some((grant, resources, times)) = &grant {
                insert_grant!(grant, resources, times)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }

    async fn consume_device(
        &self,
        device_code_hash: &SecretHash,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<bool, StoreError> {
        let refresh = refresh.map(bound_refresh).transpose()?;
        // As for codes: the refresh token stored only with the consumption.
        let pool = match &self.pool {
            Pool::Postgres(pool) => pool,
            Pool::Sqlite(_, db) => {
                let device_code_hash = device_code_hash.as_str().to_owned();
                return db
                    .write(move |c| {
                        let done = execute(c,
                            "UPDATE device_authorizations SET state = 'consumed' WHERE device_code_hash = ?1 AND state = 'approved'",
                            [&device_code_hash],
                        )?;
                        if done == 1 && let Some(refresh) = &refresh {
                            sqlite_insert_refresh(c, refresh)?;
                        }
                        Ok(done == 1)
                    })
                    .await;
            }
        };
        let mut tx = pool.begin().await?;
        let done = sqlx::query("UPDATE device_authorizations SET state = 'consumed' WHERE device_code_hash = $1 AND state = 'approved'")
            .bind(device_code_hash.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 1 {
            if let Some((token, resources, times)) = &refresh {
                insert_refresh!(token, resources, times)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }
}

#[async_trait]
impl RateLimitStore for SqlStore {
    async fn hit(&self, key: &RateLimitKey, now: UnixTime, window: u64) -> Result<u32, StoreError> {
        self.add_hits(key, now, window, 1).await
    }

    async fn add_hits(
        &self,
        key: &RateLimitKey,
        now: UnixTime,
        window: u64,
        hits: u32,
    ) -> Result<u32, StoreError> {
        let start = to_db(now.0 - now.0 % window.max(1))?;
        let hits = i64::from(hits);
        // One statement: a new window starts from these hits, the same window adds them, and a
        // late addition for a window that has ended (another instance moved on) changes
        // nothing: the later window is kept (SQLite's scalar `max`, PostgreSQL's `GREATEST`).
        let total: i64 = match &self.pool {
            Pool::Sqlite(_, db) => {
                let key = key.as_str().to_owned();
                db.write(move |c| {
                    let total = optional_row(c,
                        "INSERT INTO rate_limits (limit_key, window_start, hits) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (limit_key) DO UPDATE SET \
                           hits = CASE \
                             WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.hits + excluded.hits \
                             WHEN rate_limits.window_start < excluded.window_start THEN excluded.hits \
                             ELSE rate_limits.hits END, \
                           window_start = max(rate_limits.window_start, excluded.window_start) \
                         RETURNING hits",
                        rusqlite::params![key, start, hits], |r| r.integer("hits"))?;
                    Ok(total.unwrap_or(i64::MAX))
                })
                .await?
            }
            Pool::Postgres(pool) => {
                let row = sqlx::query(
                    "INSERT INTO rate_limits (limit_key, window_start, hits) VALUES ($1, $2, $3) \
                     ON CONFLICT (limit_key) DO UPDATE SET \
                       hits = CASE \
                         WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.hits + excluded.hits \
                         WHEN rate_limits.window_start < excluded.window_start THEN excluded.hits \
                         ELSE rate_limits.hits END, \
                       window_start = GREATEST(rate_limits.window_start, excluded.window_start) \
                     RETURNING hits",
                )
                .bind(key.as_str())
                .bind(start)
                .bind(hits)
                .fetch_one(pool)
                .await?;
                row.integer("hits")?
            }
        };
        Ok(u32::try_from(total).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl ReplayStore for SqlStore {
    async fn remember_once(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expires_at = to_db(expires_at.0)?;
        let now = to_db(now.0)?;
        // Insert, or take over an expired entry; a live entry makes this a no-op (0 rows).
        let done = match &self.pool {
            Pool::Sqlite(_, db) => {
                let key = key.to_owned();
                db.write(move |c| execute(c,
                    "INSERT INTO replay_cache (cache_key, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (cache_key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?3",
                    rusqlite::params![key, expires_at, now]))
                .await?
            }
            Pool::Postgres(pool) => {
                let done = sqlx::query(
                    "INSERT INTO replay_cache (cache_key, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (cache_key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= $3",
                )
                .bind(key)
                .bind(expires_at)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected();
                usize::try_from(done).unwrap_or(usize::MAX)
            }
        };
        Ok(done == 1)
    }
}

#[async_trait]
impl AccessTokenStore for SqlStore {
    async fn insert_access_token(&self, record: AccessTokenRecord) -> Result<(), StoreError> {
        let claims = serde_json::to_string(&record.claims)?;
        let expires_at = to_db(record.expires_at.0)?;
        match &self.pool {
            Pool::Sqlite(_, db) => {
                db.write(move |c| execute(c,
                    "INSERT INTO access_tokens (token_hash, grant_id, client_id, claims, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        record.token_hash.as_str(),
                        record.grant_id.as_ref().map(GrantId::as_str),
                        record.client_id.as_str(),
                        claims,
                        expires_at,
                    ]))
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query("INSERT INTO access_tokens (token_hash, grant_id, client_id, claims, expires_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(record.token_hash.as_str())
                    .bind(record.grant_id.as_ref().map(GrantId::as_str))
                    .bind(record.client_id.as_str())
                    .bind(&claims)
                    .bind(expires_at)
                    .execute(pool)
                    .await?;
            }
        };
        Ok(())
    }

    async fn find_access_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => db.read(|c| {
                optional_row(
                    c,
                    "SELECT * FROM access_tokens WHERE token_hash = ?1",
                    [token_hash.as_str()],
                    |r| access_token_from(r),
                )
            }),
            Pool::Postgres(pool) => {
                let row = sqlx::query("SELECT * FROM access_tokens WHERE token_hash = $1")
                    .bind(token_hash.as_str())
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(access_token_from).transpose()
            }
        }
    }

    async fn delete_access_token(&self, token_hash: &SecretHash) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(_, db) => {
                let token_hash = token_hash.as_str().to_owned();
                db.write(move |c| {
                    execute(
                        c,
                        "DELETE FROM access_tokens WHERE token_hash = ?1",
                        [token_hash],
                    )
                })
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM access_tokens WHERE token_hash = $1")
                    .bind(token_hash.as_str())
                    .execute(pool)
                    .await?;
            }
        };
        Ok(())
    }
}

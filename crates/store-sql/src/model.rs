//! [`OAuthServerModel`](mcpauth_token_engine::OAuthServerModel) on SQL (SQLite or PostgreSQL).
//!
//! Every statement is written once, with `$N` placeholders, and run on whichever database the
//! store has (`crate::statement`): on SQLite by the grant path's writer thread and readers
//! (`crate::sqlite`, rusqlite), on PostgreSQL by sqlx. The grants that write more than one
//! row say where the two databases differ.
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

use crate::statement::{Param, bind_postgres, params, sqlite_execute, sqlite_row};
use crate::{Columns, Pool, SqlStore, StoreError, from_db, on_pool, to_db};

/// The columns of a refresh token, in the order [`refresh_params`] lists them.
macro_rules! refresh_columns {
    () => {
        "token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, rotated_at, dpop_jkt"
    };
}

const INSERT_REFRESH: &str = concat!(
    "INSERT INTO refresh_tokens (",
    refresh_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);

const INSERT_GRANT: &str = "INSERT INTO grants (grant_id, client_id, subject, scope, resources, \
     created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A `grant_live` column for a row of `$table` (which has a `grant_id`): whether its grant is
/// stored and not revoked, read in the same statement.
macro_rules! grant_live {
    ($table:literal) => {
        concat!(
            "COALESCE((SELECT grants.revoked_at IS NULL FROM grants WHERE grants.grant_id = ",
            $table,
            ".grant_id), FALSE) AS grant_live"
        )
    };
}

const FIND_CODE: &str = "SELECT * FROM authorization_codes WHERE code_hash = $1";
const FIND_CODE_AND_GRANT: &str = concat!(
    "SELECT authorization_codes.*, ",
    grant_live!("authorization_codes"),
    " FROM authorization_codes WHERE code_hash = $1"
);
const CONSUME_CODE: &str = "UPDATE authorization_codes SET consumed_at = $1 \
     WHERE code_hash = $2 AND consumed_at IS NULL RETURNING *";
const FIND_REFRESH_AND_GRANT: &str = concat!(
    "SELECT refresh_tokens.*, ",
    grant_live!("refresh_tokens"),
    " FROM refresh_tokens WHERE token_hash = $1"
);
const ROTATE_REFRESH: &str = "UPDATE refresh_tokens SET rotated_at = $1, sealed_successor = $3 \
     WHERE token_hash = $2 AND rotated_at IS NULL";
const ROTATED_FROM: &str = "SELECT grant_id, rotated_at FROM refresh_tokens WHERE token_hash = $1";
const DECIDE_DEVICE: &str = "UPDATE device_authorizations SET state = $1, subject = $2, \
     grant_id = $3 WHERE user_code_hash = $4 AND state = 'pending' AND expires_at > $5";
const CONSUME_DEVICE: &str = "UPDATE device_authorizations SET state = 'consumed' \
     WHERE device_code_hash = $1 AND state = 'approved'";

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

fn rotated_from(row: &impl Columns) -> Result<(String, Option<UnixTime>), StoreError> {
    Ok((row.text("grant_id")?, optional_time(row, "rotated_at")?))
}

/// A grant's columns for [`INSERT_GRANT`] (resources as JSON; created and revoked times).
fn grant_params(grant: &GrantRecord) -> Result<Vec<Param>, StoreError> {
    Ok(params![
        grant.grant_id.as_str(),
        grant.client_id.as_str(),
        &grant.subject,
        grant.scope.to_string(),
        serde_json::to_string(&grant.resources)?,
        to_db(grant.created_at.0)?,
        grant.revoked_at.map(|t| to_db(t.0)).transpose()?,
    ])
}

/// A refresh token's columns, in `refresh_columns!` order (resources as JSON; issued, expires
/// and rotated times): one list for every statement that stores one.
fn refresh_params(token: &RefreshTokenRecord) -> Result<Vec<Param>, StoreError> {
    Ok(params![
        token.token_hash.as_str(),
        token.grant_id.as_str(),
        token.client_id.as_str(),
        &token.subject,
        token.scope.to_string(),
        serde_json::to_string(&token.resources)?,
        to_db(token.issued_at.0)?,
        to_db(token.expires_at.0)?,
        token.rotated_at.map(|t| to_db(t.0)).transpose()?,
        token.dpop_jkt.as_deref(),
    ])
}

/// `first` followed by `rest`: the parameters of a statement that stores a record after its
/// own.
fn then(mut first: Vec<Param>, rest: Vec<Param>) -> Vec<Param> {
    first.extend(rest);
    first
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
        dpop_jkt: row.optional_text("dpop_jkt")?,
        nonce: row.optional_text("nonce")?,
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
        dpop_jkt: row.optional_text("dpop_jkt")?,
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

#[async_trait]
impl ClientStore for SqlStore {
    async fn find_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        if let Some(cached) = self.clients.get(client_id) {
            return Ok(Some(cached));
        }
        let found: Option<ClientRecord> = self
            .read_row(
                "SELECT record FROM clients WHERE client_id = $1",
                params![client_id.as_str()],
                |r| r.json("record"),
                |r| r.json("record"),
            )
            .await?;
        if let Some(client) = &found {
            self.clients.put(client);
        }
        Ok(found)
    }

    async fn insert_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(&client)?;
        self.execute(
            "INSERT INTO clients (client_id, record, created_at) VALUES ($1, $2, $3)",
            params![
                client.client_id.as_str(),
                record,
                to_db(client.created_at.0)?
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_client(&self, client: ClientRecord) -> Result<bool, StoreError> {
        let record = serde_json::to_string(&client)?;
        self.clients.forget(&client.client_id);
        let done = self
            .execute(
                "UPDATE clients SET record = $1 WHERE client_id = $2",
                params![record, client.client_id.as_str()],
            )
            .await?;
        Ok(done == 1)
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StoreError> {
        self.clients.forget(client_id);
        let done = self
            .execute(
                "DELETE FROM clients WHERE client_id = $1",
                params![client_id.as_str()],
            )
            .await?;
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
        self.execute(INSERT_GRANT, grant_params(&grant)?).await?;
        Ok(())
    }

    async fn find_grant(&self, grant_id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        self.read_row(
            "SELECT * FROM grants WHERE grant_id = $1",
            params![grant_id.as_str()],
            |r| grant_from(r),
            grant_from,
        )
        .await
    }

    async fn revoke_grant(&self, grant_id: &GrantId, now: UnixTime) -> Result<(), StoreError> {
        self.execute(
            "UPDATE grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
            params![to_db(now.0)?, grant_id.as_str()],
        )
        .await?;
        Ok(())
    }

    async fn revoke_client_grants(
        &self,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
            params![to_db(now.0)?, client_id.as_str()],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn insert_code(&self, code: AuthorizationCodeRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, \
             redirect_uri_in_request, code_challenge, subject, scope, resources, expires_at, \
             consumed_at, dpop_jkt, nonce) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            params![
                code.code_hash.as_str(),
                code.grant_id.as_str(),
                code.client_id.as_str(),
                &code.redirect_uri,
                code.redirect_uri_in_request,
                &code.code_challenge,
                &code.subject,
                code.scope.to_string(),
                serde_json::to_string(&code.resources)?,
                to_db(code.expires_at.0)?,
                code.consumed_at.map(|t| to_db(t.0)).transpose()?,
                code.dpop_jkt.as_deref(),
                code.nonce.as_deref(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        self.read_row(
            FIND_CODE,
            params![code_hash.as_str()],
            |r| code_from(r),
            code_from,
        )
        .await
    }

    async fn find_code_and_grant(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<(AuthorizationCodeRecord, bool)>, StoreError> {
        fn decode(row: &impl Columns) -> Result<(AuthorizationCodeRecord, bool), StoreError> {
            Ok((code_from(row)?, row.boolean("grant_live")?))
        }
        self.read_row(
            FIND_CODE_AND_GRANT,
            params![code_hash.as_str()],
            |r| decode(r),
            decode,
        )
        .await
    }

    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        now: UnixTime,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<ConsumeCode, StoreError> {
        let consume = params![to_db(now.0)?, code_hash.as_str()];
        let find = params![code_hash.as_str()];
        let refresh = refresh.as_ref().map(refresh_params).transpose()?;
        let grants = match &self.pool {
            Pool::Postgres(_, grants) => grants,
            Pool::Sqlite(_, db) => {
                // SQLite: one write of the batch. The conditional UPDATE finds the code
                // unconsumed at most once (writes are serial); the refresh token is stored in
                // the same savepoint, or neither is.
                return db
                    .write(move |c| {
                        if let Some(record) =
                            sqlite_row(c, CONSUME_CODE, &consume, |r| code_from(r))?
                        {
                            if let Some(refresh) = &refresh {
                                sqlite_execute(c, INSERT_REFRESH, refresh)?;
                            }
                            return Ok(ConsumeCode::Fresh(record));
                        }
                        Ok(match sqlite_row(c, FIND_CODE, &find, |r| code_from(r))? {
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
        let row = match refresh {
            Some(refresh) => {
                let params = then(consume, refresh);
                grants
                    .fetch_optional(bind_postgres(
                        sqlx::query(concat!(
                            "WITH consumed AS (UPDATE authorization_codes SET consumed_at = $1 ",
                            "WHERE code_hash = $2 AND consumed_at IS NULL RETURNING *), ",
                            "issued AS (INSERT INTO refresh_tokens (",
                            refresh_columns!(),
                            ") SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM consumed ",
                            "RETURNING 1) SELECT consumed.* FROM consumed"
                        )),
                        &params,
                    ))
                    .await?
            }
            None => {
                grants
                    .fetch_optional(bind_postgres(sqlx::query(CONSUME_CODE), &consume))
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

#[async_trait]
impl RefreshTokenStore for SqlStore {
    async fn insert_refresh(&self, token: RefreshTokenRecord) -> Result<(), StoreError> {
        self.execute(INSERT_REFRESH, refresh_params(&token)?)
            .await?;
        Ok(())
    }

    async fn find_refresh(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        self.read_row(
            "SELECT * FROM refresh_tokens WHERE token_hash = $1",
            params![token_hash.as_str()],
            |r| refresh_from(r),
            refresh_from,
        )
        .await
    }

    async fn find_refresh_and_grant(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshTokenRecord, bool)>, StoreError> {
        fn decode(row: &impl Columns) -> Result<(RefreshTokenRecord, bool), StoreError> {
            Ok((refresh_from(row)?, row.boolean("grant_live")?))
        }
        self.read_row(
            FIND_REFRESH_AND_GRANT,
            params![token_hash.as_str()],
            |r| decode(r),
            decode,
        )
        .await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        new: RefreshTokenRecord,
        sealed_successor: Option<String>,
        now: UnixTime,
    ) -> Result<RotateRefresh, StoreError> {
        let rotate = params![to_db(now.0)?, old_hash.as_str(), sealed_successor];
        let old = params![old_hash.as_str()];
        let new = refresh_params(&new)?;
        let grants = match &self.pool {
            Pool::Postgres(_, grants) => grants,
            Pool::Sqlite(_, db) => {
                // SQLite: one write of the batch (writes are serial, so a concurrent rotation
                // of the same token comes after this one and matches nothing).
                return db
                    .write(move |c| {
                        if sqlite_execute(c, ROTATE_REFRESH, &rotate)? == 1 {
                            sqlite_execute(c, INSERT_REFRESH, &new)?;
                            return Ok(RotateRefresh::Rotated);
                        }
                        let previous = sqlite_row(c, ROTATED_FROM, &old, |r| rotated_from(r))?;
                        Ok(not_rotated(previous))
                    })
                    .await;
            }
        };
        // PostgreSQL: one statement, one round trip. The conditional UPDATE locks the old row,
        // so a concurrent rotation of the same token waits, then matches nothing; the new
        // token, inserted from the updated row, commits with the rotation or undoes it.
        let params = then(rotate, new);
        let rotated = grants
            .execute(bind_postgres(
                sqlx::query(concat!(
                    "WITH rotated AS (UPDATE refresh_tokens SET rotated_at = $1, ",
                    "sealed_successor = $3 WHERE token_hash = $2 AND rotated_at IS NULL ",
                    "RETURNING 1) INSERT INTO refresh_tokens (",
                    refresh_columns!(),
                    ") SELECT $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM rotated"
                )),
                &params,
            ))
            .await?;
        if rotated.rows_affected() == 1 {
            return Ok(RotateRefresh::Rotated);
        }
        let previous = grants
            .fetch_optional(bind_postgres(sqlx::query(ROTATED_FROM), &old))
            .await?
            .as_ref()
            .map(rotated_from)
            .transpose()?;
        Ok(not_rotated(previous))
    }
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn insert_device(&self, record: DeviceAuthorizationRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, \
             scope, resources, expires_at, poll_interval, last_polled_at, state, subject, \
             grant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            params![
                record.device_code_hash.as_str(),
                record.user_code_hash.as_str(),
                record.client_id.as_str(),
                record.scope.to_string(),
                serde_json::to_string(&record.resources)?,
                to_db(record.expires_at.0)?,
                to_db(record.interval)?,
                record.last_polled_at.map(|t| to_db(t.0)).transpose()?,
                record.state.as_str(),
                record.subject.clone(),
                record.grant_id.as_ref().map(GrantId::as_str),
            ],
        )
        .await?;
        Ok(())
    }

    async fn find_device_by_user_code(
        &self,
        user_code_hash: &SecretHash,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        self.read_row(
            "SELECT * FROM device_authorizations WHERE user_code_hash = $1",
            params![user_code_hash.as_str()],
            |r| device_from(r),
            device_from,
        )
        .await
    }

    async fn poll_device(
        &self,
        device_code_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        fn polled(row: &impl Columns) -> Result<DeviceAuthorizationRecord, StoreError> {
            let mut record = device_from(row)?;
            record.last_polled_at = optional_time(row, "previous_polled_at")?;
            Ok(record)
        }
        // One statement: SET expressions read the row as it was, so `previous_polled_at`
        // receives the stamp of the poll before this one, atomically with the new stamp.
        self.write_row(
            "UPDATE device_authorizations SET previous_polled_at = last_polled_at, \
             last_polled_at = $1 WHERE device_code_hash = $2 RETURNING *",
            params![to_db(now.0)?, device_code_hash.as_str()],
            |r| polled(r),
            polled,
        )
        .await
    }

    async fn set_device_interval(
        &self,
        device_code_hash: &SecretHash,
        interval: u64,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE device_authorizations SET poll_interval = $1 WHERE device_code_hash = $2",
            params![to_db(interval)?, device_code_hash.as_str()],
        )
        .await?;
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
        let decide = params![
            state.as_str(),
            grant.as_ref().map(|g| g.subject.clone()),
            grant.as_ref().map(|g| g.grant_id.as_str().to_owned()),
            user_code_hash.as_str(),
            to_db(now.0)?,
        ];
        let grant = grant.as_ref().map(grant_params).transpose()?;
        // One transaction: the grant is stored only with a decision that was recorded.
        let pool = match &self.pool {
            Pool::Postgres(pool, _) => pool,
            Pool::Sqlite(_, db) => {
                return db
                    .write(move |c| {
                        let done = sqlite_execute(c, DECIDE_DEVICE, &decide)? == 1;
                        if done && let Some(grant) = &grant {
                            sqlite_execute(c, INSERT_GRANT, grant)?;
                        }
                        Ok(done)
                    })
                    .await;
            }
        };
        let mut tx = pool.begin().await?;
        let done = bind_postgres(sqlx::query(DECIDE_DEVICE), &decide)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            if let Some(grant) = &grant {
                bind_postgres(sqlx::query(INSERT_GRANT), grant)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(done)
    }

    async fn consume_device(
        &self,
        device_code_hash: &SecretHash,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<bool, StoreError> {
        let consume = params![device_code_hash.as_str()];
        let refresh = refresh.as_ref().map(refresh_params).transpose()?;
        // As for codes: the refresh token stored only with the consumption.
        let pool = match &self.pool {
            Pool::Postgres(pool, _) => pool,
            Pool::Sqlite(_, db) => {
                return db
                    .write(move |c| {
                        let done = sqlite_execute(c, CONSUME_DEVICE, &consume)? == 1;
                        if done && let Some(refresh) = &refresh {
                            sqlite_execute(c, INSERT_REFRESH, refresh)?;
                        }
                        Ok(done)
                    })
                    .await;
            }
        };
        let mut tx = pool.begin().await?;
        let done = bind_postgres(sqlx::query(CONSUME_DEVICE), &consume)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if done {
            if let Some(refresh) = &refresh {
                bind_postgres(sqlx::query(INSERT_REFRESH), refresh)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(done)
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
        // One statement: a new window starts from these hits, the same window adds them, and a
        // late addition for a window that has ended (another instance moved on) changes
        // nothing: the later window is kept (SQLite's scalar `max`, PostgreSQL's `GREATEST`).
        let sql = match self.backend() {
            crate::Backend::Sqlite => concat!(
                "INSERT INTO rate_limits (limit_key, window_start, hits) VALUES ($1, $2, $3) ",
                "ON CONFLICT (limit_key) DO UPDATE SET hits = CASE ",
                "WHEN rate_limits.window_start = excluded.window_start ",
                "THEN rate_limits.hits + excluded.hits ",
                "WHEN rate_limits.window_start < excluded.window_start THEN excluded.hits ",
                "ELSE rate_limits.hits END, ",
                "window_start = max(rate_limits.window_start, excluded.window_start) ",
                "RETURNING hits"
            ),
            crate::Backend::Postgres => concat!(
                "INSERT INTO rate_limits (limit_key, window_start, hits) VALUES ($1, $2, $3) ",
                "ON CONFLICT (limit_key) DO UPDATE SET hits = CASE ",
                "WHEN rate_limits.window_start = excluded.window_start ",
                "THEN rate_limits.hits + excluded.hits ",
                "WHEN rate_limits.window_start < excluded.window_start THEN excluded.hits ",
                "ELSE rate_limits.hits END, ",
                "window_start = GREATEST(rate_limits.window_start, excluded.window_start) ",
                "RETURNING hits"
            ),
        };
        let start = to_db(now.0 - now.0 % window.max(1))?;
        let total = self
            .write_row(
                sql,
                params![key.as_str(), start, i64::from(hits)],
                |r| r.integer("hits"),
                |r| r.integer("hits"),
            )
            .await?;
        Ok(total.map_or(u32::MAX, |t| u32::try_from(t).unwrap_or(u32::MAX)))
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
        // Insert, or take over an expired entry; a live entry makes this a no-op (0 rows).
        let done = self
            .execute(
                "INSERT INTO replay_cache (cache_key, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (cache_key) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE replay_cache.expires_at <= $3",
                params![key, to_db(expires_at.0)?, to_db(now.0)?],
            )
            .await?;
        Ok(done == 1)
    }
}

#[async_trait]
impl AccessTokenStore for SqlStore {
    async fn insert_access_token(&self, record: AccessTokenRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO access_tokens (token_hash, grant_id, client_id, claims, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            params![
                record.token_hash.as_str(),
                record.grant_id.as_ref().map(GrantId::as_str),
                record.client_id.as_str(),
                serde_json::to_string(&record.claims)?,
                to_db(record.expires_at.0)?,
            ],
        )
        .await?;
        Ok(())
    }

    async fn find_access_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        self.read_row(
            "SELECT * FROM access_tokens WHERE token_hash = $1",
            params![token_hash.as_str()],
            |r| access_token_from(r),
            access_token_from,
        )
        .await
    }

    async fn delete_access_token(&self, token_hash: &SecretHash) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM access_tokens WHERE token_hash = $1",
            params![token_hash.as_str()],
        )
        .await?;
        Ok(())
    }
}

//! [`OAuthServerModel`](mcpauth_token_engine::OAuthServerModel) on SQL.

use async_trait::async_trait;
use mcpauth_token_engine::{
    AccessTokenRecord, AccessTokenStore, AuthorizationCodeRecord, ClientRecord, ClientStore,
    CodeStore, ConsumeCode, DeviceAuthorizationRecord, DeviceDecision, DeviceState, DeviceStore,
    GrantRecord, GrantStore, ModelBase, RateLimitStore, RefreshTokenRecord, RefreshTokenStore,
    ReplayStore, RotateRefresh, UnixTime,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{SqlStore, StoreError, from_db, to_db};

impl ModelBase for SqlStore {
    type Error = StoreError;
}

fn time(row: &SqliteRow, column: &str) -> Result<UnixTime, StoreError> {
    Ok(UnixTime(from_db(row.try_get(column)?)?))
}

fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<UnixTime>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|t| from_db(t).map(UnixTime))
        .transpose()
}

fn resources(row: &SqliteRow) -> Result<Vec<String>, StoreError> {
    Ok(serde_json::from_str(row.try_get("resources")?)?)
}

fn grant_from(row: &SqliteRow) -> Result<GrantRecord, StoreError> {
    let mut grant = GrantRecord {
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resources: resources(row)?,
        created_at: time(row, "created_at")?,
        revoked_at: None,
    };
    grant.revoked_at = optional_time(row, "revoked_at")?;
    Ok(grant)
}

fn code_from(row: &SqliteRow) -> Result<AuthorizationCodeRecord, StoreError> {
    Ok(AuthorizationCodeRecord {
        code_hash: row.try_get("code_hash")?,
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        redirect_uri_in_request: row.try_get("redirect_uri_in_request")?,
        code_challenge: row.try_get("code_challenge")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resources: resources(row)?,
        expires_at: time(row, "expires_at")?,
        consumed_at: optional_time(row, "consumed_at")?,
    })
}

fn refresh_from(row: &SqliteRow) -> Result<RefreshTokenRecord, StoreError> {
    Ok(RefreshTokenRecord {
        token_hash: row.try_get("token_hash")?,
        grant_id: row.try_get("grant_id")?,
        client_id: row.try_get("client_id")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        resources: resources(row)?,
        issued_at: time(row, "issued_at")?,
        expires_at: time(row, "expires_at")?,
        rotated_at: optional_time(row, "rotated_at")?,
    })
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query("SELECT record FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(serde_json::from_str(r.try_get("record")?)?))
            .transpose()
    }

    async fn insert_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO clients (client_id, record, created_at) VALUES (?, ?, ?)")
            .bind(&client.client_id)
            .bind(serde_json::to_string(&client)?)
            .bind(to_db(client.created_at.0)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn update_client(&self, client: ClientRecord) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE clients SET record = ? WHERE client_id = ?")
            .bind(serde_json::to_string(&client)?)
            .bind(&client.client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_clients(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM clients")
            .fetch_one(&self.pool)
            .await?;
        from_db(row.try_get("n")?)
    }
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_grant(&self, grant: GrantRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO grants (grant_id, client_id, subject, scope, resources, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&grant.grant_id)
            .bind(&grant.client_id)
            .bind(&grant.subject)
            .bind(&grant.scope)
            .bind(serde_json::to_string(&grant.resources)?)
            .bind(to_db(grant.created_at.0)?)
            .bind(grant.revoked_at.map(|t| to_db(t.0)).transpose()?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM grants WHERE grant_id = ?")
            .bind(grant_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from).transpose()
    }

    async fn revoke_grant(&self, grant_id: &str, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL")
            .bind(to_db(now.0)?)
            .bind(grant_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_client_grants(&self, client_id: &str, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE grants SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL")
            .bind(to_db(now.0)?)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn insert_code(&self, code: AuthorizationCodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, grant_id, client_id, redirect_uri, redirect_uri_in_request, code_challenge, subject, scope, resources, expires_at, consumed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&code.code_hash)
        .bind(&code.grant_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(code.redirect_uri_in_request)
        .bind(&code.code_challenge)
        .bind(&code.subject)
        .bind(&code.scope)
        .bind(serde_json::to_string(&code.resources)?)
        .bind(to_db(code.expires_at.0)?)
        .bind(code.consumed_at.map(|t| to_db(t.0)).transpose()?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM authorization_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(code_from).transpose()
    }

    async fn consume_code(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<ConsumeCode, StoreError> {
        // One conditional statement: of concurrent callers, only one sees its row come back.
        let fresh = sqlx::query("UPDATE authorization_codes SET consumed_at = ? WHERE code_hash = ? AND consumed_at IS NULL RETURNING *")
            .bind(to_db(now.0)?)
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = fresh {
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
        insert_refresh(&self.pool, &token).await
    }

    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(refresh_from).transpose()
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new: RefreshTokenRecord,
        now: UnixTime,
    ) -> Result<RotateRefresh, StoreError> {
        // BEGIN IMMEDIATE semantics: the conditional UPDATE takes the write lock, so the
        // insert of the new token commits with it or not at all.
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL",
        )
        .bind(to_db(now.0)?)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            insert_refresh(&mut *tx, &new).await?;
            tx.commit().await?;
            return Ok(RotateRefresh::Rotated);
        }
        let row =
            sqlx::query("SELECT grant_id, rotated_at FROM refresh_tokens WHERE token_hash = ?")
                .bind(old_hash)
                .fetch_optional(&mut *tx)
                .await?;
        tx.rollback().await?;
        let Some(row) = row else {
            return Ok(RotateRefresh::NotFound);
        };
        match optional_time(&row, "rotated_at")? {
            Some(rotated_at) => Ok(RotateRefresh::Reused {
                grant_id: row.try_get("grant_id")?,
                rotated_at,
            }),
            // Not rotated but the UPDATE matched nothing: impossible inside one transaction.
            None => Ok(RotateRefresh::NotFound),
        }
    }
}

async fn insert_refresh<'e, E: sqlx::SqliteExecutor<'e>>(
    executor: E,
    token: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, subject, scope, resources, issued_at, expires_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&token.token_hash)
    .bind(&token.grant_id)
    .bind(&token.client_id)
    .bind(&token.subject)
    .bind(&token.scope)
    .bind(serde_json::to_string(&token.resources)?)
    .bind(to_db(token.issued_at.0)?)
    .bind(to_db(token.expires_at.0)?)
    .bind(token.rotated_at.map(|t| to_db(t.0)).transpose()?)
    .execute(executor)
    .await?;
    Ok(())
}

fn device_from(row: &SqliteRow) -> Result<DeviceAuthorizationRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(DeviceAuthorizationRecord {
        device_code_hash: row.try_get("device_code_hash")?,
        user_code_hash: row.try_get("user_code_hash")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        resources: resources(row)?,
        expires_at: time(row, "expires_at")?,
        interval: from_db(row.try_get("poll_interval")?)?,
        last_polled_at: optional_time(row, "last_polled_at")?,
        state: DeviceState::from_stored(&state).ok_or(StoreError::UnknownState)?,
        subject: row.try_get("subject")?,
        grant_id: row.try_get("grant_id")?,
    })
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn insert_device(&self, record: DeviceAuthorizationRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scope, resources, expires_at, poll_interval, last_polled_at, state, subject, grant_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.device_code_hash)
        .bind(&record.user_code_hash)
        .bind(&record.client_id)
        .bind(&record.scope)
        .bind(serde_json::to_string(&record.resources)?)
        .bind(to_db(record.expires_at.0)?)
        .bind(to_db(record.interval)?)
        .bind(record.last_polled_at.map(|t| to_db(t.0)).transpose()?)
        .bind(record.state.as_str())
        .bind(&record.subject)
        .bind(&record.grant_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_device_by_user_code(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM device_authorizations WHERE user_code_hash = ?")
            .bind(user_code_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from).transpose()
    }

    async fn poll_device(
        &self,
        device_code_hash: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        // One statement: SET expressions read the row as it was, so `previous_polled_at`
        // receives the stamp of the poll before this one, atomically with the new stamp.
        let row = sqlx::query(
            "UPDATE device_authorizations SET previous_polled_at = last_polled_at, last_polled_at = ? WHERE device_code_hash = ? RETURNING *",
        )
        .bind(to_db(now.0)?)
        .bind(device_code_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut record = device_from(&row)?;
        record.last_polled_at = optional_time(&row, "previous_polled_at")?;
        Ok(Some(record))
    }

    async fn slow_down_device(&self, device_code_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE device_authorizations SET poll_interval = poll_interval + 5 WHERE device_code_hash = ?")
            .bind(device_code_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn decide_device(
        &self,
        user_code_hash: &str,
        decision: DeviceDecision,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (state, subject, grant_id) = match decision {
            DeviceDecision::Approve { subject, grant_id } => {
                (DeviceState::Approved, Some(subject), Some(grant_id))
            }
            _ => (DeviceState::Denied, None, None),
        };
        let done = sqlx::query(
            "UPDATE device_authorizations SET state = ?, subject = ?, grant_id = ? WHERE user_code_hash = ? AND state = 'pending' AND expires_at > ?",
        )
        .bind(state.as_str())
        .bind(subject)
        .bind(grant_id)
        .bind(user_code_hash)
        .bind(to_db(now.0)?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_device(&self, device_code_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE device_authorizations SET state = 'consumed' WHERE device_code_hash = ? AND state = 'approved'")
            .bind(device_code_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl RateLimitStore for SqlStore {
    async fn hit(&self, key: &str, now: UnixTime, window: u64) -> Result<u32, StoreError> {
        let start = to_db(now.0 - now.0 % window.max(1))?;
        // One statement: a new window resets the count, the same window adds one.
        let row = sqlx::query(
            "INSERT INTO rate_limits (limit_key, window_start, hits) VALUES (?, ?, 1) \
             ON CONFLICT (limit_key) DO UPDATE SET \
               hits = CASE WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.hits + 1 ELSE 1 END, \
               window_start = excluded.window_start \
             RETURNING hits",
        )
        .bind(key)
        .bind(start)
        .fetch_one(&self.pool)
        .await?;
        let hits: i64 = row.try_get("hits")?;
        Ok(u32::try_from(hits).unwrap_or(u32::MAX))
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
        let done = sqlx::query(
            "INSERT INTO replay_cache (cache_key, expires_at) VALUES (?, ?) \
             ON CONFLICT (cache_key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?",
        )
        .bind(key)
        .bind(to_db(expires_at.0)?)
        .bind(to_db(now.0)?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl AccessTokenStore for SqlStore {
    async fn insert_access_token(&self, record: AccessTokenRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO access_tokens (token_hash, grant_id, client_id, claims, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&record.token_hash)
            .bind(&record.grant_id)
            .bind(&record.client_id)
            .bind(serde_json::to_string(&record.claims)?)
            .bind(to_db(record.expires_at.0)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_access_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccessTokenRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM access_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(AccessTokenRecord {
                token_hash: r.try_get("token_hash")?,
                grant_id: r.try_get("grant_id")?,
                client_id: r.try_get("client_id")?,
                claims: serde_json::from_str(r.try_get("claims")?)?,
                expires_at: time(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_access_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM access_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! [`OAuthServerModel`](mcpauth_token_engine::OAuthServerModel) on SQL.

use async_trait::async_trait;
use mcpauth_token_engine::{
    AuthorizationCodeRecord, ClientRecord, ClientStore, CodeStore, ConsumeCode, GrantRecord,
    GrantStore, ModelBase, RefreshTokenRecord, RefreshTokenStore, RotateRefresh, UnixTime,
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

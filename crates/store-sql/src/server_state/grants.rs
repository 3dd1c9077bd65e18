//! Who holds what: the grants users gave clients, for the operator (`mcpauth-server grant
//! list`, issue 27), with when each was given and when its latest refresh token was issued.

use crate::statement::params;
use crate::{Columns, SqlStore, StoreError, from_db, on_pool, to_db};
use mcpauth_token_engine::UnixTime;

/// One grant as the operator sees it: never a token or a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrantSummary {
    /// The grant's identifier (`jti`s of its tokens start with it).
    pub grant_id: String,
    /// The client holding it.
    pub client_id: String,
    /// Whom it is for: the user's subject.
    pub subject: String,
    /// The scope granted.
    pub scope: String,
    /// The resources (RFC 8707) granted.
    pub resources: Vec<String>,
    /// When it was given (Unix seconds).
    pub created_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// When its latest refresh token was issued (at the code's redemption, or the last
    /// refresh), while any of its refresh tokens is kept.
    pub last_refreshed_at: Option<u64>,
}

/// Which grants [`SqlStore::list_grants`] answers: those matching every field given, newest
/// first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrantFilter {
    /// Only this user's.
    pub subject: Option<String>,
    /// Only this client's.
    pub client_id: Option<String>,
    /// Revoked grants too (by default only live ones).
    pub include_revoked: bool,
}

fn summary_from(row: &impl Columns) -> Result<GrantSummary, StoreError> {
    Ok(GrantSummary {
        grant_id: row.text("grant_id")?,
        client_id: row.text("client_id")?,
        subject: row.text("subject")?,
        scope: row.text("scope")?,
        resources: row.json("resources")?,
        created_at: from_db(row.integer("created_at")?)?,
        revoked_at: row
            .optional_integer("revoked_at")?
            .map(from_db)
            .transpose()?,
        last_refreshed_at: row
            .optional_integer("last_refreshed_at")?
            .map(from_db)
            .transpose()?,
    })
}

impl SqlStore {
    /// Revokes grant `grant_id` if it is live (as `GrantStore::revoke_grant` does), and
    /// answers whether this call revoked it: of two administrators revoking it at once, one
    /// hears `true`.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn revoke_live_grant(
        &self,
        grant_id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE grants SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
                params![to_db(now.0)?, grant_id],
            )
            .await?;
        Ok(changed > 0)
    }

    /// Up to `limit` (at most 1000) grants matching `filter`, newest first.
    ///
    /// # Errors
    ///
    /// The database error, or a row that does not parse.
    pub async fn list_grants(
        &self,
        filter: &GrantFilter,
        limit: u32,
    ) -> Result<Vec<GrantSummary>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [
            ("g.subject", &filter.subject),
            ("g.client_id", &filter.client_id),
        ] {
            if let Some(value) = value {
                values.push(value);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        if !filter.include_revoked {
            conditions.push("g.revoked_at IS NULL".to_owned());
        }
        let sql = format!(
            "SELECT g.grant_id, g.client_id, g.subject, g.scope, g.resources, g.created_at, \
             g.revoked_at, (SELECT MAX(r.issued_at) FROM refresh_tokens r \
             WHERE r.grant_id = g.grant_id) AS last_refreshed_at \
             FROM grants g {} {} ORDER BY g.created_at DESC, g.grant_id LIMIT ${}",
            if conditions.is_empty() { "" } else { "WHERE" },
            conditions.join(" AND "),
            values.len() + 1,
        );
        let limit = i64::from(limit.min(1000));
        on_pool!(self, |pool| {
            // Only fixed column names and numbered placeholders are formatted in; the values
            // are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for value in &values {
                query = query.bind(*value);
            }
            query
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(summary_from)
                .collect()
        })
    }
}

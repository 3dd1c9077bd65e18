//! Remembered consent: what each user approved for each client, so the consent page is shown
//! again only when a client asks for more.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};

/// What a user has approved for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsentRow {
    /// The client.
    pub client_id: String,
    /// The scope tokens approved so far, space-separated.
    pub scope: String,
    /// The resources approved so far.
    pub resources: Vec<String>,
    /// When the user first approved this client.
    pub created_at: u64,
    /// When the user last widened the approval.
    pub updated_at: u64,
}

impl ConsentRow {
    /// Whether this approval already covers `scope` (space-separated) at `resources`: every
    /// requested scope token and resource was approved before.
    #[must_use]
    pub fn covers(&self, scope: &str, resources: &[String]) -> bool {
        let approved: Vec<&str> = self.scope.split_ascii_whitespace().collect();
        scope
            .split_ascii_whitespace()
            .all(|token| approved.contains(&token))
            && resources.iter().all(|r| self.resources.contains(r))
    }
}

fn consent_from(row: &impl Columns) -> Result<ConsentRow, StoreError> {
    Ok(ConsentRow {
        client_id: row.text("client_id")?,
        scope: row.text("scope")?,
        resources: row.json("resources")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

impl SqlStore {
    /// What `user_id` approved for `client_id`, if anything is remembered.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn remembered_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRow>, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT client_id, scope, resources, created_at, updated_at FROM consents \
                 WHERE user_id = $1 AND client_id = $2",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(consent_from).transpose()
        })
    }

    /// Remembers that `user_id` approved `scope` at `resources` for `client_id`, adding to
    /// what was approved before (so approving a narrower request never forgets a wider one).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        resources: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        let mut scopes: Vec<String> = Vec::new();
        let mut all_resources: Vec<String> = Vec::new();
        let previous = self.remembered_consent(user_id, client_id).await?;
        let created_at = previous.as_ref().map_or(now, |p| p.created_at);
        for token in previous
            .iter()
            .flat_map(|p| p.scope.split_ascii_whitespace())
            .chain(scope.split_ascii_whitespace())
        {
            if !scopes.iter().any(|s| s == token) {
                scopes.push(token.to_owned());
            }
        }
        for resource in previous
            .iter()
            .flat_map(|p| p.resources.iter())
            .chain(resources)
        {
            if !all_resources.contains(resource) {
                all_resources.push(resource.clone());
            }
        }
        let scope = scopes.join(" ");
        let resources = serde_json::to_string(&all_resources)?;
        let (created_at, now) = (to_db(created_at)?, to_db(now)?);
        on_pool_write!(self, |pool| {
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, scope, resources, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
                 resources = excluded.resources, updated_at = excluded.updated_at",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(&scope)
            .bind(&resources)
            .bind(created_at)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Everything `user_id` approved, most recent first.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn list_consents(&self, user_id: &str) -> Result<Vec<ConsentRow>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT client_id, scope, resources, created_at, updated_at FROM consents \
                 WHERE user_id = $1 ORDER BY updated_at DESC, client_id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(consent_from).collect()
        })
    }

    /// Withdraws `user_id`'s consent for `client_id`: forgets it, so the consent page is shown
    /// again, and in the same transaction revokes every grant the user made to the client
    /// (its refresh tokens and opaque access tokens stop working; JWT access tokens run out at
    /// their `exp`). Returns whether anything was remembered or granted.
    ///
    /// # Errors
    ///
    /// The database error; nothing is changed.
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let now = to_db(now)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let forgotten =
                sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            let revoked = sqlx::query(
                "UPDATE grants SET revoked_at = $3 \
                 WHERE subject = $1 AND client_id = $2 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(forgotten + revoked > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scope: &str, resources: &[&str]) -> ConsentRow {
        ConsentRow {
            client_id: "c".into(),
            scope: scope.into(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn remembered_consent_covers_only_subsets_of_what_was_approved() {
        let approved = row("mcp:tools mcp:read", &["https://mcp.example/"]);
        assert!(approved.covers("mcp:tools", &["https://mcp.example/".into()]));
        assert!(approved.covers("mcp:read mcp:tools", &[]));
        assert!(approved.covers("", &[]));
        assert!(!approved.covers("mcp:tools mcp:admin", &[]));
        assert!(!approved.covers("mcp:tools", &["https://other.example/".into()]));
        // A prefix of an approved token is a different scope.
        assert!(!approved.covers("mcp:tool", &[]));
    }
}

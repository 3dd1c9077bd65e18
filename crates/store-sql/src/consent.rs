//! Remembered consent: what each user approved for each client, so the consent page is shown
//! again only when a client asks for more.
//!
//! A decision covers exactly what the user saw: the client, the redirect URI the code went
//! to, and per resource the scopes approved for it. A request naming another redirect URI,
//! another resource, or a scope not approved *for that resource*, asks again; approving
//! scope A for one MCP server and scope B for another never approves B for the first.

use crate::{Columns, SqlStore, StoreError, on_pool, on_pool_write, to_db};
use mcpauth_token_engine::UnixTime;

/// The scopes approved for one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceApproval {
    /// The resource (RFC 8707).
    pub resource: String,
    /// The scope tokens approved for it, space-separated.
    pub scope: String,
}

/// What a user has approved for one client, across its redirect URIs, for the account page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsentRow {
    /// The client.
    pub client_id: String,
    /// Per resource, the scopes approved (a resource approved through two redirect URIs is
    /// listed once, with every scope approved through either).
    pub approvals: Vec<ResourceApproval>,
    /// When the user first approved this client.
    pub created_at: u64,
    /// When the user last widened the approval.
    pub updated_at: u64,
}

fn has_all(approved: &str, requested: &str) -> bool {
    let approved: Vec<&str> = approved.split_ascii_whitespace().collect();
    requested
        .split_ascii_whitespace()
        .all(|token| approved.contains(&token))
}

fn union(first: &str, second: &str) -> String {
    let mut tokens: Vec<&str> = Vec::new();
    for token in first
        .split_ascii_whitespace()
        .chain(second.split_ascii_whitespace())
    {
        if !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    tokens.join(" ")
}

/// Whether `approved` (resource, scope) pairs cover `scope` at every one of `resources`: each
/// requested resource was approved with every requested scope token. Nothing is covered
/// without a resource.
#[must_use]
pub fn approvals_cover(approved: &[(String, String)], scope: &str, resources: &[String]) -> bool {
    !resources.is_empty()
        && resources.iter().all(|resource| {
            approved
                .iter()
                .any(|(r, approved_scope)| r == resource && has_all(approved_scope, scope))
        })
}

impl SqlStore {
    /// Whether `user_id` already approved `scope` at each of `resources` for `client_id` at
    /// `redirect_uri`.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn consent_covers(
        &self,
        user_id: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        resources: &[String],
    ) -> Result<bool, StoreError> {
        let approved: Vec<(String, String)> = on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT resource, scope FROM consent_approvals \
                 WHERE user_id = $1 AND client_id = $2 AND redirect_uri = $3",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(redirect_uri)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.text("resource")?, row.text("scope")?)))
                .collect::<Result<_, StoreError>>()
        })?;
        Ok(approvals_cover(&approved, scope, resources))
    }

    /// Remembers that `user_id` approved `scope` at each of `resources` for `client_id` at
    /// `redirect_uri`, adding to what was approved before for the same resource (approving a
    /// narrower request never forgets a wider one).
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        resources: &[String],
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            for resource in resources {
                let previous = sqlx::query(
                    "SELECT scope FROM consent_approvals WHERE user_id = $1 AND client_id = $2 \
                     AND redirect_uri = $3 AND resource = $4",
                )
                .bind(user_id)
                .bind(client_id)
                .bind(redirect_uri)
                .bind(resource)
                .fetch_optional(&mut *tx)
                .await?;
                let previous = previous.map(|row| row.text("scope")).transpose()?;
                let merged = union(previous.as_deref().unwrap_or_default(), scope);
                sqlx::query(
                    "INSERT INTO consent_approvals \
                     (user_id, client_id, redirect_uri, resource, scope, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (user_id, client_id, redirect_uri, resource) \
                     DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
                )
                .bind(user_id)
                .bind(client_id)
                .bind(redirect_uri)
                .bind(resource)
                .bind(&merged)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Everything `user_id` approved, one row per client, most recently widened first.
    ///
    /// # Errors
    ///
    /// The database error.
    pub async fn list_consents(&self, user_id: &str) -> Result<Vec<ConsentRow>, StoreError> {
        let rows: Vec<(String, String, String, u64, u64)> = on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT client_id, resource, scope, created_at, updated_at FROM consent_approvals \
                 WHERE user_id = $1 ORDER BY client_id, resource",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.text("client_id")?,
                        row.text("resource")?,
                        row.text("scope")?,
                        row.time("created_at")?,
                        row.time("updated_at")?,
                    ))
                })
                .collect::<Result<_, StoreError>>()
        })?;
        let mut consents: Vec<ConsentRow> = Vec::new();
        for (client_id, resource, scope, created_at, updated_at) in rows {
            let consent = match consents.iter_mut().find(|c| c.client_id == client_id) {
                Some(consent) => consent,
                None => {
                    consents.push(ConsentRow {
                        client_id,
                        approvals: Vec::new(),
                        created_at,
                        updated_at,
                    });
                    let Some(last) = consents.last_mut() else {
                        continue;
                    };
                    last
                }
            };
            consent.created_at = consent.created_at.min(created_at);
            consent.updated_at = consent.updated_at.max(updated_at);
            match consent
                .approvals
                .iter_mut()
                .find(|a| a.resource == resource)
            {
                Some(approval) => approval.scope = union(&approval.scope, &scope),
                None => consent.approvals.push(ResourceApproval { resource, scope }),
            }
        }
        consents.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        Ok(consents)
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
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let now = to_db(now.0)?;
        on_pool_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let forgotten =
                sqlx::query("DELETE FROM consent_approvals WHERE user_id = $1 AND client_id = $2")
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

    fn approved(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(r, s)| ((*r).to_owned(), (*s).to_owned()))
            .collect()
    }

    const A: &str = "https://a.example/mcp";
    const B: &str = "https://b.example/mcp";

    #[test]
    fn remembered_consent_covers_only_subsets_of_what_was_approved() {
        let approvals = approved(&[(A, "mcp:tools mcp:read")]);
        assert!(approvals_cover(&approvals, "mcp:tools", &[A.into()]));
        assert!(approvals_cover(
            &approvals,
            "mcp:read mcp:tools",
            &[A.into()]
        ));
        assert!(approvals_cover(&approvals, "", &[A.into()]));
        assert!(!approvals_cover(
            &approvals,
            "mcp:tools mcp:admin",
            &[A.into()]
        ));
        assert!(!approvals_cover(&approvals, "mcp:tools", &[B.into()]));
        assert!(!approvals_cover(&approvals, "mcp:tools", &[]));
        // A prefix of an approved token is a different scope.
        assert!(!approvals_cover(&approvals, "mcp:tool", &[A.into()]));
    }

    // Scopes approved for one resource are not approved for another.
    #[test]
    fn remembered_consent_is_per_resource_with_no_union_across_resources() {
        let approvals = approved(&[(A, "mcp:read"), (B, "mcp:admin")]);
        assert!(approvals_cover(&approvals, "mcp:read", &[A.into()]));
        assert!(approvals_cover(&approvals, "mcp:admin", &[B.into()]));
        assert!(!approvals_cover(&approvals, "mcp:admin", &[A.into()]));
        assert!(!approvals_cover(
            &approvals,
            "mcp:read",
            &[A.into(), B.into()]
        ));
    }
}

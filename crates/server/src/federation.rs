//! Federated sign-in (`mcpauth-proxy`) on the server's database: the sign-ins waiting for
//! their upstream callback live in `upstream_requests`, so the callback may reach any
//! instance and is taken exactly once.

use mcpauth_proxy::{UpstreamRequest, UpstreamRequestStore};
use mcpauth_store_sql::{SqlStore, StoreError};

/// [`UpstreamRequestStore`] over [`SqlStore`].
#[derive(Debug, Clone)]
pub struct SqlUpstreamRequests(pub SqlStore);

/// Storing or reading a waiting sign-in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamStoreError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored sign-in does not parse (written by an incompatible version).
    #[error("a stored upstream sign-in does not parse: {0}")]
    Corrupt(#[from] serde_json::Error),
}

#[async_trait::async_trait]
impl UpstreamRequestStore for SqlUpstreamRequests {
    type Error = UpstreamStoreError;

    async fn save_upstream_request(
        &self,
        key: &str,
        request: &UpstreamRequest,
    ) -> Result<(), UpstreamStoreError> {
        let record = serde_json::to_string(request)?;
        Ok(self
            .0
            .save_upstream_request(key, &record, request.expires_at)
            .await?)
    }

    async fn take_upstream_request(
        &self,
        key: &str,
    ) -> Result<Option<UpstreamRequest>, UpstreamStoreError> {
        let taken = self
            .0
            .take_upstream_request(key, mcpauth_http::now().0)
            .await?;
        Ok(taken
            .map(|record| serde_json::from_str(&record))
            .transpose()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    // A waiting sign-in survives the round trip through the database and is taken once.
    #[tokio::test]
    async fn a_waiting_sign_in_round_trips_and_is_taken_once() {
        let dir = std::env::temp_dir().join(format!("mcpauth-federation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqlStore::connect(&format!("sqlite://{}", dir.join("f.db").display()))
            .await
            .unwrap();
        let provider = mcpauth_proxy::Provider::from_config(&mcpauth_proxy::ProviderConfig::new(
            "google",
            mcpauth_proxy::Preset::Google,
            "client",
        ))
        .unwrap();
        let pending = serde_json::from_value(serde_json::json!({
            "client_id": "c", "client_name": null, "client_identity": "SelfRegistered",
            "redirect_uri": "http://127.0.0.1/cb", "redirect_uri_in_request": true,
            "scope": "mcp:tools", "resources": [], "state": null,
            "code_challenge": "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"
        }))
        .unwrap();
        let started = mcpauth_proxy::upstream::start(
            &provider,
            &"https://as.example/upstream/google/callback"
                .parse()
                .unwrap(),
            pending,
            &crate::OsRandom,
            mcpauth_http::now().0,
            600,
        )
        .unwrap();
        let requests = SqlUpstreamRequests(store.clone());
        let key = mcpauth_proxy::upstream::state_key(&started.state);
        requests
            .save_upstream_request(&key, &started.record)
            .await
            .unwrap();
        assert_eq!(
            requests.take_upstream_request(&key).await.unwrap(),
            Some(started.record)
        );
        assert_eq!(requests.take_upstream_request(&key).await.unwrap(), None);
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Several identities at the same MCP server, kept apart: a view of a store whose tokens are
//! filed under an account name as well as their issuer and resource.

use std::sync::Arc;

use super::{StoreLock, TokenStore};
use crate::Error;
use crate::registration::ClientCredentials;
use crate::token::TokenSet;

/// A view of `inner` that keeps this account's tokens apart from every other account's,
/// for the same authorization server and resource: a person and a machine client (or two
/// people) at one MCP server never receive each other's tokens.
///
/// Tokens are filed under the resource with `#account=NAME` appended. A resource identifier
/// has no fragment (RFC 8707 §2), so no real resource and no other account can share the
/// key. The client's identity at an authorization server (its registration) is shared by
/// every account: it names the application, not the person.
///
/// ```
/// use std::sync::Arc;
/// use mcpauth_client::{AccountStore, MemoryStore, OAuthClient};
///
/// let shared = Arc::new(MemoryStore::default());
/// let work = OAuthClient::builder("https://mcp.example.com/mcp")
///     .store(Arc::new(AccountStore::new(shared.clone(), "work")))
///     .build()?;
/// let personal = OAuthClient::builder("https://mcp.example.com/mcp")
///     .store(Arc::new(AccountStore::new(shared, "personal")))
///     .build()?;
/// # let _ = (work, personal);
/// # Ok::<(), mcpauth_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AccountStore {
    inner: Arc<dyn TokenStore>,
    suffix: String,
}

impl AccountStore {
    /// The tokens of account `name` in `inner`.
    pub fn new(inner: Arc<dyn TokenStore>, name: &str) -> Self {
        Self {
            inner,
            suffix: format!("#account={name}"),
        }
    }

    fn key(&self, resource: &str) -> String {
        format!("{resource}{}", self.suffix)
    }
}

#[async_trait::async_trait]
impl TokenStore for AccountStore {
    async fn load_credentials(&self, issuer: &str) -> Result<Option<ClientCredentials>, Error> {
        self.inner.load_credentials(issuer).await
    }

    async fn save_credentials(&self, credentials: &ClientCredentials) -> Result<(), Error> {
        self.inner.save_credentials(credentials).await
    }

    async fn load_tokens(&self, issuer: &str, resource: &str) -> Result<Option<TokenSet>, Error> {
        self.inner.load_tokens(issuer, &self.key(resource)).await
    }

    async fn save_tokens(
        &self,
        issuer: &str,
        resource: &str,
        tokens: &TokenSet,
    ) -> Result<(), Error> {
        self.inner
            .save_tokens(issuer, &self.key(resource), tokens)
            .await
    }

    async fn delete_tokens(&self, issuer: &str, resource: &str) -> Result<(), Error> {
        self.inner.delete_tokens(issuer, &self.key(resource)).await
    }

    /// This account's token sets only, under their plain resource.
    async fn list_tokens(&self) -> Result<Vec<(String, String, TokenSet)>, Error> {
        Ok(self
            .inner
            .list_tokens()
            .await?
            .into_iter()
            .filter_map(|(issuer, key, tokens)| {
                let resource = key.strip_suffix(self.suffix.as_str())?.to_owned();
                // A name that itself holds `#account=` cannot reach into another's slot.
                (!resource.contains('#')).then_some((issuer, resource, tokens))
            })
            .collect())
    }

    async fn lock_tokens(&self, issuer: &str, resource: &str) -> Result<StoreLock, Error> {
        self.inner.lock_tokens(issuer, &self.key(resource)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::MemoryStore;

    fn tokens(access: &str) -> TokenSet {
        serde_json::from_value(
            serde_json::json!({ "access_token": access, "token_type": "Bearer" }),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn two_accounts_at_one_server_never_read_each_others_tokens() {
        let shared: Arc<dyn TokenStore> = Arc::new(MemoryStore::default());
        let person = AccountStore::new(shared.clone(), "local");
        let robot = AccountStore::new(shared.clone(), "bot");
        let (issuer, resource) = ("https://as.example", "https://mcp.example/mcp");
        person
            .save_tokens(issuer, resource, &tokens("person"))
            .await
            .unwrap();
        robot
            .save_tokens(issuer, resource, &tokens("robot"))
            .await
            .unwrap();
        let read = |store: &AccountStore| {
            let store = store.clone();
            async move {
                store
                    .load_tokens(issuer, resource)
                    .await
                    .unwrap()
                    .unwrap()
                    .access_token
            }
        };
        assert_eq!(read(&person).await, "person");
        assert_eq!(read(&robot).await, "robot");
        // Nothing is filed under the plain resource, and each account lists only its own.
        assert!(
            shared
                .load_tokens(issuer, resource)
                .await
                .unwrap()
                .is_none()
        );
        let listed = person.list_tokens().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1, resource);
        assert_eq!(listed[0].2.access_token, "person");
        robot.delete_tokens(issuer, resource).await.unwrap();
        assert_eq!(read(&person).await, "person");
        assert!(robot.load_tokens(issuer, resource).await.unwrap().is_none());
    }
}

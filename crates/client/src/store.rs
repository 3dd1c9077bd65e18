//! Where the client keeps what it learned: its identity per authorization server, and tokens
//! per authorization server *and* resource (a token for one MCP server is never sent to
//! another, and credentials from one authorization server are never shown to another).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Error;
use crate::registration::ClientCredentials;
use crate::token::TokenSet;

/// Storage for client identities and tokens.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The client's identity at `issuer`, if registered.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn load_credentials(&self, issuer: &str) -> Result<Option<ClientCredentials>, Error>;

    /// Keeps `credentials` (under their issuer).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn save_credentials(&self, credentials: &ClientCredentials) -> Result<(), Error>;

    /// The tokens for `resource` from `issuer`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn load_tokens(&self, issuer: &str, resource: &str) -> Result<Option<TokenSet>, Error>;

    /// Keeps `tokens` for `resource` from `issuer`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn save_tokens(
        &self,
        issuer: &str,
        resource: &str,
        tokens: &TokenSet,
    ) -> Result<(), Error>;

    /// Forgets the tokens for `resource` from `issuer`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn delete_tokens(&self, issuer: &str, resource: &str) -> Result<(), Error>;
}

/// Everything in memory: tests, and processes that authorize every time they start.
#[derive(Debug, Default)]
pub struct MemoryStore {
    credentials: Mutex<HashMap<String, ClientCredentials>>,
    tokens: Mutex<HashMap<(String, String), TokenSet>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn load_credentials(&self, issuer: &str) -> Result<Option<ClientCredentials>, Error> {
        Ok(locked(&self.credentials).get(issuer).cloned())
    }

    async fn save_credentials(&self, credentials: &ClientCredentials) -> Result<(), Error> {
        locked(&self.credentials).insert(credentials.issuer.clone(), credentials.clone());
        Ok(())
    }

    async fn load_tokens(&self, issuer: &str, resource: &str) -> Result<Option<TokenSet>, Error> {
        Ok(locked(&self.tokens)
            .get(&(issuer.to_owned(), resource.to_owned()))
            .cloned())
    }

    async fn save_tokens(
        &self,
        issuer: &str,
        resource: &str,
        tokens: &TokenSet,
    ) -> Result<(), Error> {
        locked(&self.tokens).insert((issuer.to_owned(), resource.to_owned()), tokens.clone());
        Ok(())
    }

    async fn delete_tokens(&self, issuer: &str, resource: &str) -> Result<(), Error> {
        locked(&self.tokens).remove(&(issuer.to_owned(), resource.to_owned()));
        Ok(())
    }
}

//! Where the client keeps what it learned: its identity per authorization server, and tokens
//! per authorization server *and* resource (a token for one MCP server is never sent to
//! another, and credentials from one authorization server are never shown to another).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Error;
use crate::registration::ClientCredentials;
use crate::token::TokenSet;

pub mod account;
pub mod file;

pub use account::AccountStore;
pub use file::{FileStore, KeySource};

/// A lock on one entry's tokens, held until dropped (see [`TokenStore::lock_tokens`]).
#[must_use = "the lock is released when this is dropped"]
pub struct StoreLock(Option<Box<dyn Send + Sync>>);

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StoreLock(held)"
        } else {
            "StoreLock(none)"
        })
    }
}

impl StoreLock {
    /// No lock: stores used by one process only.
    pub fn none() -> Self {
        Self(None)
    }

    /// A lock released when `guard` drops.
    pub fn holding(guard: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(guard)))
    }
}

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

    /// Every kept token set, with its issuer and resource.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn list_tokens(&self) -> Result<Vec<(String, String, TokenSet)>, Error>;

    /// Locks the tokens of `resource` from `issuer` against other *processes* sharing the
    /// store, until the returned lock drops: a refresh holds it, so two processes never spend
    /// the same rotating refresh token. Stores used by one process need not lock.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`].
    async fn lock_tokens(&self, issuer: &str, resource: &str) -> Result<StoreLock, Error> {
        let _ = (issuer, resource);
        Ok(StoreLock::none())
    }
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

    async fn list_tokens(&self) -> Result<Vec<(String, String, TokenSet)>, Error> {
        Ok(locked(&self.tokens)
            .iter()
            .map(|((issuer, resource), tokens)| (issuer.clone(), resource.clone(), tokens.clone()))
            .collect())
    }
}

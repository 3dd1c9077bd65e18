//! An in-memory model for tests, examples and single-process embedding. Everything is lost
//! when the process ends.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::model::{
    AuthorizationCodeRecord, ClientRecord, ClientStore, CodeStore, ConsumeCode, GrantRecord,
    GrantStore, ModelBase, RefreshTokenRecord, RefreshTokenStore, RotateRefresh,
};
use crate::time::UnixTime;

/// The in-memory model failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryModelError {
    /// A record with the same key already exists.
    #[error("a {0} with this key already exists")]
    Duplicate(&'static str),
}

#[derive(Default)]
struct Tables {
    clients: HashMap<String, ClientRecord>,
    grants: HashMap<String, GrantRecord>,
    codes: HashMap<String, AuthorizationCodeRecord>,
    refresh: HashMap<String, RefreshTokenRecord>,
}

/// An [`crate::OAuthServerModel`] kept in process memory behind one mutex, so every call is
/// atomic.
#[derive(Default)]
pub struct MemoryModel {
    tables: Mutex<Tables>,
}

impl std::fmt::Debug for MemoryModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryModel").finish_non_exhaustive()
    }
}

impl MemoryModel {
    /// An empty model.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a table half-written (each call does
        // one insert or update), so the data is still consistent.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ModelBase for MemoryModel {
    type Error = MemoryModelError;
}

#[async_trait]
impl ClientStore for MemoryModel {
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, Self::Error> {
        Ok(self.tables().clients.get(client_id).cloned())
    }

    async fn insert_client(&self, client: ClientRecord) -> Result<(), Self::Error> {
        let mut tables = self.tables();
        if tables.clients.contains_key(&client.client_id) {
            return Err(MemoryModelError::Duplicate("client"));
        }
        tables.clients.insert(client.client_id.clone(), client);
        Ok(())
    }
}

#[async_trait]
impl GrantStore for MemoryModel {
    async fn insert_grant(&self, grant: GrantRecord) -> Result<(), Self::Error> {
        let mut tables = self.tables();
        if tables.grants.contains_key(&grant.grant_id) {
            return Err(MemoryModelError::Duplicate("grant"));
        }
        tables.grants.insert(grant.grant_id.clone(), grant);
        Ok(())
    }

    async fn find_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>, Self::Error> {
        Ok(self.tables().grants.get(grant_id).cloned())
    }

    async fn revoke_grant(&self, grant_id: &str, now: UnixTime) -> Result<(), Self::Error> {
        if let Some(grant) = self.tables().grants.get_mut(grant_id) {
            grant.revoked_at.get_or_insert(now);
        }
        Ok(())
    }
}

#[async_trait]
impl CodeStore for MemoryModel {
    async fn insert_code(&self, code: AuthorizationCodeRecord) -> Result<(), Self::Error> {
        let mut tables = self.tables();
        if tables.codes.contains_key(&code.code_hash) {
            return Err(MemoryModelError::Duplicate("code"));
        }
        tables.codes.insert(code.code_hash.clone(), code);
        Ok(())
    }

    async fn find_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<AuthorizationCodeRecord>, Self::Error> {
        Ok(self.tables().codes.get(code_hash).cloned())
    }

    async fn consume_code(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<ConsumeCode, Self::Error> {
        let mut tables = self.tables();
        Ok(match tables.codes.get_mut(code_hash) {
            None => ConsumeCode::NotFound,
            Some(code) if code.consumed_at.is_some() => ConsumeCode::Reused(code.clone()),
            Some(code) => {
                code.consumed_at = Some(now);
                ConsumeCode::Fresh(code.clone())
            }
        })
    }
}

#[async_trait]
impl RefreshTokenStore for MemoryModel {
    async fn insert_refresh(&self, token: RefreshTokenRecord) -> Result<(), Self::Error> {
        let mut tables = self.tables();
        if tables.refresh.contains_key(&token.token_hash) {
            return Err(MemoryModelError::Duplicate("refresh token"));
        }
        tables.refresh.insert(token.token_hash.clone(), token);
        Ok(())
    }

    async fn find_refresh(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, Self::Error> {
        Ok(self.tables().refresh.get(token_hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new: RefreshTokenRecord,
        now: UnixTime,
    ) -> Result<RotateRefresh, Self::Error> {
        let mut tables = self.tables();
        if tables.refresh.contains_key(&new.token_hash) {
            return Err(MemoryModelError::Duplicate("refresh token"));
        }
        let outcome = match tables.refresh.get_mut(old_hash) {
            None => return Ok(RotateRefresh::NotFound),
            Some(old) => match old.rotated_at {
                Some(rotated_at) => RotateRefresh::Reused {
                    grant_id: old.grant_id.clone(),
                    rotated_at,
                },
                None => {
                    old.rotated_at = Some(now);
                    RotateRefresh::Rotated
                }
            },
        };
        if outcome == RotateRefresh::Rotated {
            tables.refresh.insert(new.token_hash.clone(), new);
        }
        Ok(outcome)
    }
}

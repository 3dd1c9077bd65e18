//! Registered clients kept in memory for a few seconds.
//!
//! Every token, introspection and revocation request authenticates a client, and a client
//! record changes rarely; without a cache, each request is a database round trip (on SQLite, a
//! hop to the connection's worker thread and a file lock). Entries live at most the store's
//! `client_cache_ttl`: a change made through this store is seen at once (the entry is dropped),
//! a change made by another instance within that time. Unknown client ids are never cached, so
//! a client registered on another instance is found at once.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use mcpauth_token_engine::{ClientId, ClientRecord};

/// Entries beyond this are not added (a flood of distinct client ids cannot grow memory).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub(crate) struct ClientCache {
    ttl: Duration,
    entries: RwLock<HashMap<ClientId, (Instant, ClientRecord)>>,
}

impl ClientCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cached record, if fresh.
    pub(crate) fn get(&self, client_id: &ClientId) -> Option<ClientRecord> {
        self.get_at(client_id, Instant::now())
    }

    pub(crate) fn put(&self, record: &ClientRecord) {
        self.put_at(record, Instant::now());
    }

    // The clock is read by the two calls above only, so the tests step it.
    fn get_at(&self, client_id: &ClientId, now: Instant) -> Option<ClientRecord> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let (stored, record) = entries.get(client_id)?;
        (now.saturating_duration_since(*stored) < self.ttl).then(|| record.clone())
    }

    fn put_at(&self, record: &ClientRecord, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| now.saturating_duration_since(*stored) < ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(record.client_id.clone(), (now, record.clone()));
    }

    pub(crate) fn forget(&self, client_id: &ClientId) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(client_id);
    }

    pub(crate) fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn client(id: &str) -> ClientRecord {
        serde_json::from_value(serde_json::json!({
            "client_id": id,
            "metadata": {},
            "auth_method": "none",
            "created_at": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_cached_client_expires_after_the_ttl() {
        let cache = ClientCache::new(Duration::from_secs(5));
        let start = Instant::now();
        cache.put_at(&client("a"), start);
        assert!(
            cache
                .get_at(
                    &mcpauth_token_engine::ClientId::from("a"),
                    start + Duration::from_millis(4_999)
                )
                .is_some()
        );
        assert!(
            cache
                .get_at(
                    &mcpauth_token_engine::ClientId::from("a"),
                    start + Duration::from_secs(5)
                )
                .is_none()
        );
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = ClientCache::new(Duration::ZERO);
        cache.put(&client("a"));
        assert!(
            cache
                .get(&mcpauth_token_engine::ClientId::from("a"))
                .is_none()
        );
    }

    #[test]
    fn forgetting_drops_the_entry_at_once() {
        let cache = ClientCache::new(Duration::from_secs(60));
        cache.put(&client("a"));
        cache.forget(&mcpauth_token_engine::ClientId::from("a"));
        assert!(
            cache
                .get(&mcpauth_token_engine::ClientId::from("a"))
                .is_none()
        );
    }
}

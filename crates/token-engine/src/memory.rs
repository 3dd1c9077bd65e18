//! An in-memory model for tests, examples and single-process embedding. Everything is lost
//! when the process ends.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::UnixTime;
use crate::model::{
    AccessTokenRecord, AccessTokenStore, AuthorizationCodeRecord, ClientId, ClientRecord,
    ClientStore, CodeStore, ConsumeCode, DeviceAuthorizationRecord, DeviceDecision, DeviceState,
    DeviceStore, GrantId, GrantRecord, GrantStore, ModelBase, RateLimitKey, RateLimitStore,
    RefreshTokenRecord, RefreshTokenStore, ReplayStore, RotateRefresh, SecretHash,
};

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
    clients: HashMap<ClientId, ClientRecord>,
    grants: HashMap<GrantId, GrantRecord>,
    codes: HashMap<SecretHash, AuthorizationCodeRecord>,
    refresh: HashMap<SecretHash, RefreshTokenRecord>,
    access: HashMap<SecretHash, AccessTokenRecord>,
    devices: HashMap<SecretHash, DeviceAuthorizationRecord>,
    /// user-code hash → device-code hash
    user_codes: HashMap<SecretHash, SecretHash>,
    /// key → (window start, hits, window length)
    counters: HashMap<String, (u64, u32, u64)>,
    /// one-time key → expires at
    seen: HashMap<String, UnixTime>,
    /// The time the last call that carries one brought, in seconds (the injected clock as
    /// the engine last read it).
    latest_now: u64,
    /// Records held at which the next automatic sweep runs (doubling with what remains).
    next_sweep_at: usize,
}

/// Records held before the first automatic sweep.
const FIRST_SWEEP_AT: usize = 4096;

/// What [`MemoryModel::sweep_expired`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// Authorization codes past their expiry (used or not).
    pub codes: usize,
    /// Refresh tokens past their expiry (rotated or not).
    pub refresh_tokens: usize,
    /// Opaque access tokens past their expiry.
    pub access_tokens: usize,
    /// Device authorizations past their expiry, with their user codes.
    pub devices: usize,
    /// One-time keys (`jti`s) past their expiry.
    pub replay_keys: usize,
    /// Rate-limit counters whose window has ended.
    pub counters: usize,
}

impl Tables {
    /// Keeps the most recent clock reading (not the largest: one reading from a clock that
    /// jumped ahead must not make every later sweep remove live records).
    fn saw(&mut self, now: UnixTime) {
        self.latest_now = now.0;
    }

    fn records(&self) -> usize {
        self.codes.len()
            + self.refresh.len()
            + self.access.len()
            + self.devices.len()
            + self.seen.len()
            + self.counters.len()
    }

    /// Removes what expired by `now`: what the SQL store's sweeper deletes, and counters whose
    /// window has ended. Grants and clients stay (a grant is small, and revocation and
    /// introspection read it).
    fn sweep(&mut self, now: UnixTime) -> Swept {
        fn drop_expired<K, V>(table: &mut HashMap<K, V>, expired: impl Fn(&V) -> bool) -> usize {
            let before = table.len();
            table.retain(|_, v| !expired(v));
            before - table.len()
        }
        let devices = drop_expired(&mut self.devices, |d| d.expires_at <= now);
        let devices_left = &self.devices;
        self.user_codes
            .retain(|_, device| devices_left.contains_key(device));
        Swept {
            codes: drop_expired(&mut self.codes, |c| c.expires_at <= now),
            refresh_tokens: drop_expired(&mut self.refresh, |t| t.expires_at <= now),
            access_tokens: drop_expired(&mut self.access, |t| t.expires_at <= now),
            devices,
            replay_keys: drop_expired(&mut self.seen, |until| *until <= now),
            counters: drop_expired(&mut self.counters, |(start, _, window)| {
                start.saturating_add(*window) <= now.0
            }),
        }
    }

    /// After an insert: sweeps at the latest time seen once the tables have doubled since the
    /// last sweep, so memory follows what is live (amortized: each record is looked at a
    /// bounded number of times).
    fn sweep_when_grown(&mut self) {
        let held = self.records();
        if held >= self.next_sweep_at.max(FIRST_SWEEP_AT) {
            self.sweep(UnixTime(self.latest_now));
            self.next_sweep_at = (self.records() * 2).max(FIRST_SWEEP_AT);
        }
    }
}

/// Stores a new refresh token, refusing a duplicate hash without changing anything.
fn insert_new_refresh(
    refresh: &mut HashMap<SecretHash, RefreshTokenRecord>,
    token: RefreshTokenRecord,
) -> Result<(), MemoryModelError> {
    if refresh.contains_key(&token.token_hash) {
        return Err(MemoryModelError::Duplicate("refresh token"));
    }
    refresh.insert(token.token_hash.clone(), token);
    Ok(())
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

    /// Removes every record that expired by `now` (codes, refresh tokens, opaque access
    /// tokens, device authorizations, one-time keys) and rate-limit counters whose window has
    /// ended, as the SQL store's sweeper does. The model also sweeps by itself, at the latest time the
    /// engine brought, each time it has doubled in size since the last sweep; call this to
    /// sweep on a schedule of your own (a test's stepped clock, a quiet moment).
    pub fn sweep_expired(&self, now: UnixTime) -> Swept {
        let mut tables = self.tables();
        let swept = tables.sweep(now);
        tables.next_sweep_at = (tables.records() * 2).max(FIRST_SWEEP_AT);
        swept
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

    fn devices(&self) -> Option<&dyn DeviceStore<Error = MemoryModelError>> {
        Some(self)
    }

    fn opaque_tokens(&self) -> Option<&dyn AccessTokenStore<Error = MemoryModelError>> {
        Some(self)
    }
}

#[async_trait]
impl ClientStore for MemoryModel {
    async fn find_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, Self::Error> {
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

    async fn update_client(&self, client: ClientRecord) -> Result<bool, Self::Error> {
        let mut tables = self.tables();
        Ok(match tables.clients.get_mut(&client.client_id) {
            Some(existing) => {
                *existing = client;
                true
            }
            None => false,
        })
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, Self::Error> {
        Ok(self.tables().clients.remove(client_id).is_some())
    }

    async fn count_clients(&self) -> Result<u64, Self::Error> {
        let tables = self.tables();
        let counted = tables
            .clients
            .values()
            .filter(|c| {
                c.document_expires_at.is_none()
                    || tables.grants.values().any(|g| g.client_id == c.client_id)
            })
            .count();
        Ok(u64::try_from(counted).unwrap_or(u64::MAX))
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

    async fn find_grant(&self, grant_id: &GrantId) -> Result<Option<GrantRecord>, Self::Error> {
        Ok(self.tables().grants.get(grant_id).cloned())
    }

    async fn revoke_grant(&self, grant_id: &GrantId, now: UnixTime) -> Result<(), Self::Error> {
        if let Some(grant) = self.tables().grants.get_mut(grant_id) {
            grant.revoked_at.get_or_insert(now);
        }
        Ok(())
    }

    async fn revoke_client_grants(
        &self,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<(), Self::Error> {
        for grant in self
            .tables()
            .grants
            .values_mut()
            .filter(|g| g.client_id == *client_id)
        {
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
        tables.sweep_when_grown();
        Ok(())
    }

    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<AuthorizationCodeRecord>, Self::Error> {
        Ok(self.tables().codes.get(code_hash).cloned())
    }

    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        now: UnixTime,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<ConsumeCode, Self::Error> {
        let mut tables = self.tables();
        let tables = &mut *tables;
        tables.saw(now);
        Ok(match tables.codes.get_mut(code_hash) {
            None => ConsumeCode::NotFound,
            Some(code) if code.consumed_at.is_some() => ConsumeCode::Reused(code.clone()),
            Some(code) => {
                // The token first: a refused insert leaves the code unused, as a rolled-back
                // transaction would.
                if let Some(token) = refresh {
                    insert_new_refresh(&mut tables.refresh, token)?;
                }
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
        insert_new_refresh(&mut tables.refresh, token)?;
        tables.sweep_when_grown();
        Ok(())
    }

    async fn find_refresh(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<RefreshTokenRecord>, Self::Error> {
        Ok(self.tables().refresh.get(token_hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        new: RefreshTokenRecord,
        sealed_successor: Option<String>,
        now: UnixTime,
    ) -> Result<RotateRefresh, Self::Error> {
        let mut tables = self.tables();
        tables.saw(now);
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
                    old.sealed_successor = sealed_successor;
                    RotateRefresh::Rotated
                }
            },
        };
        if outcome == RotateRefresh::Rotated {
            tables.refresh.insert(new.token_hash.clone(), new);
            tables.sweep_when_grown();
        }
        Ok(outcome)
    }
}

#[async_trait]
impl DeviceStore for MemoryModel {
    async fn insert_device(&self, record: DeviceAuthorizationRecord) -> Result<(), Self::Error> {
        let mut tables = self.tables();
        if tables.devices.contains_key(&record.device_code_hash)
            || tables.user_codes.contains_key(&record.user_code_hash)
        {
            return Err(MemoryModelError::Duplicate("device authorization"));
        }
        tables.user_codes.insert(
            record.user_code_hash.clone(),
            record.device_code_hash.clone(),
        );
        tables
            .devices
            .insert(record.device_code_hash.clone(), record);
        tables.sweep_when_grown();
        Ok(())
    }

    async fn find_device_by_user_code(
        &self,
        user_code_hash: &SecretHash,
    ) -> Result<Option<DeviceAuthorizationRecord>, Self::Error> {
        let tables = self.tables();
        Ok(tables
            .user_codes
            .get(user_code_hash)
            .and_then(|d| tables.devices.get(d))
            .cloned())
    }

    async fn poll_device(
        &self,
        device_code_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<DeviceAuthorizationRecord>, Self::Error> {
        let mut tables = self.tables();
        Ok(tables.devices.get_mut(device_code_hash).map(|record| {
            let before = record.clone();
            record.last_polled_at = Some(now);
            before
        }))
    }

    async fn set_device_interval(
        &self,
        device_code_hash: &SecretHash,
        interval: u64,
    ) -> Result<(), Self::Error> {
        if let Some(record) = self.tables().devices.get_mut(device_code_hash) {
            record.interval = interval;
        }
        Ok(())
    }

    async fn decide_device(
        &self,
        user_code_hash: &SecretHash,
        decision: DeviceDecision,
        now: UnixTime,
    ) -> Result<bool, Self::Error> {
        let mut tables = self.tables();
        let tables = &mut *tables;
        let Some(device_hash) = tables.user_codes.get(user_code_hash).cloned() else {
            return Ok(false);
        };
        let Some(record) = tables.devices.get_mut(&device_hash) else {
            return Ok(false);
        };
        if record.state != DeviceState::Pending || record.expires_at <= now {
            return Ok(false);
        }
        match decision {
            DeviceDecision::Approve { grant } => {
                if tables.grants.contains_key(&grant.grant_id) {
                    return Err(MemoryModelError::Duplicate("grant"));
                }
                record.state = DeviceState::Approved;
                record.subject = Some(grant.subject.clone());
                record.grant_id = Some(grant.grant_id.clone());
                tables.grants.insert(grant.grant_id.clone(), grant);
            }
            DeviceDecision::Deny => record.state = DeviceState::Denied,
        }
        Ok(true)
    }

    async fn consume_device(
        &self,
        device_code_hash: &SecretHash,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<bool, Self::Error> {
        let mut tables = self.tables();
        let tables = &mut *tables;
        match tables.devices.get_mut(device_code_hash) {
            Some(record) if record.state == DeviceState::Approved => {
                if let Some(token) = refresh {
                    insert_new_refresh(&mut tables.refresh, token)?;
                }
                record.state = DeviceState::Consumed;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl RateLimitStore for MemoryModel {
    async fn hit(
        &self,
        key: &RateLimitKey,
        now: UnixTime,
        window: u64,
    ) -> Result<u32, Self::Error> {
        self.add_hits(key, now, window, 1).await
    }

    async fn add_hits(
        &self,
        key: &RateLimitKey,
        now: UnixTime,
        window: u64,
        hits: u32,
    ) -> Result<u32, Self::Error> {
        let window = window.max(1);
        let start = now.0 - now.0 % window;
        let mut tables = self.tables();
        tables.saw(now);
        let entry = tables
            .counters
            .entry(key.as_str().to_owned())
            .or_insert((start, 0, window));
        if entry.0 > start {
            // A late addition for a window that has ended: the later one stands.
            return Ok(entry.1);
        }
        if entry.0 != start {
            *entry = (start, 0, window);
        }
        entry.1 = entry.1.saturating_add(hits);
        let total = entry.1;
        tables.sweep_when_grown();
        Ok(total)
    }
}

#[async_trait]
impl ReplayStore for MemoryModel {
    async fn remember_once(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, Self::Error> {
        let mut tables = self.tables();
        tables.saw(now);
        match tables.seen.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                tables.seen.insert(key.to_owned(), expires_at);
                tables.sweep_when_grown();
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl AccessTokenStore for MemoryModel {
    async fn insert_access_token(&self, record: AccessTokenRecord) -> Result<(), Self::Error> {
        let mut tables = self.tables();
        if tables.access.contains_key(&record.token_hash) {
            return Err(MemoryModelError::Duplicate("access token"));
        }
        tables.access.insert(record.token_hash.clone(), record);
        tables.sweep_when_grown();
        Ok(())
    }

    async fn find_access_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<AccessTokenRecord>, Self::Error> {
        Ok(self.tables().access.get(token_hash).cloned())
    }

    async fn delete_access_token(&self, token_hash: &SecretHash) -> Result<(), Self::Error> {
        self.tables().access.remove(token_hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::testing::{NOW, code, grant, refresh};

    // What expired is removed, what is live stays, and a device's user code goes with it.
    #[tokio::test]
    async fn sweep_expired_removes_what_expired_and_keeps_what_is_live() {
        let model = MemoryModel::new();
        let grant = grant("client-1");
        let expired_code = code(&grant);
        model.insert_code(expired_code.clone()).await.unwrap();
        let live = refresh(&grant);
        model.insert_refresh(live.clone()).await.unwrap();
        let mut gone = refresh(&grant);
        gone.expires_at = NOW.plus(30);
        model.insert_refresh(gone.clone()).await.unwrap();
        assert!(
            model
                .remember_once("jti-1", NOW.plus(60), NOW)
                .await
                .unwrap()
        );
        model
            .hit(&RateLimitKey::new("kit", "caller"), NOW, 60)
            .await
            .unwrap();
        model
            .hit(&RateLimitKey::new("kit-hour", "caller"), NOW, 3600)
            .await
            .unwrap();

        let swept = model.sweep_expired(NOW.plus(60));
        assert_eq!(swept.codes, 1);
        assert_eq!(swept.refresh_tokens, 1);
        assert_eq!(swept.replay_keys, 1);
        // The minute's counter ended; the hour's has not.
        assert_eq!(swept.counters, 1);
        assert!(
            model
                .find_code(&expired_code.code_hash)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            model
                .find_refresh(&gone.token_hash)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            model
                .find_refresh(&live.token_hash)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            model
                .hit(&RateLimitKey::new("kit-hour", "caller"), NOW.plus(60), 3600)
                .await
                .unwrap(),
            2,
            "a live counter keeps counting"
        );
        // Nothing more to sweep at the same time.
        assert_eq!(model.sweep_expired(NOW.plus(60)), Swept::default());
    }

    // Under a long load of short-lived codes the model sweeps by itself, at the time the
    // engine brings: what it holds follows what is live, not everything ever issued.
    #[tokio::test]
    async fn the_model_sweeps_by_itself_as_it_grows() {
        let model = MemoryModel::new();
        let grant = grant("client-1");
        let per_second = 200;
        let mut now = NOW;
        for i in 0..(per_second * 600) {
            if i % per_second == 0 {
                now = now.plus(1);
                // The engine brings the time with each call that has one.
                model
                    .hit(&RateLimitKey::new("clock", "tick"), now, 60)
                    .await
                    .unwrap();
            }
            let mut issued = code(&grant);
            issued.expires_at = now.plus(60);
            model.insert_code(issued).await.unwrap();
        }
        let held = model.tables().codes.len();
        let live = usize::try_from(per_second * 60).unwrap();
        assert!(
            held <= 2 * live.max(FIRST_SWEEP_AT) + 2,
            "{held} codes held for {live} live ones"
        );
    }
}

//! The model test kit: behavioural tests that every [`OAuthServerModel`] must pass,
//! concurrency races included. Enable the `testing` feature and let
//! [`model_test_kit!`](crate::model_test_kit) write one test per rule for your model, each on
//! a model of its own:
//!
//! ```no_run
//! # use mcpauth_token_engine::MemoryModel as MyModel;
//! // tests/model_kit.rs of your crate (needs tokio with `macros` and `rt-multi-thread`)
//! mcpauth_token_engine::model_test_kit!(my_model, async { MyModel::new() });
//! # fn main() {}
//! ```
//!
//! or call [`run_model_test_kit`] to run every rule on one model (twice on the same database,
//! say, or on two connection pools at once). A rule that fails names itself, the rule the
//! model broke, and the model's own error when a call failed. Records use fresh
//! random-looking ids, so the kit can run on a database that already holds data.

use std::sync::atomic::{AtomicU64, Ordering};

use mcpauth_oauth_types::ClientMetadata;
use sha2::{Digest, Sha256};

use crate::UnixTime;
use crate::model::{
    AccessTokenRecord, AuthorizationCodeRecord, ClientRecord, ConsumeCode,
    DeviceAuthorizationRecord, DeviceDecision, DeviceState, GrantRecord, OAuthServerModel,
    RefreshTokenRecord, RotateRefresh, TokenEndpointAuthMethod,
};
use crate::model::{ClientId, RateLimitKey, SecretHash};
use crate::random::{RandomError, SecureRandom};

/// A deterministic random source for tests: SHA-256 of a seed and a counter.
///
/// # Security Warning
///
/// Predictable by design. Never use it outside tests.
#[derive(Debug)]
pub struct SeededRandom {
    seed: u64,
    counter: AtomicU64,
}

impl SeededRandom {
    /// A source that yields the same bytes for the same seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(32) {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let block = Sha256::new()
                .chain_update(self.seed.to_le_bytes())
                .chain_update(n.to_le_bytes())
                .finalize();
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// The model's answer, or a panic naming the call and the model's own error: a rule that
/// fails says why the model failed, never just `None`.
trait Answered<T> {
    fn answered(self, call: &str) -> T;
}

impl<T, E: std::fmt::Display> Answered<T> for Result<T, E> {
    #[track_caller]
    fn answered(self, call: &str) -> T {
        match self {
            Ok(value) => value,
            Err(e) => panic!("{call} failed: {e}"),
        }
    }
}

fn unique<T: From<String>>(prefix: &str) -> T {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    T::from(format!("kit-{prefix}-{pid}-{n}"))
}

/// The hash of a fresh secret.
fn hashed(prefix: &str) -> SecretHash {
    SecretHash::of(&unique::<String>(prefix))
}

const NOW: UnixTime = UnixTime(1_800_000_000);

fn grant(client_id: &str) -> GrantRecord {
    GrantRecord {
        grant_id: unique("grant"),
        client_id: ClientId::from(client_id),
        subject: "user-1".into(),
        scope: "mcp".into(),
        resources: vec!["https://mcp.example/mcp".into()],
        created_at: NOW,
        revoked_at: None,
    }
}

fn code(grant: &GrantRecord) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        code_hash: hashed("code"),
        grant_id: grant.grant_id.clone(),
        client_id: grant.client_id.clone(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        redirect_uri_in_request: true,
        code_challenge: "c".repeat(43),
        subject: grant.subject.clone(),
        scope: grant.scope.clone(),
        resources: grant.resources.clone(),
        expires_at: NOW.plus(60),
        consumed_at: None,
    }
}

fn refresh(grant: &GrantRecord) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hashed("refresh"),
        grant_id: grant.grant_id.clone(),
        client_id: grant.client_id.clone(),
        subject: grant.subject.clone(),
        scope: grant.scope.clone(),
        resources: grant.resources.clone(),
        issued_at: NOW,
        expires_at: NOW.plus(3600),
        rotated_at: None,
        sealed_successor: None,
    }
}

async fn stored_refresh_tokens<M: OAuthServerModel + ?Sized>(
    model: &M,
    tokens: &[RefreshTokenRecord],
) -> usize {
    let mut stored = 0;
    for token in tokens {
        if model
            .find_refresh(&token.token_hash)
            .await
            .answered("find_refresh")
            .is_some()
        {
            stored += 1;
        }
    }
    stored
}

/// One `#[tokio::test]` per rule of the kit, in a module `$name`, each on a model of its own
/// made by the async block `$make` (names from the calling module are in scope). The rules of
/// the optional stores are among them: a model that keeps no device authorizations or no
/// opaque tokens fails those (run [`run_model_test_kit`](crate::testing::run_model_test_kit),
/// which checks the stores a model has, or the required rules one by one):
///
/// ```no_run
/// mcpauth_token_engine::model_test_kit!(memory, async { mcpauth_token_engine::MemoryModel::new() });
/// # fn main() {}
/// ```
///
/// The tests run on tokio's multi-threaded runtime with two workers, so the races really race.
#[macro_export]
macro_rules! model_test_kit {
    ($name:ident, $make:expr) => {
        $crate::model_test_kit!(@rules $name, $make;
            clients_round_trip,
            grants_revoke_idempotently,
            code_is_consumed_exactly_once,
            concurrent_code_redemptions_have_one_winner,
            refresh_rotation_marks_old_and_stores_new,
            concurrent_refresh_rotations_have_one_winner,
            device_authorizations_move_through_their_states,
            concurrent_device_consumptions_have_one_winner,
            rate_limit_counters_count_per_window,
            one_time_keys_are_remembered_until_they_expire,
            opaque_access_tokens_round_trip
        );
    };
    (@rules $name:ident, $make:expr; $($rule:ident),*) => {
        mod $name {
            #[allow(unused_imports, reason = "the model's constructor may use the caller's names")]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    let model = $make.await;
                    $crate::testing::$rule(&model).await;
                }
            )*
        }
    };
}

/// Runs every rule of the kit on `model` (see [`model_test_kit!`](crate::model_test_kit) for
/// one test per rule).
pub async fn run_model_test_kit<M: OAuthServerModel + ?Sized>(model: &M) {
    clients_round_trip(model).await;
    grants_revoke_idempotently(model).await;
    code_is_consumed_exactly_once(model).await;
    concurrent_code_redemptions_have_one_winner(model).await;
    refresh_rotation_marks_old_and_stores_new(model).await;
    concurrent_refresh_rotations_have_one_winner(model).await;
    rate_limit_counters_count_per_window(model).await;
    one_time_keys_are_remembered_until_they_expire(model).await;
    // The optional stores' rules, for the stores the model keeps.
    if model.devices().is_some() {
        device_authorizations_move_through_their_states(model).await;
        concurrent_device_consumptions_have_one_winner(model).await;
    }
    if model.opaque_tokens().is_some() {
        opaque_access_tokens_round_trip(model).await;
    }
}

/// Opaque access tokens are found by hash as stored, and gone once deleted.
pub async fn opaque_access_tokens_round_trip<M: OAuthServerModel + ?Sized>(model: &M) {
    let Some(tokens) = model.opaque_tokens() else {
        panic!(
            "the model keeps no opaque access tokens (ModelBase::opaque_tokens is None): a \
             model that implements AccessTokenStore returns Some(self)"
        );
    };
    let record = AccessTokenRecord {
        token_hash: hashed("access"),
        grant_id: Some("g-9".into()),
        client_id: "kit-client".into(),
        claims: serde_json::json!({ "sub": "user-1", "scope": "mcp", "exp": NOW.plus(60).0 }),
        expires_at: NOW.plus(60),
    };
    tokens
        .insert_access_token(record.clone())
        .await
        .answered("insert_access_token");
    assert_eq!(
        tokens
            .find_access_token(&record.token_hash)
            .await
            .answered("find_access_token")
            .as_ref(),
        Some(&record)
    );
    assert!(
        tokens.insert_access_token(record.clone()).await.is_err(),
        "a duplicate hash must be refused"
    );
    tokens
        .delete_access_token(&record.token_hash)
        .await
        .answered("delete_access_token");
    assert!(matches!(
        tokens.find_access_token(&record.token_hash).await,
        Ok(None)
    ));
}

/// RFC 7523 §3 replay protection: a key is new once while it lives, then new again.
pub async fn one_time_keys_are_remembered_until_they_expire<M: OAuthServerModel + ?Sized>(
    model: &M,
) {
    let key = unique::<String>("jti");
    assert!(
        model
            .remember_once(&key, NOW.plus(60), NOW)
            .await
            .answered("remember_once")
    );
    assert!(
        !model
            .remember_once(&key, NOW.plus(60), NOW.plus(59))
            .await
            .answered("remember_once"),
        "a live key is not new"
    );
    assert!(
        model
            .remember_once(&key, NOW.plus(200), NOW.plus(60))
            .await
            .answered("remember_once"),
        "an expired key is new again"
    );
    let raced = unique::<String>("jti");
    let attempts = (0..16).map(|_| model.remember_once(&raced, NOW.plus(60), NOW));
    let firsts = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(
        firsts, 1,
        "exactly one concurrent remember_once may see the key as new"
    );
}

fn device() -> DeviceAuthorizationRecord {
    DeviceAuthorizationRecord {
        device_code_hash: hashed("device"),
        user_code_hash: hashed("user-code"),
        client_id: "kit-client".into(),
        scope: "mcp".into(),
        resources: vec!["https://mcp.example/mcp".into()],
        expires_at: NOW.plus(900),
        interval: 5,
        last_polled_at: None,
        state: DeviceState::Pending,
        subject: None,
        grant_id: None,
    }
}

/// RFC 8628: a poll reports the previous poll time; a decision is taken once, only while
/// pending and unexpired; an approved authorization is consumed once.
pub async fn device_authorizations_move_through_their_states<M: OAuthServerModel + ?Sized>(
    model: &M,
) {
    let Some(devices) = model.devices() else {
        panic!(
            "the model keeps no device authorizations (ModelBase::devices is None): a model \
             that implements DeviceStore returns Some(self)"
        );
    };
    let d = device();
    devices
        .insert_device(d.clone())
        .await
        .answered("insert_device");
    assert_eq!(
        devices
            .find_device_by_user_code(&d.user_code_hash)
            .await
            .answered("find_device_by_user_code")
            .as_ref(),
        Some(&d)
    );
    let first = devices
        .poll_device(&d.device_code_hash, NOW.plus(1))
        .await
        .answered("poll_device");
    assert_eq!(
        first.and_then(|r| r.last_polled_at),
        None,
        "the first poll sees no earlier poll"
    );
    let second = devices
        .poll_device(&d.device_code_hash, NOW.plus(7))
        .await
        .answered("poll_device");
    assert_eq!(
        second.and_then(|r| r.last_polled_at),
        Some(NOW.plus(1)),
        "a poll must see the previous poll's time"
    );
    devices
        .set_device_interval(&d.device_code_hash, 10)
        .await
        .answered("set_device_interval");
    let interval = devices
        .find_device_by_user_code(&d.user_code_hash)
        .await
        .answered("find_device_by_user_code")
        .map(|r| r.interval);
    assert_eq!(interval, Some(10), "set_device_interval sets the interval");
    assert!(matches!(
        devices.poll_device(&hashed("missing"), NOW).await,
        Ok(None)
    ));
    assert!(
        matches!(
            devices.consume_device(&d.device_code_hash, None).await,
            Ok(false)
        ),
        "a pending authorization cannot be consumed"
    );
    let approved_grant = grant("kit-client");
    let approve = DeviceDecision::Approve {
        grant: approved_grant.clone(),
    };
    assert!(matches!(
        devices
            .decide_device(&d.user_code_hash, approve.clone(), NOW.plus(10))
            .await,
        Ok(true)
    ));
    assert_eq!(
        model
            .find_grant(&approved_grant.grant_id)
            .await
            .answered("find_grant")
            .as_ref(),
        Some(&approved_grant),
        "an approval stores its grant"
    );
    let refused_grant = grant("kit-client");
    let approve_again = DeviceDecision::Approve {
        grant: refused_grant.clone(),
    };
    assert!(
        matches!(
            devices
                .decide_device(&d.user_code_hash, approve_again, NOW.plus(11))
                .await,
            Ok(false)
        ),
        "decided once"
    );
    assert_eq!(
        model
            .find_grant(&refused_grant.grant_id)
            .await
            .answered("find_grant"),
        None,
        "an approval that is not recorded stores no grant"
    );
    assert!(
        matches!(
            devices
                .decide_device(&d.user_code_hash, DeviceDecision::Deny, NOW.plus(11))
                .await,
            Ok(false)
        ),
        "decided once"
    );
    let approved = devices
        .find_device_by_user_code(&d.user_code_hash)
        .await
        .answered("find_device_by_user_code");
    assert_eq!(
        approved.as_ref().map(|r| r.state),
        Some(DeviceState::Approved)
    );
    assert_eq!(approved.and_then(|r| r.subject), Some("user-1".into()));
    let device_grant = grant("kit-client");
    let (first, second) = (refresh(&device_grant), refresh(&device_grant));
    assert!(matches!(
        devices
            .consume_device(&d.device_code_hash, Some(first.clone()))
            .await,
        Ok(true)
    ));
    assert!(
        matches!(
            devices
                .consume_device(&d.device_code_hash, Some(second.clone()))
                .await,
            Ok(false)
        ),
        "consumed once"
    );
    assert_eq!(
        model
            .find_refresh(&first.token_hash)
            .await
            .answered("find_refresh"),
        Some(first),
        "the refresh token is stored with the consumption"
    );
    assert_eq!(
        model
            .find_refresh(&second.token_hash)
            .await
            .answered("find_refresh"),
        None,
        "a refused consumption stores no refresh token"
    );
    let late = device();
    devices
        .insert_device(late.clone())
        .await
        .answered("insert_device");
    let late_grant = grant("kit-client");
    assert!(
        matches!(
            devices
                .decide_device(
                    &late.user_code_hash,
                    DeviceDecision::Approve {
                        grant: late_grant.clone()
                    },
                    NOW.plus(901)
                )
                .await,
            Ok(false)
        ),
        "no decision after expiry"
    );
    assert_eq!(
        model
            .find_grant(&late_grant.grant_id)
            .await
            .answered("find_grant"),
        None,
        "an expired authorization's approval stores no grant"
    );
    drop(approve);
}

/// Of many concurrent consumptions of one approved device authorization, exactly one wins.
pub async fn concurrent_device_consumptions_have_one_winner<M: OAuthServerModel + ?Sized>(
    model: &M,
) {
    let Some(devices) = model.devices() else {
        panic!(
            "the model keeps no device authorizations (ModelBase::devices is None): a model \
             that implements DeviceStore returns Some(self)"
        );
    };
    let d = device();
    devices
        .insert_device(d.clone())
        .await
        .answered("insert_device");
    let approve = DeviceDecision::Approve {
        grant: grant("kit-client"),
    };
    assert!(matches!(
        devices.decide_device(&d.user_code_hash, approve, NOW).await,
        Ok(true)
    ));
    let g = grant("kit-client");
    let tokens: Vec<RefreshTokenRecord> = (0..16).map(|_| refresh(&g)).collect();
    let attempts = tokens
        .iter()
        .map(|t| devices.consume_device(&d.device_code_hash, Some(t.clone())));
    let wins = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(wins, 1, "exactly one concurrent consume_device may win");
    assert_eq!(
        stored_refresh_tokens(model, &tokens).await,
        1,
        "only the winner's refresh token is stored"
    );
}

/// Fixed windows: hits count up within a window and start over in the next.
pub async fn rate_limit_counters_count_per_window<M: OAuthServerModel + ?Sized>(model: &M) {
    let key = RateLimitKey::new("kit", &unique::<String>("limit"));
    let window_start = UnixTime(NOW.0 - NOW.0 % 60);
    for expected in 1..=3 {
        assert_eq!(
            model
                .hit(&key, window_start.plus(expected), 60)
                .await
                .answered("hit"),
            u32::try_from(expected).unwrap_or(0)
        );
    }
    assert_eq!(
        model
            .hit(&key, window_start.plus(60), 60)
            .await
            .answered("hit"),
        1,
        "a new window starts at 1"
    );
    assert_eq!(
        model
            .hit(
                &RateLimitKey::new("kit", &unique::<String>("other")),
                window_start,
                60
            )
            .await
            .answered("hit"),
        1,
        "keys are independent"
    );
}

/// A stored client is found as stored; an unknown id is `None`.
pub async fn clients_round_trip<M: OAuthServerModel + ?Sized>(model: &M) {
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    metadata.client_name = Some("Kit <client> \"quoted\"".into());
    let mut client = ClientRecord::new(
        unique("client"),
        TokenEndpointAuthMethod::ClientSecretBasic,
        metadata,
        NOW,
    );
    client.secret_hash = Some(SecretHash::of("hash"));
    client.secret_expires_at = Some(NOW.plus(10));
    model
        .insert_client(client.clone())
        .await
        .answered("insert_client");
    let found = model
        .find_client(&client.client_id)
        .await
        .answered("find_client");
    assert_eq!(
        found.as_ref(),
        Some(&client),
        "find_client must return the client as stored"
    );
    assert!(
        model.insert_client(client.clone()).await.is_err(),
        "insert_client must refuse a duplicate client_id"
    );
    assert!(
        matches!(model.find_client(&unique("missing")).await, Ok(None)),
        "an unknown client must be None"
    );
    let mut updated = client.clone();
    updated.metadata.client_name = Some("Renamed".into());
    updated.registration_token_hash = Some(SecretHash::of("rat"));
    assert!(matches!(
        model.update_client(updated.clone()).await,
        Ok(true)
    ));
    assert_eq!(
        model
            .find_client(&client.client_id)
            .await
            .answered("find_client")
            .as_ref(),
        Some(&updated),
        "update_client must replace the record"
    );
    let mut ghost = client.clone();
    ghost.client_id = unique("ghost");
    assert!(
        matches!(model.update_client(ghost).await, Ok(false)),
        "updating an unknown client changes nothing"
    );
    assert!(matches!(
        model.delete_client(&client.client_id).await,
        Ok(true)
    ));
    assert!(matches!(
        model.delete_client(&client.client_id).await,
        Ok(false)
    ));
    assert!(matches!(
        model.find_client(&client.client_id).await,
        Ok(None)
    ));
}

/// `revoke_grant` sets `revoked_at` once and keeps the first time.
pub async fn grants_revoke_idempotently<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    model.insert_grant(g.clone()).await.answered("insert_grant");
    assert_eq!(
        model
            .find_grant(&g.grant_id)
            .await
            .answered("find_grant")
            .as_ref(),
        Some(&g)
    );
    model
        .revoke_grant(&g.grant_id, NOW.plus(5))
        .await
        .answered("revoke_grant");
    model
        .revoke_grant(&g.grant_id, NOW.plus(9))
        .await
        .answered("revoke_grant");
    let revoked = model
        .find_grant(&g.grant_id)
        .await
        .answered("find_grant")
        .and_then(|g| g.revoked_at);
    assert_eq!(
        revoked,
        Some(NOW.plus(5)),
        "revoke_grant must keep the first revocation time"
    );
    model
        .revoke_grant(&unique("missing"), NOW)
        .await
        .answered("revoke_grant");
    let client_id = unique::<String>("client-of-grants");
    let (a, b) = (grant(&client_id), grant(&client_id));
    let other = grant("kit-other-client");
    for g in [&a, &b, &other] {
        model.insert_grant(g.clone()).await.answered("insert_grant");
    }
    model
        .revoke_client_grants(&ClientId::from(client_id.as_str()), NOW.plus(20))
        .await
        .answered("revoke_client_grants");
    for g in [&a, &b] {
        let revoked = model
            .find_grant(&g.grant_id)
            .await
            .answered("find_grant")
            .and_then(|g| g.revoked_at);
        assert_eq!(
            revoked,
            Some(NOW.plus(20)),
            "revoke_client_grants must revoke every grant of the client"
        );
    }
    let untouched = model
        .find_grant(&other.grant_id)
        .await
        .answered("find_grant")
        .and_then(|g| g.revoked_at);
    assert_eq!(untouched, None, "other clients' grants stay live");
}

/// RFC 6749 §4.1.2: a code is consumed once; later attempts see `Reused` with the record.
pub async fn code_is_consumed_exactly_once<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let c = code(&g);
    model.insert_code(c.clone()).await.answered("insert_code");
    assert_eq!(
        model
            .find_code(&c.code_hash)
            .await
            .answered("find_code")
            .as_ref(),
        Some(&c),
        "find_code must not change the code"
    );
    let (first, second) = (refresh(&g), refresh(&g));
    match model
        .consume_code(&c.code_hash, NOW.plus(1), Some(first.clone()))
        .await
    {
        Ok(ConsumeCode::Fresh(record)) => assert_eq!(record.grant_id, c.grant_id),
        other => panic!("first consume_code must be Fresh, got {other:?}"),
    }
    assert_eq!(
        model
            .find_refresh(&first.token_hash)
            .await
            .answered("find_refresh"),
        Some(first),
        "the refresh token is stored with the consumption"
    );
    match model
        .consume_code(&c.code_hash, NOW.plus(2), Some(second.clone()))
        .await
    {
        Ok(ConsumeCode::Reused(record)) => {
            assert_eq!(record.grant_id, c.grant_id, "Reused must carry the grant")
        }
        other => panic!("second consume_code must be Reused, got {other:?}"),
    }
    assert_eq!(
        model
            .find_refresh(&second.token_hash)
            .await
            .answered("find_refresh"),
        None,
        "a Reused consumption stores no refresh token"
    );
    let consumed_at = model
        .find_code(&c.code_hash)
        .await
        .answered("find_code")
        .and_then(|c| c.consumed_at);
    assert_eq!(
        consumed_at,
        Some(NOW.plus(1)),
        "consumed_at must be the first consumption time"
    );
    assert!(matches!(
        model.consume_code(&hashed("missing"), NOW, None).await,
        Ok(ConsumeCode::NotFound)
    ));
}

/// Of many concurrent redemptions of one code, exactly one is `Fresh`.
pub async fn concurrent_code_redemptions_have_one_winner<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let c = code(&g);
    model.insert_code(c.clone()).await.answered("insert_code");
    let tokens: Vec<RefreshTokenRecord> = (0..16).map(|_| refresh(&g)).collect();
    let attempts = tokens
        .iter()
        .map(|t| model.consume_code(&c.code_hash, NOW, Some(t.clone())));
    let results = futures::future::join_all(attempts).await;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, Ok(ConsumeCode::Fresh(_))))
        .count();
    let reused = results
        .iter()
        .filter(|r| matches!(r, Ok(ConsumeCode::Reused(_))))
        .count();
    assert_eq!(
        (fresh, reused),
        (1, 15),
        "exactly one concurrent consume_code may win"
    );
    assert_eq!(
        stored_refresh_tokens(model, &tokens).await,
        1,
        "only the winner's refresh token is stored"
    );
}

/// Rotation marks the old token rotated and stores the new one; a second rotation of the old
/// token is `Reused` with its family and first rotation time, and stores nothing.
pub async fn refresh_rotation_marks_old_and_stores_new<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let old = refresh(&g);
    model
        .insert_refresh(old.clone())
        .await
        .answered("insert_refresh");
    assert_eq!(
        model
            .find_refresh(&old.token_hash)
            .await
            .answered("find_refresh")
            .as_ref(),
        Some(&old)
    );
    let new = refresh(&g);
    assert!(matches!(
        model
            .rotate_refresh(
                &old.token_hash,
                new.clone(),
                Some("sealed-successor".into()),
                NOW.plus(3)
            )
            .await,
        Ok(RotateRefresh::Rotated)
    ));
    assert_eq!(
        model
            .find_refresh(&new.token_hash)
            .await
            .answered("find_refresh")
            .as_ref(),
        Some(&new),
        "the new token must be stored"
    );
    let rotated = model
        .find_refresh(&old.token_hash)
        .await
        .answered("find_refresh");
    assert_eq!(
        rotated.as_ref().and_then(|r| r.rotated_at),
        Some(NOW.plus(3)),
        "the old token must be marked rotated"
    );
    assert_eq!(
        rotated.and_then(|r| r.sealed_successor).as_deref(),
        Some("sealed-successor"),
        "the old token must keep its sealed successor"
    );
    let again = refresh(&g);
    match model
        .rotate_refresh(
            &old.token_hash,
            again.clone(),
            Some("other".into()),
            NOW.plus(7),
        )
        .await
    {
        Ok(RotateRefresh::Reused {
            grant_id,
            rotated_at,
        }) => {
            assert_eq!(grant_id, g.grant_id);
            assert_eq!(
                rotated_at,
                NOW.plus(3),
                "Reused must report the first rotation time"
            );
        }
        other => panic!("rotating a rotated token must be Reused, got {other:?}"),
    }
    assert!(
        matches!(model.find_refresh(&again.token_hash).await, Ok(None)),
        "a Reused rotation must not store the new token"
    );
    assert_eq!(
        model
            .find_refresh(&old.token_hash)
            .await
            .answered("find_refresh")
            .and_then(|r| r.sealed_successor)
            .as_deref(),
        Some("sealed-successor"),
        "a Reused rotation must not replace the sealed successor"
    );
    assert!(matches!(
        model
            .rotate_refresh(&hashed("missing"), refresh(&g), None, NOW)
            .await,
        Ok(RotateRefresh::NotFound)
    ));
}

/// Of many concurrent rotations of one refresh token, exactly one wins and stores its token.
pub async fn concurrent_refresh_rotations_have_one_winner<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let old = refresh(&g);
    model
        .insert_refresh(old.clone())
        .await
        .answered("insert_refresh");
    let candidates: Vec<RefreshTokenRecord> = (0..16).map(|_| refresh(&g)).collect();
    let attempts = candidates
        .iter()
        .map(|new| model.rotate_refresh(&old.token_hash, new.clone(), None, NOW));
    let results = futures::future::join_all(attempts).await;
    let rotated = results
        .iter()
        .filter(|r| matches!(r, Ok(RotateRefresh::Rotated)))
        .count();
    assert_eq!(
        rotated, 1,
        "exactly one concurrent rotate_refresh may win: {results:?}"
    );
    let mut stored = 0;
    for candidate in &candidates {
        if matches!(model.find_refresh(&candidate.token_hash).await, Ok(Some(_))) {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "only the winner's new token may be stored");
}

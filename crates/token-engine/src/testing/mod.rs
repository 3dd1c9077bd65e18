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
    AccessTokenRecord, AuthorizationCodeRecord, ClientId, ClientRecord, ConsumeCode,
    DeviceAuthorizationRecord, DeviceDecision, DeviceState, GrantRecord, OAuthServerModel,
    RateLimitKey, RefreshTokenRecord, RotateRefresh, SecretHash, TokenEndpointAuthMethod,
};
use crate::random::{RandomError, SecureRandom};

mod access_tokens;
mod clients;
mod codes;
mod devices;
mod dpop;
mod grants;
mod openid;
mod rate_limits;
mod refresh_tokens;
mod replay;

pub use access_tokens::opaque_access_tokens_round_trip;
pub use clients::clients_round_trip;
pub use codes::{code_is_consumed_exactly_once, concurrent_code_redemptions_have_one_winner};
pub use devices::{
    concurrent_device_consumptions_have_one_winner, device_authorizations_move_through_their_states,
};
pub use dpop::dpop_bindings_are_kept;
pub use grants::{
    codes_and_refresh_tokens_are_read_with_their_grants_state, grants_revoke_idempotently,
};
pub use openid::openid_nonces_are_kept;
pub use rate_limits::{
    rate_limit_counters_add_several_hits_at_once, rate_limit_counters_count_per_window,
};
pub use refresh_tokens::{
    concurrent_refresh_rotations_have_one_winner, refresh_rotation_marks_old_and_stores_new,
};
pub use replay::one_time_keys_are_remembered_until_they_expire;

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

pub(crate) const NOW: UnixTime = UnixTime(1_800_000_000);

pub(crate) fn grant(client_id: &str) -> GrantRecord {
    GrantRecord {
        grant_id: unique("grant"),
        client_id: ClientId::from(client_id),
        subject: "user-1".into(),
        scope: crate::Scope::from_tokens(["mcp"]),
        resources: vec!["https://mcp.example/mcp".into()],
        created_at: NOW,
        revoked_at: None,
    }
}

pub(crate) fn code(grant: &GrantRecord) -> AuthorizationCodeRecord {
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
        dpop_jkt: None,
        nonce: None,
    }
}

pub(crate) fn refresh(grant: &GrantRecord) -> RefreshTokenRecord {
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
        dpop_jkt: None,
    }
}

/// One `#[tokio::test]` per rule of the kit, in a module `$name`, each on a model of its own
/// made by the async block `$make` (names from the calling module are in scope). The rules of
/// the optional stores are among them: a model that keeps no device authorizations or no
/// opaque tokens fails those (run [`run_model_test_kit`](crate::testing::run_model_test_kit),
/// which checks the stores a model has, or the required rules one by one):
///
/// ```no_run
/// use mcpauth_token_engine::MemoryModel;
/// mcpauth_token_engine::model_test_kit!(memory, async { MemoryModel::new() });
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
            codes_and_refresh_tokens_are_read_with_their_grants_state,
            code_is_consumed_exactly_once,
            concurrent_code_redemptions_have_one_winner,
            refresh_rotation_marks_old_and_stores_new,
            concurrent_refresh_rotations_have_one_winner,
            dpop_bindings_are_kept,
            openid_nonces_are_kept,
            device_authorizations_move_through_their_states,
            concurrent_device_consumptions_have_one_winner,
            rate_limit_counters_count_per_window,
            rate_limit_counters_add_several_hits_at_once,
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
    dpop_bindings_are_kept(model).await;
    openid_nonces_are_kept(model).await;
    codes_and_refresh_tokens_are_read_with_their_grants_state(model).await;
    rate_limit_counters_count_per_window(model).await;
    rate_limit_counters_add_several_hits_at_once(model).await;
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

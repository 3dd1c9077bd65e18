//! The server's own state on both databases: sweeping abandoned registrations and expired
//! rows, and the first signing key decided once between instances.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use mcpauth_oauth_types::ClientMetadata;
use mcpauth_store_sql::SqlStore;
use mcpauth_test_postgres::TempPostgres;
use mcpauth_token_engine::{
    AuthorizationCodeRecord, ClientId, ClientRecord, ClientStore, CodeStore, GrantId, GrantRecord,
    GrantStore, RateLimitKey, RateLimitStore, SecretHash, TokenEndpointAuthMethod, UnixTime,
};

/// Runs `check` on a fresh SQLite file and on a fresh PostgreSQL database.
async fn on_both_databases<F, Fut>(name: &str, check: F)
where
    F: Fn(SqlStore, SqlStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("mcpauth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("state.db").display());
    let first = SqlStore::connect(&url).await.unwrap();
    let second = SqlStore::connect(&url).await.unwrap();
    check(first, second).await;
    std::fs::remove_dir_all(&dir).unwrap();

    let pg = TempPostgres::start().unwrap();
    let url = pg.create_database(name).unwrap();
    let first = SqlStore::connect(&url).await.unwrap();
    let second = SqlStore::connect(&url).await.unwrap();
    check(first.clone(), second.clone()).await;
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn unused_dynamic_registrations_are_deleted_and_others_kept() {
    on_both_databases("unused", |store, _| unused_registrations(store)).await;
}

async fn unused_registrations(store: SqlStore) {
    let client = |id: &str, dynamic: bool, created: u64| {
        let mut record = ClientRecord::new(
            id.into(),
            TokenEndpointAuthMethod::None,
            ClientMetadata::default(),
            UnixTime(created),
        );
        if dynamic {
            record.registration_token_hash = Some(SecretHash::of("h"));
        }
        record
    };
    store
        .insert_client(client("abandoned", true, 100))
        .await
        .unwrap();
    store
        .insert_client(client("in-use", true, 100))
        .await
        .unwrap();
    store
        .insert_client(client("operator", false, 100))
        .await
        .unwrap();
    store
        .insert_client(client("fresh", true, 10_000))
        .await
        .unwrap();
    store
        .insert_grant(GrantRecord {
            grant_id: "g".into(),
            client_id: "in-use".into(),
            subject: "u".into(),
            scope: mcpauth_token_engine::Scope::default(),
            resources: vec![],
            created_at: UnixTime(200),
            revoked_at: None,
        })
        .await
        .unwrap();
    assert_eq!(store.delete_unused_registrations(5_000).await.unwrap(), 1);
    assert!(
        store
            .find_client(&ClientId::from("abandoned"))
            .await
            .unwrap()
            .is_none()
    );
    for kept in ["in-use", "operator", "fresh"] {
        assert!(
            store
                .find_client(&ClientId::from(kept))
                .await
                .unwrap()
                .is_some(),
            "{kept}"
        );
    }
}

fn code(hash: &str, expires_at: u64) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        code_hash: SecretHash::of(hash),
        grant_id: "g".into(),
        client_id: "c".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        redirect_uri_in_request: true,
        code_challenge: "x".into(),
        subject: "u".into(),
        scope: mcpauth_token_engine::Scope::default(),
        resources: vec![],
        expires_at: UnixTime(expires_at),
        consumed_at: None,
        dpop_jkt: None,
        nonce: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_every_expired_row_in_batches_and_keeps_live_ones() {
    on_both_databases("sweep", |store, _| async move {
        // More than two batches of expired codes, and live ones beside them.
        for i in 0..1_234 {
            store
                .insert_code(code(&format!("old{i}"), 100))
                .await
                .unwrap();
        }
        for i in 0..10 {
            store
                .insert_code(code(&format!("live{i}"), 10_000))
                .await
                .unwrap();
        }
        // Rate-limit counters go a day after their window started.
        store
            .hit(&RateLimitKey::new("kit", "old-counter"), UnixTime(100), 60)
            .await
            .unwrap();
        store
            .hit(
                &RateLimitKey::new("kit", "new-counter"),
                UnixTime(90_000),
                60,
            )
            .await
            .unwrap();
        assert_eq!(store.sweep_expired(UnixTime(5_000)).await.unwrap(), 1_234);
        assert!(
            store
                .find_code(&SecretHash::of("old0"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .find_code(&SecretHash::of("old1233"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .find_code(&SecretHash::of("live9"))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store.sweep_expired(UnixTime(100_000)).await.unwrap(),
            11,
            "the ten other codes have expired by now, and one counter is a day old"
        );
        assert_eq!(
            store
                .hit(&RateLimitKey::new("kit", "old-counter"), UnixTime(100), 60)
                .await
                .unwrap(),
            1,
            "swept: counting starts over"
        );
        assert_eq!(
            store
                .hit(
                    &RateLimitKey::new("kit", "new-counter"),
                    UnixTime(90_000),
                    60
                )
                .await
                .unwrap(),
            2,
            "kept"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_at_once_create_exactly_one_first_signing_key() {
    on_both_databases("firstkey", |first, second| async move {
        let (a, b) = tokio::join!(
            first.insert_first_signing_key("kid-a", "ES256", b"key a", UnixTime(1)),
            second.insert_first_signing_key("kid-b", "ES256", b"key b", UnixTime(1)),
        );
        assert!(
            a.unwrap() ^ b.unwrap(),
            "exactly one instance stores its key"
        );
        let keys = first.signing_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(second.signing_keys().await.unwrap(), keys);
        // Later calls never add a second "first" key.
        assert!(
            !first
                .insert_first_signing_key("kid-c", "ES256", b"key c", UnixTime(2))
                .await
                .unwrap()
        );
        // Rotation adds the newest key, which sorts first.
        first
            .insert_signing_key("kid-d", "ES256", b"key d", UnixTime(3))
            .await
            .unwrap();
        assert!(
            first
                .replace_signing_key_material("kid-d", b"sealed d")
                .await
                .unwrap()
        );
        let keys = second.signing_keys().await.unwrap();
        assert_eq!(keys[0].kid, "kid-d");
        assert_eq!(keys[0].material, b"sealed d");
        assert_eq!(keys.len(), 2);
    })
    .await;
}

// Disabling a user cuts off everything it holds at once: sessions and grants (so refresh
// tokens stop working); a password change ends its sessions. Other users keep theirs.
#[tokio::test]
async fn disabling_a_user_ends_its_sessions_and_revokes_its_grants() {
    on_both_databases("disable", |store, _| disable_user(store)).await;
}

/// Users `u1` and `u2`, each signed in (`s-u1`, `s-u2`) and holding a grant (`g-u1`, `g-u2`).
async fn two_users_with_a_session_and_a_grant(store: &SqlStore) {
    for (id, email) in [("u1", "one@example.com"), ("u2", "two@example.com")] {
        store
            .create_user(id, email, "$argon2id$x", UnixTime(10))
            .await
            .unwrap();
        store
            .insert_session(&SecretHash::of(&format!("s-{id}")), id, UnixTime(10), 1_000)
            .await
            .unwrap();
        store
            .insert_grant(GrantRecord {
                grant_id: format!("g-{id}").into(),
                client_id: "c".into(),
                subject: id.into(),
                scope: mcpauth_token_engine::Scope::from_tokens(["mcp"]),
                resources: vec![],
                created_at: UnixTime(10),
                revoked_at: None,
            })
            .await
            .unwrap();
    }
}

async fn disable_user(store: SqlStore) {
    two_users_with_a_session_and_a_grant(&store).await;
    assert!(store.disable_user("u1", UnixTime(20)).await.unwrap());
    assert!(!store.disable_user("nobody", UnixTime(20)).await.unwrap());
    let users = store.list_users().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.email.as_str(), u.disabled))
            .collect::<Vec<_>>(),
        [("one@example.com", true), ("two@example.com", false)]
    );
    assert_eq!(
        store
            .session_user(&SecretHash::of("s-u1"), UnixTime(30))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .session_user(&SecretHash::of("s-u2"), UnixTime(30))
            .await
            .unwrap()
            .as_deref(),
        Some("u2")
    );
    let revoked = store
        .find_grant(&GrantId::from("g-u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(UnixTime(20)));
    assert_eq!(
        store
            .find_grant(&GrantId::from("g-u2"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    assert!(store.enable_user("u1").await.unwrap());
    assert!(!store.find_user_by_id("u1").await.unwrap().unwrap().disabled);
    assert!(
        store
            .find_grant(&GrantId::from("g-u1"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    assert!(
        store
            .set_user_password("u2", "$argon2id$new")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .session_user(&SecretHash::of("s-u2"), UnixTime(30))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_user_by_id("u2")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
}

// Remembered consent covers exactly what the user saw, on both databases: per redirect URI
// and per resource (no union across resources); approving less never forgets more.
#[tokio::test]
async fn remembered_consent_is_per_redirect_uri_and_resource() {
    on_both_databases("consent", |store, _| async move {
        const APP: &str = "https://app.example/cb";
        const OTHER: &str = "https://app.example/other";
        let (a, b) = (
            "https://a.example/mcp".to_owned(),
            "https://b.example/mcp".to_owned(),
        );
        store
            .remember_consent(
                "u",
                "c",
                APP,
                "mcp:read",
                std::slice::from_ref(&a),
                UnixTime(10),
            )
            .await
            .unwrap();
        store
            .remember_consent(
                "u",
                "c",
                APP,
                "mcp:admin",
                std::slice::from_ref(&b),
                UnixTime(11),
            )
            .await
            .unwrap();
        let covers = |redirect: &'static str, scope: &'static str, resources: Vec<String>| {
            let store = store.clone();
            async move {
                store
                    .consent_covers("u", "c", redirect, scope, &resources)
                    .await
                    .unwrap()
            }
        };
        assert!(covers(APP, "mcp:read", vec![a.clone()]).await);
        assert!(covers(APP, "mcp:admin", vec![b.clone()]).await);
        assert!(!covers(APP, "mcp:admin", vec![a.clone()]).await, "no union");
        assert!(!covers(APP, "mcp:read", vec![a.clone(), b.clone()]).await);
        assert!(
            !covers(OTHER, "mcp:read", vec![a.clone()]).await,
            "another redirect"
        );
        assert!(!covers(APP, "", vec![]).await, "no resource, no cover");
        // A narrower approval later keeps the wider one.
        store
            .remember_consent(
                "u",
                "c",
                APP,
                "mcp:read mcp:write",
                std::slice::from_ref(&a),
                UnixTime(12),
            )
            .await
            .unwrap();
        store
            .remember_consent(
                "u",
                "c",
                APP,
                "mcp:read",
                std::slice::from_ref(&a),
                UnixTime(13),
            )
            .await
            .unwrap();
        assert!(covers(APP, "mcp:write", vec![a.clone()]).await);
        assert!(
            !store
                .consent_covers("other-user", "c", APP, "mcp:read", std::slice::from_ref(&a))
                .await
                .unwrap()
        );
        let listed = store.list_consents("u").await.unwrap();
        assert_eq!(listed.len(), 1, "one row per client");
        assert_eq!(listed[0].approvals.len(), 2, "{listed:?}");
    })
    .await;
}

// Decisions re-check the user: disabling a user, or changing their password, ends the sign-ins and
// consents they have pending, on both databases; other users' stay.
#[tokio::test]
async fn disabling_a_user_or_changing_the_password_ends_pending_interactions() {
    on_both_databases("pending", |store, _| async move {
        for (id, email) in [("u1", "one@example.com"), ("u2", "two@example.com")] {
            store
                .create_user(id, email, "$argon2id$x", UnixTime(10))
                .await
                .unwrap();
        }
        for (interaction, user) in [("i1", "u1"), ("i2", "u2"), ("i3", "u2"), ("i4", "u1")] {
            store
                .insert_interaction(
                    &SecretHash::of(interaction),
                    "{}",
                    &SecretHash::of("csrf"),
                    1_000,
                )
                .await
                .unwrap();
            store
                .set_interaction_user(&SecretHash::of(interaction), user)
                .await
                .unwrap();
        }
        let live = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .find_interaction(&SecretHash::of(id), UnixTime(20))
                    .await
                    .unwrap()
                    .is_some()
            }
        };
        assert!(store.disable_user("u1", UnixTime(20)).await.unwrap());
        assert!(!live("i1").await && !live("i4").await);
        assert!(live("i2").await && live("i3").await);
        assert!(
            store
                .set_user_password("u2", "$argon2id$new")
                .await
                .unwrap()
        );
        assert!(!live("i2").await && !live("i3").await);
    })
    .await;
}

// The lockout across instances: concurrent wrong passwords through two pools count once each,
// and exactly one of them turns the count into a lock; locks double and are capped.
#[tokio::test]
async fn concurrent_failed_sign_ins_lock_an_account_exactly_once() {
    on_both_databases("lockout", lockout).await;
}

async fn lockout(first: SqlStore, second: SqlStore) {
    use mcpauth_store_sql::LockoutPolicy;
    let policy = LockoutPolicy {
        after_failures: 6,
        first_lock: 60,
        longest_lock: 200,
    };
    assert_eq!(
        [0, 1, 2, 3].map(|n| policy.lock_duration(n)),
        [60, 120, 200, 200]
    );
    let attempts = (0..6).map(|n| {
        let store = if n % 2 == 0 { &first } else { &second };
        async move {
            store
                .record_login_failure(&SecretHash::of("acct"), UnixTime(1_000), &policy)
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let locks: Vec<u64> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    assert_eq!(locks, [1_060], "one lock, of the first length");
    assert_eq!(
        first
            .login_locked_until(&SecretHash::of("acct"), UnixTime(1_030))
            .await
            .unwrap(),
        Some(1_060)
    );
    assert_eq!(
        second
            .login_locked_until(&SecretHash::of("acct"), UnixTime(1_060))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        first
            .login_locked_until(&SecretHash::of("other"), UnixTime(1_030))
            .await
            .unwrap(),
        None
    );
    // After the lock, six more wrong passwords lock for twice as long.
    let mut last = None;
    for _ in 0..6 {
        last = second
            .record_login_failure(&SecretHash::of("acct"), UnixTime(1_100), &policy)
            .await
            .unwrap();
    }
    assert_eq!(last, Some(1_220));
    // A success forgets everything.
    first
        .clear_login_failures(&SecretHash::of("acct"))
        .await
        .unwrap();
    assert_eq!(
        first
            .login_locked_until(&SecretHash::of("acct"), UnixTime(1_150))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        first
            .record_login_failure(&SecretHash::of("acct"), UnixTime(1_150), &policy)
            .await
            .unwrap(),
        None
    );
}

// Federated sign-ins waiting for their upstream callback: taken once, by exactly one of two
// instances racing for the same callback; expired ones are not taken and are swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_upstream_sign_in_is_taken_exactly_once() {
    on_both_databases("upstream", upstream_requests).await;
}

async fn upstream_requests(first: SqlStore, second: SqlStore) {
    first
        .save_upstream_request("state-hash", r#"{"provider":"corp"}"#, 1_000)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        first.take_upstream_request("state-hash", UnixTime(900)),
        second.take_upstream_request("state-hash", UnixTime(900))
    );
    let taken: Vec<String> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken, vec![r#"{"provider":"corp"}"#.to_owned()]);
    assert_eq!(
        first
            .take_upstream_request("state-hash", UnixTime(900))
            .await
            .unwrap(),
        None
    );

    first
        .save_upstream_request("old", "{}", 1_000)
        .await
        .unwrap();
    assert_eq!(
        first
            .take_upstream_request("old", UnixTime(1_000))
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert!(first.sweep_expired(UnixTime(1_000)).await.unwrap() >= 1);
    first
        .save_upstream_request("old", "{}", 2_000)
        .await
        .expect("the swept key can be used again");
}

// Upstream accounts: linked once (two racing first sign-ins end as one user), never merged
// into another account by email, no password verifies, sealed tokens replaced only by the
// request that read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_account_is_linked_to_exactly_one_local_user() {
    on_both_databases("federated", federated_identities).await;
}

async fn federated_identities(first: SqlStore, second: SqlStore) {
    first
        .create_user("user_local", "ada@example.com", "$argon2id$x", UnixTime(1))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        first.create_federated_user(
            "user_a",
            Some("ada@example.com"),
            "google",
            "123",
            UnixTime(10)
        ),
        second.create_federated_user(
            "user_b",
            Some("ada@example.com"),
            "google",
            "123",
            UnixTime(10)
        )
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both first sign-ins end as the same user");
    let user = first.find_user_by_id(&a).await.unwrap().unwrap();
    assert_eq!(
        user.email, "google:123",
        "the email of another account is not taken over"
    );
    assert_eq!(user.password_hash, mcpauth_store_sql::NO_PASSWORD);
    let identity = first
        .find_federated_identity("google", "123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, a);
    assert_eq!(identity.upstream_tokens, None);

    let other = first
        .create_federated_user(
            "user_c",
            Some("grace@example.com"),
            "github",
            "9",
            UnixTime(20),
        )
        .await
        .unwrap();
    assert_eq!(
        first.find_user_by_id(&other).await.unwrap().unwrap().email,
        "grace@example.com"
    );
    assert_eq!(
        first
            .find_federated_identity_of_user(&other, "github")
            .await
            .unwrap()
            .unwrap()
            .subject,
        "9"
    );

    first
        .set_federated_tokens("github", "9", Some("sealed-1"), UnixTime(30))
        .await
        .unwrap();
    // One refresh claim at a time, only on the tokens the claimant read; it lapses.
    let (x, y) = tokio::join!(
        first.claim_federated_refresh("github", "9", "sealed-1", UnixTime(30), 60),
        second.claim_federated_refresh("github", "9", "sealed-1", UnixTime(30), 60)
    );
    assert!(x.unwrap() ^ y.unwrap(), "exactly one instance refreshes");
    assert!(
        !first
            .claim_federated_refresh("github", "9", "sealed-1", UnixTime(59), 89)
            .await
            .unwrap()
    );
    assert!(
        first
            .claim_federated_refresh("github", "9", "sealed-1", UnixTime(60), 90)
            .await
            .unwrap(),
        "a lapsed claim is taken over"
    );
    first
        .release_federated_refresh("github", "9")
        .await
        .unwrap();
    assert!(
        !first
            .claim_federated_refresh("github", "9", "stale", UnixTime(61), 91)
            .await
            .unwrap(),
        "tokens someone else replaced are not refreshed again"
    );
    let (x, y) = tokio::join!(
        first.replace_federated_tokens("github", "9", "sealed-1", "sealed-2", UnixTime(40)),
        second.replace_federated_tokens("github", "9", "sealed-1", "sealed-3", UnixTime(40))
    );
    assert!(x.unwrap() ^ y.unwrap(), "exactly one refresh wins");
    let kept = first
        .find_federated_identity("github", "9")
        .await
        .unwrap()
        .unwrap()
        .upstream_tokens
        .unwrap();
    assert!(kept == "sealed-2" || kept == "sealed-3");
}

// DESIGN §3b: a rotated refresh token's sealed successor is kept for the grace window only;
// the sweep forgets it once the window has closed and keeps the rest of the row.
#[tokio::test]
async fn sealed_refresh_successors_are_forgotten_after_the_grace_window() {
    use mcpauth_token_engine::{RefreshTokenRecord, RefreshTokenStore, RotateRefresh};
    on_both_databases("successors", |store, _| async move {
        let token = |hash: &str| RefreshTokenRecord {
            token_hash: SecretHash::of(hash),
            grant_id: "g".into(),
            client_id: "c".into(),
            subject: "alice".into(),
            scope: mcpauth_token_engine::Scope::from_tokens(["mcp"]),
            resources: vec!["https://mcp.example/mcp".into()],
            issued_at: UnixTime(100),
            expires_at: UnixTime(100_000),
            rotated_at: None,
            sealed_successor: None,
            dpop_jkt: None,
        };
        store.insert_refresh(token("first")).await.unwrap();
        store.insert_refresh(token("late")).await.unwrap();
        let rotated = store
            .rotate_refresh(
                &SecretHash::of("first"),
                token("second"),
                Some("sealed-1".into()),
                UnixTime(200),
            )
            .await
            .unwrap();
        assert_eq!(rotated, RotateRefresh::Rotated);
        let rotated = store
            .rotate_refresh(
                &SecretHash::of("late"),
                token("third"),
                Some("sealed-2".into()),
                UnixTime(300),
            )
            .await
            .unwrap();
        assert_eq!(rotated, RotateRefresh::Rotated);
        assert_eq!(
            store.forget_refresh_successors(200).await.unwrap(),
            0,
            "rotated exactly at the bound: kept (strictly before only)"
        );
        assert_eq!(store.forget_refresh_successors(250).await.unwrap(), 1);
        let first = store
            .find_refresh(&SecretHash::of("first"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.sealed_successor, None, "its window closed");
        assert_eq!(first.rotated_at, Some(UnixTime(200)), "the row stays");
        let late = store
            .find_refresh(&SecretHash::of("late"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(late.sealed_successor.as_deref(), Some("sealed-2"));
    })
    .await;
}

// A taken email is a unique violation the caller can name ("already exists"), on both
// databases, and the first account is untouched.
#[tokio::test]
async fn a_taken_email_is_reported_as_a_unique_violation() {
    on_both_databases("taken_email", |store, _| async move {
        store
            .create_user("u-first", "same@example.com", "$argon2id$a", UnixTime(10))
            .await
            .unwrap();
        let error = store
            .create_user("u-second", "same@example.com", "$argon2id$b", UnixTime(11))
            .await
            .unwrap_err();
        assert!(error.is_unique_violation(), "{error:?}");
        let kept = store
            .find_user_by_email("same@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.user_id, "u-first");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_asking_at_once_agree_on_one_shared_secret() {
    on_both_databases("shared_secrets", shared_secrets).await;
}

async fn shared_secrets(first: SqlStore, second: SqlStore) {
    let now = UnixTime(1_800_000_000);
    let (a, b) = tokio::join!(
        first.shared_secret("dpop-nonce", &[1; 32], now),
        second.shared_secret("dpop-nonce", &[2; 32], now),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both instances read the one stored secret");
    assert!(a == [1; 32] || a == [2; 32]);
    // Later asks, with other candidates, read the stored one; another name is its own.
    assert_eq!(
        first
            .shared_secret("dpop-nonce", &[3; 32], now)
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        second.shared_secret("other", &[4; 32], now).await.unwrap(),
        [4; 32]
    );
}

// Shared Signals: every change that ends access records one event, whoever makes it, and a
// stream delivers each event until its receiver acknowledges it; on both databases.
#[tokio::test]
async fn every_change_that_ends_access_is_an_event_each_stream_delivers_until_acknowledged() {
    on_both_databases("security_events", security_events).await;
}

async fn stream_named(store: &SqlStore, stream_id: &str) -> mcpauth_store_sql::SsfStream {
    store.find_ssf_stream(stream_id).await.unwrap().unwrap()
}

#[allow(
    clippy::indexing_slicing,
    reason = "a test: a wrong count fails it either way"
)]
async fn security_events(store: SqlStore, other_instance: SqlStore) {
    use mcpauth_store_sql::SecurityEventKind as Kind;
    // A receiver that was there before anything happened.
    store
        .create_ssf_stream(
            "early",
            "rs",
            Some("the MCP server"),
            &Kind::ALL,
            None,
            UnixTime(1),
        )
        .await
        .unwrap();
    store
        .create_user("u1", "one@example.com", "$argon2id$x", UnixTime(10))
        .await
        .unwrap();
    for (grant, client) in [("g1", "c1"), ("g2", "c2"), ("g3", "c2")] {
        store
            .insert_grant(GrantRecord {
                grant_id: grant.into(),
                client_id: client.into(),
                subject: "u1".into(),
                scope: mcpauth_token_engine::Scope::from_tokens(["mcp"]),
                resources: vec![],
                created_at: UnixTime(10),
                revoked_at: None,
            })
            .await
            .unwrap();
    }
    store
        .insert_client(ClientRecord::new(
            "c2".into(),
            TokenEndpointAuthMethod::None,
            ClientMetadata::default(),
            UnixTime(10),
        ))
        .await
        .unwrap();
    store
        .insert_signing_key("k-old", "ES256", b"der", UnixTime(10))
        .await
        .unwrap();

    // The engine's revocation (through the model), revoking twice: one event.
    store
        .revoke_grant(&GrantId::from("g1"), UnixTime(20))
        .await
        .unwrap();
    store
        .revoke_grant(&GrantId::from("g1"), UnixTime(21))
        .await
        .unwrap();
    // The password changes; the same hash again is no change.
    assert!(store.set_user_password("u1", "$argon2id$y").await.unwrap());
    assert!(store.set_user_password("u1", "$argon2id$y").await.unwrap());
    // The client goes (its grants first, as the engine removes it).
    store
        .revoke_client_grants(&ClientId::from("c2"), UnixTime(30))
        .await
        .unwrap();
    store.delete_client(&ClientId::from("c2")).await.unwrap();
    store.delete_signing_key("k-old").await.unwrap();
    // Disabling revokes the grants left (none) and disables the user.
    assert!(store.disable_user("u1", UnixTime(40)).await.unwrap());

    let polled = other_instance
        .poll_ssf_stream(
            &stream_named(&other_instance, "early").await,
            &[],
            100,
            UnixTime(50),
        )
        .await
        .unwrap();
    assert!(!polled.more_available);
    let seen: Vec<_> = polled
        .events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.grant_id.as_deref(),
                e.client_id.as_deref(),
                e.subject.as_deref(),
                e.kid.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Kind::GrantRevoked, Some("g1"), Some("c1"), Some("u1"), None),
            (Kind::CredentialChanged, None, None, Some("u1"), None),
            (Kind::GrantRevoked, Some("g2"), Some("c2"), Some("u1"), None),
            (Kind::GrantRevoked, Some("g3"), Some("c2"), Some("u1"), None),
            (Kind::ClientRemoved, None, Some("c2"), None, None),
            (Kind::KeyRemoved, None, None, None, Some("k-old")),
            (Kind::UserDisabled, None, None, Some("u1"), None),
        ]
    );
    assert_eq!(polled.events[0].occurred_at, 20);
    assert_eq!(polled.events[6].occurred_at, 40);

    // Delivered again until acknowledged; a page at a time.
    let ids: Vec<i64> = polled.events.iter().map(|e| e.event_id).collect();
    let page = store
        .poll_ssf_stream(
            &stream_named(&store, "early").await,
            &ids[..2],
            3,
            UnixTime(51),
        )
        .await
        .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids[2..5]
    );
    assert!(page.more_available);
    let rest = store
        .poll_ssf_stream(
            &stream_named(&store, "early").await,
            &ids[2..5],
            10,
            UnixTime(52),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids[5..]
    );
    let done = store
        .poll_ssf_stream(&stream_named(&store, "early").await, &ids, 10, UnixTime(53))
        .await
        .unwrap();
    assert!(done.events.is_empty() && !done.more_available);

    // A receiver that starts now learns every event still kept; acknowledgements are per
    // stream.
    store
        .create_ssf_stream("late", "rs", None, &Kind::ALL, None, UnixTime(60))
        .await
        .unwrap();
    // One that asked for user events only gets those.
    store
        .create_ssf_stream(
            "users-only",
            "rs",
            None,
            &[Kind::UserDisabled, Kind::CredentialChanged],
            None,
            UnixTime(60),
        )
        .await
        .unwrap();
    // Recorded after it started: filtered the same way.
    store
        .insert_grant(GrantRecord {
            grant_id: "g4".into(),
            client_id: "c1".into(),
            subject: "u2".into(),
            scope: mcpauth_token_engine::Scope::from_tokens(["mcp"]),
            resources: vec![],
            created_at: UnixTime(60),
            revoked_at: None,
        })
        .await
        .unwrap();
    store
        .revoke_grant(&GrantId::from("g4"), UnixTime(60))
        .await
        .unwrap();
    let users_only = store
        .poll_ssf_stream(
            &stream_named(&store, "users-only").await,
            &[],
            100,
            UnixTime(61),
        )
        .await
        .unwrap();
    assert_eq!(
        users_only.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [Kind::CredentialChanged, Kind::UserDisabled]
    );
    assert_eq!(
        store
            .find_ssf_stream("users-only")
            .await
            .unwrap()
            .unwrap()
            .kinds,
        [Kind::UserDisabled, Kind::CredentialChanged]
    );
    let late = store
        .poll_ssf_stream(&stream_named(&store, "late").await, &[], 100, UnixTime(61))
        .await
        .unwrap();
    // The seven kept from before it started, and g4's since.
    assert_eq!(late.events.len(), 8);
    assert_eq!(late.events.last().unwrap().grant_id.as_deref(), Some("g4"));
    assert_eq!(
        store
            .find_ssf_stream("late")
            .await
            .unwrap()
            .unwrap()
            .client_id,
        "rs"
    );

    // The sweep: events older than any live token go, and streams whose receiver left.
    let removed = store
        .sweep_security_events(UnixTime(35), UnixTime(55))
        .await
        .unwrap();
    assert!(removed > 0);
    assert!(store.find_ssf_stream("early").await.unwrap().is_none());
    let kept = store
        .poll_ssf_stream(&stream_named(&store, "late").await, &[], 100, UnixTime(62))
        .await
        .unwrap();
    let kinds: Vec<_> = kept.events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&Kind::UserDisabled), "{kinds:?}");
    assert!(kept.events.iter().all(|e| e.occurred_at >= 35), "{kinds:?}");
    assert!(store.delete_ssf_stream("late").await.unwrap());
    assert!(!store.delete_ssf_stream("late").await.unwrap());
}

// RFC 8935 push streams: one instance at a time delivers a stream (a lease), a failure waits
// out its backoff, a delivery forgets what was delivered; SSF §8.1.4 verification events go
// to the one stream that asked, one pending at a time; on both databases.
#[tokio::test]
async fn push_streams_are_claimed_by_one_instance_and_verification_reaches_one_stream() {
    on_both_databases("ssf_push", ssf_push).await;
}

#[allow(clippy::indexing_slicing, reason = "a test")]
async fn ssf_push(store: SqlStore, other_instance: SqlStore) {
    use mcpauth_store_sql::{PushEndpoint, SecurityEventKind as Kind};
    let push = PushEndpoint::new("https://rs.example/ssf/push", Some("Bearer s3cret"));
    assert!(
        !format!("{push:?}").contains("s3cret"),
        "Debug hides the receiver's credential"
    );
    store
        .create_ssf_stream("pushed", "rs", None, &Kind::ALL, Some(&push), UnixTime(10))
        .await
        .unwrap();
    store
        .create_ssf_stream("polled", "rs", None, &Kind::ALL, None, UnixTime(10))
        .await
        .unwrap();
    let pushed = stream_named(&store, "pushed").await;
    assert_eq!(pushed.push, Some(push.clone()));
    assert_eq!(stream_named(&store, "polled").await.push, None);
    // Nothing pending: nothing due.
    assert!(
        store
            .due_push_streams(UnixTime(11))
            .await
            .unwrap()
            .is_empty()
    );

    // A verification for the pushed stream only, replacing the stream's previous one; at
    // most one request a second.
    assert!(
        store
            .request_ssf_verification("pushed", Some("first"), UnixTime(11))
            .await
            .unwrap()
    );
    assert!(
        !store
            .request_ssf_verification("pushed", Some("too soon"), UnixTime(11))
            .await
            .unwrap()
    );
    assert!(
        store
            .request_ssf_verification("pushed", Some("second"), UnixTime(12))
            .await
            .unwrap()
    );
    let pending = store.pending_ssf_events("pushed", 10).await.unwrap();
    assert_eq!(pending.events.len(), 1);
    assert_eq!(pending.events[0].kind, Kind::Verification);
    assert_eq!(pending.events[0].state.as_deref(), Some("second"));
    assert!(
        store
            .pending_ssf_events("polled", 10)
            .await
            .unwrap()
            .events
            .is_empty(),
        "another stream gets no verification it did not ask for"
    );
    // Asking counts as the receiver's activity.
    assert_eq!(stream_named(&store, "pushed").await.last_polled_at, 12);

    // Due: one instance claims it, the other cannot until the lease lapses.
    let due = other_instance.due_push_streams(UnixTime(13)).await.unwrap();
    assert_eq!(
        due.iter().map(|s| s.stream_id.as_str()).collect::<Vec<_>>(),
        ["pushed"]
    );
    assert!(
        store
            .claim_push_stream("pushed", "lease-a", UnixTime(13), UnixTime(43))
            .await
            .unwrap()
    );
    assert!(
        !other_instance
            .claim_push_stream("pushed", "lease-b", UnixTime(14), UnixTime(44))
            .await
            .unwrap()
    );
    assert!(
        other_instance
            .due_push_streams(UnixTime(14))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .claim_push_stream("polled", "lease-c", UnixTime(14), UnixTime(44))
            .await
            .unwrap(),
        "a poll stream is never pushed"
    );
    // A failure: kept, due again at the retry time, counted.
    store
        .finish_push("pushed", "lease-a", &[], Some(UnixTime(20)), UnixTime(15))
        .await
        .unwrap();
    assert!(
        store
            .due_push_streams(UnixTime(19))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(stream_named(&store, "pushed").await.push_failures, 1);
    let due = store.due_push_streams(UnixTime(20)).await.unwrap();
    assert_eq!(due.len(), 1);
    // A lease that lapsed: another instance claims the stream, and the late holder's finish
    // releases nothing (its delivered events are forgotten all the same).
    assert!(
        store
            .claim_push_stream("pushed", "lease-d", UnixTime(20), UnixTime(50))
            .await
            .unwrap()
    );
    assert!(
        other_instance
            .claim_push_stream("pushed", "lease-e", UnixTime(50), UnixTime(80))
            .await
            .unwrap()
    );
    store
        .finish_push("pushed", "lease-d", &[], None, UnixTime(51))
        .await
        .unwrap();
    assert!(
        store
            .due_push_streams(UnixTime(52))
            .await
            .unwrap()
            .is_empty(),
        "still held by lease-e"
    );
    // Delivered: forgotten, failures reset, the receiver active, nothing due.
    let event_id = pending.events[0].event_id;
    other_instance
        .finish_push("pushed", "lease-e", &[event_id], None, UnixTime(53))
        .await
        .unwrap();
    let pushed = stream_named(&store, "pushed").await;
    assert_eq!((pushed.push_failures, pushed.last_polled_at), (0, 53));
    assert!(
        store
            .due_push_streams(UnixTime(54))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .pending_ssf_events("pushed", 10)
            .await
            .unwrap()
            .events
            .is_empty()
    );

    // A receiver that asks for verification while its stream waits out a failure is up:
    // the stream is due at once.
    assert!(
        store
            .claim_push_stream("pushed", "lease-f", UnixTime(60), UnixTime(90))
            .await
            .unwrap()
    );
    store
        .finish_push("pushed", "lease-f", &[], Some(UnixTime(75)), UnixTime(61))
        .await
        .unwrap();
    assert!(
        store
            .request_ssf_verification("pushed", Some("third"), UnixTime(62))
            .await
            .unwrap()
    );
    assert_eq!(store.due_push_streams(UnixTime(62)).await.unwrap().len(), 1);
}

// An event dated by the database's clock (a password change) is never dated after it
// happened: a token issued in the next second must not count as issued before it. On
// PostgreSQL a cast of the epoch rounded, half the time a second late; a few changes at
// different fractions of a second catch that.
#[tokio::test]
async fn a_password_change_is_dated_in_whole_seconds_never_after_it_happened() {
    on_both_databases("event_clock", event_clock).await;
}

#[allow(
    clippy::disallowed_methods,
    reason = "a test: the database's clock is compared with the system's"
)]
async fn event_clock(store: SqlStore, _: SqlStore) {
    use mcpauth_store_sql::SecurityEventKind as Kind;
    store
        .create_ssf_stream(
            "clock",
            "rs",
            None,
            &[Kind::CredentialChanged],
            None,
            UnixTime(1),
        )
        .await
        .unwrap();
    store
        .create_user("u1", "one@example.com", "$argon2id$0", UnixTime(10))
        .await
        .unwrap();
    for attempt in 1..=6 {
        assert!(
            store
                .set_user_password("u1", &format!("$argon2id${attempt}"))
                .await
                .unwrap()
        );
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let polled = store
            .poll_ssf_stream(&stream_named(&store, "clock").await, &[], 100, UnixTime(20))
            .await
            .unwrap();
        let event = polled.events.last().unwrap();
        assert!(
            event.occurred_at <= after,
            "dated {} after it happened ({after})",
            event.occurred_at - after
        );
        let acknowledged: Vec<i64> = polled.events.iter().map(|e| e.event_id).collect();
        store
            .poll_ssf_stream(
                &stream_named(&store, "clock").await,
                &acknowledged,
                0,
                UnixTime(20),
            )
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(170)).await;
    }
}

// The audit trail: records are kept in order, found by user, client, address and event, a
// page at a time, and swept by age; on both databases.
#[tokio::test]
async fn audit_records_are_found_by_what_they_concern_and_swept_by_age() {
    on_both_databases("audit", audit).await;
}

#[allow(clippy::indexing_slicing, reason = "a test")]
async fn audit(store: SqlStore, other_instance: SqlStore) {
    use mcpauth_store_sql::{AuditFilter, AuditOutcome, AuditRecord};
    let address: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let records = [
        AuditRecord::new("sign_in", AuditOutcome::Failure, UnixTime(10))
            .address(Some(address))
            .detail("unknown account"),
        AuditRecord::new("sign_in", AuditOutcome::Success, UnixTime(11))
            .user("u1")
            .address(Some(address)),
        AuditRecord::new("consent", AuditOutcome::Success, UnixTime(12))
            .user("u1")
            .client("c1")
            .address(Some(address)),
        AuditRecord::new("user_disabled", AuditOutcome::Success, UnixTime(20))
            .user("u1")
            .actor("admin"),
    ];
    store.record_audit(&records[..3]).await.unwrap();
    other_instance.record_audit(&records[3..]).await.unwrap();
    store.record_audit(&[]).await.unwrap();

    let everything = store
        .audit_events(&AuditFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(
        everything
            .iter()
            .map(|e| e.record.clone())
            .collect::<Vec<_>>(),
        records.iter().rev().cloned().collect::<Vec<_>>(),
        "newest first, as written"
    );
    let find = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit_events(&filter, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.record.event)
                .collect::<Vec<_>>()
        }
    };
    let mut by_user = AuditFilter::default();
    by_user.user_id = Some("u1".into());
    assert_eq!(
        find(by_user.clone()).await,
        ["user_disabled", "consent", "sign_in"]
    );
    let mut by_client = AuditFilter::default();
    by_client.client_id = Some("c1".into());
    assert_eq!(find(by_client).await, ["consent"]);
    let mut by_address = AuditFilter::default();
    by_address.address = Some("192.0.2.7".into());
    assert_eq!(find(by_address).await, ["consent", "sign_in", "sign_in"]);
    let mut by_event = by_user.clone();
    by_event.event = Some("sign_in".into());
    assert_eq!(find(by_event).await, ["sign_in"]);
    // Paging: the next page starts below the last number seen.
    let first_page = store.audit_events(&by_user, 2).await.unwrap();
    assert_eq!(first_page.len(), 2);
    by_user.before = Some(first_page[1].audit_id);
    assert_eq!(find(by_user).await, ["sign_in"]);

    // The sweep forgets what is older than the retention.
    assert_eq!(store.sweep_audit_events(UnixTime(12)).await.unwrap(), 2);
    assert_eq!(
        store
            .audit_events(&AuditFilter::default(), 100)
            .await
            .unwrap()
            .len(),
        2
    );

    // A batch larger than one statement holds (the token endpoint's writer): every record,
    // in order, nothing else.
    let batch: Vec<AuditRecord> = (0..600u64)
        .map(|i| {
            AuditRecord::new("token_issued", AuditOutcome::Success, UnixTime(100 + i))
                .user(&format!("user-{i}"))
                .client("batch-client")
                .detail("client_credentials")
        })
        .collect();
    store.record_audit(&batch).await.unwrap();
    let mut by_batch_client = AuditFilter::default();
    by_batch_client.client_id = Some("batch-client".into());
    let stored = store.audit_events(&by_batch_client, 1000).await.unwrap();
    assert_eq!(
        stored.into_iter().map(|e| e.record).collect::<Vec<_>>(),
        batch.into_iter().rev().collect::<Vec<_>>()
    );
}

// Who holds what: grants listed newest first by user or client, live ones unless asked, each
// with when its latest refresh token was issued; on both databases.
#[tokio::test]
async fn grants_are_listed_by_user_and_client_with_their_last_refresh() {
    on_both_databases("grants", list_grants).await;
}

#[allow(clippy::indexing_slicing, reason = "a test")]
async fn list_grants(store: SqlStore, other_instance: SqlStore) {
    use mcpauth_store_sql::GrantFilter;
    use mcpauth_token_engine::{RefreshTokenRecord, RefreshTokenStore};
    let grant = |id: &str, client: &str, subject: &str, at: u64| GrantRecord {
        grant_id: id.into(),
        client_id: client.into(),
        subject: subject.into(),
        scope: mcpauth_token_engine::Scope::parse("mcp:tools").unwrap(),
        resources: vec!["https://mcp.example.com/mcp".into()],
        created_at: UnixTime(at),
        revoked_at: None,
    };
    for record in [
        grant("g1", "c1", "alice", 10),
        grant("g2", "c2", "alice", 20),
        grant("g3", "c1", "bob", 30),
    ] {
        store.insert_grant(record).await.unwrap();
    }
    for (hash, issued_at) in [("r1", 11), ("r2", 15)] {
        store
            .insert_refresh(RefreshTokenRecord {
                token_hash: SecretHash::of(hash),
                grant_id: "g1".into(),
                client_id: "c1".into(),
                subject: "alice".into(),
                scope: mcpauth_token_engine::Scope::parse("mcp:tools").unwrap(),
                resources: vec!["https://mcp.example.com/mcp".into()],
                issued_at: UnixTime(issued_at),
                expires_at: UnixTime(10_000),
                rotated_at: None,
                sealed_successor: None,
                dpop_jkt: None,
            })
            .await
            .unwrap();
    }
    store
        .revoke_grant(&GrantId::from("g2"), UnixTime(25))
        .await
        .unwrap();

    let ids = |grants: Vec<mcpauth_store_sql::GrantSummary>| {
        grants.into_iter().map(|g| g.grant_id).collect::<Vec<_>>()
    };
    let everything = other_instance
        .list_grants(&GrantFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(
        ids(everything.clone()),
        ["g3", "g1"],
        "live ones, newest first"
    );
    let g1 = &everything[1];
    assert_eq!(
        (
            g1.client_id.as_str(),
            g1.subject.as_str(),
            g1.scope.as_str(),
            g1.resources.clone(),
            g1.created_at,
            g1.last_refreshed_at,
            g1.revoked_at
        ),
        (
            "c1",
            "alice",
            "mcp:tools",
            vec!["https://mcp.example.com/mcp".to_owned()],
            10,
            Some(15),
            None
        )
    );
    assert_eq!(everything[0].last_refreshed_at, None);
    let mut alices = GrantFilter::default();
    alices.subject = Some("alice".into());
    alices.include_revoked = true;
    let listed = store.list_grants(&alices, 100).await.unwrap();
    assert_eq!(ids(listed.clone()), ["g2", "g1"]);
    assert_eq!(listed[0].revoked_at, Some(25));
    let mut c1 = GrantFilter::default();
    c1.client_id = Some("c1".into());
    assert_eq!(
        ids(store.list_grants(&c1, 100).await.unwrap()),
        ["g3", "g1"]
    );
    assert_eq!(ids(store.list_grants(&c1, 1).await.unwrap()), ["g3"]);
}

// `StoreOptions::migrate(false)`: a database that lacks migrations is refused, naming them,
// and changed in nothing; once migrated it is accepted. On both databases.
#[tokio::test]
async fn without_migrations_a_database_that_lacks_them_is_refused() {
    use mcpauth_store_sql::{StoreError, StoreOptions};
    let check = |url: String| async move {
        let without = StoreOptions::default().migrate(false);
        match SqlStore::connect_with(&url, &without).await {
            Err(StoreError::SchemaBehind(pending)) => assert!(!pending.is_empty()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a database without migrations was accepted"),
        }
        let migrated = SqlStore::connect(&url).await.unwrap();
        let versions = migrated.schema_versions().await.unwrap();
        migrated.close().await;
        let accepted = SqlStore::connect_with(&url, &without).await.unwrap();
        assert_eq!(accepted.schema_versions().await.unwrap(), versions);
        accepted.close().await;
    };
    let dir = std::env::temp_dir().join(format!("mcpauth-no-migrate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    check(format!("sqlite://{}", dir.join("state.db").display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
    let pg = TempPostgres::start().unwrap();
    check(pg.create_database("no_migrate").unwrap()).await;
}

// An online backup is SQLite's: PostgreSQL is named with its own tools, and nothing is made.
#[tokio::test]
async fn a_postgres_backup_is_refused_with_where_to_turn() {
    let destination = std::env::temp_dir().join(format!("mcpauth-pg-{}.db", std::process::id()));
    let refused = mcpauth_store_sql::backup_sqlite("postgres://u@127.0.0.1/db", &destination)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("pg_dump"), "{refused}");
    assert!(!destination.exists());
}

// Removing a user: its sessions end, its grants are revoked, the account and its remembered
// consent are deleted; another user keeps everything. On both databases.
#[tokio::test]
async fn removing_a_user_revokes_its_grants_and_deletes_the_account() {
    on_both_databases("remove", |store, _| async move {
        two_users_with_a_session_and_a_grant(&store).await;
        assert!(store.remove_user("u1", UnixTime(20)).await.unwrap());
        assert!(!store.remove_user("u1", UnixTime(21)).await.unwrap());
        assert!(store.find_user_by_id("u1").await.unwrap().is_none());
        assert!(store.find_user_by_id("u2").await.unwrap().is_some());
        assert_eq!(
            store
                .session_user(&SecretHash::of("s-u1"), UnixTime(30))
                .await
                .unwrap(),
            None
        );
        let revoked = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .find_grant(&GrantId::from(id))
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked_at
            }
        };
        assert_eq!(revoked("g-u1").await, Some(UnixTime(20)));
        assert_eq!(revoked("g-u2").await, None);
    })
    .await;
}

//! The audit trail over HTTP: sign-ins (each failure with why), consent and its withdrawal
//! are recorded with the user, the client and the caller's address; the administrator's
//! actions with the actor; nothing a caller typed as a secret appears.

use super::*;

/// The events of the token, revocation and registration endpoints, which a task of their own
/// writes in batches (the others are written before the answer).
const ENDPOINT_EVENTS: [&str; 7] = [
    "token_issued",
    "code_replayed",
    "refresh_replayed",
    "client_authentication_failed",
    "token_revoked",
    "client_registered",
    "registration_refused",
];

/// The audit trail of `server`'s database, oldest first, without the endpoints' events.
async fn audit_trail(server: &Running) -> Vec<mcpauth_store_sql::AuditRecord> {
    let mut trail = whole_audit_trail(server).await;
    trail.retain(|r| !ENDPOINT_EVENTS.contains(&r.event.as_str()));
    trail
}

/// The endpoints' events, oldest first, once there are `expected` of them (their writer
/// stores them moments after the answers; this waits up to ten seconds for it).
async fn endpoint_trail(server: &Running, expected: usize) -> Vec<mcpauth_store_sql::AuditRecord> {
    let mut trail = Vec::new();
    for _ in 0..200 {
        trail = whole_audit_trail(server).await;
        trail.retain(|r| ENDPOINT_EVENTS.contains(&r.event.as_str()));
        if trail.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    trail
}

/// The audit trail of `server`'s database, oldest first, read as the operator would (another
/// process on the same database).
async fn whole_audit_trail(server: &Running) -> Vec<mcpauth_store_sql::AuditRecord> {
    let mut config = mcpauth_server::Config::default();
    config.issuer = Some(server.issuer.clone());
    config.database_url = format!("sqlite://{}", server.dir.join("mcpauth.db").display());
    let admin = mcpauth_server::build(&config).await.unwrap();
    let entries = admin
        .store
        .audit_events(&mcpauth_store_sql::AuditFilter::default(), 1000)
        .await
        .unwrap();
    admin.store.close().await;
    entries.into_iter().rev().map(|e| e.record).collect()
}

#[tokio::test]
async fn sign_ins_consent_and_the_administrators_actions_are_audited_with_the_callers_address() {
    let server = start().await;
    let alice = {
        let mut config = mcpauth_server::Config::default();
        config.database_url = format!("sqlite://{}", server.dir.join("mcpauth.db").display());
        let store = mcpauth_server::open_store(&config).await.unwrap();
        let id = store
            .find_user_by_email("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .user_id;
        store.close().await;
        id
    };
    let form = server.login_form().await;
    for (email, password) in [
        ("nobody@example.com", "Secret-Guess-1"),
        ("alice@example.com", "Secret-Guess-2"),
    ] {
        assert_eq!(
            server
                .attempt_sign_in(&form, email, password)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Signs in through the authorization flow and approves the client.
    let (client_id, _) = server.fresh_code(&[]).await;
    let mut config = mcpauth_server::Config::default();
    config.database_url = format!("sqlite://{}", server.dir.join("mcpauth.db").display());
    let store = mcpauth_server::open_store(&config).await.unwrap();
    mcpauth_server::admin::disable_user(&store, "alice@example.com")
        .await
        .unwrap();
    store.close().await;

    let trail = audit_trail(&server).await;
    let here = Some("127.0.0.1".to_owned());
    let seen: Vec<_> = trail
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.outcome,
                r.user_id.as_deref(),
                r.client_id.as_deref(),
                r.detail.as_deref(),
            )
        })
        .collect();
    use mcpauth_store_sql::AuditOutcome::{Failure, Success};
    assert_eq!(
        seen,
        [
            ("user_added", Success, Some(alice.as_str()), None, None),
            ("sign_in", Failure, None, None, Some("unknown account")),
            (
                "sign_in",
                Failure,
                Some(alice.as_str()),
                None,
                Some("wrong password")
            ),
            (
                "sign_in",
                Success,
                Some(alice.as_str()),
                None,
                Some("password")
            ),
            (
                "consent",
                Success,
                Some(alice.as_str()),
                Some(client_id.as_str()),
                Some("approved")
            ),
            ("user_disabled", Success, Some(alice.as_str()), None, None),
        ]
    );
    // The caller's address on what a caller did; the actor on the administrator's actions.
    for record in &trail {
        if record.actor.is_some() {
            assert_eq!(
                (record.actor.as_deref(), &record.address),
                (Some("admin"), &None)
            );
        } else {
            assert_eq!(record.address, here, "{record:?}");
        }
    }
    let everything = format!("{trail:?}");
    for secret in ["Secret-Guess", "correct horse", "nobody@example.com"] {
        assert!(!everything.contains(secret), "{secret} in the trail");
    }
}

// An account locked after repeated wrong passwords is recorded once, then each refused try.
#[tokio::test]
async fn a_lockout_is_audited() {
    let server = start_configured("", temp_dir("audit-lockout"), |config| {
        config.login_lockout_after = 2;
    })
    .await;
    let form = server.login_form().await;
    for _ in 0..3 {
        server
            .attempt_sign_in(&form, "alice@example.com", "not it")
            .await;
    }
    let trail = audit_trail(&server).await;
    let events: Vec<(&str, Option<&str>)> = trail
        .iter()
        .filter(|r| r.event != "user_added")
        .map(|r| (r.event.as_str(), r.detail.as_deref()))
        .collect();
    assert_eq!(
        events,
        [
            ("sign_in", Some("wrong password")),
            ("sign_in", Some("wrong password")),
            ("account_locked", Some("for this caller")),
            ("sign_in", Some("account locked")),
        ]
    );
}

// `audit_retention_days`: at 1, the sweep forgets records older than a day and keeps the
// rest; at 0, it keeps everything.
#[tokio::test]
async fn audit_records_are_kept_for_the_retention_and_forever_at_zero() {
    for (days, kept_after_two_days) in [(1, 1), (0, 2)] {
        let dir = temp_dir(&format!("audit-retention-{days}"));
        let clock = Arc::new(ManualClock::new(UnixTime(1_800_000_000)));
        let mut config = mcpauth_server::Config::default();
        config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
        config.audit_retention_days = days;
        let server = mcpauth_server::build_with(
            &config,
            mcpauth_server::BuildOptions::default().clock(clock.clone()),
        )
        .await
        .unwrap();
        let record = |at: u64| {
            mcpauth_store_sql::AuditRecord::new(
                "sign_in",
                mcpauth_store_sql::AuditOutcome::Success,
                UnixTime(at),
            )
        };
        server
            .store
            .record_audit(&[record(1_800_000_000), record(1_800_000_000 + 2 * 86_400)])
            .await
            .unwrap();
        clock.advance(2 * 86_400 + 10);
        server.sweep_now().await;
        let kept = server
            .store
            .audit_events(&mcpauth_store_sql::AuditFilter::default(), 100)
            .await
            .unwrap();
        assert_eq!(
            kept.len(),
            kept_after_two_days,
            "audit_retention_days = {days}"
        );
        server.store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

// Refused for too many attempts from one address: one record for the window, not one per
// refused attempt (they cost a caller nothing).
#[tokio::test]
async fn refusals_over_the_address_limit_leave_one_record_per_window() {
    let hour = SystemClock.now().0 / 3600 * 3600;
    let clock = Arc::new(ManualClock::new(UnixTime(hour + 600)));
    let server = start_timed("", temp_dir("audit-throttle"), clock, |config| {
        config.sign_in_attempts_per_ip_per_hour = 3;
    })
    .await;
    let form = server.login_form().await;
    for n in 0..10 {
        server
            .attempt_sign_in(&form, &format!("user{n}@example.com"), "wrong")
            .await;
    }
    let details: Vec<String> = audit_trail(&server)
        .await
        .into_iter()
        .filter(|r| r.event == "sign_in")
        .filter_map(|r| r.detail)
        .collect();
    assert_eq!(details.len(), 4, "{details:?}");
    assert!(details[..3].iter().all(|d| d == "unknown account"));
    assert!(details[3].starts_with("too many attempts from this address"));
}

// Withdrawing a client that holds no consent records nothing; withdrawing one that does is
// recorded with the client.
#[tokio::test]
async fn only_a_withdrawal_that_withdrew_something_is_audited() {
    let server = start().await;
    // Alice approves a client and has the decision remembered.
    let client_id = server.register().await;
    let (first, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), "")
        .await;
    let interaction = format!("{}{}", server.base, location(&first));
    let session = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &session)
        .await
        .text()
        .await
        .unwrap();
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &session,
            &[
                ("csrf_token", field(&html, "csrf_token").as_str()),
                ("decision", "approve"),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let account = server
        .get(&format!("{}/account", server.base), &session)
        .await;
    let cookie = format!("{session}; {}", cookies(account.headers()));
    let csrf = field(&account.text().await.unwrap(), "csrf_token");
    for client in ["never-approved", "another"] {
        let answer = server
            .post_form(
                &format!("{}/account/withdraw", server.base),
                &cookie,
                &[("csrf_token", csrf.as_str()), ("client_id", client)],
            )
            .await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    }
    assert!(
        audit_trail(&server)
            .await
            .iter()
            .all(|r| r.event != "consent_withdrawn"),
        "nothing was withdrawn"
    );
    let answer = server
        .post_form(
            &format!("{}/account/withdraw", server.base),
            &cookie,
            &[("csrf_token", csrf.as_str()), ("client_id", &client_id)],
        )
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let withdrawn: Vec<_> = audit_trail(&server)
        .await
        .into_iter()
        .filter(|r| r.event == "consent_withdrawn")
        .collect();
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0].client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(withdrawn[0].address.as_deref(), Some("127.0.0.1"));
}

// The token, revocation and registration endpoints: tokens issued (to whom, for which user,
// by which grant), a replayed code, a failed client authentication, a revocation, a
// registration and its refusal; each with the caller's address and no secret.
#[tokio::test]
async fn the_token_revocation_and_registration_endpoints_are_audited() {
    let server = start().await;
    let refused = server
        .http
        .post(format!("{}/register", server.issuer))
        .json(&serde_json::json!({ "redirect_uris": ["javascript:alert(1)"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let (client_id, code) = server.fresh_code(&[]).await;
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client_id.as_str()),
    ];
    let token_url = format!("{}/token", server.issuer);
    let tokens: Value = server
        .http
        .post(&token_url)
        .form(&redeem)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let replayed = server
        .http
        .post(&token_url)
        .form(&redeem)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    let revoked = server
        .http
        .post(format!("{}/revoke", server.issuer))
        .form(&[
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let forged = server
        .http
        .post(&token_url)
        .basic_auth("made-up-client", Some("Secret-Guess-3"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    let trail = endpoint_trail(&server, 6).await;
    let alice = audit_trail(&server)
        .await
        .into_iter()
        .find(|r| r.event == "sign_in")
        .and_then(|r| r.user_id)
        .unwrap();
    use mcpauth_store_sql::AuditOutcome::{Failure, Success};
    let seen: Vec<_> = trail
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.outcome,
                r.user_id.as_deref(),
                r.client_id.as_deref(),
                r.detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "registration_refused",
                Failure,
                None,
                None,
                Some("invalid_redirect_uri")
            ),
            (
                "client_registered",
                Success,
                None,
                Some(client_id.as_str()),
                None
            ),
            (
                "token_issued",
                Success,
                Some(alice.as_str()),
                Some(client_id.as_str()),
                Some("authorization_code")
            ),
            (
                "code_replayed",
                Failure,
                None,
                Some(client_id.as_str()),
                None
            ),
            (
                "token_revoked",
                Success,
                None,
                Some(client_id.as_str()),
                Some("refresh_token")
            ),
            (
                "client_authentication_failed",
                Failure,
                None,
                Some("made-up-client"),
                None
            ),
        ]
    );
    for record in &trail {
        assert_eq!(record.address.as_deref(), Some("127.0.0.1"), "{record:?}");
        assert_eq!(record.actor, None);
    }
    let everything = format!("{trail:?}");
    for secret in [
        refresh_token.as_str(),
        code.as_str(),
        "Secret-Guess-3",
        VERIFIER,
    ] {
        assert!(!everything.contains(secret), "a secret in the trail");
    }
}

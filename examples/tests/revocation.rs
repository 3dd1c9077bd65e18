//! Revocation that reaches resource servers (issue 26): `mcpauth-server` as the Shared Signals
//! transmitter, the axum, actix and hyper example MCP servers as receivers (their bearer
//! layers poll the stream every second, or have events pushed to them). For each event that
//! ends access the revoked token is refused (`401 invalid_token`) by every MCP server within
//! seconds,
//! measured here and printed: a hundred logouts (RFC 7009) for a 99th percentile, a password
//! change, a refresh token replayed, consent withdrawn, a removed client, a disabled user, a
//! removed signing key. Tokens of other grants, and tokens issued after a password change,
//! keep working. On SQLite with one instance, and on PostgreSQL with two: the revocations are
//! made at one instance, the MCP servers poll the other (or both instances push).
//!
//! The clock is the real one: what is measured is the time a revocation takes to cross three
//! processes (authorization server, database, MCP servers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

#[path = "../../crates/server/tests/support/mod.rs"]
mod pages;

use std::time::{Duration, Instant};

use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{AuthorizeOutcome, FormParams};
use serde_json::json;

/// How many logouts are measured for the 99th percentile.
const LOGOUTS: usize = 100;
use support::{Example, free_port, tempdir};

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
/// How long a revocation may take to reach a resource server here (the target at the
/// 99th percentile, with the default one-second poll).
const TARGET: Duration = Duration::from_secs(5);

/// The status an MCP server answers `token` with (an `initialize` request).
async fn status_with(http: &reqwest::Client, resource: &str, token: &str) -> u16 {
    http.post(resource)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": { "name": "revocation test", "version": "1" },
            },
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether every resource refuses `token` with `401`. The bearer layer answers a refused
/// token within milliseconds; a request still running after 100 ms got past it (the MCP
/// server is answering), so it counts as accepted without waiting for the answer: the
/// measurement is not held up by the MCP server.
async fn refused_everywhere(http: &reqwest::Client, resources: &[String], token: &str) -> bool {
    let answers = futures::future::join_all(resources.iter().map(|resource| {
        tokio::time::timeout(
            Duration::from_millis(100),
            http.post(resource)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{}")
                .send(),
        )
    }))
    .await;
    answers
        .into_iter()
        .all(|answer| answer.is_ok_and(|a| a.is_ok_and(|a| a.status() == 401)))
}

/// Waits until every resource refuses `token`; how long that took.
async fn until_refused(http: &reqwest::Client, resources: &[String], token: &str) -> Duration {
    let started = Instant::now();
    while !refused_everywhere(http, resources, token).await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the resource servers did not refuse the token within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    // Refused as an invalid token, not for want of anything else.
    for resource in resources {
        let answer = http.post(resource).bearer_auth(token).send().await.unwrap();
        let challenge = answer
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    took
}

/// Waits until every resource answers `token` with `status`; how long that took.
/// Waits until every resource accepts `token` (once its receiver has heard from the
/// stream).
async fn until_accepted(http: &reqwest::Client, resources: &[String], token: &str) {
    let started = Instant::now();
    loop {
        let mut answers = Vec::new();
        for resource in resources {
            answers.push(status_with(http, resource, token).await);
        }
        if answers.iter().all(|status| *status == 200) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the resource servers still answer {answers:?} after 30 s to {}",
            token.get(..12).unwrap_or(token)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_that_ends_access_reaches_every_example_mcp_server_within_seconds_on_sqlite() {
    let dir = tempdir("revocation");
    let url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    every_event_reaches_every_mcp_server(&url, false, Delivery::Poll).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_every_event_that_ends_access_reaches_every_example_mcp_server_on_sqlite() {
    let dir = tempdir("revocation-push");
    let url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    every_event_reaches_every_mcp_server(&url, false, Delivery::Push).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_revocation_at_one_instance_reaches_mcp_servers_polling_another() {
    let pg = mcpauth_test_postgres::TempPostgres::start().unwrap();
    let url = pg.create_database("revocation").unwrap();
    every_event_reaches_every_mcp_server(&url, true, Delivery::Poll).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_two_instances_push_every_event_to_every_mcp_server() {
    let pg = mcpauth_test_postgres::TempPostgres::start().unwrap();
    let url = pg.create_database("revocation_push").unwrap();
    every_event_reaches_every_mcp_server(&url, true, Delivery::Push).await;
}

/// How the MCP servers receive the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// They poll (RFC 8936), every second.
    Poll,
    /// The authorization server pushes to them (RFC 8935).
    Push,
}

/// An environment as the examples take it.
fn as_pairs<'a>(env: &'a [(&'static str, String); 4]) -> [(&'static str, &'a str); 4] {
    env.each_ref().map(|(k, v)| (*k, v.as_str()))
}

/// The scenario on the database at `database_url`; with `two_instances`, a second
/// authorization server instance on the same database makes the revocations.
async fn every_event_reaches_every_mcp_server(
    database_url: &str,
    two_instances: bool,
    delivery: Delivery,
) {
    // The instance the MCP servers poll (its address is the issuer both instances name).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let mut config = mcpauth_server::Config::default();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = database_url.to_owned();
    // A replayed refresh token revokes its grant at once (no grace for a retry).
    config.refresh_reuse_grace = 0;
    // A rotated key signs at once, so the first one can be retired and removed.
    config.key_rotation_lead = 0;
    // Pushed: the operator lists the MCP servers' origins (their ports chosen here).
    let ports = [free_port(), free_port(), free_port()];
    if delivery == Delivery::Push {
        config.ssf_push_origins = ports
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect();
    }
    if two_instances {
        // PostgreSQL: the instances share their signing keys through the database, sealed.
        config.signing_key_encryption_key =
            Some("KtmP1E4nK9QwqX4xCk4l3iUGeRd5ZL1tJ1oRJ8qq1wA=".into());
    }
    let server = mcpauth_server::build(&config).await.unwrap();
    let polled = (server.engine.clone(), server.store.clone());
    let _polled_instance = pages::serve(listener, server);
    // Where revocations are made: the same instance, or another one on the same database.
    let (engine, store, revoke_at, _other_instance) = if two_instances {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = format!("http://{}", listener.local_addr().unwrap());
        let mut config = config.clone();
        config.listen = listener.local_addr().unwrap();
        let server = mcpauth_server::build(&config).await.unwrap();
        let handles = (server.engine.clone(), server.store.clone());
        (
            handles.0,
            handles.1,
            other,
            Some(pages::serve(listener, server)),
        )
    } else {
        (polled.0.clone(), polled.1.clone(), issuer.clone(), None)
    };
    // The operator's side: the MCP servers' client (a resource server), a machine client and
    // a user.
    let mut receiver = mcpauth_server::admin::NewClient::new("Example MCP servers");
    receiver.resource_server = true;
    let receiver = mcpauth_server::admin::add_client(&engine, receiver)
        .await
        .unwrap();
    let mut machine = mcpauth_server::admin::NewClient::new("Nightly job");
    machine.grant_types = vec!["client_credentials".into()];
    let machine = mcpauth_server::admin::add_client(&engine, machine)
        .await
        .unwrap();
    let mut backup = mcpauth_server::admin::NewClient::new("Backup job");
    backup.grant_types = vec!["client_credentials".into()];
    let backup = mcpauth_server::admin::add_client(&engine, backup)
        .await
        .unwrap();
    let alice = mcpauth_server::add_user(&store, "alice@example.com", "correct horse battery")
        .await
        .unwrap();

    let receiver_secret = receiver.client_secret.clone().unwrap();
    let push = if delivery == Delivery::Push {
        "true"
    } else {
        "false"
    };
    let listen = ports.map(|port| format!("127.0.0.1:{port}"));
    let env = |listen: &str| {
        [
            ("EXAMPLE_REVOCATION_CLIENT_ID", receiver.client_id.clone()),
            ("EXAMPLE_REVOCATION_CLIENT_SECRET", receiver_secret.clone()),
            ("EXAMPLE_REVOCATION_PUSH", push.to_owned()),
            ("EXAMPLE_LISTEN", listen.to_owned()),
        ]
    };
    let axum_env = env(&listen[0]);
    let actix_env = env(&listen[1]);
    let hyper_env = env(&listen[2]);
    let (mut axum, axum_resource) = Example::Axum
        .start_with(&issuer, &as_pairs(&axum_env))
        .await;
    let (mut actix, actix_resource) = Example::Actix
        .start_with(&issuer, &as_pairs(&actix_env))
        .await;
    // The hyper example receives through the glue docs/embedding.md describes.
    let (mut hyper, hyper_resource) = Example::Hyper
        .start_with(&issuer, &as_pairs(&hyper_env))
        .await;
    let resources = [
        axum_resource.clone(),
        actix_resource.clone(),
        hyper_resource,
    ];

    // Alice's sign-ins through two clients (two grants), each for both MCP servers.
    let sign_in = |name: &'static str| {
        let engine = engine.clone();
        let resources = resources.clone();
        let alice = alice.clone();
        async move {
            let mut metadata = ClientMetadata::default();
            metadata.redirect_uris = vec![REDIRECT.into()];
            metadata.client_name = Some(name.into());
            let client = engine
                .register_client(metadata, mcpauth_token_engine::now())
                .await
                .unwrap();
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.extend_pairs([
                ("response_type", "code"),
                ("client_id", client.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("scope", "mcp:tools"),
            ]);
            for resource in &resources {
                query.append_pair("resource", resource);
            }
            let now = mcpauth_token_engine::now();
            let AuthorizeOutcome::NeedsConsent(pending) =
                engine.authorize(query.finish().as_bytes(), now).await
            else {
                panic!("consent expected");
            };
            let redirect = engine.approve(pending, &alice, now).await.unwrap();
            let code = url::Url::parse(&redirect.location)
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .into_owned();
            let form = FormParams::from_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", &client.client_id),
            ]);
            let tokens = engine.token(None, &form, now).await.unwrap();
            (client.client_id, tokens)
        }
    };
    let mut logouts = Vec::new();
    for _ in 0..LOGOUTS {
        logouts.push(sign_in("Logs out").await);
    }
    let (_, staying) = sign_in("Stays").await;
    let http = reqwest::Client::new();
    let machine_token = |(client_id, secret): (String, Option<String>)| {
        let http = http.clone();
        let resources = resources.clone();
        let revoke_at = revoke_at.clone();
        async move {
            let mut form = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("scope", "mcp:tools".to_owned()),
            ];
            form.extend(resources.iter().map(|r| ("resource", r.clone())));
            let answer: serde_json::Value = http
                .post(format!("{revoke_at}/token"))
                .basic_auth(&client_id, secret.as_deref())
                .form(&form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["access_token"].as_str().unwrap().to_owned()
        }
    };
    let backup_token = machine_token((backup.client_id, backup.client_secret)).await;
    let machine_client_id = machine.client_id.clone();
    let machine_token = machine_token((machine.client_id, machine.client_secret)).await;
    let (replayed_client, replayed) = sign_in("Replays its refresh token").await;

    // Both MCP servers take the tokens once their receivers have polled.
    for token in [
        &logouts[0].1.access_token,
        &staying.access_token,
        &machine_token,
        &backup_token,
        &replayed.access_token,
    ] {
        until_accepted(&http, &resources, token).await;
    }

    // An anonymous or foreign caller's push, through each framework's route, is refused and
    // changes nothing; where the MCP servers poll there is no push route at all.
    for resource in &resources {
        let push = resource.replace("/mcp", "/ssf/push");
        for authorization in [None, Some("Bearer guessed")] {
            let mut request = http
                .post(&push)
                .header("content-type", "application/secevent+jwt")
                .body("eyJhbGciOiJub25lIn0.e30.");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let answer = request.send().await.unwrap();
            if delivery == Delivery::Push {
                assert_eq!(answer.status(), 401, "{push}");
                let body: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(body["err"], "authentication_failed", "{push}");
            } else {
                assert!(!answer.status().is_success(), "{push}: {}", answer.status());
            }
        }
    }
    until_accepted(&http, &resources, &logouts[0].1.access_token).await;

    let mut latencies = Vec::new();
    // 1. A hundred logouts (RFC 7009 on the refresh token), each timed from its revocation
    //    to both MCP servers refusing its access token.
    let mut revoked_at = Vec::new();
    for (client_id, tokens) in &logouts {
        let revoked = http
            .post(format!("{revoke_at}/revoke"))
            .form(&[
                ("token", tokens.refresh_token.as_deref().unwrap()),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        revoked_at.push(Instant::now());
    }
    let mut waiting: Vec<usize> = (0..logouts.len()).collect();
    let mut logout_latencies = Vec::new();
    let started = Instant::now();
    while !waiting.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} logouts not refused within a minute",
            waiting.len()
        );
        let checks = futures::future::join_all(
            waiting
                .iter()
                .map(|i| refused_everywhere(&http, &resources, &logouts[*i].1.access_token)),
        )
        .await;
        let now = Instant::now();
        let mut still = Vec::new();
        for (i, refused) in waiting.iter().zip(checks) {
            if refused {
                logout_latencies.push(now - revoked_at[*i]);
            } else {
                still.push(*i);
            }
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    logout_latencies.sort();
    let p50 = logout_latencies[logout_latencies.len() / 2];
    let p99 = logout_latencies[(logout_latencies.len() * 99).div_ceil(100) - 1];
    println!(
        "{delivery:?}: {} logouts: p50 {p50:?}, p99 {p99:?}, max {:?}",
        logout_latencies.len(),
        logout_latencies.last().unwrap()
    );
    latencies.push(("logout (RFC 7009), p99 of a hundred", p99));
    for resource in &resources {
        assert_eq!(
            status_with(&http, resource, &staying.access_token).await,
            200,
            "another grant's token keeps working"
        );
    }
    // 1b. Alice changes her password: her tokens issued before are refused, one issued after
    //     works (her grants stay).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let changed = Instant::now();
    mcpauth_server::admin::change_password(&store, "alice@example.com", "a new horse battery")
        .await
        .unwrap();
    until_refused(&http, &resources, &staying.access_token).await;
    latencies.push(("password changed", changed.elapsed()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, staying) = sign_in("Signs in again").await;
    let (withdrawn_client, withdrawn) = sign_in("Loses its consent").await;
    until_accepted(&http, &resources, &staying.access_token).await;
    until_accepted(&http, &resources, &withdrawn.access_token).await;
    // 1c. A refresh token used twice (RFC 9700 §4.14.2: reuse revokes the grant); the
    //     token of its first use dies with it.
    let refresh = |token: String| {
        let engine = engine.clone();
        let client_id = replayed_client.clone();
        async move {
            let form = FormParams::from_pairs([
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &client_id),
            ]);
            engine.token(None, &form, mcpauth_token_engine::now()).await
        }
    };
    let old_refresh = replayed.refresh_token.clone().unwrap();
    let rotated = refresh(old_refresh.clone()).await.unwrap();
    until_accepted(&http, &resources, &rotated.access_token).await;
    let replayed_at = Instant::now();
    assert!(refresh(old_refresh).await.is_err(), "a replay is refused");
    until_refused(&http, &resources, &rotated.access_token).await;
    latencies.push(("refresh token replayed", replayed_at.elapsed()));
    // 1d. Alice withdraws her consent to a client (what /account does).
    let withdrew = Instant::now();
    store
        .revoke_consent(&alice, &withdrawn_client, mcpauth_token_engine::now())
        .await
        .unwrap();
    until_refused(&http, &resources, &withdrawn.access_token).await;
    latencies.push(("consent withdrawn", withdrew.elapsed()));
    assert_eq!(
        status_with(&http, &axum_resource, &staying.access_token).await,
        200,
        "another grant's token keeps working"
    );
    // 2. The operator removes the machine client.
    assert!(
        mcpauth_server::admin::remove_client(&engine, &machine_client_id)
            .await
            .unwrap()
    );
    let took = until_refused(&http, &resources, &machine_token).await;
    latencies.push(("client removed", took));
    assert_eq!(
        status_with(&http, &axum_resource, &staying.access_token).await,
        200
    );
    // 3. The operator disables alice.
    mcpauth_server::admin::disable_user(&store, "alice@example.com")
        .await
        .unwrap();
    let took = until_refused(&http, &resources, &staying.access_token).await;
    latencies.push(("user disabled", took));
    // 4. The operator rotates the signing key and removes the one every token so far was
    //    signed with (what `mcpauth-server key rotate` and `key remove` do, from another
    //    process): the backup job's token, untouched so far, is refused.
    assert_eq!(
        status_with(&http, &actix_resource, &backup_token).await,
        200
    );
    let operator = mcpauth_server::build(&config).await.unwrap();
    let first_key = operator.list_keys().await.unwrap()[0].0.kid.clone();
    operator.rotate_key("ES256").await.unwrap();
    let removed = Instant::now();
    operator.remove_key(&first_key).await.unwrap();
    until_refused(&http, &resources, &backup_token).await;
    latencies.push(("signing key removed", removed.elapsed()));
    operator.store.close().await;

    // The axum and actix MCP servers' own metrics show what their receivers did.
    for resource in &resources[..2] {
        let metrics = http
            .get(resource.replace("/mcp", "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
        };
        assert!(
            value("mcpauth_rs_revocation_events_total") >= 106,
            "{metrics}"
        );
        assert!(value("mcpauth_rs_revocations_held") >= 100, "{metrics}");
        assert!(
            value("mcpauth_rs_revocation_silence_seconds") <= 30,
            "{metrics}"
        );
        assert!(
            value("mcpauth_rs_tokens_refused_total{reason=\"revoked\"}") > 0,
            "{metrics}"
        );
    }
    for (event, took) in &latencies {
        println!("revocation reached every MCP server ({delivery:?}): {event}: {took:?}");
        assert!(*took < TARGET, "{event} took {took:?}");
    }
    let _ = axum.kill().await;
    let _ = actix.kill().await;
    let _ = hyper.kill().await;
}

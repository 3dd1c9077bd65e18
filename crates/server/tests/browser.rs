//! mcpauth-server's pages in a real browser: Debian's headless Chromium, driven by
//! playwright-core (`interop/browser/browser.mjs`).
//!
//! The test plays the MCP client: it registers itself (RFC 7591), listens for its redirect on
//! loopback like a CLI does, opens its authorization request in the browser, and exchanges
//! the code it receives (PKCE S256) for tokens. The browser signs in, reads the consent page,
//! approves or denies; a second request is asked again when the client cannot prove who it
//! is, and skips the page with consent remembered when it can; the
//! device page approves a device code; another site framing a page gets an empty frame.
//! Screenshots of every page land in
//! `target/tmp/browser-screenshots/`.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node` and `npm`; `.ci/run` installs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;

use serde_json::json;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "analytical engine 1843";

mod support;
use support::*;

async fn start(dir: &Path) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = mcpauth_server::Config::default();
    config.listen = addr;
    config.issuer = Some(format!("http://{addr}"));
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.scopes_supported = vec!["mcp:tools".into(), "mcp:admin".into()];
    config
        .scope_descriptions
        .insert("mcp:tools".into(), "Use the MCP server's tools".into());
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    serve(listener, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_chromium_signs_in_consents_and_the_client_gets_its_code() {
    let chromium = chromium();
    ensure_npm("browser", "playwright-core").await;
    let dir = std::env::temp_dir().join(format!("mcpauth-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("profile");
    let shots = screenshots("browser-screenshots");
    let server = start(&dir).await;
    let (redirect_uri, mut callbacks) = callback_listener().await;
    let client_id = server
        .register(json!({
            "client_name": "Browser Test Client",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let step = |url: String, approve: bool, remember: bool| {
        json!({
            "url": url, "redirect_uri": redirect_uri, "approve": approve, "remember": remember,
            "email": EMAIL, "password": PASSWORD, "profile": profile, "chromium": chromium,
            "screenshots": shots,
        })
    };

    // First visit: sign in, consent shows the client and the scope with its description. A
    // public client on a loopback redirect cannot prove who it is (RFC 8252 §8.6): the page
    // says where the answer goes and does not offer to remember.
    let seen = browse(
        "authorize",
        step(
            server.authorize_url(&client_id, &redirect_uri, "first"),
            true,
            false,
        ),
    )
    .await;
    assert_eq!(seen["signedIn"], true, "{seen}");
    assert_eq!(seen["consent"], true, "{seen}");
    let consent = seen["pages"][1]["text"].as_str().unwrap();
    assert!(
        consent.contains("Authorize Browser Test Client?"),
        "{consent}"
    );
    assert!(consent.contains("Use the MCP server's tools"), "{consent}");
    assert!(consent.contains(RESOURCE), "{consent}");
    assert!(
        consent.contains(&format!("Signed in as {EMAIL}")),
        "{consent}"
    );
    assert!(
        consent.contains("a program on this computer (localhost)"),
        "{consent}"
    );
    assert!(!consent.contains("Remember this decision"), "{consent}");
    assert!(
        seen["final_text"]
            .as_str()
            .unwrap()
            .contains("You can close this window")
    );
    let callback = callbacks.recv().await.unwrap();
    assert_eq!(param(&callback, "state"), Some("first"));
    assert_eq!(param(&callback, "iss"), Some(server.issuer.as_str()));
    let tokens = server
        .redeem(&client_id, &redirect_uri, param(&callback, "code").unwrap())
        .await;
    assert_eq!(tokens["scope"], "mcp:tools");
    assert!(tokens["refresh_token"].is_string());
    assert_png(&shots.join("login.png"));
    assert_png(&shots.join("consent.png"));

    // Second visit, same browser: signed in, asked again, one click.
    let mut again = step(
        server.authorize_url(&client_id, &redirect_uri, "second"),
        true,
        false,
    );
    again["prefix"] = json!("again-");
    let seen = browse("authorize", again).await;
    assert_eq!(seen["signedIn"], false, "{seen}");
    assert_eq!(seen["consent"], true, "{seen}");
    let callback = callbacks.recv().await.unwrap();
    assert_eq!(param(&callback, "state"), Some("second"));
    server
        .redeem(&client_id, &redirect_uri, param(&callback, "code").unwrap())
        .await;

    // A confidential client (its identity assured by its secret): remembered, then skipped.
    let confidential = server
        .register_full(json!({
            "client_name": "Confidential Browser Client",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let (confidential_id, secret) = (
        confidential["client_id"].as_str().unwrap(),
        confidential["client_secret"].as_str().unwrap(),
    );
    let mut remembered = step(
        server.authorize_url(confidential_id, &redirect_uri, "remembered"),
        true,
        true,
    );
    remembered["prefix"] = json!("remember-");
    let seen = browse("authorize", remembered).await;
    assert_eq!(seen["consent"], true, "{seen}");
    let callback = callbacks.recv().await.unwrap();
    server
        .redeem_as(
            confidential_id,
            Some(secret),
            &redirect_uri,
            param(&callback, "code").unwrap(),
        )
        .await;
    let seen = browse(
        "authorize",
        step(
            server.authorize_url(confidential_id, &redirect_uri, "skipped"),
            true,
            false,
        ),
    )
    .await;
    assert_eq!(seen["consent"], false, "{seen}");
    let callback = callbacks.recv().await.unwrap();
    assert_eq!(param(&callback, "state"), Some("skipped"));
    server
        .redeem_as(
            confidential_id,
            Some(secret),
            &redirect_uri,
            param(&callback, "code").unwrap(),
        )
        .await;

    // Another client, denied: the client hears access_denied with its state.
    let other = server
        .register(json!({
            "client_name": "Other Client",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let mut denying = step(
        server.authorize_url(&other, &redirect_uri, "third"),
        false,
        false,
    );
    denying["prefix"] = json!("deny-");
    let seen = browse("authorize", denying).await;
    assert_eq!(seen["consent"], true, "{seen}");
    let callback = callbacks.recv().await.unwrap();
    assert_eq!(param(&callback, "error"), Some("access_denied"));
    assert_eq!(param(&callback, "state"), Some("third"));
    assert_eq!(param(&callback, "code"), None);
    assert_png(&shots.join("deny-consent.png"));

    // The device flow: a device asks, the person approves the code in the browser.
    let (device_client, device) = server.device_authorization("Kitchen Display").await;
    let user_code = device["user_code"].as_str().unwrap();
    let seen = browse(
        "device",
        json!({
            "url": device["verification_uri_complete"], "email": EMAIL, "password": PASSWORD,
            "profile": dir.join("device-profile"), "chromium": chromium, "screenshots": shots,
        }),
    )
    .await;
    assert_eq!(seen["signedIn"], true, "{seen}");
    assert_eq!(seen["prefilled_code"], user_code, "{seen}");
    let confirm = seen["pages"][2]["text"].as_str().unwrap();
    assert!(confirm.contains(user_code), "{confirm}");
    assert!(confirm.contains("Kitchen Display"), "{confirm}");
    assert!(
        confirm.contains("unverified: it registered itself"),
        "{confirm}"
    );
    assert_eq!(seen["pages"][3]["heading"], "Device connected", "{seen}");
    assert_png(&shots.join("device-confirm.png"));
    let tokens = server.device_token(&device_client, &device).await;
    assert_eq!(tokens["scope"], "mcp:tools", "{tokens}");

    // Clickjacking: another origin's page framing our sign-in page gets nothing to click.
    let framing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let framing_url = format!("http://{}/", framing.local_addr().unwrap());
    let framed = format!("{}/device", server.issuer);
    let attacker = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            axum::response::Html(format!(
                "<!doctype html><title>Win a prize</title><iframe src=\"{framed}\" width=600 height=600></iframe>"
            ))
        }),
    );
    tokio::spawn(async move { axum::serve(framing, attacker).await });
    let seen = browse(
        "framed",
        json!({
            "url": framing_url, "profile": dir.join("framing-profile"), "chromium": chromium,
            "screenshots": shots,
        }),
    )
    .await;
    assert_eq!(seen["frame_inputs"], 0, "{seen}");
    assert!(
        seen["console"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line.as_str().unwrap().contains("frame-ancestors 'none'")),
        "Chromium must say it refused the frame: {seen}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// The admin console in Chromium (issue 27): an administrator signs in, finds a user's grant
// for a client and revokes it (the client's refresh then fails), disables the user, rotates
// a key, and finds each action in the audit trail, filtered by the client too. Screenshots
// of every page land in `target/tmp/admin-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_in_chromium_revokes_a_grant_disables_a_user_and_rotates_a_key() {
    const ROOT: &str = "root@example.com";
    const ROOT_PASSWORD: &str = "operator's long passphrase";
    let chromium = chromium();
    ensure_npm("browser", "playwright-core").await;
    let dir = temp_dir("admin-console");
    let shots = screenshots("admin-screenshots");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = mcpauth_server::Config::default();
    config.listen = addr;
    config.issuer = Some(format!("http://{addr}"));
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.scopes_supported = vec!["mcp:tools".into()];
    let built = mcpauth_server::build(&config).await.unwrap();
    let store = built.store.clone();
    mcpauth_server::add_user(&store, EMAIL, PASSWORD)
        .await
        .unwrap();
    mcpauth_server::add_user(&store, ROOT, ROOT_PASSWORD)
        .await
        .unwrap();
    mcpauth_server::admin::set_admin(&store, ROOT, true)
        .await
        .unwrap();
    let server = serve(listener, built);

    // Ada lets a client in (her own browser profile).
    let (redirect_uri, mut callbacks) = callback_listener().await;
    let client_id = server
        .register(json!({
            "client_name": "Agent Under Review",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    browse(
        "authorize",
        json!({
            "url": server.authorize_url(&client_id, &redirect_uri, "ada"),
            "redirect_uri": redirect_uri, "approve": true, "remember": false,
            "email": EMAIL, "password": PASSWORD, "profile": dir.join("ada"),
            "chromium": chromium,
        }),
    )
    .await;
    let callback = callbacks.recv().await.unwrap();
    let tokens = server
        .redeem(&client_id, &redirect_uri, param(&callback, "code").unwrap())
        .await;

    // The administrator, in another browser.
    let seen = browse(
        "admin",
        json!({
            "url": format!("{}/admin", server.issuer), "base": server.issuer,
            "email": ROOT, "password": ROOT_PASSWORD, "profile": dir.join("root"),
            "chromium": chromium, "screenshots": shots,
            "user": EMAIL, "client_id": client_id,
            "viewport": { "width": 1280, "height": 900 },
        }),
    )
    .await;
    assert_eq!(seen["signedIn"], true, "{seen}");
    let grants = seen["grants_text"].as_str().unwrap();
    assert!(
        grants.contains("Agent Under Review") && grants.contains(RESOURCE),
        "{grants}"
    );
    assert!(seen["revoked_text"].as_str().unwrap().contains("revoked"));
    assert!(
        seen["users_text"]
            .as_str()
            .unwrap()
            .contains(&format!("{EMAIL}\n")),
        "{seen}"
    );
    assert_eq!(seen["keys_rows"], 2, "{seen}");
    let audit = seen["audit_text"].as_str().unwrap();
    for event in ["grant_revoked", "user_disabled", "key_rotated", "sign_in"] {
        assert!(audit.contains(event), "{event} not in {audit}");
    }
    let filtered = seen["filtered_text"].as_str().unwrap();
    assert!(
        filtered.contains("grant_revoked") && !filtered.contains("key_rotated"),
        "{filtered}"
    );
    assert!(seen["console"].as_array().unwrap().is_empty(), "{seen}");
    for page in [
        "admin-sign-in",
        "admin-users",
        "admin-grants",
        "admin-grants-revoked",
        "admin-users-disabled",
        "admin-keys",
        "admin-keys-rotated",
        "admin-clients",
        "admin-audit",
        "admin-audit-filtered",
    ] {
        assert_png(&shots.join(format!("{page}.png")));
    }

    // What the console did, done: the client's refresh fails, Ada is disabled.
    let refreshed = server
        .http
        .post(format!("{}/token", server.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400);
    assert!(
        store
            .find_user_by_email(EMAIL)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

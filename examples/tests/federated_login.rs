//! The library author's side of federated sign-in: the `axum_federated_login` example (an
//! authorization server in a plain axum app, with `mcpauth-proxy`) against panva's
//! `oidc-provider` from npm as the upstream, in Debian's headless Chromium. The MCP client
//! (this test) gets the example's own tokens, whose `sub` is what the example's
//! `TokenMapper` (`ProviderSubject`) chose; a replayed upstream callback is refused.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node` and `npm`; `.ci/run` installs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

#[path = "../../crates/server/tests/support/mod.rs"]
mod support;
use support::*;

fn example_binary() -> std::path::PathBuf {
    // Test binaries live in target/<profile>/deps, examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join(format!(
        "axum_federated_login{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test -p mcpauth-examples`, which builds the examples",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_signs_users_in_upstream_and_issues_its_own_tokens() {
    let chromium = chromium();
    ensure_npm("browser", "playwright-core").await;
    let dir =
        std::env::temp_dir().join(format!("mcpauth-example-federated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The example's address must be known before the upstream starts (its redirect URI).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let upstream = start_upstream(
        "example-app",
        "example-app-secret-for-the-loopback-test",
        &format!("{issuer}/upstream/upstream/callback"),
    )
    .await;
    let mut example = tokio::process::Command::new(example_binary())
        .env("EXAMPLE_LISTEN", format!("127.0.0.1:{port}"))
        .env("UPSTREAM_ISSUER", &upstream.issuer)
        .env("UPSTREAM_CLIENT_ID", "example-app")
        .env(
            "UPSTREAM_CLIENT_SECRET",
            "example-app-secret-for-the-loopback-test",
        )
        .env("MCPAUTH_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(example.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the example did not start")
        .unwrap()
        .expect("the example exited");
    assert_eq!(line, format!("listening on {issuer}"));

    let http = reqwest::Client::new();
    let (redirect_uri, mut callbacks) = callback_listener().await;
    let registered: Value = http
        .post(format!("{issuer}/register"))
        .json(&json!({
            "client_name": "Example Client",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "example"),
            ("resource", RESOURCE),
        ])
        .finish();
    let seen = browse(
        "federated",
        json!({
            "url": format!("{issuer}/authorize?{query}"), "redirect_uri": redirect_uri,
            "provider": "127.0.0.1", "upstream_login": "grace",
            "profile": dir.join("profile"), "chromium": chromium,
            "screenshots": screenshots("example-federated-screenshots"),
        }),
    )
    .await;
    assert!(
        seen["pages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Authorize Example Client?"),
        "{seen}"
    );

    let query = callbacks.recv().await.unwrap();
    assert_eq!(param(&query, "state"), Some("example"));
    assert_eq!(param(&query, "iss"), Some(issuer.as_str()));
    let tokens: Value = http
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", param(&query, "code").unwrap()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload = tokens["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["sub"], "upstream:grace", "the TokenMapper's subject");

    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(seen["callback_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 400);

    drop(example);
    drop(upstream);
    let _ = std::fs::remove_dir_all(&dir);
}

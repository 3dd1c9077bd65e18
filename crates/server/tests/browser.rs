//! mcpauth-server's pages in a real browser: Debian's headless Chromium, driven by
//! playwright-core (`interop/browser/browser.mjs`).
//!
//! The test plays the MCP client: it registers itself (RFC 7591), listens for its redirect on
//! loopback like a CLI does, opens its authorization request in the browser, and exchanges
//! the code it receives (PKCE S256) for tokens. The browser signs in, reads the consent page,
//! approves or denies; a second request with the consent remembered skips the page; the
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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "analytical engine 1843";

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "the browser test needs Chromium at {path} (Debian: apt-get install chromium; or set CHROMIUM)"
    );
    path
}

fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/browser")
}

async fn ensure_node_modules() {
    let dir = driver_dir();
    if dir.join("node_modules/playwright-core").exists() {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await
        .expect("npm must be installed to run the browser test");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs one browser step; returns what the script saw.
async fn browse(command: &str, input: Value) -> Value {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg("browser.mjs")
            .arg(command)
            .arg(input.to_string())
            .current_dir(driver_dir())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser step took over two minutes")
    .expect("node must be installed to run the browser test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser step `{command}` failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("browser step printed no JSON ({e}): {stdout}"))
}

/// The MCP client's loopback redirect listener: answers "you can close this window" and
/// passes on each callback's query.
async fn callback_listener() -> (String, mpsc::UnboundedReceiver<Vec<(String, String)>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let (sender, received) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |uri: axum::http::Uri| {
            let sender = sender.clone();
            async move {
                let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
                let _ = sender.send(query);
                "Signed in. You can close this window."
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (redirect_uri, received)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

struct Server {
    issuer: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    Server {
        issuer: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Server {
    async fn register(&self, body: Value) -> String {
        let response: Value = self
            .http
            .post(format!("{}/register", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["client_id"].as_str().unwrap().to_owned()
    }

    fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", state),
                ("scope", "mcp:tools"),
                ("resource", RESOURCE),
            ])
            .finish();
        format!("{}/authorize?{query}", self.issuer)
    }

    async fn redeem(&self, client_id: &str, redirect_uri: &str, code: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", client_id),
                ("code_verifier", VERIFIER),
                ("resource", RESOURCE),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// The screenshots folder, emptied.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a screenshot",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_in_chromium_signs_in_consents_and_the_client_gets_its_code() {
    let chromium = chromium();
    ensure_node_modules().await;
    let dir = std::env::temp_dir().join(format!("mcpauth-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("profile");
    let shots = screenshots();
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

    // First visit: sign in, consent shows the client and the scope with its description.
    let seen = browse(
        "authorize",
        step(
            server.authorize_url(&client_id, &redirect_uri, "first"),
            true,
            true,
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

    // Second visit, same browser: signed in and consent remembered, straight back.
    let seen = browse(
        "authorize",
        step(
            server.authorize_url(&client_id, &redirect_uri, "second"),
            true,
            false,
        ),
    )
    .await;
    assert_eq!(seen["signedIn"], false, "{seen}");
    assert_eq!(seen["consent"], false, "{seen}");
    let callback = callbacks.recv().await.unwrap();
    assert_eq!(param(&callback, "state"), Some("second"));
    server
        .redeem(&client_id, &redirect_uri, param(&callback, "code").unwrap())
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
    let device_client = server
        .register(json!({
            "client_name": "Kitchen Display",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let device: Value = server
        .http
        .post(format!("{}/device_authorization", server.issuer))
        .form(&[
            ("client_id", device_client.as_str()),
            ("scope", "mcp:tools"),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let confirm = seen["pages"][1]["text"].as_str().unwrap();
    assert!(confirm.contains(user_code), "{confirm}");
    assert!(confirm.contains("Kitchen Display"), "{confirm}");
    assert_eq!(seen["pages"][2]["heading"], "Device connected", "{seen}");
    assert_png(&shots.join("device-confirm.png"));
    let tokens: Value = server
        .http
        .post(format!("{}/token", server.issuer))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device["device_code"].as_str().unwrap()),
            ("client_id", device_client.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

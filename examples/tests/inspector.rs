//! The MCP Inspector (`@modelcontextprotocol/inspector` from npm, its web UI) in headless
//! Chromium, as a person uses it: it connects to the example MCP server, gets `401`, discovers
//! mcpauth-server, registers itself, sends the browser to mcpauth's sign-in and consent pages
//! with its `http://localhost` redirect URI, comes back with the code, connects, and lists the
//! server's tools. The Inspector runs on Node 22, from `interop/inspector` (npm package `node`).
//! Beside it, a page of another origin calls each example MCP server with `fetch` in the same
//! Chromium, which enforces CORS: what a browser-based MCP client connecting directly sees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

#[path = "../../crates/server/tests/support/mod.rs"]
mod pages;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Example, REGISTRATION_TOKEN, free_port, machine_token, tempdir};

const EMAIL: &str = "grace@example.com";
const PASSWORD: &str = "a compiler for every language";

/// The Inspector's web server, stopped when dropped.
struct Inspector(tokio::process::Child);

impl Drop for Inspector {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn start_inspector(server_url: &str, port: u16, dir: &std::path::Path) -> Inspector {
    let folder = pages::interop_dir("inspector");
    pages::ensure_npm("inspector", "@modelcontextprotocol/inspector").await;
    // Its output is kept, and shown if it does not start.
    let log = dir.join("inspector.log");
    let output = std::fs::File::create(&log).unwrap();
    let mut child =
        tokio::process::Command::new(folder.join("node_modules/.bin/node"))
            .arg(folder.join(
                "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
            ))
            .args(["--web", "--transport", "http", "--server-url", server_url])
            .env("CLIENT_PORT", port.to_string())
            .env("MCP_SANDBOX_PORT", free_port().to_string())
            .env("HOST", "127.0.0.1")
            .env("DANGEROUSLY_OMIT_AUTH", "true")
            .env("MCP_AUTO_OPEN_ENABLED", "false")
            .env("MCP_INSPECTOR_SECRET_STORE", "memory")
            .env("MCP_STORAGE_DIR", dir.join("inspector-storage"))
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .expect("node from interop/inspector");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        let said = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            child.try_wait().unwrap().is_none(),
            "the Inspector exited (port {port} taken?):\n{}",
            said()
        );
        assert!(
            Instant::now() < deadline,
            "the Inspector did not start:\n{}",
            said()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Inspector(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_signs_in_through_mcpauth_and_lists_the_tools() {
    let chromium = pages::chromium();
    pages::ensure_npm("browser", "playwright-core").await;
    let dir = tempdir("inspector");
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let (mut mcp_server, resource) = Example::Axum.start(&issuer).await;

    // The quick start's configuration, but for the addresses.
    let mut config = mcpauth_server::Config::load(
        Some(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mcpauth.toml")),
        |_| None,
    )
    .unwrap();
    config.listen = as_listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    let store = server.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped.await;
    }));

    let port = free_port();
    let inspector = start_inspector(&resource, port, &dir).await;
    let url = format!("http://localhost:{port}/");
    let shots = pages::screenshots("inspector-screenshots");
    let seen = pages::browse(
        "inspector",
        json!({
            "url": url, "issuer": issuer, "email": EMAIL, "password": PASSWORD,
            "profile": dir.join("profile"), "chromium": chromium, "screenshots": shots,
            "expect_tools": ["whoami", "echo", "admin_report"],
        }),
    )
    .await;
    assert_eq!(seen["signedIn"], true, "{seen}");
    let page_text = |name: &str| {
        seen["pages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no page {name}: {seen}"))["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let consent = page_text("inspector-consent");
    assert!(consent.contains("Authorize MCP Inspector?"), "{consent}");
    assert!(consent.contains(&resource), "{consent}");
    assert!(
        consent.contains("a program on this computer (localhost)"),
        "the Inspector's localhost redirect is named plainly: {consent}"
    );
    assert!(
        seen["back_at"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://localhost:{port}")),
        "{seen}"
    );
    // The tool list came from the MCP server through the Inspector: each tool is a line of
    // the Tools tab, and none of them was on the page before it was listed.
    let connected = page_text("inspector-connected");
    let listed = page_text("inspector-tools");
    for tool in ["whoami", "echo", "admin_report"] {
        assert!(
            listed.lines().any(|line| line.trim() == tool),
            "{tool} is not listed: {listed}"
        );
        assert!(
            !connected.lines().any(|line| line.trim() == tool),
            "{tool} was shown before the tools were listed: {connected}"
        );
    }
    // It registered itself (RFC 7591) with its localhost callback.
    let clients = store.list_clients().await.unwrap();
    let inspector_client = clients
        .iter()
        .find(|c| c.metadata.client_name.as_deref() == Some("MCP Inspector"))
        .expect("the Inspector registered");
    assert!(
        inspector_client
            .metadata
            .redirect_uris
            .iter()
            .any(|uri| uri.starts_with(&format!("http://localhost:{port}/"))),
        "{:?}",
        inspector_client.metadata.redirect_uris
    );
    pages::assert_png(&shots.join("inspector-tools.png"));

    drop(inspector);
    let _ = stop.send(());
    let _ = mcp_server.kill().await;
    let _ = as_task.await;
    let _ = std::fs::remove_dir_all(&dir);
}

// Browser-based MCP clients talk to the MCP server straight from a page of their own origin:
// in Chromium, which enforces CORS, a page on another origin reads the 401 and its
// challenge, gets an answer and its session id with a token, and reads the metadata document
// (its preflighted GET), from each example (axum, actix-web, bare hyper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_origin_calls_each_example_mcp_server_in_chromium() {
    let chromium = pages::chromium();
    pages::ensure_npm("browser", "playwright-core").await;
    let dir = tempdir("cross-origin");
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!("http://{}/", page_listener.local_addr().unwrap());
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            axum::response::Html("<!doctype html><title>A web MCP client</title><h1>client</h1>")
        }),
    );
    tokio::spawn(async move { axum::serve(page_listener, page).await });
    for example in [Example::Axum, Example::Actix, Example::Hyper] {
        let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", as_listener.local_addr().unwrap());
        let (mut mcp_server, resource) = example.start(&issuer).await;
        let mut config = mcpauth_server::Config::default();
        config.listen = as_listener.local_addr().unwrap();
        config.issuer = Some(issuer.clone());
        config.database_url = format!("sqlite://{}", dir.join(format!("{example:?}.db")).display());
        config.resources = vec![resource.clone()];
        config.scopes_supported = vec!["mcp:tools".into(), "mcp:admin".into()];
        config.registration_token = Some(REGISTRATION_TOKEN.into());
        config.vouched_registration_grant_types = vec!["client_credentials".into()];
        config.vouched_client_scope = vec!["mcp:tools".into()];
        let server = mcpauth_server::build(&config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
            let _ = stopped.await;
        }));
        let token = machine_token(&reqwest::Client::new(), &issuer, &resource).await;
        let metadata = resource.replacen("/mcp", "/.well-known/oauth-protected-resource/mcp", 1);
        let seen = pages::browse(
            "cross-origin",
            json!({
                "url": page_url, "resource": resource, "metadata": metadata, "token": token,
                "profile": dir.join(format!("{example:?}-profile")), "chromium": chromium,
            }),
        )
        .await;
        let calls = &seen["calls"];
        assert_eq!(calls["anonymous"]["status"], 401, "{example:?}: {seen}");
        assert!(
            calls["anonymous"]["challenge"]
                .as_str()
                .is_some_and(|c| c.contains("resource_metadata=")),
            "{example:?}: the page reads the challenge: {seen}"
        );
        assert_eq!(calls["authorized"]["status"], 200, "{example:?}: {seen}");
        assert!(
            calls["authorized"]["session"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{example:?}: the page reads Mcp-Session-Id: {seen}"
        );
        assert!(
            calls["authorized"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("serverInfo")),
            "{example:?}: {seen}"
        );
        assert_eq!(calls["metadata"]["status"], 200, "{example:?}: {seen}");
        assert!(
            calls["metadata"]["body"]
                .as_str()
                .unwrap()
                .contains(&resource),
            "{example:?}: {seen}"
        );
        let _ = stop.send(());
        let _ = mcp_server.kill().await;
        let _ = as_task.await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

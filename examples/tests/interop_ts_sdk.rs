//! Interop with clients no one here wrote: the official MCP TypeScript SDK, 1.x
//! (`@modelcontextprotocol/sdk`) and 2.x (`@modelcontextprotocol/client`), from npm, connect to
//! the example MCP servers (rmcp in axum, rmcp in actix-web, each run as the real example
//! binary) protected by mcpauth-server: they discover, get a client identity (dynamic
//! registration, or a Client ID Metadata Document served by the test over HTTPS), log in
//! through the real login form, list and call tools, step up on `insufficient_scope`, and
//! refresh. The Node side is `interop/ts-sdk/*.mjs`.
//!
//! Needs `node` and `npm` on PATH; installs the SDKs with `npm ci` on first run. The example
//! binaries are built by `cargo test` (examples are built with the tests).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

mod support;
use support::{Example, serve_document_over_https, tempdir};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/ts-sdk")
}

async fn ensure_node_modules() {
    // The tests of this file run at once: one `npm ci`, the others wait for it (concurrent
    // installs into one node_modules corrupt each other).
    static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _installing = INSTALL.lock().await;
    let dir = interop_dir();
    let installed = |package: &str| {
        dir.join("node_modules")
            .join(package)
            .join("package.json")
            .exists()
    };
    if installed("@modelcontextprotocol/sdk") && installed("@modelcontextprotocol/client") {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await
        .expect("npm must be installed to run the TypeScript SDK interop test");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Starts the authorization server and `example`, runs the Node `script` with `extra_env`,
/// stops everything, and returns the script's output.
async fn run_interop(
    example: Example,
    script: &str,
    tag: &str,
    fetch_policy: mcpauth_fetch::FetchPolicy,
    extra_env: &[(&str, String)],
    configure: impl FnOnce(&mut mcpauth_server::Config),
) -> String {
    ensure_node_modules().await;
    let dir = tempdir(tag);
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let as_addr = as_listener.local_addr().unwrap();
    let issuer = format!("http://{as_addr}");
    let (mut mcp_server, resource) = example.start(&issuer).await;

    let mut config = mcpauth_server::Config::default();
    config.listen = as_addr;
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    configure(&mut config);
    let server = mcpauth_server::build_with(
        &config,
        mcpauth_server::BuildOptions::default().fetch_policy(fetch_policy),
    )
    .await
    .unwrap();
    mcpauth_server::add_user(&server.store, "Alice@Example.com", "correct horse battery")
        .await
        .unwrap();
    let (stop_as, stopped_as) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped_as.await;
    }));

    let mut node = tokio::process::Command::new("node");
    node.arg(script)
        .current_dir(interop_dir())
        .env("MCP_URL", &resource)
        .env("ISSUER", &issuer)
        .env("USER_EMAIL", "alice@example.com")
        .env("USER_PASSWORD", "correct horse battery")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in extra_env {
        node.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the interop script timed out")
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let _ = stop_as.send(());
    let _ = mcp_server.kill().await;
    let _ = as_task.await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "the TypeScript SDK interop script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("interop: every step passed"), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_authorizes_lists_tools_and_refreshes() {
    let stdout = run_interop(
        Example::Axum,
        "interop.mjs",
        "dcr",
        mcpauth_fetch::FetchPolicy::default(),
        &[],
        |_| {},
    )
    .await;
    assert!(stdout.contains("dynamic registration"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_authorizes_against_the_actix_example() {
    let stdout = run_interop(
        Example::Actix,
        "interop.mjs",
        "dcr-actix",
        mcpauth_fetch::FetchPolicy::default(),
        &[],
        |_| {},
    )
    .await;
    assert!(stdout.contains("SDK refreshed"), "{stdout}");
}

// MCP authorization, scope challenge handling: a tool that needs a scope the first token
// lacks is answered 403 insufficient_scope; the client obtains a token with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_2_steps_up_against_the_axum_example() {
    let stdout = run_interop(
        Example::Axum,
        "step-up.mjs",
        "step-up-axum",
        mcpauth_fetch::FetchPolicy::default(),
        &[],
        |_| {},
    )
    .await;
    assert!(
        stdout.contains("the retried admin_report call succeeds"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_2_steps_up_against_the_actix_example() {
    let stdout = run_interop(
        Example::Actix,
        "step-up.mjs",
        "step-up-actix",
        mcpauth_fetch::FetchPolicy::default(),
        &[],
        |_| {},
    )
    .await;
    assert!(
        stdout.contains("the retried admin_report call succeeds"),
        "{stdout}"
    );
}

// The same against the MCP server on bare hyper: the glue written from docs/embedding.md
// carries the step-up, the session and the server-sent events as the adapters do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_2_steps_up_against_the_bare_hyper_example() {
    let stdout = run_interop(
        Example::Hyper,
        "step-up.mjs",
        "step-up-hyper",
        mcpauth_fetch::FetchPolicy::default(),
        &[],
        |_| {},
    )
    .await;
    assert!(
        stdout.contains("the retried admin_report call succeeds"),
        "{stdout}"
    );
}

// MCP authorization 2025-11-25: the SDK identifies itself with a Client ID Metadata Document;
// mcpauth fetches it (over HTTPS, SSRF rules relaxed only for this loopback test server) and
// never sees a registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_uses_a_client_id_metadata_document() {
    let (url, cert) = serve_document_over_https(|url| {
        serde_json::json!({
            "client_id": url,
            "client_name": "MCP TypeScript SDK interop client",
            "redirect_uris": ["http://127.0.0.1:53682/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
    })
    .await;
    let mut policy = mcpauth_fetch::FetchPolicy::default();
    policy.insecure_allow_loopback = true;
    policy.root_certificates_only = vec![cert];
    let stdout = run_interop(
        Example::Axum,
        "interop.mjs",
        "cimd",
        policy,
        &[("CLIENT_METADATA_URL", url)],
        |_| {},
    )
    .await;
    assert!(stdout.contains("Client ID Metadata Document"), "{stdout}");
}

// A client that prefers a metadata document falls back to dynamic registration when the
// server does not advertise `client_id_metadata_document_supported`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_falls_back_to_dynamic_registration() {
    let url = "https://client.example.com/oauth/client.json".to_owned();
    let stdout = run_interop(
        Example::Axum,
        "interop.mjs",
        "fallback",
        mcpauth_fetch::FetchPolicy::default(),
        &[
            ("CLIENT_METADATA_URL", url),
            ("EXPECT_REGISTRATION", "1".into()),
        ],
        |config| {
            config.client_metadata_documents = false;
        },
    )
    .await;
    assert!(stdout.contains("dynamic registration"), "{stdout}");
}

//! Interop with a client no one here wrote: the official MCP TypeScript SDK
//! (`@modelcontextprotocol/sdk`, from npm) connects to the example MCP server (rmcp) protected
//! by mcpauth, discovers, registers, logs in through the real login form, lists tools, calls
//! them, and refreshes. The Node side is `interop/ts-sdk/interop.mjs`.
//!
//! Needs `node` and `npm` on PATH; installs the SDK with `npm ci` on first run.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/ts-sdk")
}

async fn ensure_node_modules() {
    let dir = interop_dir();
    if dir
        .join("node_modules/@modelcontextprotocol/sdk/package.json")
        .exists()
    {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_authorizes_lists_tools_and_refreshes() {
    ensure_node_modules().await;
    let dir = tempdir();

    // The authorization server, on its SQLite default, on a free loopback port.
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let as_addr = as_listener.local_addr().unwrap();
    let issuer = format!("http://{as_addr}");

    // The MCP server, on another free loopback port.
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());

    let mut config = mcpauth_server::Config::default();
    config.listen = as_addr;
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, "Alice@Example.com", "correct horse battery")
        .await
        .unwrap();
    let (stop_as, stopped_as) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped_as.await;
    }));

    let app = mcpauth_example_mcp_server::app(&resource, &issuer, &format!("{issuer}/jwks.json"))
        .unwrap();
    let mcp_task = tokio::spawn(async move { axum::serve(mcp_listener, app).await });

    let node = tokio::process::Command::new("node")
        .arg("interop.mjs")
        .current_dir(interop_dir())
        .env("MCP_URL", &resource)
        .env("ISSUER", &issuer)
        .env("USER_EMAIL", "alice@example.com")
        .env("USER_PASSWORD", "correct horse battery")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), node)
        .await
        .expect("the interop script timed out")
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let _ = stop_as.send(());
    mcp_task.abort();
    let _ = as_task.await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "the TypeScript SDK interop script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("interop: every step passed"), "{stdout}");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mcpauth-interop-{}-{}",
        std::process::id(),
        mcpauth_adapter_axum::now().0
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

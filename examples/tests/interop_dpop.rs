//! RFC 9449 with a DPoP client no one here wrote: oauth4webapi (from npm; the OAuth library
//! under openid-client) against mcpauth-server with `dpop_nonces` on and each example MCP
//! server (rmcp in axum, rmcp in actix-web, run as the real example binaries). The Node side is
//! `interop/dpop/dpop.mjs`: a bound token through the authorization code flow (`dpop_jkt`, the
//! nonce round trip), the MCP server accepting it with proofs, and what a thief gets: a replayed
//! proof, the token as Bearer, a proof by another key, the refresh token without the key, all
//! refused.
//!
//! Needs `node` and `npm` on PATH; installs oauth4webapi with `npm ci` on first run.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

mod support;
use support::{Example, tempdir};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop/dpop")
}

async fn ensure_node_modules() {
    // One `npm ci` for the tests of this file; the others wait for it.
    static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _installing = INSTALL.lock().await;
    let dir = interop_dir();
    if dir.join("node_modules/oauth4webapi/package.json").exists() {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await
        .expect("npm must be installed to run the DPoP interop test");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// `resource_nonces`: the MCP server asks for its own nonce in proofs (RFC 9449 §9).
async fn dpop_peer_against(example: Example, tag: &str, resource_nonces: bool) {
    ensure_node_modules().await;
    let dir = tempdir(tag);
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let as_addr = as_listener.local_addr().unwrap();
    let issuer = format!("http://{as_addr}");
    let nonces = if resource_nonces { "true" } else { "false" };
    let (mut mcp_server, resource) = example
        .start_with(&issuer, &[("EXAMPLE_DPOP_NONCES", nonces)])
        .await;

    let mut config = mcpauth_server::Config::default();
    config.listen = as_addr;
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    config.dpop_nonces = true;
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, "alice@example.com", "correct horse battery")
        .await
        .unwrap();
    let (stop_as, stopped_as) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped_as.await;
    }));

    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg("dpop.mjs")
            .current_dir(interop_dir())
            .env("MCP_URL", &resource)
            .env("ISSUER", &issuer)
            .env("USER_EMAIL", "alice@example.com")
            .env("USER_PASSWORD", "correct horse battery")
            .env("RS_NONCES", if resource_nonces { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the DPoP interop script timed out")
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
        "the DPoP interop script failed:\n{stdout}\n{stderr}"
    );
    for step in [
        "use_dpop_nonce answered",
        "a replayed proof is refused",
        "a stolen token is useless without the key",
        "refreshed with a proof by the same key",
        "interop: every step passed",
    ] {
        assert!(stdout.contains(step), "missing `{step}`:\n{stdout}");
    }
    assert_eq!(
        stdout.contains("the MCP server asked for its nonce"),
        resource_nonces,
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_dpop_client_gets_and_uses_bound_tokens_at_the_axum_example() {
    // With the MCP server's own nonces: the nonce round trip at the resource server too.
    dpop_peer_against(Example::Axum, "dpop-axum", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_dpop_client_gets_and_uses_bound_tokens_at_the_actix_example() {
    dpop_peer_against(Example::Actix, "dpop-actix", false).await;
}

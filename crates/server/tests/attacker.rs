//! The attacker's suite (`mcpauth_conformance::attacker`) against the real `mcpauth-server`
//! binary on its defaults (but for the resources and scopes it serves), and a resource
//! server that trusts it, all on loopback: what an anonymous caller, a self-registered
//! client or a stolen token gets. A second deployment with `refresh_reuse_grace = 0` checks
//! the replay rules without a grace window (every replay is outside it). `openid` is among the
//! scopes, so the suite's token-confusion check presents an ID token too. The suite registers
//! about twenty clients from 127.0.0.1, within the default `registrations_per_ip_per_hour`
//! (30): checks added later must stay within it, or the server's `429` hides what they test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use support::{free_port, temp_dir};

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpauth_conformance::attacker::{AttackTarget, run_attacker_suite, run_refresh_replay_checks};

const EMAIL: &str = "victim@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// The server's environment: its database in `dir`, `issuer`, and what it serves.
fn server_command(dir: &Path, issuer: &str, resources: &str, grace: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"));
    command
        .current_dir(dir)
        .env(
            "MCPAUTH_DATABASE_URL",
            format!("sqlite://{}", dir.join("mcpauth.db").display()),
        )
        .env("MCPAUTH_ISSUER", issuer)
        .env("MCPAUTH_RESOURCES", resources)
        .env("MCPAUTH_SCOPES_SUPPORTED", "openid mcp:tools mcp:admin")
        .env("MCPAUTH_REFRESH_REUSE_GRACE", grace.to_string())
        .env("MCPAUTH_LOG", "warn");
    command
}

/// A running `mcpauth-server`; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Deployment {
    _server: Running,
    target: AttackTarget,
}

/// The operator's side, as the CLI does it: a user and a machine client.
fn provision(dir: &Path, issuer: &str, resources: &str) -> (String, String) {
    let mut add = server_command(dir, issuer, resources, 10)
        .args(["--create", "user", "add", EMAIL])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
    let output = server_command(dir, issuer, resources, 10)
        .args([
            "client",
            "add",
            "--name",
            "operator's bot",
            "--scope",
            "mcp:tools mcp:admin",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    (field("client_id:"), field("client_secret:"))
}

async fn deploy(tag: &str, resource: &str, other: &str, grace: u64) -> Deployment {
    let dir = temp_dir(&format!("attacker-{tag}"));
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let resources = format!("{resource} {other}");
    let machine = provision(&dir, &issuer, &resources);
    let child = server_command(&dir, &issuer, &resources, grace)
        .env("MCPAUTH_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{issuer}/health")).await.is_err() {
        // The port was free a moment ago; if another process took it, this server exits
        // rather than the suite testing someone else.
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "mcpauth-server exited (port {port} taken?)"
        );
        assert!(Instant::now() < deadline, "mcpauth-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut target = AttackTarget::new(
        &issuer,
        resource,
        other,
        (EMAIL, PASSWORD),
        (&machine.0, &machine.1),
    );
    target.refresh_reuse_grace = grace;
    Deployment {
        _server: server,
        target,
    }
}

/// A resource server trusting `issuer` at `listener`: `mcp:tools` on every call, a user behind
/// the token for `admin_report`; it answers `200` with the caller's subject.
fn serve_resource(listener: tokio::net::TcpListener, issuer: &str) {
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut config =
        mcpauth_http::ResourceServerConfig::new(&resource, issuer, format!("{issuer}/jwks.json"))
            .tool_requires("admin_report", &["mcp:admin"])
            .tool_requires_user("admin_report");
    config.required_scopes = vec!["mcp:tools".into()];
    let protection = Arc::new(mcpauth_http::ResourceServer::new(config).unwrap());
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(|request: axum::extract::Request| async move {
                request
                    .extensions()
                    .get::<mcpauth_http::VerifiedToken>()
                    .map(|t| t.subject.clone())
                    .unwrap_or_default()
            }),
        )
        .layer(mcpauth_adapter_axum::BearerLayer::new(protection));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_gets_nothing_from_the_server_on_its_defaults() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let other = "http://127.0.0.1:1/other-mcp";
    let deployment = deploy("defaults", &resource, other, 10).await;
    serve_resource(listener, &deployment.target.issuer);
    // The suite presents an ID token as bearer where the metadata advertises ID tokens: here
    // it must.
    let metadata: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        deployment.target.issuer
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    run_attacker_suite(&deployment.target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_grace_window_every_refresh_replay_revokes_the_family() {
    let resource = "http://127.0.0.1:2/mcp";
    let deployment = deploy("no-grace", resource, "http://127.0.0.1:1/other-mcp", 0).await;
    run_refresh_replay_checks(&deployment.target).await;
}

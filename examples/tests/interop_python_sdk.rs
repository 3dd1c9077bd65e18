//! The official MCP Python SDK (`mcp` from PyPI, in a virtual environment under
//! `interop/python/.venv`) as the MCP client: it gets the example MCP server's `401`,
//! discovers mcpauth-server, registers, sends `resource` and the challenge's scope in the
//! authorization request; the script plays the user at mcpauth's pages and hands the code
//! back; the SDK lists the tools and calls one. The authorization server runs the quick
//! start's configuration (`examples/mcpauth.toml`).
//!
//! Logging out, with the SDK and with `chuk-mcp-client-oauth` (PyPI): each signs in, revokes
//! (RFC 7009) and presents the access token it held to the example MCP server, which receives
//! mcpauth's revocations (Shared Signals): it is refused, `401 invalid_token`, within seconds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::{Example, tempdir};

const EMAIL: &str = "barbara@example.com";
const PASSWORD: &str = "abstract data types";

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("interop/python"))
        .find(|dir| dir.is_dir())
        .expect("the workspace's interop/python folder")
}

/// The virtual environment's Python, with the pinned SDK installed on first use.
///
/// The tests of this file run in parallel; the first to ask builds the environment and the
/// others wait for it (two `venv --clear` at once fail with "File exists" on a clean clone).
async fn python() -> PathBuf {
    static PYTHON: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    PYTHON.get_or_init(install_python).await.clone()
}

async fn install_python() -> PathBuf {
    let dir = python_dir();
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    // The environment is current when it was installed from this very requirements.txt.
    let requirements = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
    let stamp = venv.join("installed-requirements.txt");
    let ready = python.exists()
        && std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == requirements)
        && tokio::process::Command::new(&python)
            .args(["-c", "import mcp, httpx2, chuk_mcp_client_oauth"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
    if ready {
        return python;
    }
    // Made afresh (`--clear`), so nothing the requirements no longer name stays installed.
    let created = tokio::process::Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .await
        .expect("python3 must be installed to run the Python SDK interop test");
    assert!(
        created.success(),
        "python3 -m venv failed (Debian: python3-venv)"
    );
    let installed = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(dir.join("requirements.txt"))
        .status()
        .await
        .unwrap();
    assert!(
        installed.success(),
        "pip install -r requirements.txt failed"
    );
    std::fs::write(&stamp, requirements).unwrap();
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_sends_resource_reads_the_challenge_and_calls_a_tool() {
    let python = python().await;
    let dir = tempdir("python-sdk");
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let (mut mcp_server, resource) = Example::Axum.start(&issuer).await;
    let mut config = mcpauth_server::Config::load(
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("mcpauth.toml")),
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped.await;
    }));

    let run = |script: &'static str| {
        let (python, resource, issuer) = (python.clone(), resource.clone(), issuer.clone());
        async move {
            tokio::time::timeout(
                Duration::from_secs(120),
                tokio::process::Command::new(&python)
                    .arg(python_dir().join(script))
                    .env("MCP_URL", &resource)
                    .env("ISSUER", &issuer)
                    .env("USER_EMAIL", EMAIL)
                    .env("USER_PASSWORD", PASSWORD)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("the Python client took over two minutes")
            .unwrap()
        }
    };
    let output = run("client.py").await;
    // A hand-written client that names neither scope nor resource and ignores the challenge:
    // the quick start's default_scope (and its only resource) still get it a token the example
    // MCP server accepts.
    let legacy = run("legacy_client.py").await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = stop.send(());
    let _ = mcp_server.kill().await;
    let _ = as_task.await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["resource"], serde_json::json!([resource]), "{seen}");
    assert_eq!(
        seen["scope"],
        serde_json::json!(["mcp:tools"]),
        "the scope of the 401's challenge: {seen}"
    );
    assert_eq!(seen["code_challenge_method"], serde_json::json!(["S256"]));
    assert_eq!(seen["consent_page"], true);
    assert_eq!(
        seen["tools"],
        serde_json::json!(["admin_report", "echo", "whoami"])
    );
    let whoami: serde_json::Value =
        serde_json::from_str(seen["whoami"][0].as_str().unwrap()).unwrap();
    assert_eq!(whoami["aud"], serde_json::json!([resource]));
    assert_eq!(whoami["scope"], "mcp:tools");

    let legacy_out = String::from_utf8_lossy(&legacy.stdout).into_owned();
    assert!(
        legacy.status.success(),
        "{legacy_out}\n{}",
        String::from_utf8_lossy(&legacy.stderr)
    );
    let legacy: serde_json::Value = serde_json::from_str(legacy_out.trim()).unwrap();
    assert_eq!(legacy["scope"], "mcp:tools", "{legacy}");
    assert_eq!(legacy["consent_showed_the_default_scope"], true, "{legacy}");
    assert_eq!(legacy["mcp_status"], 200, "{legacy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_python_clients_logout_the_mcp_server_refuses_its_access_token() {
    let python = python().await;
    let dir = tempdir("python-logout");
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let mut config = mcpauth_server::Config::load(
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("mcpauth.toml")),
        |_| None,
    )
    .unwrap();
    config.listen = as_listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    // The MCP server's port, chosen here: the authorization server names its resource.
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    config.resources = vec![format!("http://{listen}/mcp")];
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    // The MCP server receives revocations as a resource server the operator added.
    let mut receiver = mcpauth_server::admin::NewClient::new("Example MCP server");
    receiver.resource_server = true;
    let receiver = mcpauth_server::admin::add_client(&server.engine, receiver)
        .await
        .unwrap();
    let secret = receiver.client_secret.clone().unwrap();
    let (mut mcp_server, resource) = Example::Axum
        .start_with(
            &issuer,
            &[
                ("EXAMPLE_REVOCATION_CLIENT_ID", receiver.client_id.as_str()),
                ("EXAMPLE_REVOCATION_CLIENT_SECRET", secret.as_str()),
                ("EXAMPLE_LISTEN", &listen.to_string()),
            ],
        )
        .await;
    assert_eq!(config.resources, std::slice::from_ref(&resource));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped.await;
    }));

    let mut seen = Vec::new();
    for script in ["sdk_logout.py", "chuk_logout.py"] {
        let output = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(&python)
                .arg(python_dir().join(script))
                .current_dir(python_dir())
                .env("MCP_URL", &resource)
                .env("USER_EMAIL", EMAIL)
                .env("USER_PASSWORD", PASSWORD)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the Python client took over two minutes")
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{script}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        seen.push((
            script,
            serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap(),
        ));
    }
    let _ = stop.send(());
    let _ = mcp_server.kill().await;
    let _ = as_task.await;
    let _ = std::fs::remove_dir_all(&dir);

    let revocation_endpoint = format!("{issuer}/revoke");
    let (_, sdk) = &seen[0];
    assert_eq!(
        sdk["revocation_endpoint"],
        revocation_endpoint.as_str(),
        "{sdk}"
    );
    assert_eq!(sdk["revocation_status"], 200, "{sdk}");
    let (_, chuk) = &seen[1];
    assert_eq!(chuk["mcp_status_before_logout"], 200, "{chuk}");
    assert_eq!(
        chuk["revocation_endpoint"],
        revocation_endpoint.as_str(),
        "{chuk}"
    );
    // The library ignores what its revocations answer: the script recorded them.
    assert_eq!(
        chuk["revocations"],
        serde_json::json!([
            { "token_type_hint": "refresh_token", "ok": true },
            { "token_type_hint": "access_token", "ok": true },
        ]),
        "{chuk}"
    );
    assert_eq!(chuk["tokens_cleared_locally"], true, "{chuk}");
    for (script, seen) in &seen {
        assert_eq!(seen["challenge_error"], "invalid_token", "{script}: {seen}");
        let seconds = seen["refused_after_seconds"].as_f64().unwrap();
        println!("{script}: the MCP server refused the logged-out token after {seconds} s");
        assert!(seconds < 5.0, "{script}: {seen}");
    }
}

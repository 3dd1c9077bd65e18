//! The example MCP servers check `MCPAUTH_ISSUER` before they serve: a setting that names no
//! authorization server, or one that calls itself something else, stops them with the
//! variable named and the value to set; an authorization server that is not up yet is a
//! warning, and they start anyway.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::process::Stdio;
use std::time::Duration;

mod support;
use support::{Example, tempdir};

/// Runs the axum example with `MCPAUTH_ISSUER=issuer` until it prints `listening on` (then
/// stops it) or exits; returns whether it started, and its stderr.
async fn first_start(issuer: &str) -> (bool, String) {
    let mut child = tokio::process::Command::new(Example::Axum.binary())
        .env("MCPAUTH_ISSUER", issuer)
        .env("EXAMPLE_LISTEN", "127.0.0.1:0")
        .env("MCPAUTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let started = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt as _;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 256];
        loop {
            let read = stdout.read(&mut buffer).await.unwrap();
            if read == 0 {
                return false;
            }
            seen.extend_from_slice(&buffer[..read]);
            if String::from_utf8_lossy(&seen).contains("listening on ") {
                return true;
            }
        }
    })
    .await
    .expect("the example neither started nor stopped");
    let _ = child.start_kill();
    let _ = child.wait().await;
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
        .await
        .unwrap();
    (started, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_mcpauth_issuer_is_named_at_start_with_what_to_set() {
    let dir = tempdir("first-start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut config = mcpauth_server::Config::default();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let server = mcpauth_server::build(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));

    // The same server under another name: the tokens would name another issuer.
    let (started, stderr) = first_start(&format!("http://localhost:{port}")).await;
    assert!(!started, "{stderr}");
    assert!(
        stderr.contains(&format!("calls itself {issuer}"))
            && stderr.contains(&format!("Set MCPAUTH_ISSUER={issuer}")),
        "{stderr}"
    );

    // A URL where no authorization server answers.
    let (started, stderr) = first_start(&format!("{issuer}/health")).await;
    assert!(!started, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "MCPAUTH_ISSUER={issuer}/health is not an OAuth authorization server"
        )) && stderr.contains("HTTP 404"),
        "{stderr}"
    );
    let (started, stderr) = first_start("127.0.0.1:8080").await;
    assert!(
        !started && stderr.contains("is not an http(s) URL"),
        "{stderr}"
    );

    // The right one: it starts, and says nothing.
    let (started, stderr) = first_start(&issuer).await;
    assert!(started, "{stderr}");
    assert!(!stderr.contains("MCPAUTH_ISSUER"), "{stderr}");

    let _ = stop.send(());
    let _ = serving.await;

    // Not up yet (started first): a warning naming the variable, and it serves.
    let (started, stderr) = first_start(&issuer).await;
    assert!(started, "{stderr}");
    assert!(
        stderr.contains(&format!("MCPAUTH_ISSUER={issuer} does not answer yet"))
            && stderr.contains("503"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

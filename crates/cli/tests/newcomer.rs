//! A newcomer follows docs/getting-started.md on a machine without a browser, and every step
//! is taken from the page itself, so the guide cannot drift from what works:
//!
//! 1. the authorization server on the quick start's configuration (`examples/mcpauth.toml`)
//!    with a user, as step 1 sets it up (in this process, on free ports);
//! 2. a new Cargo project outside the workspace, made of the guide's `Cargo.toml` lines and its
//!    two programs (`src/bin/server.rs`, `src/bin/client.rs`), built offline against this
//!    workspace by path (the one change: `../mcpauth` is this checkout), and its MCP server
//!    started;
//! 3. the guide's `mcpauth` commands, as written, signing in with the device flow (no
//!    display here), then `test`, `get --show` and `logout`;
//! 4. the guide's client program, which signs in the same way, keeps its token in its own
//!    store, and uses the kept one when run again.
//!
//! The only other change to what the page says: the ports `8080` and `3000` become free ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};

#[path = "../../client/tests/support/mod.rs"]
mod support;
use support::{EMAIL, FormFillingBrowser, PASSWORD, claims};

const GUIDE: &str = include_str!("../../../docs/getting-started.md");

/// The body of the first fenced block of `language` after `marker` in the guide.
fn block_after(marker: &str, language: &str) -> String {
    let from = GUIDE
        .find(marker)
        .unwrap_or_else(|| panic!("getting-started.md lost `{marker}`"));
    let rest = &GUIDE[from..];
    let fence = format!("```{language}");
    let start = rest.find(&fence).expect("no such block") + fence.len();
    let body = &rest[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The guide's text with its ports replaced by this run's.
fn on_ports(text: &str, issuer_port: u16, resource_port: u16) -> String {
    text.replace("127.0.0.1:8080", &format!("127.0.0.1:{issuer_port}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{resource_port}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes and builds the newcomer's project; returns its binaries' directory.
async fn build_project(root: &Path, issuer_port: u16, resource_port: u16) -> PathBuf {
    let project = root.join("my-mcp");
    std::fs::create_dir_all(project.join("src/bin")).unwrap();
    let dependencies = block_after("### In a project of your own", "toml")
        .replace("\"../mcpauth/", &format!("\"{}/", workspace().display()));
    // `[workspace]`: a project of its own, wherever the scratch directory is.
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"my-mcp\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             publish = false\n\n[workspace]\n\n{dependencies}"
        ),
    )
    .unwrap();
    // This workspace's versions, so the offline build finds every crate in the local cache.
    std::fs::copy(workspace().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    for (file, marker) in [
        ("server.rs", "`src/bin/server.rs`:"),
        ("client.rs", "`src/bin/client.rs`:"),
    ] {
        std::fs::write(
            project.join("src/bin").join(file),
            on_ports(&block_after(marker, "rust"), issuer_port, resource_port),
        )
        .unwrap();
    }
    // Its own target directory, kept between runs (a second run builds incrementally).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from)
        .join("newcomer");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = tokio::process::Command::new(cargo)
        .args(["build", "--offline", "--bins", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        // Smaller and quicker to link; nothing here is debugged.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the guide's project does not build:\n{said}"
    );
    // A newcomer's first build shows no warning, neither from the guide's programs nor from
    // mcpauth's crates built with only the features they ask for.
    // (Cargo's notes on registry crates a future Rust will refuse are not about this code.)
    let warnings: Vec<&str> = said
        .lines()
        .filter(|line| line.starts_with("warning:") && !line.contains("future"))
        .collect();
    assert!(warnings.is_empty(), "{said}");
    target.join("debug")
}

/// A process of the newcomer's, on a machine with no display: no browser opens.
fn headless(program: impl AsRef<std::ffi::OsStr>, home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `command` while a person approves the device code it shows on stderr; returns its
/// stdout and stderr.
async fn signing_in_on_another_device(
    mut command: tokio::process::Command,
    person: Arc<FormFillingBrowser>,
) -> (String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let complete = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.trim().strip_prefix("(or open ") {
                return Some(rest.trim_end_matches(')').to_owned());
            }
        }
        None
    })
    .await
    .expect("no device code was shown within a minute");
    let complete = complete.unwrap_or_else(|| panic!("no device code was shown:\n{seen}"));
    let approving = tokio::spawn(async move { person.approve_device_code(complete).await });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    while let Some(line) = stderr.next_line().await.unwrap() {
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    approving.await.unwrap();
    assert!(status.success(), "{stdout}{seen}");
    (stdout, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_follows_getting_started_without_a_browser() {
    let root = std::env::temp_dir().join(format!("mcpauth-newcomer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_port = as_listener.local_addr().unwrap().port();
    let resource_port = free_port();
    let bin = build_project(&root, issuer_port, resource_port).await;

    // Step 1: the server on the quick start's configuration, and a user.
    let mut config =
        mcpauth_server::Config::load(Some(&workspace().join("examples/mcpauth.toml")), |_| None)
            .unwrap();
    let issuer = format!("http://127.0.0.1:{issuer_port}");
    let resource = format!("http://127.0.0.1:{resource_port}/mcp");
    config.listen = as_listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", root.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped.await;
    }));

    // Step 2: the guide's MCP server.
    let mut mcp_server = headless(bin.join("server"), &root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(mcp_server.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the guide's server did not start")
        .unwrap();
    assert_eq!(
        listening.as_deref(),
        Some(format!("listening on {resource}").as_str())
    );

    // Step 3: the guide's CLI commands, as written.
    let commands: Vec<Vec<String>> = block_after("With mcpauth's own:", "sh")
        .lines()
        .filter_map(|line| line.split('#').next())
        .map(str::trim)
        .filter(|line| line.starts_with("mcpauth "))
        .map(|line| {
            on_ports(line, issuer_port, resource_port)
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let verbs: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(verbs, ["auth", "test", "get", "logout"], "{commands:?}");
    let mcpauth = |args: &[String]| {
        let mut command = headless(env!("CARGO_BIN_EXE_mcpauth"), &root);
        command
            .args(args)
            .env("MCPAUTH_STORE_PASSPHRASE", "a newcomer's passphrase");
        command
    };
    let person = Arc::new(FormFillingBrowser::default());
    let (stdout, _) = signing_in_on_another_device(mcpauth(&commands[0]), person.clone()).await;
    assert!(stdout.contains("authorized local"), "{stdout}");
    let output = mcpauth(&commands[1]).output().await.unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("local answered"),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = mcpauth(&commands[2]).output().await.unwrap();
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(claims(&token)["aud"], resource.as_str());
    let output = mcpauth(&commands[3]).output().await.unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("tokens revoked"),
        "{said}"
    );

    // Step 4: the guide's client program: a sign-in on another device, then the kept token.
    let client = || {
        let mut command = headless(bin.join("client"), &root);
        command.env("MY_MCP_CLIENT_PASSPHRASE", "the client's own passphrase");
        command
    };
    let (stdout, _) = signing_in_on_another_device(client(), person.clone()).await;
    assert!(stdout.contains("an access token of"), "{stdout}");
    let output = client().output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains("an access token of")
            && !stderr.contains("(or open"),
        "the second run signed in again: {stderr}"
    );
    assert!(root.join("data/my-mcp-client/store.enc").exists());

    let _ = mcp_server.start_kill();
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&root);
}

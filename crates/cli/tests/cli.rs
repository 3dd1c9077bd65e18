//! The `mcpauth` binary against mcpauth-server and the example MCP server (rmcp) on
//! loopback: `auth` (browser step played over HTTP from the URL the CLI prints; and the
//! device flow), `list`, `get` (redacted, then `--show`), `test`, `logout`, `clear`,
//! `completions`, `--json`, and the encrypted file store on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};

#[path = "../../client/tests/support/mod.rs"]
mod support;
use support::*;

const PASSPHRASE: &str = "a passphrase for the CLI test";

fn mcpauth(store_dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpauth"));
    command
        .arg("--store")
        .arg("file")
        .arg("--store-dir")
        .arg(store_dir)
        .env("MCPAUTH_STORE_PASSPHRASE", PASSPHRASE)
        .kill_on_drop(true);
    command
}

async fn run(store_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        mcpauth(store_dir).args(args).output(),
    )
    .await
    .expect("mcpauth took over a minute")
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `mcpauth auth …`, waits for the line after `marker` on stderr, hands it to `act`,
/// and returns the command's stdout.
async fn auth_with(
    store_dir: &Path,
    args: &[&str],
    marker: &str,
    act: impl FnOnce(String) -> tokio::task::JoinHandle<()>,
) -> String {
    let mut child = mcpauth(store_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix(marker) {
                return rest.trim().trim_end_matches(')').to_owned();
            }
        }
        panic!("mcpauth never printed `{marker}`");
    })
    .await
    .unwrap();
    let acting = act(line);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    acting.await.unwrap();
    assert!(status.success(), "{stdout}");
    stdout
}

/// `mcpauth auth NAME RESOURCE --allow-http --no-browser`, with `person` signing in and
/// approving at the URL the CLI prints; returns the command's stdout.
async fn auth_in_browser(
    store_dir: &Path,
    name: &str,
    resource: &str,
    person: &Arc<FormFillingBrowser>,
) -> String {
    let person = person.clone();
    auth_with(
        store_dir,
        &["auth", name, resource, "--allow-http", "--no-browser"],
        "http://",
        move |rest| {
            tokio::spawn(
                async move { person.walk(format!("http://{rest}").parse().unwrap()).await },
            )
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_authorizes_lists_gets_tests_logs_out_and_clears() {
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let store_dir = dir.join("store");
    let person = Arc::new(FormFillingBrowser::default());

    // auth: the CLI prints the URL (--no-browser); the person signs in and approves.
    let stdout = auth_in_browser(&store_dir, "work", &servers.resource, &person).await;
    assert!(stdout.contains("✓ authorized work"), "{stdout}");
    assert!(stdout.contains("mcp:tools"), "{stdout}");

    // list, as text and JSON.
    let (ok, stdout, _) = run(&store_dir, &["list"]).await;
    assert!(
        ok && stdout.contains("work") && stdout.contains("expires in"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&store_dir, &["--json", "list"]).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(listed[0]["name"], "work");
    assert_eq!(listed[0]["issuer"], servers.issuer.as_str());

    // get: redacted, then shown.
    let (ok, redacted, _) = run(&store_dir, &["get", "work"]).await;
    assert!(ok && redacted.contains("[redacted"), "{redacted}");
    assert!(!redacted.contains("eyJ"), "{redacted}");
    let (ok, shown, _) = run(&store_dir, &["get", "work", "--show"]).await;
    assert!(ok);
    let token = shown.trim();
    assert_eq!(claims(token)["aud"], servers.resource.as_str());
    assert!(
        !std::fs::read(store_dir.join("store.enc"))
            .unwrap()
            .windows(20)
            .any(|w| token.as_bytes().starts_with(w))
    );

    // A name whose tokens are gone (the registry alone, in another store): `get` says to
    // authorize again and exits 77, so a script can tell it from other failures; colours
    // follow --color, and NO_COLOR in auto.
    let bare = dir.join("bare-store");
    std::fs::create_dir_all(&bare).unwrap();
    // A store's folder is its owner's alone, as the CLI makes it.
    std::fs::set_permissions(&bare, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::copy(store_dir.join("servers.json"), bare.join("servers.json")).unwrap();
    let unauthorized = |extra: &'static [&'static str], no_color: bool| {
        let mut command = mcpauth(&bare);
        command.args(extra).args(["get", "work"]);
        if no_color {
            command.env("NO_COLOR", "1");
        }
        command.output()
    };
    let output = unauthorized(&[], false).await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mcpauth auth work") && !stderr.contains('\x1b'),
        "not a terminal: no colour ({stderr})"
    );
    let output = unauthorized(&["--color", "always"], false).await.unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("\x1b[31merror:"));
    let output = unauthorized(&["--color", "never"], false).await.unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains('\x1b'));
    let output = unauthorized(&["--json"], true).await.unwrap();
    assert_eq!(output.status.code(), Some(77));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["exit_status"], 77);

    // test: an authorized initialize.
    let (ok, stdout, stderr) = run(&store_dir, &["test", "work"]).await;
    assert!(
        ok && stdout.contains("work answered: rmcp"),
        "{stdout}{stderr}"
    );

    // logout revokes and forgets the tokens and the name: get no longer works and opens no
    // browser, and a second logout says there is nothing by that name.
    let (ok, stdout, _) = run(&store_dir, &["logout", "work"]).await;
    assert!(
        ok && stdout.contains("logged out of work: tokens revoked"),
        "{stdout}"
    );
    let (ok, _, stderr) = run(&store_dir, &["get", "work"]).await;
    assert!(
        !ok && stderr.contains("no server is named `work`"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(&store_dir, &["logout", "work"]).await;
    assert!(
        !ok && !stdout.contains("revoked") && stderr.contains("no server is named `work`"),
        "{stdout}{stderr}"
    );

    // The device flow: the CLI shows the code; the person approves it on the device page.
    let stdout = auth_with(
        &store_dir,
        &[
            "auth",
            "kitchen",
            &servers.resource,
            "--allow-http",
            "--device",
        ],
        "(or open",
        {
            let person = person.clone();
            move |url| tokio::spawn(async move { person.approve_device_code(url).await })
        },
    )
    .await;
    assert!(stdout.contains("✓ authorized kitchen"), "{stdout}");

    // A machine client: the client_credentials grant with a client the operator registered.
    let second_instance = mcpauth_server::build(&servers.config).await.unwrap();
    let mut job = mcpauth_server::admin::NewClient::default();
    job.name = "Nightly job".into();
    let job = mcpauth_server::admin::add_client(&second_instance.engine, job)
        .await
        .unwrap();
    let secret = job.client_secret.unwrap();
    let output = mcpauth(&store_dir)
        .env("MCPAUTH_CLIENT_SECRET", &secret)
        .args([
            "auth",
            "nightly",
            &servers.resource,
            "--allow-http",
            "--client-credentials",
            "--client-id",
            &job.client_id,
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("✓ authorized nightly"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = mcpauth(&store_dir)
        .env("MCPAUTH_CLIENT_SECRET", &secret)
        .args(["get", "nightly", "--show"])
        .output()
        .await
        .unwrap();
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(claims(&token)["client_id"], job.client_id.as_str());
    assert_eq!(claims(&token)["aud"], servers.resource.as_str());

    // `--store keychain`: the store key lives in the OS keychain where one is reachable, else
    // the CLI says so and falls back to the passphrase; either way the tokens are encrypted on
    // disk and a later process reads them back.
    let keychain_dir = dir.join("keychain-store");
    let keychain = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpauth"));
        command
            .args(["--store", "keychain", "--store-dir"])
            .arg(&keychain_dir)
            .args(args)
            .env("MCPAUTH_STORE_PASSPHRASE", PASSPHRASE)
            .env("MCPAUTH_CLIENT_SECRET", &secret)
            .kill_on_drop(true);
        command
    };
    let output = keychain(&[
        "auth",
        "nightly",
        &servers.resource,
        "--allow-http",
        "--client-credentials",
        "--client-id",
        &job.client_id,
    ])
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let fell_back = stderr.contains("no OS keychain is reachable here");
    eprintln!(
        "keychain store: {}",
        if fell_back {
            "passphrase fallback"
        } else {
            "OS keychain key"
        }
    );
    let output = keychain(&["get", "nightly", "--show"])
        .output()
        .await
        .unwrap();
    let kept = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(claims(&kept)["client_id"], job.client_id.as_str());
    let on_disk: Vec<u8> = std::fs::read_dir(&keychain_dir)
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.unwrap().path()).ok())
        .flatten()
        .collect();
    assert!(
        !on_disk.windows(kept.len()).any(|w| w == kept.as_bytes()),
        "the token is on disk in the clear"
    );

    // clear forgets without revoking; an unknown name says what to do.
    let (ok, stdout, _) = run(&store_dir, &["clear", "kitchen"]).await;
    assert!(ok && stdout.contains("forgot kitchen"), "{stdout}");
    let (ok, _, stderr) = run(&store_dir, &["test", "kitchen"]).await;
    assert!(
        !ok && stderr.contains("mcpauth auth kitchen URL"),
        "{stderr}"
    );

    // A wrong passphrase opens nothing.
    let output = mcpauth(&store_dir)
        .env("MCPAUTH_STORE_PASSPHRASE", "not the passphrase")
        .args(["list"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be decrypted"));

    // Completions.
    let (ok, stdout, _) = run(&store_dir, &["completions", "bash"]).await;
    assert!(ok && stdout.contains("mcpauth"));

    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mcpauth` with no passphrase anywhere and no terminal to ask on.
fn bare(store: &str, store_dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpauth"));
    command
        .args(["--store", store, "--store-dir"])
        .arg(store_dir)
        .env_remove("MCPAUTH_STORE_PASSPHRASE")
        .env_remove("MCPAUTH_CLIENT_SECRET")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

// `--client-secret` is used (not dropped): kept encrypted in the store, bound to the
// authorization server, so later commands work without it; a client configured for another
// authorization server never sends its secret to this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_given_at_auth_is_kept_encrypted_and_bound_to_its_issuer() {
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-secret-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let store_dir = dir.join("store");
    let instance = mcpauth_server::build(&servers.config).await.unwrap();
    let mut job = mcpauth_server::admin::NewClient::default();
    job.name = "Nightly job".into();
    let job = mcpauth_server::admin::add_client(&instance.engine, job)
        .await
        .unwrap();
    let secret = job.client_secret.unwrap();

    let output = mcpauth(&store_dir)
        .env_remove("MCPAUTH_CLIENT_SECRET")
        .args([
            "auth",
            "nightly",
            &servers.resource,
            "--allow-http",
            "--client-credentials",
            "--client-id",
            &job.client_id,
            "--client-secret",
            &secret,
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "client {} is bound to the authorization server {}",
            job.client_id, servers.issuer
        )),
        "{stderr}"
    );

    // A later command, with no secret given: the store's.
    let output = mcpauth(&store_dir)
        .env_remove("MCPAUTH_CLIENT_SECRET")
        .args(["get", "nightly", "--show"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(claims(&token)["client_id"], job.client_id.as_str());
    // Kept beside the issuer's own slot, which other entries use for the identity they
    // register there: the configured client never takes their place.
    {
        use mcpauth_client::TokenStore as _;
        let store = mcpauth_client::FileStore::open(
            &store_dir,
            mcpauth_client::KeySource::Passphrase(PASSPHRASE.into()),
        )
        .unwrap();
        assert_eq!(store.load_credentials(&servers.issuer).await.unwrap(), None);
        let kept = store
            .load_credentials(&format!("{}#client_id={}", servers.issuer, job.client_id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.client_secret.as_deref(), Some(secret.as_str()));
    }
    for file in ["store.enc", "servers.json"] {
        let bytes = std::fs::read(store_dir.join(file)).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in {file} in the clear"
        );
    }

    // Configured for another authorization server: refused before anything is sent.
    let output = mcpauth(&store_dir)
        .args([
            "auth",
            "elsewhere",
            &servers.resource,
            "--allow-http",
            "--client-credentials",
            "--client-id",
            &job.client_id,
            "--client-secret",
            &secret,
            "--issuer",
            "https://auth.elsewhere.example",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("configured for the authorization server https://auth.elsewhere.example"),
        "{stderr}"
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

// A store's key is never replaced while the store exists: a store keyed in the OS keychain
// whose key is gone (the Linux kernel keyring after a reboot) is refused with what happened
// and how to recover, and the file is left as it was. A memory store needs no passphrase.
#[tokio::test]
async fn a_store_whose_key_is_lost_is_refused_and_left_untouched() {
    use mcpauth_client::TokenStore as _;
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-lost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // As an earlier version made it: a random key, kept only in the (now emptied) keyring.
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).unwrap();
    let legacy =
        mcpauth_client::FileStore::open(&dir, mcpauth_client::KeySource::Key(key)).unwrap();
    legacy
        .save_credentials(&mcpauth_client::ClientCredentials::pre_registered(
            "https://as.example",
            "client-1",
            None,
        ))
        .await
        .unwrap();
    let before = std::fs::read(dir.join("store.enc")).unwrap();

    let output = bare("keychain", &dir).arg("list").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot be read") && stderr.contains("move"),
        "{stderr}"
    );
    let output = bare("keychain", &dir)
        .env("MCPAUTH_STORE_PASSPHRASE", "a guess")
        .arg("list")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        std::fs::read(dir.join("store.enc")).unwrap(),
        before,
        "no new key was made over the store"
    );

    // Nothing kept, nothing asked.
    let output = bare("memory", &dir.join("memory"))
        .arg("list")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// A store made with a passphrase stays so, on every OS: an earlier version's passphrase store
// (no `store.keying`) opens with its passphrase under `--store keychain` and is recorded as
// passphrase-keyed; a wrong passphrase is refused and changes nothing.
#[tokio::test]
async fn a_passphrase_store_opens_only_with_its_passphrase_and_is_never_rekeyed() {
    use mcpauth_client::TokenStore as _;
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-passphrase-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let earlier = mcpauth_client::FileStore::open(
        &dir,
        mcpauth_client::KeySource::Passphrase("the old passphrase".into()),
    )
    .unwrap();
    earlier
        .save_credentials(&mcpauth_client::ClientCredentials::pre_registered(
            "https://as.example",
            "client-1",
            None,
        ))
        .await
        .unwrap();
    let before = std::fs::read(dir.join("store.enc")).unwrap();
    assert!(!dir.join("store.keying").exists());

    let output = bare("keychain", &dir)
        .env("MCPAUTH_STORE_PASSPHRASE", "a guess")
        .arg("list")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("passphrase"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("store.enc")).unwrap(), before);

    let output = bare("keychain", &dir)
        .env("MCPAUTH_STORE_PASSPHRASE", "the old passphrase")
        .arg("list")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("store.keying"))
            .unwrap()
            .trim(),
        "passphrase"
    );
    assert_eq!(std::fs::read(dir.join("store.enc")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

// A person and a machine client (or two people) at the same MCP server, under two names:
// each name keeps its own tokens, so `get local` never hands out the bot's token, and
// logging one out leaves the other signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_name_for_the_same_server_keeps_its_own_tokens() {
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let store_dir = dir.join("store");
    let person = Arc::new(FormFillingBrowser::default());
    let stdout = auth_in_browser(&store_dir, "local", &servers.resource, &person).await;
    assert!(stdout.contains("✓ authorized local"), "{stdout}");
    let (_, shown, _) = run(&store_dir, &["get", "local", "--show"]).await;
    let person_token = shown.trim().to_owned();
    let person_client = claims(&person_token)["client_id"].clone();

    let instance = mcpauth_server::build(&servers.config).await.unwrap();
    let mut job = mcpauth_server::admin::NewClient::default();
    job.name = "Nightly job".into();
    let job = mcpauth_server::admin::add_client(&instance.engine, job)
        .await
        .unwrap();
    let secret = job.client_secret.unwrap();
    let bot = |args: &[&str]| {
        let mut command = mcpauth(&store_dir);
        command.env("MCPAUTH_CLIENT_SECRET", &secret).args(args);
        command
    };
    let output = bot(&[
        "auth",
        "bot",
        &servers.resource,
        "--allow-http",
        "--client-credentials",
        "--client-id",
        &job.client_id,
    ])
    .output()
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Each name, its own identity.
    let (ok, shown, stderr) = run(&store_dir, &["get", "local", "--show"]).await;
    assert!(ok, "{stderr}");
    assert_eq!(shown.trim(), person_token, "local now holds another token");
    assert_eq!(claims(shown.trim())["client_id"], person_client);
    assert_eq!(claims(shown.trim())["sub"], claims(&person_token)["sub"]);
    let output = bot(&["get", "bot", "--show"]).output().await.unwrap();
    let bot_token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(claims(&bot_token)["client_id"], job.client_id.as_str());
    assert_ne!(bot_token, person_token);

    // Logging the bot out leaves the person signed in, and the other way round.
    let output = bot(&["logout", "bot"]).output().await.unwrap();
    assert!(output.status.success());
    let (ok, shown, _) = run(&store_dir, &["get", "local", "--show"]).await;
    assert!(ok && shown.trim() == person_token);
    let (ok, listed, _) = run(&store_dir, &["list"]).await;
    assert!(
        ok && listed.contains("local") && !listed.contains("bot"),
        "{listed}"
    );
    // The bot again, with the secret kept from its first `auth`; then the person leaves.
    let output = mcpauth(&store_dir)
        .env_remove("MCPAUTH_CLIENT_SECRET")
        .args([
            "auth",
            "bot",
            &servers.resource,
            "--allow-http",
            "--client-credentials",
            "--client-id",
            &job.client_id,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (ok, _, _) = run(&store_dir, &["logout", "local"]).await;
    assert!(ok);
    let output = bot(&["get", "bot", "--show"]).output().await.unwrap();
    let still = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(claims(&still)["client_id"], job.client_id.as_str());
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

// `auth` asks the URL an MCP question before anyone signs in: a URL that is not an MCP
// server wanting authorization (here the authorization server's own /health) is refused
// with what it answered and what to check; plain http without --allow-http names the flag;
// a machine client without a secret names MCPAUTH_CLIENT_SECRET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refuses_a_url_that_is_not_an_mcp_server_and_says_so() {
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-notmcp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let store_dir = dir.join("store");
    let health = format!("{}/health", servers.issuer);
    let (ok, stdout, stderr) = run(
        &store_dir,
        &["auth", "h", &health, "--allow-http", "--no-browser"],
    )
    .await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains(&format!("{health} is not an MCP server"))
            && stderr.contains("got HTTP")
            && !stderr.contains("Open this URL"),
        "{stderr}"
    );
    let (ok, stdout, _) = run(&store_dir, &["list"]).await;
    assert!(ok && !stdout.contains("h\t"), "{stdout}");

    let (ok, _, stderr) = run(&store_dir, &["auth", "m", &servers.resource]).await;
    assert!(!ok && stderr.contains("--allow-http"), "{stderr}");

    let output = mcpauth(&store_dir)
        .env_remove("MCPAUTH_CLIENT_SECRET")
        .args([
            "auth",
            "m",
            &servers.resource,
            "--allow-http",
            "--client-credentials",
            "--client-id",
            "some-client",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("MCPAUTH_CLIENT_SECRET"),
        "{stderr}"
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

// `test` says why the MCP server refused a token (RFC 6750 §3.1's error and description),
// not only its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_shows_why_the_server_refused_the_token() {
    use mcpauth_client::TokenStore as _;
    let dir = std::env::temp_dir().join(format!("mcpauth-cli-refused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let store_dir = dir.join("store");
    let person = Arc::new(FormFillingBrowser::default());
    auth_in_browser(&store_dir, "work", &servers.resource, &person).await;
    // The kept token's signature spoiled, as a token the server no longer accepts.
    let store = Arc::new(
        mcpauth_client::FileStore::open(
            &store_dir,
            mcpauth_client::KeySource::Passphrase(PASSPHRASE.into()),
        )
        .unwrap(),
    );
    let work = mcpauth_client::AccountStore::new(store, "work");
    let mut tokens = work
        .load_tokens(&servers.issuer, &servers.resource)
        .await
        .unwrap()
        .unwrap();
    let cut = tokens.access_token.len() - 4;
    tokens.access_token.replace_range(cut.., "AAAA");
    work.save_tokens(&servers.issuer, &servers.resource, &tokens)
        .await
        .unwrap();
    let (ok, stdout, stderr) = run(&store_dir, &["test", "work"]).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("work refused the token with HTTP 401 (invalid_token")
            && stderr.contains("mcpauth auth work"),
        "{stderr}"
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

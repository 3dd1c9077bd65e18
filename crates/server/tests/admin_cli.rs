//! The operator's commands, run as the real `mcpauth-server` binary on a throwaway SQLite
//! database: users (add, list, disable, enable, passwd, with the password policy) and
//! pre-registered clients (add with the secret shown once, list, remove), checked against the
//! running server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;
use support::free_port;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcpauth-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `mcpauth-server --create ARGS` on the database in `dir`, with `stdin` as its input;
/// returns (success, stdout, stderr).
fn run(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    run_as(dir, &[&["--create"], args].concat(), stdin)
}

/// Runs `mcpauth-server ARGS` (no `--create`) on the database in `dir`.
fn run_as(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
        .args(args)
        .env(
            "MCPAUTH_DATABASE_URL",
            format!("sqlite://{}", dir.join("mcpauth.db").display()),
        )
        .env("MCPAUTH_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// An admin command pointed at a database that does not exist (the server's is elsewhere: a
// missing --config) refuses, names the file it would have made and how to reach the right
// one, and creates nothing; --create makes it.
#[test]
fn admin_commands_name_a_missing_database_instead_of_creating_one() {
    let dir = temp_dir("no-database");
    let database = dir.join("mcpauth.db");
    let (ok, _, err) = run_as(&dir, &["user", "list"], "");
    assert!(!ok);
    assert!(
        err.contains(&format!("no database at {}", database.display()))
            && err.contains("--config")
            && err.contains("--create"),
        "{err}"
    );
    assert!(!database.exists(), "nothing is created without --create");
    let (ok, _, err) = run_as(&dir, &["--create", "user", "list"], "");
    assert!(ok, "{err}");
    assert!(database.exists());
    let (ok, _, err) = run_as(&dir, &["user", "list"], "");
    assert!(ok, "an existing database needs no --create: {err}");
}

#[test]
fn help_documents_every_subcommand() {
    let dir = temp_dir("help");
    let (ok, top, _) = run(&dir, &["--help"], "");
    assert!(ok);
    for command in [
        "serve",
        "user",
        "client",
        "grant",
        "key",
        "config",
        "audit",
        "backup",
        "restore",
        "migrate",
        "completions",
    ] {
        assert!(top.contains(command), "{top}");
    }
    let (_, user, _) = run(&dir, &["user", "--help"], "");
    for command in [
        "add",
        "list",
        "disable",
        "enable",
        "passwd",
        "grant-admin",
        "revoke-admin",
        "unlock",
    ] {
        assert!(user.contains(command), "{user}");
    }
    let (_, client, _) = run(&dir, &["client", "--help"], "");
    for command in ["add", "list", "remove"] {
        assert!(client.contains(command), "{client}");
    }
    // A completion script for each shell, naming the commands; no database needed.
    for shell in ["bash", "zsh", "fish"] {
        let (ok, script, err) = run_as(&dir, &["completions", shell], "");
        assert!(ok && script.contains("grant-admin"), "{shell}: {err}");
    }
    let (_, grant, _) = run(&dir, &["grant", "--help"], "");
    for command in ["list", "revoke"] {
        assert!(grant.contains(command), "{grant}");
    }
    let (_, key, _) = run(&dir, &["key", "--help"], "");
    for command in ["list", "rotate", "remove"] {
        assert!(key.contains(command), "{key}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn kids(listing: &str, state: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter(|line| line.contains(state))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

// Rotation: the new key is published at once and signs after the lead; the old one stays
// published until removed; the signing key and a waiting key cannot be removed.
#[test]
fn keys_rotate_with_a_publication_lead_and_only_retired_keys_are_removed() {
    let dir = temp_dir("keys");
    let (ok, listing, err) = run(&dir, &["key", "list"], "");
    assert!(ok, "{err}");
    let first = kids(&listing, "signing");
    assert_eq!(first.len(), 1, "{listing}");
    let (ok, out, err) = run(&dir, &["key", "rotate"], "");
    assert!(
        ok && out.contains("signs new tokens in 600 seconds"),
        "{out}{err}"
    );
    let (_, listing, _) = run(&dir, &["key", "list"], "");
    assert_eq!(kids(&listing, "signing"), first, "{listing}");
    let next = kids(&listing, "next");
    assert_eq!(next.len(), 1, "{listing}");
    let (ok, _, err) = run(&dir, &["key", "remove", &next[0]], "");
    assert!(!ok && err.contains("waiting to sign"), "{err}");
    let (ok, _, err) = run(&dir, &["key", "remove", &first[0]], "");
    assert!(!ok && err.contains("the signing key"), "{err}");

    // Once the lead has passed (here: a lead of 0), the new key signs and the old retires.
    let with_no_lead = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
            .args(args)
            .env(
                "MCPAUTH_DATABASE_URL",
                format!("sqlite://{}", dir.join("mcpauth.db").display()),
            )
            .env("MCPAUTH_KEY_ROTATION_LEAD", "0")
            .env("MCPAUTH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take();
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (_, listing) = with_no_lead(&["key", "list"]);
    assert_eq!(kids(&listing, "signing"), next, "{listing}");
    assert_eq!(kids(&listing, "retired"), first, "{listing}");
    let (ok, _) = with_no_lead(&["key", "remove", &first[0]]);
    assert!(ok);
    let (_, listing) = with_no_lead(&["key", "list"]);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    let (ok, _) = with_no_lead(&["key", "rotate", "--algorithm", "EdDSA"]);
    assert!(ok);
    let (_, listing) = with_no_lead(&["key", "list"]);
    assert!(listing.contains("EdDSA"), "{listing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn users_are_added_listed_disabled_enabled_and_get_new_passwords() {
    let dir = temp_dir("users");
    let (ok, out, err) = run(
        &dir,
        &["user", "add", " Alice@Example.com "],
        "correct horse battery\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("added alice@example.com as user_"), "{out}");

    let (ok, _, err) = run(
        &dir,
        &["user", "add", "alice@example.com"],
        "another good one\n",
    );
    assert!(!ok, "a taken email must be refused");
    assert!(
        err.contains("a user with the email `alice@example.com` already exists")
            && err.contains("user passwd"),
        "{err}"
    );
    let (ok, _, err) = run(&dir, &["user", "add", "bob@example.com"], "password123\n");
    assert!(!ok);
    assert!(err.contains("one of the most common passwords"), "{err}");
    let (ok, _, err) = run(
        &dir,
        &["user", "add", "bob.builder@example.com"],
        "bob.builder rocks\n",
    );
    assert!(!ok);
    assert!(err.contains("contains the email address"), "{err}");
    let (ok, _, err) = run(&dir, &["user", "add", "bob@example.com"], "short\n");
    assert!(!ok);
    assert!(err.contains("at least 8 characters"), "{err}");

    let (ok, out, _) = run(&dir, &["user", "list"], "");
    assert!(ok);
    let line = out
        .lines()
        .find(|l| l.starts_with("alice@example.com"))
        .unwrap();
    assert!(line.contains("active"), "{out}");
    assert!(
        !out.contains("bob@example.com"),
        "refused users are not created: {out}"
    );

    let (ok, out, err) = run(&dir, &["user", "disable", "ALICE@example.com"], "");
    assert!(ok, "{err}");
    assert!(out.contains("grants revoked"), "{out}");
    let (_, out, _) = run(&dir, &["user", "list"], "");
    assert!(out.contains("disabled"), "{out}");
    let (ok, _, err) = run(&dir, &["user", "disable", "nobody@example.com"], "");
    assert!(!ok);
    assert!(
        err.contains("no user has the email `nobody@example.com`"),
        "{err}"
    );

    let (ok, _, _) = run(&dir, &["user", "enable", "alice@example.com"], "");
    assert!(ok);
    let (ok, _, err) = run(
        &dir,
        &["user", "passwd", "alice@example.com"],
        "alice@example.com\n",
    );
    assert!(!ok, "the policy applies to new passwords");
    assert!(err.contains("contains the email address"), "{err}");
    let (ok, _, err) = run(
        &dir,
        &["user", "passwd", "alice@example.com"],
        "a brand new passphrase\n",
    );
    assert!(ok, "{err}");

    let store = mcpauth_store_sql::SqlStore::connect(&format!(
        "sqlite://{}",
        dir.join("mcpauth.db").display()
    ))
    .await
    .unwrap();
    let alice = store
        .find_user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!alice.disabled);
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(mcpauth_server::users::verify_password(
        "a brand new passphrase",
        &alice.password_hash
    ));
    assert!(!mcpauth_server::users::verify_password(
        "correct horse battery",
        &alice.password_hash
    ));
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_registered_client_works_until_removed() {
    let dir = temp_dir("clients");
    let (ok, out, err) = run(
        &dir,
        &[
            "client",
            "add",
            "--name",
            "Nightly robot",
            "--scope",
            "mcp:tools",
        ],
        "",
    );
    assert!(ok, "{err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (client_id, secret) = (field("client_id:"), field("client_secret:"));
    assert!(out.contains("shown only now"), "{out}");
    // The same, sending its secret in the body (client_secret_post), and not a public one.
    let (ok, posting, err) = run(
        &dir,
        &[
            "client",
            "add",
            "--name",
            "Posting robot",
            "--client-secret-post",
        ],
        "",
    );
    assert!(ok, "{err}");
    let posting_field = |name: &str| {
        posting
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap()
    };
    let (posting_id, posting_secret) =
        (posting_field("client_id:"), posting_field("client_secret:"));
    let (ok, _, err) = run(
        &dir,
        &[
            "client",
            "add",
            "--name",
            "Confused",
            "--client-secret-post",
            "--public",
        ],
        "",
    );
    assert!(!ok && err.contains("--public"), "{err}");

    let (ok, out, _) = run(&dir, &["client", "list"], "");
    assert!(ok);
    let line = out.lines().find(|l| l.starts_with(&client_id)).unwrap();
    assert!(
        line.contains("Nightly robot")
            && line.contains("pre-registered")
            && line.contains("client_credentials"),
        "{line}"
    );
    assert!(!out.contains(&secret), "the secret is never shown again");

    // The server on the same database issues tokens to it, within its scope only.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = mcpauth_server::Config::default();
    config.listen = addr;
    config.issuer = Some(format!("http://{addr}"));
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    // A running server reads client records again after `client_cache_ttl` seconds.
    config.client_cache_ttl = 1;
    let server = mcpauth_server::build(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let token = |scope: &'static str| {
        http.post(format!("http://{addr}/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", "http://127.0.0.1:3000/mcp"),
            ])
            .send()
    };
    let issued = token("mcp:tools").await.unwrap();
    assert_eq!(issued.status(), 200);
    // Each client authenticates only by its registered method (RFC 7591 §2).
    let in_body = |id: &str, secret: &str| {
        http.post(format!("http://{addr}/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("resource", "http://127.0.0.1:3000/mcp"),
            ])
            .send()
    };
    assert_eq!(
        in_body(&posting_id, &posting_secret)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(in_body(&client_id, &secret).await.unwrap().status(), 401);
    let posting_by_basic = http
        .post(format!("http://{addr}/token"))
        .basic_auth(&posting_id, Some(&posting_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", "http://127.0.0.1:3000/mcp"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posting_by_basic.status(), 401);
    let wider = token("mcp:tools mcp:admin").await.unwrap();
    assert_eq!(wider.status(), 400);
    assert_eq!(
        wider.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_scope"
    );

    let (ok, out, err) = run(&dir, &["client", "remove", &client_id], "");
    assert!(ok, "{err}");
    assert!(out.contains("grants are revoked"), "{out}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refused = token("mcp:tools").await.unwrap();
    assert_eq!(refused.status(), 401);
    let (ok, _, err) = run(&dir, &["client", "remove", &client_id], "");
    assert!(!ok);
    assert!(err.contains("no client has the id"), "{err}");

    let _ = stop.send(());
    let _ = serving.await;
    let _ = std::fs::remove_dir_all(&dir);
}

// `mcpauth-server audit` shows the administrator's actions (and sign-ins), filtered by user
// (email or subject), client and event, as a table or JSON; no password appears.
#[test]
fn the_administrators_actions_are_in_the_audit_trail() {
    let dir = temp_dir("audit");
    let (ok, out, err) = run(
        &dir,
        &["user", "add", "alice@example.com"],
        "correct horse battery\n",
    );
    assert!(ok, "{err}");
    let alice = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(run(&dir, &["user", "disable", "alice@example.com"], "").0);
    assert!(
        run(
            &dir,
            &["user", "passwd", "alice@example.com"],
            "a new horse battery\n"
        )
        .0
    );
    let (ok, out, err) = run(&dir, &["client", "add", "--name", "Nightly job"], "");
    assert!(ok, "{err}");
    let client = out
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("{out}"));

    let (ok, json, err) = run(&dir, &["audit", "--json"], "");
    assert!(ok, "{err}");
    let trail: serde_json::Value = serde_json::from_str(&json).unwrap();
    let events: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "client_added",
            "password_changed",
            "user_disabled",
            "user_added"
        ],
        "newest first"
    );
    for record in trail.as_array().unwrap() {
        assert_eq!(record["actor"], "admin", "{record}");
        assert_eq!(record["outcome"], "success", "{record}");
    }
    assert_eq!(trail[0]["client"], client.as_str());
    assert_eq!(trail[3]["user"], alice.as_str());
    assert!(!json.contains("horse"), "no password in the trail");

    // Filters: by email or subject, by client, by event; the table names the columns.
    for user in ["alice@example.com", alice.as_str()] {
        let (ok, json, _) = run(&dir, &["audit", "--json", "--user", user], "");
        assert!(ok);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }
    let (_, json, _) = run(&dir, &["audit", "--json", "--client", &client], "");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap()[0]["event"],
        "client_added"
    );
    let (_, json, _) = run(
        &dir,
        &[
            "audit",
            "--json",
            "--event",
            "user_disabled",
            "--limit",
            "5",
        ],
        "",
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (ok, table, _) = run(&dir, &["audit"], "");
    assert!(ok);
    assert!(
        table.starts_with("#") && table.contains("user_disabled") && table.contains("admin"),
        "{table}"
    );
    let (ok, _, err) = run(&dir, &["audit", "--user", "nobody@example.com"], "");
    assert!(!ok && err.contains("nobody@example.com"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// Administrators: `user add --admin` and `user grant-admin` make one, `user revoke-admin` takes
// it back; `user list` shows which; each is audited; an unknown user is named.
#[test]
fn administrators_are_added_granted_listed_and_revoked() {
    let dir = temp_dir("administrators");
    let (ok, out, err) = run(
        &dir,
        &["user", "add", "root@example.com", "--admin"],
        "operator's long passphrase\n",
    );
    assert!(ok && out.contains("an administrator"), "{out}{err}");
    let (ok, _, err) = run(
        &dir,
        &["user", "add", "alice@example.com"],
        "a long passphrase of hers\n",
    );
    assert!(ok, "{err}");
    let admin_column = |listing: &str, email: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(email))
            .map(|l| l.split_whitespace().nth(3).unwrap_or_default().to_owned())
            .unwrap()
    };
    let (_, listing, _) = run(&dir, &["user", "list"], "");
    assert_eq!(
        admin_column(&listing, "root@example.com"),
        "yes",
        "{listing}"
    );
    assert_eq!(
        admin_column(&listing, "alice@example.com"),
        "-",
        "{listing}"
    );
    let (ok, _, err) = run(&dir, &["user", "grant-admin", "alice@example.com"], "");
    assert!(ok, "{err}");
    let (_, listing, _) = run(&dir, &["user", "list"], "");
    assert_eq!(
        admin_column(&listing, "alice@example.com"),
        "yes",
        "{listing}"
    );
    let (ok, _, err) = run(&dir, &["user", "revoke-admin", "alice@example.com"], "");
    assert!(ok, "{err}");
    let (_, listing, _) = run(&dir, &["user", "list"], "");
    assert_eq!(
        admin_column(&listing, "alice@example.com"),
        "-",
        "{listing}"
    );
    let (ok, out, err) = run(&dir, &["user", "unlock", "alice@example.com"], "");
    assert!(ok && out.contains("unlocked"), "{out}{err}");
    let (ok, _, err) = run(&dir, &["user", "grant-admin", "nobody@example.com"], "");
    assert!(!ok && err.contains("nobody@example.com"), "{err}");
    let (_, trail, _) = run(&dir, &["audit", "--json"], "");
    let events: Vec<String> = serde_json::from_str::<serde_json::Value>(&trail)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "lockout_reset",
            "admin_revoked",
            "admin_granted",
            "user_added",
            "admin_granted",
            "user_added"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `mcpauth-server ARGS` with `vars` set; returns (exit status, stdout, stderr).
fn run_with(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
        .args(args)
        .env(
            "MCPAUTH_DATABASE_URL",
            format!("sqlite://{}", dir.join("mcpauth.db").display()),
        )
        .env("MCPAUTH_LOG", "warn")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// `config check` validates as the server does at start, prints the effective configuration
// with secrets redacted, creates nothing, and exits 78 (EX_CONFIG) on a broken file or a
// setting the server would refuse, naming it; a server refused for its configuration exits
// 78 too, other failures 1.
#[test]
fn config_check_prints_the_effective_configuration_and_exits_78_when_broken() {
    let dir = temp_dir("config-check");
    let token = "a-registration-token-of-forty-characters-x";
    let file = dir.join("mcpauth.toml");
    std::fs::write(
        &file,
        format!("issuer = \"https://auth.example.com\"\nregistration_token = \"{token}\"\n"),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let (status, out, err) = run_with(&dir, &["--config", config, "config", "check"], &[]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("https://auth.example.com"), "{out}");
    assert!(out.contains("[redacted]") && !out.contains(token), "{out}");
    assert!(err.contains("valid"), "{err}");
    assert!(
        !dir.join("mcpauth.db").exists(),
        "checking creates no database"
    );

    std::fs::write(&file, "isuer = \"https://auth.example.com\"\n").unwrap();
    let (status, _, err) = run_with(&dir, &["--config", config, "config", "check"], &[]);
    assert_eq!(status, 78, "{err}");
    assert!(err.contains("isuer"), "{err}");

    std::fs::write(&file, "").unwrap();
    let refused = [
        ("MCPAUTH_TLS_CERTIFICATE", "/nonexistent/fullchain.pem"),
        ("MCPAUTH_ISSUER", "https://auth.example.com"),
    ];
    let (status, _, err) = run_with(&dir, &["--config", config, "config", "check"], &refused);
    assert_eq!(status, 78, "{err}");
    assert!(err.contains("tls_private_key"), "{err}");
    let production = [("MCPAUTH_PRODUCTION", "true")];
    let (status, _, err) = run_with(&dir, &["--config", config, "config", "check"], &production);
    assert_eq!(status, 78, "{err}");
    assert!(err.contains("production mode refuses"), "{err}");
    // Serving with that configuration stops the same way, with the same status.
    let serving = [refused[0], refused[1], ("MCPAUTH_LISTEN", "127.0.0.1:0")];
    let (status, _, err) = run_with(&dir, &["--config", config, "serve"], &serving);
    assert_eq!(status, 78, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The workspace's `deploy/` folder.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The `- name: MCPAUTH_…` / `value: "…"` pairs of a Kubernetes manifest's `env:`.
fn manifest_env(manifest: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut lines = manifest.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("- name: MCPAUTH_") {
            let value = lines
                .next()
                .and_then(|l| l.strip_prefix("value: "))
                .unwrap()
                .trim_matches('"');
            pairs.push((format!("MCPAUTH_{name}"), value.to_owned()));
        }
    }
    pairs
}

/// `GET path` on 127.0.0.1:`port`; the status code, once the server answers (10 s at most).
fn status_of(port: u16, path: &str) -> u16 {
    use std::io::Read as _;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            return answer
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no answer on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// The deployment files in deploy/ (docs/deployment.md): the systemd unit passes
// `systemd-analyze verify` without a word; the production configuration passes `config check`
// with its secrets set; the Kubernetes manifest's environment is a configuration the server
// accepts, and its probes name routes that answer 200 on a running server.
#[test]
fn the_deployment_files_check_out() {
    let dir = temp_dir("deploy");
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/mcpauth-server.service"))
        .unwrap()
        .replace(
            "/usr/local/bin/mcpauth-server",
            env!("CARGO_BIN_EXE_mcpauth-server"),
        );
    let unit_path = dir.join("mcpauth-server.service");
    std::fs::write(&unit_path, unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .expect("systemd-analyze (Debian's systemd; scripts/test installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "{said}"
    );

    // Production mode starts only on an existing database: the first administrator makes it.
    let (ok, _, err) = run(
        &dir,
        &["user", "add", "root@example.com", "--admin"],
        "operator's long passphrase\n",
    );
    assert!(ok, "{err}");
    let database = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let secrets = [
        (
            "MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY",
            "q4J8yH0r2vKx5nT1wE7bZcL9mP3sA6dF0gU8iO2jRkQ=",
        ),
        (
            "MCPAUTH_METRICS_TOKEN",
            "metrics-token-of-more-than-thirty-two-characters",
        ),
        ("MCPAUTH_DATABASE_URL", database.as_str()),
    ];
    let config = deploy_dir().join("mcpauth.toml");
    let (status, out, err) = run_with(
        &dir,
        &["--config", config.to_str().unwrap(), "config", "check"],
        &secrets,
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("production: true"), "{out}");
    // Without its secrets, production mode refuses it.
    let (status, _, err) = run_with(
        &dir,
        &["--config", config.to_str().unwrap(), "config", "check"],
        &secrets[2..],
    );
    assert_eq!(status, 78, "{err}");

    let manifest =
        std::fs::read_to_string(deploy_dir().join("kubernetes/mcpauth-server.yaml")).unwrap();
    let port = free_port();
    let mut env = manifest_env(&manifest);
    assert!(
        env.iter().any(|(name, _)| name == "MCPAUTH_PRODUCTION"),
        "{env:?}"
    );
    // On loopback here, on the test's database; the rest as the manifest has it.
    for (name, value) in &mut env {
        match name.as_str() {
            "MCPAUTH_LISTEN" => *value = format!("127.0.0.1:{port}"),
            "MCPAUTH_DATABASE_URL" => value.clone_from(&database),
            _ => {}
        }
    }
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    vars.extend_from_slice(&secrets[..2]);
    let (status, _, err) = run_with(&dir, &["config", "check"], &vars);
    assert_eq!(status, 0, "{err}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
        .arg("serve")
        .env("MCPAUTH_LOG", "warn")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let probes: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path: "))
        .collect();
    assert_eq!(probes, ["/health", "/ready"]);
    for path in probes {
        assert_eq!(status_of(port, path), 200, "{path}");
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

// The operator's commands never contact upstream identity providers: with a provider that
// cannot be reached configured, keys and clients are still managed (the server itself would
// not start until the provider answers).
#[test]
fn admin_commands_work_while_an_upstream_provider_is_unreachable() {
    let dir = temp_dir("offline-provider");
    let file = dir.join("mcpauth.toml");
    std::fs::write(
        &file,
        "[[providers]]\nid = \"corp\"\npreset = \"oidc\"\nissuer = \"https://127.0.0.1:9/\"\n\
         client_id = \"mcpauth\"\nclient_secret = \"upstream-secret\"\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let (ok, out, err) = run(&dir, &["--config", config, "key", "list"], "");
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        &dir,
        &["--config", config, "client", "add", "--name", "Robot"],
        "",
    );
    assert!(ok && out.contains("client_id:"), "{out}{err}");
    // The server itself does not start, and says it is the provider, not the configuration:
    // exit 1, which a service manager retries (78 it does not).
    let listen = format!("127.0.0.1:{}", free_port());
    let (status, _, err) = run_with(
        &dir,
        &["--config", config, "serve"],
        &[("MCPAUTH_LISTEN", listen.as_str())],
    );
    assert_eq!(status, 1, "{err}");
    assert!(
        err.contains("upstream provider") && err.contains("corp"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// `--json` on every list and addition: scripts read users, clients and keys without parsing
// tables.
#[test]
fn lists_and_additions_speak_json() {
    let dir = temp_dir("json");
    let parse = |out: &str| serde_json::from_str::<serde_json::Value>(out).unwrap();
    let (ok, out, err) = run(
        &dir,
        &["user", "add", "dana@example.com", "--json"],
        "a long passphrase of hers\n",
    );
    assert!(ok, "{err}");
    let added = parse(&out);
    assert_eq!(added["email"], "dana@example.com");
    assert!(added["user_id"].as_str().unwrap().starts_with("user_"));
    let (_, out, _) = run(&dir, &["--json", "user", "list"], "");
    assert_eq!(parse(&out)[0]["user_id"], added["user_id"]);
    let (ok, out, err) = run(&dir, &["client", "add", "--name", "Robot", "--json"], "");
    assert!(ok, "{err}");
    let client = parse(&out);
    assert!(client["client_secret"].is_string(), "{client}");
    let (_, out, _) = run(&dir, &["client", "list", "--json"], "");
    let clients = parse(&out);
    assert_eq!(clients[0]["client_id"], client["client_id"]);
    assert_eq!(clients[0]["kind"], "pre-registered");
    assert!(!out.contains(client["client_secret"].as_str().unwrap()));
    let (_, out, _) = run(&dir, &["key", "rotate", "--json"], "");
    let rotated = parse(&out);
    let (_, out, _) = run(&dir, &["key", "list", "--json"], "");
    let keys = parse(&out);
    assert_eq!(keys[0]["kid"], rotated["kid"]);
    assert_eq!(keys[0]["state"], "next");
    let _ = std::fs::remove_dir_all(&dir);
}

// `user remove` deletes the account for good (audited, by subject); the email is free again;
// removing it twice names the unknown user.
#[test]
fn a_removed_user_is_gone_and_its_email_free_again() {
    let dir = temp_dir("remove-user");
    let add = || {
        run(
            &dir,
            &["user", "add", "erin@example.com", "--json"],
            "a long passphrase of hers\n",
        )
    };
    let (ok, out, err) = add();
    assert!(ok, "{err}");
    let first: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = run(&dir, &["user", "remove", "erin@example.com"], "");
    assert!(ok && out.contains("removed"), "{out}{err}");
    let (_, listing, _) = run(&dir, &["user", "list"], "");
    assert!(!listing.contains("erin@example.com"), "{listing}");
    let (ok, _, err) = run(&dir, &["user", "remove", "erin@example.com"], "");
    assert!(!ok && err.contains("erin@example.com"), "{err}");
    let (ok, out, err) = add();
    assert!(ok, "{err}");
    let second: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_ne!(first["user_id"], second["user_id"], "a new account");
    let (_, trail, _) = run(&dir, &["audit", "--event", "user_removed", "--json"], "");
    let trail: serde_json::Value = serde_json::from_str(&trail).unwrap();
    assert_eq!(trail[0]["user"], first["user_id"]);
    let _ = std::fs::remove_dir_all(&dir);
}

//! SQLite's group commit keeps the durability promise: a refresh token stored or rotated, once
//! the store answered, is in the database after the process is killed (SIGKILL) in the middle
//! of a burst of concurrent writes, and the database is intact.
//!
//! The test runs itself a second time as the child that writes (the environment variable
//! below tells it so), reads what the child reports as answered, kills it, and checks the
//! file.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::{
    ClientId, GrantId, RefreshTokenRecord, RefreshTokenStore, RotateRefresh, SecretHash, UnixTime,
};

/// Set in the child: the database it writes to.
const CHILD: &str = "MCPAUTH_SQLITE_CRASH_CHILD";
const TEST: &str = "a_killed_sqlite_writer_loses_no_answered_grant";
const WRITERS: usize = 16;
/// The child is killed once this many writes were answered.
const KILL_AFTER: usize = 400;
const NOW: UnixTime = UnixTime(1_800_000_000);

fn token(hash: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: SecretHash::from_stored(hash.to_owned()),
        grant_id: GrantId::from("crash-grant"),
        client_id: ClientId::from("crash-client"),
        subject: "user-1".into(),
        scope: mcpauth_token_engine::Scope::from_tokens(["mcp"]),
        resources: vec!["https://mcp.example/mcp".into()],
        issued_at: NOW,
        expires_at: NOW.plus(3600),
        rotated_at: None,
        sealed_successor: None,
        dpop_jkt: None,
    }
}

/// The child: `WRITERS` tasks, each storing a token and rotating it again and again, printing
/// every write the store answered (and only then).
async fn write_until_killed(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut current = format!("w{writer}-0");
                store.insert_refresh(token(&current)).await.unwrap();
                report(&format!("stored {current}"));
                // Bounded, should the parent be gone.
                for step in 1..100_000 {
                    let next = format!("w{writer}-{step}");
                    let rotated = store
                        .rotate_refresh(
                            &SecretHash::from_stored(current.clone()),
                            token(&next),
                            None,
                            NOW,
                        )
                        .await
                        .unwrap();
                    assert!(matches!(rotated, RotateRefresh::Rotated));
                    report(&format!("rotated {current} {next}"));
                    current = next;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sqlite_writer_loses_no_answered_grant() {
    if let Ok(url) = std::env::var(CHILD) {
        write_until_killed(&url).await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("mcpauth-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("crash.db").display());
    // Created and migrated before the child starts writing.
    SqlStore::connect(&url).await.unwrap().close().await;

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut answered = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("stored ") || line.starts_with("rotated ") {
            answered.push(line);
        }
        if answered.len() == KILL_AFTER {
            child.kill().unwrap();
            break;
        }
    }
    // What the child printed before it died was answered too.
    for line in lines {
        let Ok(line) = line else { break };
        if line.starts_with("stored ") || line.starts_with("rotated ") {
            answered.push(line);
        }
    }
    let status = child.wait().unwrap();
    assert!(answered.len() >= KILL_AFTER, "the child wrote {answered:?}");
    // Killed mid-burst, not finished.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    let store = SqlStore::connect(&url).await.unwrap();
    for line in &answered {
        let words: Vec<&str> = line.split(' ').collect();
        let find = |hash: &str| {
            let store = store.clone();
            let hash = SecretHash::from_stored(hash.to_owned());
            async move { store.find_refresh(&hash).await }
        };
        match words[..] {
            ["stored", hash] => assert!(find(hash).await.unwrap().is_some(), "{line}: lost"),
            ["rotated", old, new] => {
                let old = find(old).await.unwrap().expect("rotated token lost");
                assert_eq!(old.rotated_at, Some(NOW), "{line}: rotation lost");
                assert!(find(new).await.unwrap().is_some(), "{line}: successor lost");
            }
            _ => panic!("unexpected report {line}"),
        }
    }
    store.close().await;
    let check = rusqlite::Connection::open(dir.join("crash.db")).unwrap();
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(check);
    std::fs::remove_dir_all(&dir).unwrap();
}

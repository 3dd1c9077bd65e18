//! The encrypted file store: round trip, wrong key, damaged file, concurrent writers from
//! two handles (as two processes would), file and directory permissions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::PathBuf;

use mcpauth_client::{ClientCredentials, Error, FileStore, KeySource, TokenSet, TokenStore};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("mcpauth-file-store-{tag}-{}", std::process::id()))
        .join("store");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    dir
}

fn tokens(access: &str) -> TokenSet {
    serde_json::from_value(serde_json::json!({
        "access_token": access,
        "refresh_token": format!("refresh-{access}"),
        "expires_at": 1_900_000_000u64,
        "scope": "mcp:tools",
        "token_type": "Bearer"
    }))
    .unwrap()
}

fn passphrase(p: &str) -> KeySource {
    KeySource::Passphrase(p.to_owned())
}

#[tokio::test]
async fn what_is_saved_is_read_back_by_another_handle() {
    let dir = temp_dir("round-trip");
    let store = FileStore::open(&dir, passphrase("correct horse")).unwrap();
    let credentials =
        ClientCredentials::pre_registered("https://as.example", "client-1", Some("s3cret"));
    store.save_credentials(&credentials).await.unwrap();
    store
        .save_tokens(
            "https://as.example",
            "https://mcp.example/mcp",
            &tokens("a1"),
        )
        .await
        .unwrap();
    store
        .save_tokens(
            "https://as.example",
            "https://other.example/mcp",
            &tokens("b1"),
        )
        .await
        .unwrap();

    let reopened = FileStore::open(&dir, passphrase("correct horse")).unwrap();
    assert_eq!(
        reopened
            .load_credentials("https://as.example")
            .await
            .unwrap(),
        Some(credentials)
    );
    assert_eq!(
        reopened
            .load_tokens("https://as.example", "https://mcp.example/mcp")
            .await
            .unwrap(),
        Some(tokens("a1"))
    );
    assert_eq!(
        reopened
            .load_tokens("https://as.example", "https://nowhere.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(reopened.list_tokens().await.unwrap().len(), 2);
    reopened
        .delete_tokens("https://as.example", "https://mcp.example/mcp")
        .await
        .unwrap();
    assert_eq!(store.list_tokens().await.unwrap().len(), 1);

    // Nothing readable on disk.
    let raw = std::fs::read(dir.join("store.enc")).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("s3cret") && !text.contains("refresh-b1") && !text.contains("client-1"));

    // A random key works the same way.
    let keyed_dir = temp_dir("round-trip-key");
    let keyed = FileStore::open(&keyed_dir, KeySource::Key([7; 32])).unwrap();
    keyed.save_tokens("i", "r", &tokens("k1")).await.unwrap();
    let again = FileStore::open(&keyed_dir, KeySource::Key([7; 32])).unwrap();
    assert_eq!(
        again.load_tokens("i", "r").await.unwrap(),
        Some(tokens("k1"))
    );
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    let _ = std::fs::remove_dir_all(keyed_dir.parent().unwrap());
}

#[tokio::test]
async fn a_wrong_key_reads_nothing_and_overwrites_nothing() {
    let dir = temp_dir("wrong-key");
    let store = FileStore::open(&dir, passphrase("right")).unwrap();
    store.save_tokens("i", "r", &tokens("t")).await.unwrap();
    let before = std::fs::read(dir.join("store.enc")).unwrap();

    let wrong = FileStore::open(&dir, passphrase("wrong")).unwrap();
    let read = wrong.load_tokens("i", "r").await.unwrap_err();
    assert!(
        matches!(&read, Error::Storage(m) if m.contains("cannot be decrypted")),
        "{read}"
    );
    assert!(wrong.save_tokens("i", "r", &tokens("x")).await.is_err());
    assert_eq!(
        std::fs::read(dir.join("store.enc")).unwrap(),
        before,
        "left as it was"
    );
    let wrong_key = FileStore::open(&dir, KeySource::Key([1; 32])).unwrap();
    assert!(wrong_key.load_tokens("i", "r").await.is_err());
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn a_damaged_file_is_refused_not_misread() {
    let dir = temp_dir("damaged");
    let store = FileStore::open(&dir, passphrase("p")).unwrap();
    store.save_tokens("i", "r", &tokens("t")).await.unwrap();
    let path = dir.join("store.enc");
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(store.load_tokens("i", "r").await.is_err(), "a flipped bit");

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(store.load_tokens("i", "r").await.is_err(), "truncated");

    std::fs::write(&path, b"{\"tokens\": []}").unwrap();
    assert!(store.load_tokens("i", "r").await.is_err(), "not ours");

    std::fs::write(&path, b"").unwrap();
    assert!(store.load_tokens("i", "r").await.is_err(), "empty");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

// Two handles (two processes, as far as the file is concerned) writing at once lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_update() {
    let dir = temp_dir("concurrent");
    let first = FileStore::open(&dir, KeySource::Key([3; 32])).unwrap();
    let second = FileStore::open(&dir, KeySource::Key([3; 32])).unwrap();
    let mut writes = Vec::new();
    for n in 0..20 {
        for (store, tag) in [(first.clone(), "a"), (second.clone(), "b")] {
            writes.push(tokio::spawn(async move {
                store
                    .save_tokens("i", &format!("{tag}{n}"), &tokens(&format!("{tag}{n}")))
                    .await
                    .unwrap();
            }));
        }
    }
    for write in writes {
        write.await.unwrap();
    }
    assert_eq!(first.list_tokens().await.unwrap().len(), 40);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[cfg(unix)]
#[tokio::test]
async fn the_store_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = temp_dir("permissions");
    let store = FileStore::open(&dir, passphrase("p")).unwrap();
    store.save_tokens("i", "r", &tokens("t")).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("store.enc")), 0o600);

    // A directory others can read is refused, with the fix.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = FileStore::open(&dir, passphrase("p"))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("chmod 700"), "{refused}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

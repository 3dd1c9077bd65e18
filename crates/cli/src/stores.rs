//! Opening the store the user chose: an encrypted file keyed from the OS keychain
//! (`keychain`), a passphrase-encrypted file (`file`), or memory.
//!
//! A store's key must outlive the machine's restarts, and must never be replaced while the
//! store holds data: a new key over an existing store loses every token in it. So:
//!
//! - How a store is keyed is written beside it (`store.keying`) when it is created, and a
//!   store whose key cannot be found is refused with what happened and how to recover; no
//!   command makes a new key over it.
//! - On Linux the kernel keyring (the only keychain reachable without a desktop session) is
//!   emptied at every reboot, so it cannot hold a store's only key: there the `keychain` store
//!   is keyed from a passphrase, and the kernel keyring only remembers the passphrase until
//!   the next reboot, so it is asked once per boot. Stores an earlier version keyed with a
//!   random key in the kernel keyring still open while that key is there.
//! - Elsewhere (macOS, Windows) the OS keychain keeps a random key, as before; where no
//!   keychain is reachable, the passphrase is used instead.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use mcpauth_client::{FileStore, KeySource, MemoryStore, TokenStore};

use crate::StoreKind;
use mcpauth_client::said;

const KEYCHAIN_SERVICE: &str = "mcpauth";
/// Beside the store: how it is keyed (`keychain` or `passphrase`).
const KEYING_FILE: &str = "store.keying";

/// How a store is keyed, as recorded beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keying {
    /// A random key kept in the OS keychain.
    KeychainKey,
    /// A key derived from a passphrase (argon2id with the store's salt).
    Passphrase,
}

fn recorded_keying(dir: &Path) -> Option<Keying> {
    match std::fs::read_to_string(dir.join(KEYING_FILE)).ok()?.trim() {
        "keychain" => Some(Keying::KeychainKey),
        "passphrase" => Some(Keying::Passphrase),
        _ => None,
    }
}

fn record_keying(dir: &Path, keying: Keying) -> Result<(), String> {
    let text = match keying {
        Keying::KeychainKey => "keychain\n",
        Keying::Passphrase => "passphrase\n",
    };
    std::fs::write(dir.join(KEYING_FILE), text)
        .map_err(|e| format!("recording how the token store is keyed: {e}"))
}

fn passphrase_from_environment() -> bool {
    std::env::var_os("MCPAUTH_STORE_PASSPHRASE").is_some_and(|p| !p.is_empty())
}

fn entry(dir: &Path, what: &str) -> Option<keyring::Entry> {
    keyring::Entry::new(KEYCHAIN_SERVICE, &format!("{what}:{}", dir.display())).ok()
}

/// The passphrase: `MCPAUTH_STORE_PASSPHRASE`, else `cached` (the keyring's, this boot),
/// else asked for on the terminal (twice for a new store).
fn passphrase(cached: Option<String>, new_store: bool) -> Result<String, String> {
    if let Ok(passphrase) = std::env::var("MCPAUTH_STORE_PASSPHRASE")
        && !passphrase.is_empty()
    {
        return Ok(passphrase);
    }
    if let Some(cached) = cached.filter(|c| !c.is_empty()) {
        return Ok(cached);
    }
    if std::io::stdin().is_terminal() {
        let prompt = if new_store {
            "Passphrase for the new token store: "
        } else {
            "Passphrase for the token store: "
        };
        let passphrase = rpassword::prompt_password(prompt).map_err(|e| said(&e))?;
        if passphrase.is_empty() {
            return Err("an empty passphrase protects nothing".into());
        }
        if new_store {
            let again =
                rpassword::prompt_password("The same passphrase again: ").map_err(|e| said(&e))?;
            if again != passphrase {
                return Err("the two passphrases differ; nothing was created".into());
            }
        }
        return Ok(passphrase);
    }
    Err(
        "set MCPAUTH_STORE_PASSPHRASE: the token store needs a passphrase and there is no \
         terminal to ask for it"
            .into(),
    )
}

/// A passphrase-keyed store in `dir`, its passphrase checked against the file before use.
/// `cache` names the keyring entry that remembers the passphrase (this boot, on Linux).
async fn passphrase_store(dir: &Path, cache: Option<&keyring::Entry>) -> Result<FileStore, String> {
    let cached = cache.and_then(|c| c.get_password().ok());
    let from_cache = cached.is_some();
    let new_store = !FileStore::exists_in(dir);
    let passphrase = passphrase(cached, new_store)?;
    let store =
        FileStore::open(dir, KeySource::Passphrase(passphrase.clone())).map_err(|e| said(&e))?;
    if store.check_key().await.is_err() {
        if from_cache && let Some(cache) = cache {
            // A remembered passphrase that no longer opens the store is forgotten.
            let _ = cache.delete_credential();
        }
        let file = dir.join("store.enc");
        return Err(format!(
            "the token store {} cannot be decrypted with this passphrase (or it is damaged); it \
             was left as it is. Give the passphrase it was made with (MCPAUTH_STORE_PASSPHRASE, \
             or typed), or move {} away to start a new store (the servers stay named: \
             authorize them again with `mcpauth auth`)",
            file.display(),
            file.display()
        ));
    }
    if new_store {
        // The passphrase is settled now: the next command opens this store with it rather
        // than asking for a new store's passphrase again.
        store.create_if_missing().await.map_err(|e| said(&e))?;
        record_keying(dir, Keying::Passphrase)?;
    }
    if let Some(cache) = cache {
        let remembered = cache.set_password(&passphrase).is_ok();
        // Said once, when the store is made, and only to someone who typed the passphrase.
        if !remembered && new_store && !passphrase_from_environment() {
            eprintln!(
                "note: no keyring can remember the passphrase here, so each command asks for \
                 it; set MCPAUTH_STORE_PASSPHRASE to give it without a prompt"
            );
        }
    }
    Ok(store)
}

/// The store key of `dir` in the OS keychain, if there is one; `Err` when no keychain is
/// reachable at all.
fn keychain_key(dir: &Path) -> Result<Option<[u8; 32]>, ()> {
    let entry = entry(dir, "store-key").ok_or(())?;
    match entry.get_password() {
        Ok(text) => Ok(base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(_) => Err(()),
    }
}

/// A new random store key for `dir`, kept in the OS keychain (read back: some backends
/// accept a write they cannot keep).
fn new_keychain_key(dir: &Path) -> Option<[u8; 32]> {
    let entry = entry(dir, "store-key")?;
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).ok()?;
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    entry.set_password(&text).ok()?;
    (entry.get_password().ok()? == text).then_some(key)
}

/// Why a keychain-keyed store cannot be opened, and how to recover.
fn lost_key(dir: &Path) -> String {
    let file = dir.join("store.enc");
    format!(
        "the token store {} was encrypted with a key kept in the OS keychain, and the keychain \
         no longer has it{}. Its tokens cannot be read; nothing was changed. To start over, move \
         {} away (the servers stay named; authorize them again with `mcpauth auth`). A store \
         keyed from a passphrase (--store file, or --store keychain on Linux) survives this",
        file.display(),
        if cfg!(target_os = "linux") {
            " (the Linux kernel keyring is emptied at every reboot)"
        } else {
            ""
        },
        file.display()
    )
}

/// A new store keyed by a random key kept in the OS keychain (never replaced while the store
/// exists); `None` when no keychain can keep one.
async fn new_keychain_key_store(dir: &Path) -> Result<Option<FileStore>, String> {
    let Some(key) = new_keychain_key(dir) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).map_err(|e| said(&e))?;
    record_keying(dir, Keying::KeychainKey)?;
    let store = FileStore::open(dir, KeySource::Key(key)).map_err(|e| said(&e))?;
    store.check_key().await.map_err(|e| said(&e))?;
    Ok(Some(store))
}

pub(crate) async fn open(kind: StoreKind, dir: &Path) -> Result<Arc<dyn TokenStore>, String> {
    Ok(match kind {
        StoreKind::Memory => Arc::new(MemoryStore::default()),
        StoreKind::File => Arc::new(passphrase_store(dir, None).await?),
        StoreKind::Keychain => {
            let exists = FileStore::exists_in(dir);
            let recorded = recorded_keying(dir);
            // A store made with a passphrase stays so, wherever it is.
            if recorded == Some(Keying::Passphrase) {
                return Ok(Arc::new(
                    passphrase_store(dir, entry(dir, "store-passphrase").as_ref()).await?,
                ));
            }
            if exists {
                // A key in the keychain opens it: a keychain-keyed store, or (on Linux) one an
                // earlier version keyed in the kernel keyring, readable until a reboot took
                // the key. A store is never re-keyed.
                if let Ok(Some(key)) = keychain_key(dir) {
                    let store = FileStore::open(dir, KeySource::Key(key)).map_err(|e| said(&e))?;
                    store.check_key().await.map_err(|e| said(&e))?;
                    return Ok(Arc::new(store));
                }
                if recorded == Some(Keying::KeychainKey) {
                    return Err(lost_key(dir));
                }
                // Not recorded: an earlier version made it, with a keychain key or, where no
                // keychain was reachable, a passphrase.
                return match passphrase_store(dir, None).await {
                    Ok(store) => {
                        record_keying(dir, Keying::Passphrase)?;
                        Ok(Arc::new(store))
                    }
                    Err(e) => Err(format!(
                        "{}; or it was made with a passphrase: {e}",
                        lost_key(dir)
                    )),
                };
            }
            if cfg!(target_os = "linux") {
                return Ok(Arc::new(
                    passphrase_store(dir, entry(dir, "store-passphrase").as_ref()).await?,
                ));
            }
            match new_keychain_key_store(dir).await? {
                Some(store) => Arc::new(store),
                None => {
                    eprintln!(
                        "note: no OS keychain is reachable here; the token store is encrypted with a passphrase instead"
                    );
                    Arc::new(passphrase_store(dir, None).await?)
                }
            }
        }
    })
}

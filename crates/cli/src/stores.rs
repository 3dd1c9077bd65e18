//! Opening the store the user chose: the OS keychain's key over an encrypted file (falling
//! back to a passphrase where there is no keychain), a passphrase-encrypted file, or memory.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use mcpauth_client::{FileStore, KeySource, MemoryStore, TokenStore};

use crate::StoreKind;

const KEYCHAIN_SERVICE: &str = "mcpauth";

/// The passphrase: `MCPAUTH_STORE_PASSPHRASE`, or asked for on the terminal.
fn passphrase() -> Result<String, String> {
    if let Ok(passphrase) = std::env::var("MCPAUTH_STORE_PASSPHRASE")
        && !passphrase.is_empty()
    {
        return Ok(passphrase);
    }
    if std::io::stdin().is_terminal() {
        let passphrase = rpassword::prompt_password("Passphrase for the token store: ")
            .map_err(|e| e.to_string())?;
        if passphrase.is_empty() {
            return Err("an empty passphrase protects nothing".into());
        }
        return Ok(passphrase);
    }
    Err(
        "set MCPAUTH_STORE_PASSPHRASE: the token store needs a passphrase and there is no \
         terminal to ask for it"
            .into(),
    )
}

/// The store key kept in the OS keychain for the store in `dir`, created on first use;
/// `None` where no keychain is reachable.
fn keychain_key(dir: &Path) -> Option<[u8; 32]> {
    let entry =
        keyring::Entry::new(KEYCHAIN_SERVICE, &format!("store-key:{}", dir.display())).ok()?;
    match entry.get_password() {
        Ok(text) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()),
        Err(keyring::Error::NoEntry) => {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).ok()?;
            entry
                .set_password(&base64::engine::general_purpose::STANDARD.encode(key))
                .ok()?;
            // Read back: some backends accept a write they cannot keep.
            (entry.get_password().ok()? == base64::engine::general_purpose::STANDARD.encode(key))
                .then_some(key)
        }
        Err(_) => None,
    }
}

pub(crate) fn open(kind: StoreKind, dir: &Path) -> Result<Arc<dyn TokenStore>, String> {
    Ok(match kind {
        StoreKind::Memory => Arc::new(MemoryStore::default()),
        StoreKind::File => Arc::new(
            FileStore::open(dir, KeySource::Passphrase(passphrase()?))
                .map_err(|e| e.to_string())?,
        ),
        StoreKind::Keychain => {
            let key = match keychain_key(dir) {
                Some(key) => KeySource::Key(key),
                None => {
                    eprintln!(
                        "note: no OS keychain is reachable here; the token store is encrypted with a passphrase instead"
                    );
                    KeySource::Passphrase(passphrase()?)
                }
            };
            Arc::new(FileStore::open(dir, key).map_err(|e| e.to_string())?)
        }
    })
}

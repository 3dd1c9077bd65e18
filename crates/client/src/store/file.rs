//! An encrypted file store: everything in one file, AES-256-GCM under a key derived with
//! argon2id from a passphrase (or a 32-byte key, for example from the OS keychain), written
//! atomically (a temporary file, then a rename) with mode 0600 in a 0700 directory. Writers in
//! several processes take turns through a lock file; a refresh holds a per-entry lock so
//! two processes never spend the same rotating refresh token.
//!
//! File format: `MCPAUTH-STORE-1\n` ‖ salt (16) ‖ nonce (12) ‖ ciphertext+tag, with the
//! header and salt as associated data. A file that does not open (another key, damage) is
//! never overwritten: the error says so and the file stays for the user to deal with.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{StoreLock, TokenStore};
use crate::Error;
use crate::registration::ClientCredentials;
use crate::token::TokenSet;

const MAGIC: &[u8] = b"MCPAUTH-STORE-1\n";
const SALT_LEN: usize = 16;
const STORE_FILE: &str = "store.enc";
const LOCK_FILE: &str = "store.lock";

/// Where the store's key comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// A passphrase: the key is derived with argon2id (19 MiB, 2 passes) and the file's salt.
    Passphrase(String),
    /// A random 32-byte key (for example kept in the OS keychain).
    Key([u8; 32]),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Passphrase(_) => "KeySource::Passphrase([redacted])",
            Self::Key(_) => "KeySource::Key([redacted])",
        })
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Contents {
    #[serde(default)]
    credentials: BTreeMap<String, ClientCredentials>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Clone, Serialize, Deserialize)]
struct TokenEntry {
    issuer: String,
    resource: String,
    tokens: TokenSet,
}

struct Inner {
    dir: PathBuf,
    key: KeySource,
    /// The key derived for a salt, so argon2 runs once per process, not per read.
    derived: Mutex<Option<([u8; SALT_LEN], [u8; 32])>>,
}

/// The encrypted file store.
#[derive(Clone)]
pub struct FileStore(Arc<Inner>);

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.0.dir)
            .finish_non_exhaustive()
    }
}

fn storage(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{what}: {e}"))
}

fn unreadable(path: &Path) -> Error {
    Error::Storage(format!(
        "{} cannot be decrypted: another passphrase or key, or the file is damaged. It was left \
         as it is: open it with the passphrase or key it was made with (a store another \
         program made keeps that program's key)",
        path.display()
    ))
}

impl FileStore {
    /// Opens (creating it, mode 0700) the store in `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the directory cannot be created, or is open to other users.
    pub fn open(dir: impl Into<PathBuf>, key: KeySource) -> Result<Self, Error> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        Ok(Self(Arc::new(Inner {
            dir,
            key,
            derived: Mutex::new(None),
        })))
    }

    /// The `mcpauth` CLI's directory: `$XDG_DATA_HOME/mcpauth`, `~/.local/share/mcpauth`, or
    /// on macOS `~/Library/Application Support/mcpauth`, on Windows `%APPDATA%\mcpauth`.
    ///
    /// That store is the CLI's, keyed its way (its passphrase, or its key in the OS keychain):
    /// an application of your own keeps its tokens in [`FileStore::default_dir_for`] its own
    /// name, so neither ever meets a store it cannot open.
    #[must_use]
    pub fn default_dir() -> Option<PathBuf> {
        Self::default_dir_for("mcpauth")
    }

    /// The platform's data directory for the application `name` (the same places as
    /// [`FileStore::default_dir`], with `name` as the last part). `name` is one path
    /// component, such as `my-mcp-client`: anything else is refused (`None`).
    ///
    /// ```
    /// use mcpauth_client::FileStore;
    ///
    /// let dir = FileStore::default_dir_for("my-mcp-client");
    /// assert!(dir.is_none_or(|d| d.ends_with("my-mcp-client")));
    /// assert_eq!(FileStore::default_dir_for("../elsewhere"), None);
    /// assert_eq!(FileStore::default_dir_for("/etc"), None);
    /// ```
    #[must_use]
    pub fn default_dir_for(name: &str) -> Option<PathBuf> {
        let mut parts = Path::new(name).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        ) {
            return None;
        }
        if cfg!(target_os = "windows") {
            return std::env::var_os("APPDATA").map(|d| PathBuf::from(d).join(name));
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(data).join(name));
        }
        let home = PathBuf::from(std::env::var_os("HOME")?);
        Some(if cfg!(target_os = "macos") {
            home.join("Library/Application Support").join(name)
        } else {
            home.join(".local/share").join(name)
        })
    }

    /// The store's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Whether a store in `dir` has its file yet (a new store has none until the first
    /// write): whether opening it means reading what is there, with its own key.
    #[must_use]
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(STORE_FILE).exists()
    }

    /// Checks that the key opens the store's file, if there is one: call it before trusting a
    /// passphrase or key, so a wrong one is refused at once rather than at the first read.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the file does not open with this key.
    pub async fn check_key(&self) -> Result<(), Error> {
        self.blocking(|inner| inner.read().map(|_| ())).await
    }

    /// Writes the store's file now if there is none yet, so a new store's key (its
    /// passphrase) is settled when it is chosen rather than at the first token kept.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the file cannot be written, or exists and does not open with
    /// this key.
    pub async fn create_if_missing(&self) -> Result<(), Error> {
        self.blocking(|inner| {
            if inner.path().exists() {
                inner.read().map(|_| ())
            } else {
                inner.modify(|_| {})
            }
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| storage("the storage task failed", e))?
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| storage(&format!("creating {}", dir.display()), e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| storage(&format!("reading {}", dir.display()), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Storage(format!(
            "{} is open to other users (mode {:o}): run `chmod 700 {}`",
            dir.display(),
            mode & 0o777,
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| storage(&format!("creating {}", dir.display()), e))
}

/// Opens (creating) a file readable by this user only.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

impl Inner {
    fn key_for(&self, salt: &[u8; SALT_LEN]) -> Result<LessSafeKey, Error> {
        let bytes = match &self.key {
            KeySource::Key(key) => {
                // Bind the key to the salt too, so each file has its own AES key.
                let mut hasher = sha2::Sha256::new();
                hasher.update(b"mcpauth store key v1\n");
                hasher.update(key);
                hasher.update(salt);
                <[u8; 32]>::from(hasher.finalize())
            }
            KeySource::Passphrase(passphrase) => {
                let mut cached = self
                    .derived
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match *cached {
                    Some((cached_salt, key)) if cached_salt == *salt => key,
                    _ => {
                        let mut key = [0u8; 32];
                        argon2::Argon2::default()
                            .hash_password_into(passphrase.as_bytes(), salt, &mut key)
                            .map_err(|e| storage("deriving the store key", e))?;
                        *cached = Some((*salt, key));
                        key
                    }
                }
            }
        };
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Error::Storage("the store key is unusable".into()))?;
        Ok(LessSafeKey::new(key))
    }

    fn path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    /// Reads the store: empty when there is no file yet; the salt to reuse when writing.
    fn read(&self) -> Result<(Contents, Option<[u8; SALT_LEN]>), Error> {
        let path = self.path();
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)
                    .map_err(|e| storage(&format!("reading {}", path.display()), e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Contents::default(), None));
            }
            Err(e) => return Err(storage(&format!("opening {}", path.display()), e)),
        }
        let body = bytes.strip_prefix(MAGIC).ok_or_else(|| unreadable(&path))?;
        let (salt, rest) = body
            .split_first_chunk::<SALT_LEN>()
            .ok_or_else(|| unreadable(&path))?;
        let (nonce, ciphertext) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(|| unreadable(&path))?;
        let key = self.key_for(salt)?;
        let mut in_out = ciphertext.to_vec();
        let aad = [MAGIC, salt.as_slice()].concat();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad.as_slice()),
                &mut in_out,
            )
            .map_err(|_| unreadable(&path))?;
        let contents = serde_json::from_slice(plain).map_err(|_| unreadable(&path))?;
        Ok((contents, Some(*salt)))
    }

    /// Writes the store atomically: a private temporary file in the same directory, synced,
    /// then renamed over the old one.
    fn write(&self, contents: &Contents, salt: Option<[u8; SALT_LEN]>) -> Result<(), Error> {
        let salt = match salt {
            Some(salt) => salt,
            None => {
                let mut salt = [0u8; SALT_LEN];
                aws_lc_rs::rand::fill(&mut salt)
                    .map_err(|_| Error::Storage("the random source failed".into()))?;
                salt
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::Storage("the random source failed".into()))?;
        let key = self.key_for(&salt)?;
        let mut in_out =
            serde_json::to_vec(contents).map_err(|e| storage("encoding the store", e))?;
        let aad = [MAGIC, salt.as_slice()].concat();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_slice()),
            &mut in_out,
        )
        .map_err(|_| Error::Storage("encrypting the store failed".into()))?;
        let path = self.path();
        let temporary = self
            .dir
            .join(format!(".{STORE_FILE}.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut file = open_private(&temporary, true)?;
            file.write_all(MAGIC)?;
            file.write_all(&salt)?;
            file.write_all(&nonce)?;
            file.write_all(&in_out)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(storage(&format!("writing {}", path.display()), e));
        }
        Ok(())
    }

    /// Read, change, write, with the store's lock file held (other processes wait).
    fn modify(&self, change: impl FnOnce(&mut Contents)) -> Result<(), Error> {
        let lock = open_private(&self.dir.join(LOCK_FILE), false)
            .map_err(|e| storage("opening the store's lock file", e))?;
        lock.lock().map_err(|e| storage("locking the store", e))?;
        let (mut contents, salt) = self.read()?;
        change(&mut contents);
        let written = self.write(&contents, salt);
        drop(lock);
        written
    }
}

/// A per-entry lock file, held (flock) until dropped.
struct EntryLock(#[allow(dead_code, reason = "held for its lock")] File);

#[async_trait::async_trait]
impl TokenStore for FileStore {
    async fn load_credentials(&self, issuer: &str) -> Result<Option<ClientCredentials>, Error> {
        let issuer = issuer.to_owned();
        self.blocking(move |inner| Ok(inner.read()?.0.credentials.get(&issuer).cloned()))
            .await
    }

    async fn save_credentials(&self, credentials: &ClientCredentials) -> Result<(), Error> {
        let credentials = credentials.clone();
        self.blocking(move |inner| {
            inner.modify(|c| {
                c.credentials
                    .insert(credentials.issuer.clone(), credentials);
            })
        })
        .await
    }

    async fn load_tokens(&self, issuer: &str, resource: &str) -> Result<Option<TokenSet>, Error> {
        let (issuer, resource) = (issuer.to_owned(), resource.to_owned());
        self.blocking(move |inner| {
            Ok(inner
                .read()?
                .0
                .tokens
                .into_iter()
                .find(|e| e.issuer == issuer && e.resource == resource)
                .map(|e| e.tokens))
        })
        .await
    }

    async fn save_tokens(
        &self,
        issuer: &str,
        resource: &str,
        tokens: &TokenSet,
    ) -> Result<(), Error> {
        let entry = TokenEntry {
            issuer: issuer.to_owned(),
            resource: resource.to_owned(),
            tokens: tokens.clone(),
        };
        self.blocking(move |inner| {
            inner.modify(|c| {
                c.tokens
                    .retain(|e| !(e.issuer == entry.issuer && e.resource == entry.resource));
                c.tokens.push(entry);
            })
        })
        .await
    }

    async fn delete_tokens(&self, issuer: &str, resource: &str) -> Result<(), Error> {
        let (issuer, resource) = (issuer.to_owned(), resource.to_owned());
        self.blocking(move |inner| {
            inner.modify(|c| {
                c.tokens
                    .retain(|e| !(e.issuer == issuer && e.resource == resource));
            })
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<(String, String, TokenSet)>, Error> {
        self.blocking(|inner| {
            Ok(inner
                .read()?
                .0
                .tokens
                .into_iter()
                .map(|e| (e.issuer, e.resource, e.tokens))
                .collect())
        })
        .await
    }

    async fn lock_tokens(&self, issuer: &str, resource: &str) -> Result<StoreLock, Error> {
        let digest = sha2::Sha256::digest(format!("{issuer}\n{resource}").as_bytes());
        let name = format!("entry-{}.lock", hex(digest.iter().take(16)));
        self.blocking(move |inner| {
            let file = open_private(&inner.dir.join(name), false)
                .map_err(|e| storage("opening an entry lock", e))?;
            file.lock().map_err(|e| storage("locking an entry", e))?;
            Ok(StoreLock::holding(EntryLock(file)))
        })
        .await
    }
}

fn hex<'a>(bytes: impl Iterator<Item = &'a u8>) -> String {
    bytes.map(|b| format!("{b:02x}")).collect()
}

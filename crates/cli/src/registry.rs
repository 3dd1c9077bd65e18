//! The servers the user named: `servers.json` in the store's directory. Nothing secret is in
//! it (URLs, options, the issuer and resource the tokens are kept under); the tokens and
//! client secrets are in the encrypted store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcpauth_client::said;
use serde::{Deserialize, Serialize};

const FILE: &str = "servers.json";

/// One named server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServerEntry {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) allow_http: bool,
    /// The authorization server may be on a private network (see `--allow-private-network`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) allow_private_network: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata_document: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// A machine client (the client_credentials grant).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) client_credentials: bool,
    /// The private key file for private_key_jwt (the path, never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) private_key: Option<std::path::PathBuf>,
    /// Its algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signing_algorithm: Option<String>,
    /// The authorization server the tokens came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issuer: Option<String>,
    /// The resource they are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<String>,
}

/// The named servers.
pub(crate) struct Registry {
    /// None: kept in memory only (`--store memory`).
    path: Option<PathBuf>,
    servers: BTreeMap<String, ServerEntry>,
}

impl Registry {
    pub(crate) fn load(dir: &Path, memory: bool) -> Result<Self, String> {
        if memory {
            return Ok(Self {
                path: None,
                servers: BTreeMap::new(),
            });
        }
        let path = dir.join(FILE);
        let servers = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} does not parse: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        Ok(Self {
            path: Some(path),
            servers,
        })
    }

    pub(crate) fn save(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(&self.servers).map_err(|e| said(&e))?;
        let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    pub(crate) fn get(&self, name: &str) -> Result<&ServerEntry, String> {
        self.servers.get(name).ok_or_else(|| {
            format!("no server is named `{name}`: `mcpauth list` shows them, `mcpauth auth {name} URL` adds it")
        })
    }

    pub(crate) fn insert(&mut self, name: &str, entry: ServerEntry) {
        self.servers.insert(name.to_owned(), entry);
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.servers.remove(name);
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &ServerEntry)> {
        self.servers.iter()
    }
}

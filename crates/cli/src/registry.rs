//! The servers the user named: `servers.json` in the store's directory. Nothing secret is in
//! it (URLs, options, the issuer and resource the tokens are kept under); the tokens and
//! client secrets are in the encrypted store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use mcpauth_client::{TokenStore, said};
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
    /// Where the workload token comes from (`--workload-token`: a path or
    /// `github-actions`; never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) workload_token: Option<String>,
    /// Enterprise-managed authorization (`--idp`): the identity provider the user signed in
    /// at; its tokens and this client's secret there are in the store, never here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) idp: Option<IdpEntry>,
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
    /// The tokens are filed under this entry's name (`AccountStore`). Entries written by
    /// versions before 0.3 filed them under the issuer and resource alone, shared by every
    /// name for that server; [`Registry::forget_tokens_kept_per_server`] forgets them once.
    #[serde(default)]
    pub(crate) tokens_per_name: bool,
}

/// The enterprise identity provider of an entry (`--idp`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdpEntry {
    /// The provider's issuer identifier.
    pub(crate) issuer: String,
    /// This client's id there.
    pub(crate) client_id: String,
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

    /// Forgets tokens an earlier version kept per server (issuer and resource), shared by
    /// every name for that server: nothing says which identity they belong to (a name may
    /// since have been pointed elsewhere, leaving another identity's tokens behind), so no
    /// name gets them. Returns the names that held such tokens and must authorize again.
    pub(crate) async fn forget_tokens_kept_per_server(
        &mut self,
        store: &Arc<dyn TokenStore>,
    ) -> Result<Vec<String>, String> {
        let legacy: Vec<(String, Option<(String, String)>)> = self
            .servers
            .iter()
            .filter(|(_, entry)| !entry.tokens_per_name)
            .map(|(name, entry)| {
                let kept = entry.issuer.clone().zip(entry.resource.clone());
                (name.clone(), kept)
            })
            .collect();
        if legacy.is_empty() {
            return Ok(Vec::new());
        }
        let mut again = Vec::new();
        for (name, kept) in &legacy {
            let Some((issuer, resource)) = kept else {
                continue;
            };
            let held = store
                .load_tokens(issuer, resource)
                .await
                .map_err(|e| said(&e))?;
            if held.is_some() || self.shares_slot(issuer, resource, name) {
                again.push(name.clone());
            }
        }
        for (issuer, resource) in legacy.iter().filter_map(|(_, kept)| kept.as_ref()) {
            store
                .delete_tokens(issuer, resource)
                .await
                .map_err(|e| said(&e))?;
        }
        for (name, _) in &legacy {
            if let Some(entry) = self.servers.get_mut(name) {
                entry.tokens_per_name = true;
            }
        }
        self.save()?;
        Ok(again)
    }

    /// Whether another legacy entry than `name` filed its tokens under `issuer` and
    /// `resource` (its tokens were emptied with the shared slot, perhaps by an earlier name).
    fn shares_slot(&self, issuer: &str, resource: &str, name: &str) -> bool {
        self.servers.iter().any(|(other, entry)| {
            other != name
                && entry.issuer.as_deref() == Some(issuer)
                && entry.resource.as_deref() == Some(resource)
        })
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &ServerEntry)> {
        self.servers.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use mcpauth_client::{AccountStore, MemoryStore, TokenSet};

    use super::*;

    fn tokens(access: &str) -> TokenSet {
        serde_json::from_value(
            serde_json::json!({ "access_token": access, "token_type": "Bearer" }),
        )
        .unwrap()
    }

    fn legacy(issuer: &str, resource: &str) -> ServerEntry {
        ServerEntry {
            idp: None,
            url: resource.into(),
            issuer: Some(issuer.into()),
            resource: Some(resource.into()),
            ..ServerEntry::default()
        }
    }

    // Tokens an earlier version kept per server go to no name: nothing says whose they are
    // (a name may since point elsewhere, leaving another identity's tokens behind); the
    // names that held them are named, to authorize again.
    #[tokio::test]
    async fn tokens_kept_per_server_are_given_to_no_name() {
        let dir = std::env::temp_dir().join(format!("mcpauth-registry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::default());
        let (issuer, alone, shared) = ("https://as", "https://one/mcp", "https://two/mcp");
        store
            .save_tokens(issuer, alone, &tokens("one"))
            .await
            .unwrap();
        store
            .save_tokens(issuer, shared, &tokens("two"))
            .await
            .unwrap();
        let mut registry = Registry::load(&dir, false).unwrap();
        registry.insert("only", legacy(issuer, alone));
        registry.insert("a", legacy(issuer, shared));
        registry.insert("b", legacy(issuer, shared));
        registry.save().unwrap();

        let mut registry = Registry::load(&dir, false).unwrap();
        let again = registry
            .forget_tokens_kept_per_server(&store)
            .await
            .unwrap();
        assert_eq!(again, ["a", "b", "only"]);
        for (name, resource) in [("only", alone), ("a", shared), ("b", shared)] {
            let view = AccountStore::new(store.clone(), name);
            assert!(view.load_tokens(issuer, resource).await.unwrap().is_none());
        }
        assert!(store.load_tokens(issuer, alone).await.unwrap().is_none());
        assert!(store.load_tokens(issuer, shared).await.unwrap().is_none());
        let mut reloaded = Registry::load(&dir, false).unwrap();
        assert!(reloaded.entries().all(|(_, e)| e.tokens_per_name));
        // Once: the next command has nothing to say.
        assert!(
            reloaded
                .forget_tokens_kept_per_server(&store)
                .await
                .unwrap()
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The `OAuthClient` for a registered server: its store, its pre-registered or private-key client,
//! its browser.

use std::sync::Arc;

use mcpauth_client::{AccountStore, Browser, Error, OAuthClient, TokenStore};

use crate::browsers::PrintUrl;
use crate::registry::ServerEntry;
use mcpauth_client::said;

/// The client of an entry `auth` set up, for commands that use what it holds and never sign
/// anyone in (a URL to open is printed, not opened).
pub(crate) async fn authorized_client(
    name: &str,
    entry: &ServerEntry,
    store: Arc<dyn TokenStore>,
) -> Result<OAuthClient, String> {
    client_for(
        name,
        entry,
        store,
        Arc::new(PrintUrl),
        false,
        secret_from_environment().as_deref(),
    )
    .await
    .map_err(|e| said(&e))
}

/// Where the secret of a client configured with `--client-id` is kept in the store: beside
/// the issuer's own slot (which holds the identity registered there for entries without a
/// client id), keyed by issuer and client id. An issuer identifier has no fragment (RFC 8414
/// §2), so no issuer's slot can have this name.
pub(crate) fn configured_secret_key(issuer: &str, client_id: &str) -> String {
    format!("{issuer}#client_id={client_id}")
}

/// The client for `entry`, holding the tokens of `name` only: two names for the same server
/// (a person and a machine client, or two people) never read each other's tokens. A
/// configured client id is bound to the authorization server it was configured for
/// (`entry.issuer`); its secret comes from `secret` (the command line or
/// `MCPAUTH_CLIENT_SECRET`), else from the encrypted store, where `auth` kept it.
pub(crate) async fn client_for(
    name: &str,
    entry: &ServerEntry,
    store: Arc<dyn TokenStore>,
    browser: Arc<dyn Browser>,
    interactive: bool,
    secret: Option<&str>,
) -> Result<OAuthClient, Error> {
    let mut builder = OAuthClient::builder(&entry.url)
        .client_name("mcpauth CLI")
        .store(Arc::new(AccountStore::new(store.clone(), name)))
        .browser(browser);
    if entry.allow_http {
        builder = builder.allow_loopback_http();
    }
    if entry.allow_private_network {
        builder = builder.allow_private_network();
    }
    if let Some(id) = &entry.client_id {
        let issuer = entry.issuer.as_deref().ok_or_else(|| {
            Error::Storage(format!(
                "the client id {id} is not bound to an authorization server yet: run `mcpauth auth` again"
            ))
        })?;
        builder = match &entry.private_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    Error::Storage(format!("reading the private key {}: {e}", path.display()))
                })?;
                builder.private_key_jwt(
                    issuer,
                    id,
                    &pem,
                    entry.signing_algorithm.as_deref().unwrap_or("ES256"),
                )
            }
            None => {
                let kept = match secret {
                    Some(secret) => Some(secret.to_owned()),
                    None => store
                        .load_credentials(&configured_secret_key(issuer, id))
                        .await?
                        .filter(|c| c.client_id == *id)
                        .and_then(|c| c.client_secret),
                };
                builder.pre_registered(issuer, id, kept.as_deref())
            }
        };
    }
    if entry.client_credentials {
        builder = builder.client_credentials();
    }
    if let Some(source) = &entry.workload_token {
        let Ok(source) = source.parse::<mcpauth_client::assertion::AssertionSource>();
        builder = builder.assertion(source);
    }
    if let Some(document) = &entry.metadata_document {
        builder = builder.metadata_document(document);
    }
    if let Some(scope) = &entry.scope {
        builder = builder.scope(scope);
    }
    if !interactive {
        builder = builder.non_interactive();
    }
    builder.build()
}

/// `MCPAUTH_CLIENT_SECRET`, when set.
pub(crate) fn secret_from_environment() -> Option<String> {
    std::env::var("MCPAUTH_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
}

//! The `OAuthClient` for a registered server: its store, its pre-registered or private-key client,
//! its browser.

use std::sync::Arc;

use mcpauth_client::{AccountStore, Browser, Error, OAuthClient, TokenStore};

use crate::browsers::PrintUrl;
use crate::registry::{IdpEntry, ServerEntry};
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

/// Where the identity provider's tokens from the sign-in of entry `name` are kept (`--idp`):
/// per name, under a key no issuer's slot can have (an issuer has no fragment).
pub(crate) fn idp_tokens_key(name: &str, idp_issuer: &str) -> String {
    format!("{idp_issuer}#idp-sign-in={name}")
}

/// This app's secret at the identity provider: `MCPAUTH_IDP_CLIENT_SECRET`, else the one
/// `auth` kept in the encrypted store.
async fn idp_secret(
    store: &Arc<dyn TokenStore>,
    issuer: &str,
    client_id: &str,
) -> Result<Option<String>, Error> {
    if let Some(secret) = std::env::var("MCPAUTH_IDP_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
    {
        return Ok(Some(secret));
    }
    Ok(store
        .load_credentials(&configured_secret_key(issuer, client_id))
        .await?
        .filter(|c| c.client_id == client_id)
        .and_then(|c| c.client_secret))
}

/// `auth --idp`: signs the user in at the identity provider `issuer` as `client_id` (the one
/// browser step), keeps the provider's tokens and this app's secret there in the store, and
/// returns what the entry records.
pub(crate) async fn sign_in_at_identity_provider(
    name: &str,
    issuer: &str,
    client_id: &str,
    policy: mcpauth_client::UrlPolicy,
    browser: &dyn Browser,
    store: &Arc<dyn TokenStore>,
    timeout: std::time::Duration,
) -> Result<IdpEntry, String> {
    let secret = idp_secret(store, issuer, client_id)
        .await
        .map_err(|e| said(&e))?
        .ok_or_else(|| {
            format!(
                "--idp needs this app's secret at the identity provider (client {client_id}) in \
                 MCPAUTH_IDP_CLIENT_SECRET: identity assertions are issued to confidential clients"
            )
        })?;
    let credentials =
        mcpauth_client::ClientCredentials::pre_registered(issuer, client_id, Some(&secret));
    let http = mcpauth_client::ReqwestClient::for_server(
        &policy.check(issuer).map_err(|e| said(&e))?,
        policy,
    )
    .map_err(|e| said(&e))?;
    let signed_in = mcpauth_client::assertion::sign_in_at_identity_provider(
        &http,
        policy,
        browser,
        issuer,
        &credentials,
        timeout,
    )
    .await
    .map_err(|e| said(&e))?;
    store
        .save_tokens(&idp_tokens_key(name, issuer), issuer, &signed_in.tokens)
        .await
        .map_err(|e| said(&e))?;
    store
        .save_credentials(&mcpauth_client::ClientCredentials::pre_registered(
            &configured_secret_key(issuer, client_id),
            client_id,
            Some(&secret),
        ))
        .await
        .map_err(|e| said(&e))?;
    eprintln!("signed in at the identity provider {issuer}");
    Ok(IdpEntry {
        issuer: issuer.to_owned(),
        client_id: client_id.to_owned(),
        token_endpoint: signed_in.token_endpoint,
        revocation_endpoint: signed_in.revocation_endpoint,
    })
}

/// Forgets the sign-in at the identity provider that entry `name` keeps (`--idp`), first
/// revoking it there when `revoke` (logout): no more identity assertions are issued for it.
/// Whether it was revoked.
pub(crate) async fn forget_idp_sign_in(
    name: &str,
    idp: &IdpEntry,
    store: &Arc<dyn TokenStore>,
    revoke: bool,
) -> Result<bool, Error> {
    let key = idp_tokens_key(name, &idp.issuer);
    let held = store.load_tokens(&key, &idp.issuer).await?;
    let mut revoked = false;
    if let (true, Some(refresh_token), Some(endpoint)) = (
        revoke,
        held.as_ref().and_then(|t| t.refresh_token.as_deref()),
        &idp.revocation_endpoint,
    ) {
        let endpoint = url::Url::parse(endpoint).map_err(|e| Error::Storage(e.to_string()))?;
        let secret = idp_secret(store, &idp.issuer, &idp.client_id).await?;
        let client = mcpauth_client::ClientCredentials::pre_registered(
            &idp.issuer,
            &idp.client_id,
            secret.as_deref(),
        );
        let http = mcpauth_client::ReqwestClient::new()?;
        revoked = mcpauth_client::assertion::revoke_identity_provider_sign_in(
            &http,
            &endpoint,
            &client,
            refresh_token,
        )
        .await
        .unwrap_or(false);
    }
    store.delete_tokens(&key, &idp.issuer).await?;
    Ok(revoked)
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
    if let Some(idp) = &entry.idp {
        let secret = idp_secret(&store, &idp.issuer, &idp.client_id).await?;
        let refresh_token = store
            .load_tokens(&idp_tokens_key(name, &idp.issuer), &idp.issuer)
            .await?
            .and_then(|tokens| tokens.refresh_token)
            .ok_or_else(|| {
                Error::Storage(format!(
                    "no sign-in at the identity provider {} is kept for {name}: run `mcpauth auth` with --idp again",
                    idp.issuer
                ))
            })?;
        builder = builder.assertion(mcpauth_client::assertion::AssertionSource::EnterpriseIdp(
            mcpauth_client::assertion::EnterpriseIdp::with_refresh_token(
                &idp.token_endpoint,
                &idp.client_id,
                secret.as_deref(),
                &refresh_token,
            ),
        ));
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

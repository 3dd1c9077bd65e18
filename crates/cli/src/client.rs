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

/// The URL policy of `entry`'s servers (`--allow-http`, `--allow-private-network`).
pub(crate) fn policy_of(entry: &ServerEntry) -> mcpauth_client::UrlPolicy {
    let mut policy = if entry.allow_http {
        mcpauth_client::UrlPolicy::allowing_loopback_http()
    } else {
        mcpauth_client::UrlPolicy::https_only()
    };
    policy.allow_private_network = entry.allow_private_network;
    policy
}

/// This app's client at the identity provider, with the secret `auth --idp` kept encrypted in
/// the store (never the environment's: `MCPAUTH_IDP_CLIENT_SECRET` is read by `auth` alone,
/// so that a secret exported for one provider is never sent to another).
async fn idp_client(
    store: &Arc<dyn TokenStore>,
    idp: &IdpEntry,
) -> Result<mcpauth_client::ClientCredentials, Error> {
    let secret = store
        .load_credentials(&configured_secret_key(&idp.issuer, &idp.client_id))
        .await?
        .filter(|c| c.client_id == idp.client_id)
        .and_then(|c| c.client_secret);
    Ok(mcpauth_client::ClientCredentials::pre_registered(
        &idp.issuer,
        &idp.client_id,
        secret.as_deref(),
    ))
}

/// The identity provider's endpoints, discovered again from its issuer each time: where its
/// secret and the user's refresh token go is never read from the registry file (which is not
/// encrypted).
struct IdpEndpoints {
    http: mcpauth_client::ReqwestClient,
    token: Option<String>,
    revocation: Option<String>,
}

async fn idp_endpoints(entry: &ServerEntry, idp: &IdpEntry) -> Result<IdpEndpoints, Error> {
    let policy = policy_of(entry);
    let http = mcpauth_client::ReqwestClient::for_server(&policy.check(&idp.issuer)?, policy)?;
    let metadata =
        mcpauth_client::assertion::identity_provider_metadata(&http, policy, &idp.issuer).await?;
    Ok(IdpEndpoints {
        http,
        token: metadata.token_endpoint,
        revocation: metadata.revocation_endpoint,
    })
}

/// `auth --idp`: signs the user in at the identity provider `issuer` as `client_id` (the one
/// browser step), with the secret in `MCPAUTH_IDP_CLIENT_SECRET`; keeps the provider's tokens
/// and the secret encrypted in the store, and returns what the entry records.
pub(crate) async fn sign_in_at_identity_provider(
    name: &str,
    issuer: &str,
    client_id: &str,
    policy: mcpauth_client::UrlPolicy,
    browser: &dyn Browser,
    store: &Arc<dyn TokenStore>,
    timeout: std::time::Duration,
) -> Result<IdpEntry, String> {
    let secret = std::env::var("MCPAUTH_IDP_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
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
    })
}

/// Ends the sign-in at the identity provider that entry `name` keeps (`--idp`): with
/// `revoke` (logout), revokes its refresh token there first (RFC 7009), so that the provider
/// issues no more identity assertions for it; then forgets the tokens and the secret here.
/// When the revocation fails, nothing is forgotten and the error says so (run it again).
pub(crate) async fn forget_idp_sign_in(
    name: &str,
    entry: &ServerEntry,
    idp: &IdpEntry,
    store: &Arc<dyn TokenStore>,
    revoke: bool,
) -> Result<(), Error> {
    let key = idp_tokens_key(name, &idp.issuer);
    let held = store.load_tokens(&key, &idp.issuer).await?;
    if let (true, Some(refresh_token)) = (
        revoke,
        held.as_ref().and_then(|t| t.refresh_token.as_deref()),
    ) {
        let unrevoked = |reason: &str| {
            Error::Storage(format!(
                "the sign-in at the identity provider {} could not be revoked ({reason}); it is kept: run the command again",
                idp.issuer
            ))
        };
        let endpoints = idp_endpoints(entry, idp)
            .await
            .map_err(|e| unrevoked(&said(&e)))?;
        let endpoint = endpoints
            .revocation
            .as_deref()
            .ok_or_else(|| unrevoked("it offers no revocation endpoint"))?;
        let endpoint = policy_of(entry)
            .check(endpoint)
            .map_err(|e| unrevoked(&said(&e)))?;
        let client = idp_client(store, idp).await?;
        let accepted = mcpauth_client::assertion::revoke_identity_provider_sign_in(
            &endpoints.http,
            &endpoint,
            &client,
            refresh_token,
        )
        .await
        .map_err(|e| unrevoked(&said(&e)))?;
        if !accepted {
            return Err(unrevoked("it refused the request"));
        }
    }
    store.delete_tokens(&key, &idp.issuer).await?;
    // The secret is forgotten too (the store has no delete for credentials: kept empty).
    store
        .save_credentials(&mcpauth_client::ClientCredentials::pre_registered(
            &configured_secret_key(&idp.issuer, &idp.client_id),
            &idp.client_id,
            None,
        ))
        .await?;
    Ok(())
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
        // Without a kept sign-in (logged out at the provider, or never finished) there is no
        // assertion to get: the client can still log out of what it holds.
        if let Some(refresh_token) = store
            .load_tokens(&idp_tokens_key(name, &idp.issuer), &idp.issuer)
            .await?
            .and_then(|tokens| tokens.refresh_token)
        {
            let token_endpoint =
                idp_endpoints(entry, idp)
                    .await?
                    .token
                    .ok_or_else(|| Error::Discovery {
                        url: idp.issuer.clone(),
                        reason: "the identity provider's metadata has no token_endpoint".into(),
                    })?;
            let client = idp_client(&store, idp).await?;
            builder = builder.assertion(mcpauth_client::assertion::AssertionSource::EnterpriseIdp(
                mcpauth_client::assertion::EnterpriseIdp::with_refresh_token(
                    &token_endpoint,
                    &idp.client_id,
                    client.client_secret.as_deref(),
                    &refresh_token,
                ),
            ));
        }
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

//! Federated sign-in (`mcpauth-proxy`) on the server's database: the sign-ins waiting for
//! their upstream callback live in `upstream_requests`, so the callback may reach any
//! instance and is taken exactly once; each upstream account is a local user
//! (`federated_identities`), created at its first sign-in and never merged with another
//! account by email; its upstream tokens are kept sealed when the operator asks for them.

use mcpauth_token_engine::UnixTime;
use std::sync::Arc;

use mcpauth_proxy::upstream::{ReqwestTransport, Transport};
use mcpauth_proxy::{
    FederatedLogin, KeptTokens, Mapping, Provider, TokenMapper, TokenVault, UpstreamIdentity,
    UpstreamRequest, UpstreamRequestStore, UpstreamTokens,
};
use mcpauth_store_sql::{SqlStore, StoreError};
use mcpauth_token_engine::{PendingAuthorization, SecureRandom, TokenEngine};

use crate::{Config, OsRandom, StartError};

/// Refresh kept upstream tokens this long before they run out.
const REFRESH_LEEWAY: u64 = 60;
/// Seconds one instance may take to refresh an account's upstream tokens before another may
/// try (the upstream call times out after 10 s).
const REFRESH_LEASE: u64 = 15;

/// [`UpstreamRequestStore`] over [`SqlStore`].
#[derive(Debug, Clone)]
pub struct SqlUpstreamRequests(pub SqlStore);

/// Storing or reading a waiting sign-in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamStoreError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored sign-in does not parse (written by an incompatible version).
    #[error("a stored upstream sign-in does not parse: {0}")]
    Corrupt(#[from] serde_json::Error),
}

#[async_trait::async_trait]
impl UpstreamRequestStore for SqlUpstreamRequests {
    type Error = UpstreamStoreError;

    async fn save_upstream_request(
        &self,
        key: &str,
        request: &UpstreamRequest,
    ) -> Result<(), UpstreamStoreError> {
        let record = serde_json::to_string(request)?;
        Ok(self
            .0
            .save_upstream_request(key, &record, request.expires_at)
            .await?)
    }

    async fn take_upstream_request(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UpstreamRequest>, UpstreamStoreError> {
        let taken = self.0.take_upstream_request(key, now).await?;
        Ok(taken
            .map(|record| serde_json::from_str(&record))
            .transpose()?)
    }
}

/// The server's federated sign-in: the proxy's flow over the server's engine and database.
pub(crate) struct Federation {
    pub(crate) login: FederatedLogin<SqlStore, SqlUpstreamRequests>,
    store: SqlStore,
    vault: Option<Arc<TokenVault>>,
    transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// The key that seals upstream tokens, derived from the signing-key encryption key so one
/// secret serves both without the two uses sharing a key.
pub(crate) fn upstream_token_key(signing_key_encryption_key: &[u8; 32]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"mcpauth upstream-token sealing key v1\n");
    hasher.update(signing_key_encryption_key);
    hasher.finalize().into()
}

/// Builds federated sign-in for `config.providers` (none configured: `None`), resolving
/// OpenID Connect providers from their discovery documents.
pub(crate) async fn build(
    config: &Config,
    engine: Arc<TokenEngine<SqlStore>>,
    store: &SqlStore,
    encryption_key: Option<[u8; 32]>,
    previous_encryption_keys: &[[u8; 32]],
    clock: Arc<dyn mcpauth_token_engine::Clock>,
) -> Result<Option<Arc<Federation>>, StartError> {
    if config.providers.is_empty() {
        return Ok(None);
    }
    let transport: Arc<dyn Transport> = Arc::new(
        ReqwestTransport::new()
            .map_err(|e| StartError::provider_caused("the HTTP client for providers", e))?,
    );
    let mut providers: Vec<Provider> = Vec::with_capacity(config.providers.len());
    for provider in &config.providers {
        if providers.iter().any(|p| p.id == provider.id) {
            return Err(StartError::provider(format!(
                "two providers have the id `{}`: each needs its own (it names the callback URL)",
                provider.id
            )));
        }
        let resolved = match mcpauth_proxy::resolve_provider(provider, &*transport).await {
            Ok(resolved) => resolved,
            // The proxy knows the provider needs it; the server knows where it is set.
            Err(mcpauth_proxy::ProviderError::MissingClientSecret { .. }) => {
                return Err(StartError::provider(format!(
                    "provider `{}` needs its client secret: set `client_secret` in its \
                     [[providers]] entry or the variable {}",
                    provider.id,
                    crate::provider_secret_variable(&provider.id)
                )));
            }
            // Unreachable, or a discovery document that cannot be used: the provider's
            // problem, and a restart may succeed (exit 1, not the configuration's 78).
            Err(e @ mcpauth_proxy::ProviderError::Discovery { .. }) => {
                return Err(StartError::Upstream {
                    message: format!("provider `{}`", provider.id),
                    source: Some(e.into()),
                });
            }
            Err(e) => {
                return Err(StartError::provider_caused(
                    format!("provider `{}`", provider.id),
                    e,
                ));
            }
        };
        providers.push(resolved);
    }
    let vault = if config.keep_upstream_tokens {
        let key = encryption_key.ok_or_else(|| {
            StartError::provider("keep_upstream_tokens needs signing_key_encryption_key \
                 (MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY): upstream tokens are never stored in plain text")
        })?;
        let previous: Vec<[u8; 32]> = previous_encryption_keys
            .iter()
            .map(upstream_token_key)
            .collect();
        Some(Arc::new(
            TokenVault::new(&upstream_token_key(&key)).with_previous(&previous),
        ))
    } else {
        None
    };
    let rng: Arc<dyn SecureRandom> = Arc::new(OsRandom);
    let mapper = LocalUsers {
        clock,
        store: store.clone(),
        email_domains: config
            .federated_email_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect(),
        vault: vault.clone(),
        rng: rng.clone(),
    };
    let login = FederatedLogin::new(
        engine,
        providers,
        SqlUpstreamRequests(store.clone()),
        Arc::new(mapper),
        transport.clone(),
        rng,
    );
    for provider in login.providers() {
        tracing::info!(
            provider = %provider.id,
            callback = %login.callback_url(&provider.id),
            "federated sign-in enabled: register this callback URL at the provider"
        );
    }
    Ok(Some(Arc::new(Federation {
        login,
        store: store.clone(),
        vault,
        transport,
    })))
}

/// Why kept upstream tokens could not be given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamTokenError {
    /// No provider has this id.
    #[error("no provider `{0}` is configured")]
    UnknownProvider(String),
    /// The server does not keep upstream tokens (`keep_upstream_tokens` is off).
    #[error("upstream tokens are not kept: set keep_upstream_tokens")]
    NotKept,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kept tokens cannot be opened (another key) or sealed.
    #[error(transparent)]
    Vault(#[from] mcpauth_proxy::VaultError),
    /// The upstream refused the refresh: the user must sign in again.
    #[error("refreshing at the provider failed: {0}")]
    Refresh(#[from] mcpauth_proxy::ProxyError),
    /// Another request has been refreshing these tokens for the whole lease; try again.
    #[error("another request is refreshing these upstream tokens; try again")]
    RefreshInProgress,
}

impl Federation {
    /// `user_id`'s upstream access token at `provider`, refreshed first when it runs out
    /// within a minute. `None`: the user never signed in there, or no tokens are kept.
    pub(crate) async fn upstream_tokens(
        &self,
        user_id: &str,
        provider_id: &str,
        now: u64,
    ) -> Result<Option<KeptTokens>, UpstreamTokenError> {
        let provider = self
            .login
            .provider(provider_id)
            .ok_or_else(|| UpstreamTokenError::UnknownProvider(provider_id.to_owned()))?;
        let vault = self.vault.as_ref().ok_or(UpstreamTokenError::NotKept)?;
        let Some(row) = self
            .store
            .find_federated_identity_of_user(user_id, provider_id)
            .await?
        else {
            return Ok(None);
        };
        let Some(sealed) = row.upstream_tokens else {
            return Ok(None);
        };
        let binding = binding(provider_id, &row.subject);
        let kept = vault.open(&sealed, &binding)?;
        if !kept.needs_refresh(UnixTime(now), REFRESH_LEEWAY) {
            return Ok(Some(kept));
        }
        // One refresh per account across instances: a rotating refresh token is spent once.
        if !self
            .store
            .claim_federated_refresh(
                provider_id,
                &row.subject,
                &sealed,
                UnixTime(now),
                now.saturating_add(REFRESH_LEASE),
            )
            .await?
        {
            return self
                .refreshed_elsewhere(provider_id, &row.subject, &sealed, &binding, vault)
                .await;
        }
        let fresh = match kept
            .refresh(provider, &*self.transport, UnixTime(now))
            .await
        {
            Ok(fresh) => fresh,
            Err(e) => {
                // Let the next request try at once rather than wait out the lease.
                self.store
                    .release_federated_refresh(provider_id, &row.subject)
                    .await?;
                return Err(e.into());
            }
        };
        let resealed = vault.seal(&fresh, &binding, &OsRandom)?;
        self.store
            .replace_federated_tokens(provider_id, &row.subject, &sealed, &resealed, UnixTime(now))
            .await?;
        Ok(Some(fresh))
    }

    /// Another request holds the refresh claim: waits (up to the lease) for its tokens.
    async fn refreshed_elsewhere(
        &self,
        provider: &str,
        subject: &str,
        stale: &str,
        binding: &str,
        vault: &TokenVault,
    ) -> Result<Option<KeptTokens>, UpstreamTokenError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(REFRESH_LEASE);
        loop {
            let current = self
                .store
                .find_federated_identity(provider, subject)
                .await?
                .and_then(|row| row.upstream_tokens);
            match current {
                None => return Ok(None),
                Some(sealed) if sealed != stale => return Ok(Some(vault.open(&sealed, binding)?)),
                Some(_) if std::time::Instant::now() >= deadline => {
                    return Err(UpstreamTokenError::RefreshInProgress);
                }
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }
}

/// The associated data sealing an account's tokens: they open only for that account.
fn binding(provider: &str, subject: &str) -> String {
    format!("{provider}\n{subject}")
}

/// The server's [`TokenMapper`]: each upstream account is one local user, created at its
/// first sign-in.
struct LocalUsers {
    clock: Arc<dyn mcpauth_token_engine::Clock>,
    store: SqlStore,
    /// Lower-case domains; empty: any.
    email_domains: Vec<String>,
    vault: Option<Arc<TokenVault>>,
    rng: Arc<dyn SecureRandom>,
}

impl LocalUsers {
    fn domain_allowed(&self, identity: &UpstreamIdentity) -> bool {
        if self.email_domains.is_empty() {
            return true;
        }
        identity.email_verified
            && identity
                .email
                .as_deref()
                .and_then(|email| email.rsplit_once('@'))
                .is_some_and(|(_, domain)| {
                    self.email_domains
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(domain))
                })
    }

    async fn local_user(&self, identity: &UpstreamIdentity) -> Result<String, StoreError> {
        if let Some(row) = self
            .store
            .find_federated_identity(&identity.provider, &identity.subject)
            .await?
        {
            return Ok(row.user_id);
        }
        let mut id = [0u8; 16];
        self.rng
            .fill(&mut id)
            .map_err(|_| StoreError::Conflict("no randomness for a user id"))?;
        let user_id = format!(
            "user_{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
        );
        // Only a verified address is worth showing as the account's email.
        let email = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
            .and_then(|email| crate::users::normalize_email(email).ok());
        let user_id = self
            .store
            .create_federated_user(
                &user_id,
                email.as_deref(),
                &identity.provider,
                &identity.subject,
                self.clock.now(),
            )
            .await?;
        tracing::info!(provider = %identity.provider, %user_id, "new federated user");
        Ok(user_id)
    }
}

#[async_trait::async_trait]
impl TokenMapper for LocalUsers {
    async fn map(
        &self,
        identity: &UpstreamIdentity,
        tokens: &UpstreamTokens,
        _client: Option<&PendingAuthorization>,
    ) -> Mapping {
        if !self.domain_allowed(identity) {
            tracing::info!(provider = %identity.provider, "federated sign-in refused: email domain not allowed");
            return Mapping::Refuse(
                "this account's email address is not in a domain this server accepts".into(),
            );
        }
        let user_id = match self.local_user(identity).await {
            Ok(user_id) => user_id,
            Err(e) => return Mapping::Fail(format!("linking the federated user failed: {e}")),
        };
        match self.store.find_user_by_id(&user_id).await {
            Ok(Some(user)) if !user.disabled => {}
            Ok(_) => return Mapping::Refuse("this account is disabled".into()),
            Err(e) => return Mapping::Fail(format!("reading the user failed: {e}")),
        }
        let now = self.clock.now().0;
        // Kept only when the operator asks; otherwise any kept before are dropped.
        let sealed = match &self.vault {
            Some(vault) => match vault.seal(
                &KeptTokens::from_response(tokens, UnixTime(now)),
                &binding(&identity.provider, &identity.subject),
                &*self.rng,
            ) {
                Ok(sealed) => Some(sealed),
                Err(e) => return Mapping::Fail(e.to_string()),
            },
            None => None,
        };
        if let Err(e) = self
            .store
            .set_federated_tokens(
                &identity.provider,
                &identity.subject,
                sealed.as_deref(),
                UnixTime(now),
            )
            .await
        {
            return Mapping::Fail(format!("storing the upstream tokens failed: {e}"));
        }
        Mapping::Subject(user_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    // A waiting sign-in survives the round trip through the database and is taken once.
    #[tokio::test]
    async fn a_waiting_sign_in_round_trips_and_is_taken_once() {
        let dir = std::env::temp_dir().join(format!("mcpauth-federation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqlStore::connect(&format!("sqlite://{}", dir.join("f.db").display()))
            .await
            .unwrap();
        let provider = mcpauth_proxy::Provider::from_config(
            &mcpauth_proxy::ProviderConfig::new("google", mcpauth_proxy::Preset::Google, "client")
                .client_secret("secret"),
        )
        .unwrap();
        let pending: mcpauth_token_engine::PendingAuthorization =
            serde_json::from_value(serde_json::json!({
                "client_id": "c", "client_name": null, "client_identity": "SelfRegistered",
                "redirect_uri": "http://127.0.0.1/cb", "redirect_uri_in_request": true,
                "scope": "mcp:tools", "resources": [], "state": null,
                "code_challenge": "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"
            }))
            .unwrap();
        let started = mcpauth_proxy::upstream::start(
            &provider,
            &"https://as.example/upstream/google/callback"
                .parse()
                .unwrap(),
            pending,
            &crate::OsRandom,
            mcpauth_http::now(),
            600,
        )
        .unwrap();
        let requests = SqlUpstreamRequests(store.clone());
        let key = mcpauth_proxy::upstream::state_key(&started.state);
        requests
            .save_upstream_request(&key, &started.record)
            .await
            .unwrap();
        let now = mcpauth_http::now();
        assert_eq!(
            requests.take_upstream_request(&key, now).await.unwrap(),
            Some(started.record)
        );
        assert_eq!(
            requests.take_upstream_request(&key, now).await.unwrap(),
            None
        );
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

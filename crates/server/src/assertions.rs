//! The server's side of the JWT bearer grant: trusted issuers' JWK Sets, fetched SSRF-safely
//! and cached, and enterprise users mapped to local accounts the way federated sign-in maps
//! upstream users (linked by issuer and subject, created on first use, never merged by email).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::{Clock, EnterpriseUsers, SecureRandom, TrustedIssuerKeys, UnixTime};

use crate::config::Config;
use crate::{OsRandom, StartError};

/// The largest JWK Set accepted (a provider publishing several RSA keys stays well below).
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a JWK Set is kept when its response says nothing (`Cache-Control`).
const DEFAULT_TTL: u64 = 300;
/// Kept at least this long (a `no-cache` answer would mean a fetch per grant), at most this.
const MIN_TTL: u64 = 60;
const MAX_TTL: u64 = 3600;
/// A set refetched because it lacked a key is refetched at most this often: an assertion naming
/// an unknown `kid` cannot make the server hammer the issuer.
const REFETCH_INTERVAL: u64 = 30;

struct Cached {
    set: serde_json::Value,
    fetched_at: u64,
    ttl: u64,
}

/// Trusted issuers' JWK Sets, fetched only from the configured URLs through the SSRF-safe
/// fetcher (no redirects, no private addresses) and kept per their `Cache-Control`.
pub(crate) struct JwksCache {
    fetcher: mcpauth_fetch::SafeFetcher,
    clock: Arc<dyn Clock>,
    sets: Mutex<HashMap<String, Cached>>,
    /// One fetch at a time per JWK Set: grants arriving together after a set expired wait for
    /// one fetch instead of each making its own, and a slow issuer delays only its own.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl JwksCache {
    pub(crate) fn new(
        policy: &mcpauth_fetch::FetchPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let mut policy = policy.clone();
        policy.max_bytes = MAX_JWKS_BYTES;
        let fetcher = mcpauth_fetch::SafeFetcher::new(policy).map_err(|e| {
            StartError::config_caused("the HTTP client for trusted issuers' keys", e)
        })?;
        Ok(Self {
            fetcher,
            clock,
            sets: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, uri: &str, refresh: bool, now: u64) -> Option<serde_json::Value> {
        let sets = self
            .sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cached = sets.get(uri)?;
        let age = now.saturating_sub(cached.fetched_at);
        let fresh = if refresh {
            age < REFETCH_INTERVAL
        } else {
            age < cached.ttl
        };
        fresh.then(|| cached.set.clone())
    }
}

#[async_trait::async_trait]
impl TrustedIssuerKeys for JwksCache {
    async fn jwk_set(
        &self,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let now = self.clock.now().0;
        if let Some(set) = self.cached(jwks_uri, refresh, now) {
            return Ok(set);
        }
        let lock = self
            .fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(jwks_uri.to_owned())
            .or_default()
            .clone();
        let _fetching = lock.lock().await;
        // Another request may have fetched it while this one waited.
        if let Some(set) = self.cached(jwks_uri, refresh, self.clock.now().0) {
            return Ok(set);
        }
        let url = url::Url::parse(jwks_uri)?;
        let fetched = self.fetcher.fetch(&url).await?;
        let set: serde_json::Value = serde_json::from_slice(&fetched.body)?;
        if !set.get("keys").is_some_and(serde_json::Value::is_array) {
            return Err(format!("{jwks_uri} is not a JWK Set").into());
        }
        let ttl = fetched
            .max_age
            .unwrap_or(DEFAULT_TTL)
            .clamp(MIN_TTL, MAX_TTL);
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                jwks_uri.to_owned(),
                Cached {
                    set: set.clone(),
                    fetched_at: now,
                    ttl,
                },
            );
        Ok(set)
    }
}

/// Enterprise users as local accounts: `(issuer, sub)` linked to a user like an upstream
/// provider's user, created on first use (with the assertion's email when no account has it).
pub(crate) struct EnterpriseAccounts {
    pub(crate) store: SqlStore,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The provider key under which an identity provider's users are linked: apart from the
/// sign-in providers' ids, which are plain names.
pub(crate) fn provider_key(issuer: &str) -> String {
    format!("id-jag {issuer}")
}

#[async_trait::async_trait]
impl EnterpriseUsers for EnterpriseAccounts {
    async fn local_subject(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        let provider = provider_key(issuer);
        if let Some(row) = self
            .store
            .find_federated_identity(&provider, subject)
            .await?
        {
            return Ok(Some(row.user_id));
        }
        let mut id = [0u8; 16];
        OsRandom
            .fill(&mut id)
            .map_err(|_| "no randomness for a user id")?;
        let user_id = format!(
            "user_{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
        );
        let email = email.and_then(|e| crate::users::normalize_email(e).ok());
        let linked = self
            .store
            .create_federated_user(
                &user_id,
                email.as_deref(),
                &provider,
                subject,
                UnixTime(self.clock.now().0),
            )
            .await?;
        tracing::info!(%issuer, user_id = %linked, "new enterprise user (identity assertion)");
        Ok(Some(linked))
    }
}

/// Issuer identifiers compared as the engine compares them, forgiving a bare origin's
/// trailing slash.
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The engine's trusted issuers from `config`.
pub(crate) fn trusted_issuers(
    config: &Config,
) -> Result<Vec<mcpauth_token_engine::TrustedIssuer>, StartError> {
    issuer_entries(
        config,
        &config.trusted_issuers,
        "trusted issuer",
        "it does not take its own JWTs as grants",
        |entry| (&entry.issuer, entry.to_engine()),
    )
}

/// The engine's ID-JAG audiences from `config`.
pub(crate) fn assertion_audiences(
    config: &Config,
) -> Result<Vec<mcpauth_token_engine::AssertionAudience>, StartError> {
    issuer_entries(
        config,
        &config.identity_assertion_audiences,
        "identity assertion audience",
        "ID-JAGs are for other authorization servers",
        |entry| (&entry.issuer, entry.to_engine()),
    )
}

/// Entries named by an issuer (`kind`), each converted by `read` (its issuer and what it
/// becomes): none may be this server (`why_not_itself`) or be listed twice.
fn issuer_entries<'e, E, T>(
    config: &Config,
    entries: &'e [E],
    kind: &str,
    why_not_itself: &str,
    read: impl Fn(&'e E) -> (&'e str, Result<T, String>),
) -> Result<Vec<T>, StartError> {
    let itself = config.issuer();
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .map(|entry| {
            let (issuer, converted) = read(entry);
            if same_issuer(issuer, &itself) {
                return Err(StartError::config(format!(
                    "{kind} {issuer} is this server: {why_not_itself}"
                )));
            }
            if !seen.insert(issuer) {
                return Err(StartError::config(format!(
                    "{kind} {issuer} is listed twice"
                )));
            }
            converted.map_err(StartError::config)
        })
        .collect()
}

/// What keeps the configured client `client_id` from the grant `grant_type`, if anything:
/// not registered, or registered without that grant.
async fn missing_client(
    store: &SqlStore,
    client_id: &str,
    grant_type: mcpauth_token_engine::GrantType,
) -> Option<String> {
    use mcpauth_token_engine::ClientStore as _;
    match store
        .find_client(&mcpauth_token_engine::ClientId::from(client_id.to_owned()))
        .await
    {
        Ok(Some(client)) if client.allows_grant(grant_type) => None,
        Ok(Some(_)) => Some(format!(
            "did not register the grant type {}",
            grant_type.as_str()
        )),
        Ok(None) => Some("is not registered".into()),
        Err(_) => Some("could not be read from the database".into()),
    }
}

/// Says at start which clients an ID-JAG audience lists that are not registered here or did
/// not register the token-exchange grant: they get no ID-JAGs until the operator adds them.
pub(crate) async fn warn_of_missing_exchange_clients(config: &Config, store: &SqlStore) {
    for entry in &config.identity_assertion_audiences {
        for listed in &entry.clients {
            let grant = mcpauth_token_engine::GrantType::TokenExchange;
            if let Some(problem) = missing_client(store, &listed.client_id, grant).await {
                tracing::warn!(
                    audience = %entry.issuer,
                    client_id = %listed.client_id,
                    "the client this identity assertion audience lists {problem}: it gets no \
                     ID-JAGs until `mcpauth-server client add` registers it with that grant"
                );
            }
        }
    }
}

/// Says at start which workload rules name a client that is not registered here, or that did
/// not register the JWT bearer grant: their workloads get nothing until the operator adds it.
pub(crate) async fn warn_of_missing_workload_clients(config: &Config, store: &SqlStore) {
    for entry in &config.trusted_issuers {
        for rule in &entry.workloads {
            let grant = mcpauth_token_engine::GrantType::JwtBearer;
            if let Some(problem) = missing_client(store, &rule.client_id, grant).await {
                tracing::warn!(
                    issuer = %entry.issuer,
                    subject = %rule.subject,
                    client_id = %rule.client_id,
                    "the client this workload rule names {problem}: its workloads get no tokens \
                     until `mcpauth-server client add` registers it with that grant and the \
                     rule names its id"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn an_issuer_listed_twice_is_a_configuration_error() {
        let entry: crate::config::TrustedIssuerConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/jwks",
            "kind": "identity_provider", "allowed_clients": ["agent"],
        }))
        .unwrap();
        let mut config = Config {
            trusted_issuers: vec![entry.clone()],
            ..Config::default()
        };
        assert_eq!(trusted_issuers(&config).unwrap().len(), 1);
        config.trusted_issuers = vec![entry.clone(), entry.clone()];
        let error = trusted_issuers(&config).unwrap_err().to_string();
        assert!(error.contains("listed twice"), "{error}");
        let mut itself = entry;
        itself.issuer = format!("{}/", config.issuer());
        config.trusted_issuers = vec![itself];
        let error = trusted_issuers(&config).unwrap_err().to_string();
        assert!(error.contains("is this server"), "{error}");
    }

    #[test]
    fn an_audience_listed_twice_or_naming_this_server_is_a_configuration_error() {
        let entry: crate::config::AssertionAudienceConfig =
            serde_json::from_value(serde_json::json!({
                "issuer": "https://auth.mcp.example.com",
                "resources": ["https://mcp.example.com/mcp"],
                "clients": [{"client_id": "agent", "client_id_there": "agent-there"}],
            }))
            .unwrap();
        let mut config = Config {
            identity_assertion_audiences: vec![entry.clone()],
            ..Config::default()
        };
        assert_eq!(assertion_audiences(&config).unwrap().len(), 1);
        config.identity_assertion_audiences = vec![entry.clone(), entry.clone()];
        let error = assertion_audiences(&config).unwrap_err().to_string();
        assert!(error.contains("listed twice"), "{error}");
        let mut itself = entry;
        itself.issuer = config.issuer();
        config.identity_assertion_audiences = vec![itself];
        let error = assertion_audiences(&config).unwrap_err().to_string();
        assert!(error.contains("is this server"), "{error}");
    }

    #[test]
    fn a_jwk_set_is_kept_for_its_ttl_and_refetched_for_a_missing_key_at_most_every_30_seconds() {
        let clock = Arc::new(mcpauth_token_engine::ManualClock::new(UnixTime(1_000)));
        let cache = JwksCache::new(&mcpauth_fetch::FetchPolicy::default(), clock.clone()).unwrap();
        let uri = "https://idp.example.com/jwks";
        assert!(cache.cached(uri, false, 1_000).is_none(), "nothing yet");
        cache.sets.lock().unwrap().insert(
            uri.to_owned(),
            Cached {
                set: serde_json::json!({"keys": []}),
                fetched_at: 1_000,
                ttl: 120,
            },
        );
        assert!(cache.cached(uri, false, 1_119).is_some(), "within its TTL");
        assert!(cache.cached(uri, false, 1_120).is_none(), "past its TTL");
        assert!(
            cache.cached(uri, true, 1_029).is_some(),
            "a key missing again within 30 s: the same set, no fetch"
        );
        assert!(cache.cached(uri, true, 1_030).is_none(), "then a fetch");
        assert!(
            cache
                .cached("https://other.example.com/jwks", false, 1_000)
                .is_none()
        );
    }
}

//! `mcpauth-server`: a runnable OAuth 2.1 authorization server for MCP.
//!
//! It wires the [`TokenEngine`] to SQL storage ([`SqlStore`]: SQLite, or PostgreSQL for several
//! instances), the axum adapter, and built-in login and consent pages for local users
//! (argon2id passwords). It generates and persists its ES256 signing key on first start.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("mcpauth-server-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let mut config = mcpauth_server::Config::default(); // what `mcpauth-server` runs with no file
//! config.listen = "127.0.0.1:0".parse()?;
//! config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
//! config.issuer = Some("http://127.0.0.1:8080".into());
//! let server = mcpauth_server::build(&config).await?; // migrations, signing key, engine, routes
//! assert_eq!(
//!     server.engine.metadata().token_endpoint.as_deref(),
//!     Some("http://127.0.0.1:8080/token")
//! );
//! // Then: mcpauth_server::serve_on(listener, server, shutdown_signal).await?
//! # drop(server);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

pub mod admin;
mod config;
pub mod federation;
pub mod keys;
mod metrics;
mod pages;
mod rate_limit;
pub mod users;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use mcpauth_adapter_axum::now;
use mcpauth_store_sql::{Backend, SqlStore, StoreOptions};
use mcpauth_token_engine::{
    AccessTokenFormat, Clock, EngineConfig, RegistrationPolicy, ResourcePolicy, SystemClock,
    TokenEngine,
};

pub use config::{
    Config, ConfigError, ForwardedHeaderName, LogFormat, Secret, TokenFormat,
    provider_secret_variable,
};

/// An error and every cause behind it ([`std::error::Error::source`]), joined with `: `, as
/// an operator reads it on one line (the command line's messages, the logs).
#[must_use]
pub fn said(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// A cause kept behind a [`StartError`] ([`std::error::Error::source`]).
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The server could not start. Each variant says what failed in words an operator can act
/// on; the error that caused it, if any, is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Storage failed.
    #[error("storage")]
    Store(#[from] mcpauth_store_sql::StoreError),
    /// The issuer is not valid.
    #[error("issuer `{issuer}`")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// Why.
        source: Cause,
    },
    /// The signing key could not be created or loaded.
    #[error("signing key: {message}")]
    Key {
        /// What failed, and what to change.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// Binding or serving failed.
    #[error("listening on {addr}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A user could not be created or changed.
    #[error(transparent)]
    User(#[from] users::UserError),
    /// Production mode refused the configuration.
    #[error("production mode refuses this configuration:\n  - {}", .0.join("\n  - "))]
    Production(Vec<String>),
    /// A client could not be registered.
    #[error("client: {message}")]
    Client {
        /// What failed.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// An upstream identity provider is misconfigured or unreachable.
    #[error("provider: {message}")]
    Provider {
        /// What failed, and what to change.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
    /// A setting is not valid.
    #[error("configuration: {message}")]
    Config {
        /// What is wrong, and what to change.
        message: String,
        /// The error behind it.
        #[source]
        source: Option<Cause>,
    },
}

impl StartError {
    pub(crate) fn key(message: impl Into<String>) -> Self {
        Self::Key {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn key_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Key {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    pub(crate) fn client(message: impl Into<String>) -> Self {
        Self::Client {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn client_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Client {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    pub(crate) fn provider(message: impl Into<String>) -> Self {
        Self::Provider {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn provider_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Provider {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn config_caused(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Self::Config {
            message: message.into(),
            source: Some(cause.into()),
        }
    }
}

/// Where the device flow's verification page lives, below the issuer (RFC 8628 §3.2
/// `verification_uri`).
const DEVICE_PATH: &str = "/device";

/// The issuer's path without a trailing slash: empty for `https://as.example/`, `/tenant`
/// for `https://as.example/tenant`. The pages live below it, like the endpoints.
fn engine_config_issuer_path(issuer: &str) -> String {
    url::Url::parse(issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// The operating system's random source, plugged into the engine.
pub use mcpauth_http::OsRandom;

/// A built server: its routes, storage and engine.
#[derive(Debug)]
pub struct Server {
    /// All routes (authorization server, pages, health).
    pub router: Router,
    /// The storage.
    pub store: SqlStore,
    /// The engine.
    pub engine: Arc<TokenEngine<SqlStore>>,
    /// Age after which never-used dynamic registrations are swept.
    pub unused_registration_ttl: Option<u64>,
    key_encryption: Option<Arc<keys::KeyEncryption>>,
    key_rotation_lead: u64,
    /// Cleared when the stored keys could not be loaded (a key this instance cannot decrypt
    /// or parse): `/ready` then answers 503, as this instance no longer publishes every key
    /// its peers may sign with.
    keys_loaded: Arc<std::sync::atomic::AtomicBool>,
    federation: Option<Arc<federation::Federation>>,
    clock: Arc<dyn Clock>,
}

/// How often a running server reloads its signing keys from the database, so a rotation
/// made by `mcpauth-server key rotate` (or another instance) is picked up.
const KEY_RELOAD_INTERVAL: u64 = 60;
/// Seconds past the refresh-reuse grace window a rotated token's sealed successor is kept,
/// so retries at the window's edge and small clock differences between instances are safe.
const SUCCESSOR_MARGIN: u64 = 5;

impl Server {
    /// `user_id`'s upstream tokens at `provider`, kept since their last federated sign-in
    /// (`keep_upstream_tokens`) and refreshed first when they run out within a minute: for
    /// the application's own calls to the provider, never for MCP clients. `None`: the user
    /// never signed in there.
    ///
    /// # Errors
    ///
    /// [`UpstreamTokenError`](federation::UpstreamTokenError): no such provider, tokens not
    /// kept, storage, or the provider refused the refresh (the user must sign in again).
    pub async fn upstream_tokens(
        &self,
        user_id: &str,
        provider: &str,
    ) -> Result<Option<mcpauth_proxy::KeptTokens>, federation::UpstreamTokenError> {
        match &self.federation {
            Some(federation) => {
                federation
                    .upstream_tokens(user_id, provider, self.clock.now().0)
                    .await
            }
            None => Err(federation::UpstreamTokenError::UnknownProvider(
                provider.to_owned(),
            )),
        }
    }

    /// Reloads the signing keys from the database: a key stored by a rotation is published
    /// at once and signs once it is `key_rotation_lead` seconds old.
    ///
    /// # Errors
    ///
    /// [`StartError::Store`] or [`StartError::Key`]; the keys in use are kept.
    pub async fn reload_keys(&self) -> Result<(), StartError> {
        use std::sync::atomic::Ordering;
        match keys::load_signing_keys(
            &self.store,
            self.key_encryption.as_deref(),
            self.key_rotation_lead,
            self.clock.now(),
        )
        .await
        {
            Ok(keys) => {
                self.engine.replace_keys(keys);
                self.keys_loaded.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // A database outage is `/ready`'s other check; only a key problem is ours.
                if matches!(e, StartError::Key { .. }) {
                    self.keys_loaded.store(false, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Stores a new signing key of `algorithm` (`ES256` or `EdDSA`) and returns its kid.
    /// Running instances publish it within a minute; it signs after the rotation lead.
    ///
    /// # Errors
    ///
    /// [`StartError::Store`] or [`StartError::Key`].
    pub async fn rotate_key(&self, algorithm: &str) -> Result<String, StartError> {
        let kid = keys::rotate_signing_key(
            &self.store,
            self.key_encryption.as_deref(),
            algorithm,
            self.clock.now(),
        )
        .await?;
        self.reload_keys().await?;
        Ok(kid)
    }

    /// Every stored key with its state now, newest first.
    ///
    /// # Errors
    ///
    /// [`StartError::Store`].
    pub async fn list_keys(
        &self,
    ) -> Result<Vec<(mcpauth_store_sql::SigningKeyRow, keys::KeyState)>, StartError> {
        keys::list_signing_keys(&self.store, self.key_rotation_lead, self.clock.now().0).await
    }

    /// Deletes retired key `kid`: it is no longer published, so tokens it signed stop
    /// verifying. Refuses the signing key and keys waiting to sign.
    ///
    /// # Errors
    ///
    /// [`StartError::Key`] for an unknown or non-retired key, [`StartError::Store`].
    pub async fn remove_key(&self, kid: &str) -> Result<(), StartError> {
        let keys = self.list_keys().await?;
        match keys.iter().find(|(row, _)| row.kid == kid) {
            None => Err(StartError::key(format!(
                "no stored key has the kid `{kid}`"
            ))),
            Some((_, keys::KeyState::Retired)) => {
                self.store.delete_signing_key(kid).await?;
                self.reload_keys().await
            }
            Some((_, state)) => Err(StartError::key(format!(
                "key `{kid}` is {}: only retired keys can be removed",
                if *state == keys::KeyState::Signing {
                    "the signing key"
                } else {
                    "waiting to sign"
                }
            ))),
        }
    }
}

/// Opens the configured database with the configured pool size and timeouts, running
/// migrations.
///
/// # Errors
///
/// [`StartError::Store`] when the database is unreachable or the URL unsupported.
pub async fn open_store(config: &Config) -> Result<SqlStore, StartError> {
    let timeout = std::time::Duration::from_secs(config.database_timeout.max(1));
    let options = StoreOptions::default()
        .max_connections(config.database_max_connections)
        .acquire_timeout(timeout)
        .statement_timeout(timeout)
        .client_cache_ttl(std::time::Duration::from_secs(config.client_cache_ttl));
    Ok(SqlStore::connect_with(&config.database_url, &options).await?)
}

/// Builds the server for `config`: opens the database (running migrations) and loads keys.
///
/// # Errors
///
/// [`StartError`] naming what failed.
pub async fn build(config: &Config) -> Result<Server, StartError> {
    build_with(config, BuildOptions::default()).await
}

/// What [`build_with`] takes besides the configuration: what tests and embedders replace.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuildOptions {
    /// Which Client ID Metadata Documents may be fetched (tests reach a document server on
    /// loopback with its own certificate). Default: [`FetchPolicy::default`](mcpauth_fetch::FetchPolicy).
    pub fetch_policy: mcpauth_fetch::FetchPolicy,
    /// Where the time comes from: the system's clock by default; tests step a
    /// [`ManualClock`](mcpauth_token_engine::ManualClock) past locks, polling intervals and
    /// expiries instead of sleeping.
    pub clock: Arc<dyn Clock>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            fetch_policy: mcpauth_fetch::FetchPolicy::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl BuildOptions {
    /// Fetches Client ID Metadata Documents under `policy`.
    #[must_use]
    pub fn fetch_policy(mut self, policy: mcpauth_fetch::FetchPolicy) -> Self {
        self.fetch_policy = policy;
        self
    }

    /// Reads the time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// Like [`build`], with [`BuildOptions`].
///
/// # Errors
///
/// [`StartError`] naming what failed.
pub async fn build_with(config: &Config, options: BuildOptions) -> Result<Server, StartError> {
    let BuildOptions {
        fetch_policy,
        clock,
    } = options;
    let trusted_proxies = mcpauth_http::TrustedProxies::new(
        &config.trusted_proxies,
        match config.forwarded_header {
            config::ForwardedHeaderName::Forwarded => mcpauth_http::ForwardedHeader::Forwarded,
            _ => mcpauth_http::ForwardedHeader::XForwardedFor,
        },
    )
    .map_err(|e| StartError::config_caused("trusted_proxies", e))?;
    if !config.vouched_registration_grant_types.is_empty() && config.registration_token.is_none() {
        return Err(StartError::config(
            "vouched_registration_grant_types needs registration_token: only a registration \
             that presents it may have those grant types",
        ));
    }
    if config.forwarded_header != config::ForwardedHeaderName::default()
        && config.trusted_proxies.is_empty()
    {
        tracing::warn!("forwarded_header is set but trusted_proxies is empty: no header is read");
    }
    if config.production {
        let problems = config.production_problems(std::path::Path::exists);
        if !problems.is_empty() {
            return Err(StartError::Production(problems));
        }
    }
    if !config.password_login && config.providers.is_empty() {
        return Err(StartError::provider(
            "password_login is off and no providers are configured: nobody could sign in",
        ));
    }
    let issuer = config.issuer();
    let issuer_url: url::Url = issuer
        .parse()
        .map_err(|e: url::ParseError| StartError::Issuer {
            issuer: issuer.clone(),
            source: Box::new(e),
        })?;
    let mut engine_config = EngineConfig::new(issuer_url).map_err(|e| StartError::Issuer {
        issuer: issuer.clone(),
        source: Box::new(e),
    })?;
    engine_config
        .access_token_ttl(config.access_token_ttl)
        .refresh_token_ttl(config.refresh_token_ttl)
        .refresh_reuse_grace(config.refresh_reuse_grace)
        .scopes_supported(config.scopes_supported.clone())
        .default_scope(config.default_scope.clone())
        .default_resource(config.default_resource.clone())
        .strict_resource(config.strict_resource)
        .client_metadata_documents(config.client_metadata_documents)
        .registration_policy({
            let mut policy = RegistrationPolicy::default()
                .with_per_caller_per_hour(config.registrations_per_ip_per_hour);
            if let Some(token) = &config.registration_token {
                policy = policy.with_initial_access_tokens(&[token.expose()]);
            }
            if let Some(max) = config.max_clients {
                policy = policy.with_max_clients(max);
            }
            if let Some(ttl) = config.client_secret_ttl {
                policy = policy.with_client_secret_ttl(ttl);
            }
            policy
                .with_grant_types(&config.self_registration_grant_types)
                .with_vouched_grant_types(
                    &config.vouched_registration_grant_types,
                    &config.vouched_client_scope,
                )
        })
        .introspection_clients(config.introspection_clients.clone())
        .legacy_assertion_audience(config.legacy_assertion_audience)
        .access_token_format(match config.access_token_format {
            config::TokenFormat::Opaque => AccessTokenFormat::Opaque,
            _ => AccessTokenFormat::Jwt,
        })
        .dynamic_registration(config.dynamic_registration)
        .device_verification_path(DEVICE_PATH)
        .user_code_attempts_per_minute(config.user_code_attempts_per_ip_per_minute)
        .resources(if config.resources.is_empty() {
            ResourcePolicy::AnyUri
        } else {
            ResourcePolicy::Allowed(config.resources.clone())
        });
    match (
        config.strict_resource,
        &config.default_resource,
        config.resources.as_slice(),
    ) {
        (true, Some(_), _) => tracing::warn!(
            "default_resource is ignored while strict_resource is on: requests without `resource` are refused with invalid_target"
        ),
        (true, None, _) => {}
        (false, Some(default), _) => tracing::info!(
            default_resource = %default,
            "requests without `resource` get tokens for default_resource"
        ),
        (false, None, [only]) => tracing::info!(
            resource = %only,
            "requests without `resource` get tokens for the only configured resource"
        ),
        (false, None, _) => tracing::info!(
            "requests without `resource` are refused with invalid_target: set default_resource to serve clients that omit it"
        ),
    }
    let encryption = config
        .signing_key_encryption_key
        .as_ref()
        .map(|key| keys::KeyEncryption::from_base64(key.expose()))
        .transpose()?;
    let store = open_store(config).await?;
    if store.backend() == Backend::Postgres && encryption.is_none() {
        return Err(StartError::key(
            "signing_key_encryption_key (MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY) is required with \
             PostgreSQL: the signing keys are shared through the database and must not sit \
             there in plain text; generate one with `openssl rand -base64 32`",
        ));
    }
    let keys = keys::load_signing_keys(
        &store,
        encryption.as_ref(),
        config.key_rotation_lead,
        clock.now(),
    )
    .await?;
    // Decisions and first issuance re-check that the user is still enabled.
    engine_config.subject_status(Arc::new(users::ActiveUsers(store.clone())));
    let engine = Arc::new(TokenEngine::new(
        engine_config,
        Arc::new(store.clone()),
        keys,
        Arc::new(OsRandom),
    ));
    let federation = federation::build(
        config,
        engine.clone(),
        &store,
        config
            .signing_key_encryption_key
            .as_ref()
            .map(|key| keys::key_bytes(key.expose()))
            .transpose()?,
        clock.clone(),
    )
    .await?;
    let keys_loaded = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let base = engine_config_issuer_path(&issuer);
    let metrics = Arc::new(metrics::Metrics::default());
    let pages = Arc::new(pages::Pages {
        clock: clock.clone(),
        store: store.clone(),
        engine: engine.clone(),
        secure_cookies: issuer.starts_with("https://"),
        session_ttl: config.session_ttl,
        lockout: mcpauth_store_sql::LockoutPolicy {
            after_failures: config.login_lockout_after.max(1),
            first_lock: config.login_lockout_seconds,
            longest_lock: config.login_lockout_max_seconds,
        },
        base: base.clone(),
        device_path: DEVICE_PATH.to_owned(),
        scope_descriptions: config.scope_descriptions.clone(),
        federation: federation.clone(),
        password_login: config.password_login,
        sign_in_attempts_per_hour: config.sign_in_attempts_per_ip_per_hour,
        account_lockout: mcpauth_store_sql::LockoutPolicy {
            after_failures: config.login_lockout_account_after.max(1),
            first_lock: config.login_lockout_max_seconds,
            longest_lock: config.login_lockout_max_seconds,
        },
    });
    let fetcher = if config.client_metadata_documents {
        Some(mcpauth_fetch::SafeFetcher::new(fetch_policy).map_err(|e| {
            StartError::config_caused("the HTTP client for Client ID Metadata Documents", e)
        })?)
    } else {
        None
    };
    let mut authorization_server = mcpauth_http::AuthorizationServer::new(
        engine.clone(),
        Arc::new(pages::BuiltInInteraction(pages.clone())),
    )
    .with_clock(clock.clone());
    if let Some(fetcher) = fetcher {
        authorization_server = authorization_server.with_client_metadata_fetcher(fetcher);
    }
    let router = mcpauth_adapter_axum::router(Arc::new(authorization_server))
        // The authorization-server requests run to completion by themselves; the pages here.
        .merge(pages::routes(pages).layer(axum::middleware::from_fn(run_to_completion)))
        // Liveness: the process serves. Readiness: it can also reach the database and holds
        // every stored signing key, so a load balancer stops sending it traffic while either
        // fails and resumes when both are back.
        .route("/health", get(|| async { "ok" }))
        .route(
            "/ready",
            get({
                let store = store.clone();
                let keys_loaded = keys_loaded.clone();
                move || {
                    let store = store.clone();
                    let keys_loaded = keys_loaded.clone();
                    async move {
                        use axum::http::StatusCode;
                        if let Err(e) = store.ping().await {
                            tracing::warn!(error = %e, "not ready: the database does not answer");
                            return (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "the database does not answer",
                            );
                        }
                        if !keys_loaded.load(std::sync::atomic::Ordering::Relaxed) {
                            return (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "the stored signing keys could not be loaded (see the logs)",
                            );
                        }
                        (StatusCode::OK, "ready")
                    }
                }
            }),
        );
    let router = if config.metrics {
        router.route(
            "/metrics",
            get({
                let metrics = metrics.clone();
                let token = config.metrics_token.clone();
                move |headers: axum::http::HeaderMap| {
                    let metrics = metrics.clone();
                    let token = token.clone();
                    async move { serve_metrics(&metrics, token.as_ref(), &headers) }
                }
            }),
        )
    } else {
        router
    };
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(rate_limit::RateLimiter {
                clock: clock.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                base: base.clone(),
                limits: rate_limit::Limits {
                    token: config.token_requests_per_ip_per_minute,
                    device_authorization: config.device_authorizations_per_ip_per_minute,
                },
            }),
            rate_limit::limit,
        ))
        // Counts everything, rate-limited answers included.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(metrics::Observed { metrics, base }),
            metrics::track,
        ))
        // Outermost: every layer inside sees the client's real address.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(trusted_proxies),
            rate_limit::client_address,
        ));
    // RFC 6797: over https, browsers must never come back over plain http (login pages and
    // session cookies). Not for loopback http development issuers.
    let router = if issuer.starts_with("https://") {
        router.layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    axum::http::header::STRICT_TRANSPORT_SECURITY,
                    axum::http::HeaderValue::from_static("max-age=31536000"),
                );
                response
            },
        ))
    } else {
        router
    };
    Ok(Server {
        router,
        store,
        engine,
        unused_registration_ttl: config.unused_registration_ttl.filter(|ttl| *ttl > 0),
        key_encryption: encryption.map(Arc::new),
        key_rotation_lead: config.key_rotation_lead,
        keys_loaded,
        federation,
        clock,
    })
}

/// `/metrics`: the Prometheus exposition, behind the configured bearer token if any.
fn serve_metrics(
    metrics: &metrics::Metrics,
    token: Option<&Secret>,
    headers: &axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    if let Some(token) = token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !mcpauth_oauth_types::constant_time_eq(
            sha2_digest(presented).as_slice(),
            sha2_digest(token.expose()).as_slice(),
        ) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                "metrics need the configured metrics_token",
            )
                .into_response();
        }
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        metrics.render(),
    )
        .into_response()
}

/// SHA-256, so tokens of different lengths compare in constant time.
fn sha2_digest(text: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Serves `server` on `listener` until `shutdown` completes, sweeping expired rows every
/// ten minutes.
///
/// # Errors
///
/// [`StartError::Io`] when serving fails.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let store = server.store.clone();
    let clock = server.clock.clone();
    let unused_ttl = server.unused_registration_ttl;
    let sweeper = tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            interval.tick().await;
            match store.sweep_expired(clock.now()).await {
                Ok(removed) if removed > 0 => tracing::debug!(removed, "swept expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping expired rows failed"),
            }
            if let Some(ttl) = unused_ttl {
                match store
                    .delete_unused_registrations(clock.now().0.saturating_sub(ttl))
                    .await
                {
                    Ok(removed) if removed > 0 => {
                        tracing::info!(removed, "deleted registrations that were never used")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sweeping unused registrations failed"),
                }
            }
        }
    });
    // A rotated refresh token's successor is kept (sealed) for the reuse grace window only.
    let successors = tokio::spawn({
        let store = server.store.clone();
        let clock = server.clock.clone();
        let grace = server.engine.config().refresh_reuse_grace_seconds();
        async move {
            // Without a grace window no successor is kept: forget any an earlier configuration
            // (or another instance) left, once.
            if grace == 0 {
                if let Err(e) = store.forget_refresh_successors(clock.now().0).await {
                    tracing::warn!(error = %e, "forgetting rotated refresh successors failed");
                }
                return;
            }
            let mut interval =
                tokio::time::interval(std::time::Duration::from_secs(grace.clamp(1, 60)));
            loop {
                interval.tick().await;
                // A margin past the window, so a retry in its last second (or on an
                // instance whose clock is a little behind) still finds the successor.
                let closed = clock
                    .now()
                    .0
                    .saturating_sub(grace.saturating_add(SUCCESSOR_MARGIN));
                if let Err(e) = store.forget_refresh_successors(closed).await {
                    tracing::warn!(error = %e, "forgetting rotated refresh successors failed");
                }
            }
        }
    });
    let server = Arc::new(server);
    let reloader = tokio::spawn({
        let server = server.clone();
        async move {
            let mut interval =
                tokio::time::interval(std::time::Duration::from_secs(KEY_RELOAD_INTERVAL));
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(e) = server.reload_keys().await {
                    tracing::warn!(error = %said(&e), "reloading signing keys failed; keeping the current ones");
                }
            }
        }
    });
    // Small responses go out at once: without TCP_NODELAY a response written in pieces can
    // wait for the client's delayed ACK (40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(
        listener,
        server
            .router
            .clone()
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    sweeper.abort();
    successors.abort();
    reloader.abort();
    result.map_err(|source| StartError::Io { addr, source })
}

/// Runs the request in its own task. A client that hangs up drops the request's future; one
/// dropped inside a database transaction (between sqlx's `BEGIN` and its drop guard) would
/// return the connection to the pool still in the transaction, holding row locks that stall
/// every later request touching those rows (seen under load on PostgreSQL: sign-ins waiting
/// on an interaction row until the statement timeout).
async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "the request's task failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Builds and serves `config` on its `listen` address until `shutdown` completes.
///
/// # Errors
///
/// [`StartError`] naming what failed.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let server = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Io {
            addr: config.listen.to_string(),
            source,
        })?;
    tracing::info!(listen = %config.listen, issuer = %config.issuer(), "mcpauth-server is ready");
    serve_on(listener, server, shutdown).await
}

/// Creates a user with an argon2id-hashed password. Returns the new user id (the `sub` of
/// their tokens).
///
/// # Errors
///
/// [`StartError::User`] for a bad email or weak password, [`StartError::Store`] when the email
/// is taken or storage fails.
pub async fn add_user(store: &SqlStore, email: &str, password: &str) -> Result<String, StartError> {
    let email = users::normalize_email(email)?;
    users::check_password_policy(password, &email)?;
    let hash = admin::hash_off_thread(password).await?;
    let mut id = [0u8; 16];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| StartError::key("no randomness"))?;
    let user_id = format!(
        "user_{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
    );
    store.create_user(&user_id, &email, &hash, now()).await?;
    Ok(user_id)
}

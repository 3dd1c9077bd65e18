//! `mcpauth-server`: a runnable OAuth 2.1 authorization server for MCP.
//!
//! It wires the [`TokenEngine`] to SQL storage ([`SqlStore`]: SQLite, or PostgreSQL for several
//! instances), the axum adapter, and built-in login and consent pages for local users
//! (argon2id passwords). It generates and persists its ES256 signing key on first start.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = mcpauth_server::Config::default();
//! mcpauth_server::serve(config, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod admin;
mod config;
mod interaction;
mod keys;
pub mod users;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use mcpauth_adapter_axum::{authorization_server_router_with_fetcher, now};
use mcpauth_store_sql::{Backend, SqlStore, StoreOptions};
use mcpauth_token_engine::{
    AccessTokenFormat, EngineConfig, RandomError, RegistrationPolicy, ResourcePolicy, SecureRandom,
    TokenEngine,
};

pub use config::{Config, ConfigError, Secret, TokenFormat};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] mcpauth_store_sql::StoreError),
    /// The issuer is not valid.
    #[error("issuer `{issuer}`: {source}")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The signing key could not be created or loaded.
    #[error("signing key: {0}")]
    Key(String),
    /// Binding or serving failed.
    #[error("listening on {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A user could not be created or changed.
    #[error("{0}")]
    User(#[from] users::UserError),
    /// A client could not be registered.
    #[error("client: {0}")]
    Client(String),
}

/// The operating system's random source, plugged into the engine.
#[derive(Debug, Clone, Copy)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        aws_lc_rs::rand::fill(dest).map_err(|_| RandomError)
    }
}

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
        .statement_timeout(timeout);
    Ok(SqlStore::connect_with(&config.database_url, &options).await?)
}

/// Builds the server for `config`: opens the database (running migrations) and loads keys.
///
/// # Errors
///
/// [`StartError`] naming what failed.
pub async fn build(config: &Config) -> Result<Server, StartError> {
    build_with_fetch_policy(config, mcpauth_fetch::FetchPolicy::default()).await
}

/// Like [`build`], fetching Client ID Metadata Documents under `fetch_policy` (tests use it to
/// reach a document server on loopback with its own certificate).
///
/// # Errors
///
/// [`StartError`] naming what failed.
pub async fn build_with_fetch_policy(
    config: &Config,
    fetch_policy: mcpauth_fetch::FetchPolicy,
) -> Result<Server, StartError> {
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
        })
        .access_token_format(match config.access_token_format {
            config::TokenFormat::Opaque => AccessTokenFormat::Opaque,
            _ => AccessTokenFormat::Jwt,
        })
        .dynamic_registration(config.dynamic_registration)
        .resources(if config.resources.is_empty() {
            ResourcePolicy::AnyUri
        } else {
            ResourcePolicy::Allowed(config.resources.clone())
        });
    if config.strict_resource && config.default_resource.is_some() {
        tracing::warn!(
            "default_resource is ignored while strict_resource is on: clients must send `resource`"
        );
    }
    let encryption = config
        .signing_key_encryption_key
        .as_ref()
        .map(|key| keys::KeyEncryption::from_base64(key.expose()))
        .transpose()?;
    let store = open_store(config).await?;
    if store.backend() == Backend::Postgres && encryption.is_none() {
        return Err(StartError::Key(
            "signing_key_encryption_key (MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY) is required with              PostgreSQL: the signing keys are shared through the database and must not sit there              in plain text; generate one with `openssl rand -base64 32`"
                .into(),
        ));
    }
    let keys = keys::load_signing_keys(&store, encryption.as_ref()).await?;
    let engine = Arc::new(TokenEngine::new(
        engine_config,
        Arc::new(store.clone()),
        keys,
        Arc::new(OsRandom),
    ));
    let pages = Arc::new(interaction::Pages {
        store: store.clone(),
        engine: engine.clone(),
        secure_cookies: issuer.starts_with("https://"),
        session_ttl: config.session_ttl,
        lockout: mcpauth_store_sql::LockoutPolicy {
            after_failures: config.login_lockout_after.max(1),
            first_lock: config.login_lockout_seconds,
            longest_lock: config.login_lockout_max_seconds,
        },
    });
    let fetcher = if config.client_metadata_documents {
        Some(
            mcpauth_fetch::SafeFetcher::new(fetch_policy)
                .map_err(|e| StartError::Key(format!("HTTP client: {e}")))?,
        )
    } else {
        None
    };
    let router = authorization_server_router_with_fetcher(
        engine.clone(),
        Arc::new(interaction::BuiltInInteraction(pages.clone())),
        fetcher,
    )
    .merge(interaction::routes(pages))
    // Liveness: the process serves. Readiness: it can also reach the database (keys are
    // loaded before the server starts), so a load balancer stops sending it traffic while
    // the database is away and resumes when it is back.
    .route("/health", get(|| async { "ok" }))
    .route(
        "/ready",
        get({
            let store = store.clone();
            move || {
                let store = store.clone();
                async move {
                    match store.ping().await {
                        Ok(()) => (axum::http::StatusCode::OK, "ready"),
                        Err(e) => {
                            tracing::warn!(error = %e, "not ready: the database does not answer");
                            (
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                "the database does not answer",
                            )
                        }
                    }
                }
            }
        }),
    );
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
    })
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
    let unused_ttl = server.unused_registration_ttl;
    let sweeper = tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            interval.tick().await;
            match store.sweep_expired(now().0).await {
                Ok(removed) if removed > 0 => tracing::debug!(removed, "swept expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping expired rows failed"),
            }
            if let Some(ttl) = unused_ttl {
                match store
                    .delete_unused_registrations(now().0.saturating_sub(ttl))
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
    let result = axum::serve(
        listener,
        server
            .router
            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    sweeper.abort();
    result.map_err(|source| StartError::Io { addr, source })
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
    aws_lc_rs::rand::fill(&mut id).map_err(|_| StartError::Key("no randomness".into()))?;
    let user_id = format!(
        "user_{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
    );
    store.create_user(&user_id, &email, &hash, now().0).await?;
    Ok(user_id)
}

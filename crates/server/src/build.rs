//! Building a [`Server`] from its configuration: the database, the engine, the pages, the
//! routes and the layers around them.

use std::sync::Arc;

use axum::routing::get;
use mcpauth_store_sql::{Backend, SqlStore, StoreOptions};
use mcpauth_token_engine::{
    AccessTokenFormat, Clock, EngineConfig, RegistrationPolicy, ResourcePolicy, SystemClock,
    TokenEngine,
};

use crate::config::{self, Config, Secret};
use crate::serve::run_to_completion;
use crate::{
    DEVICE_PATH, OsRandom, Server, StartError, engine_config_issuer_path, federation, keys,
    metrics, pages, rate_limit, users,
};

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
        .client_cache_ttl(std::time::Duration::from_secs(config.client_cache_ttl))
        .migrate(config.migrate);
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

/// `ssf_push_origins`, each an origin alone (`https://rs.internal:8443`).
fn push_origins(listed: &[String]) -> Result<Vec<url::Origin>, StartError> {
    listed
        .iter()
        .map(|origin| {
            url::Url::parse(origin)
                .ok()
                .filter(|url| {
                    // Plain http only to this machine: elsewhere, someone on the path could
                    // drop revocations and let verifications through.
                    (url.scheme() == "https"
                        || url.scheme() == "http"
                            && match url.host() {
                                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                                Some(url::Host::Domain(name)) => name == "localhost",
                                None => false,
                            })
                        && url.has_host()
                        && url.path() == "/"
                        && url.query().is_none()
                        && url.fragment().is_none()
                        && url.username().is_empty()
                        && !origin.ends_with('/')
                })
                .map(|url| url.origin())
                .ok_or_else(|| {
                    StartError::config(format!(
                        "ssf_push_origins: `{origin}` is not an https origin (http only for \
                         loopback); write scheme, host and port only, like \
                         https://rs.internal:8443"
                    ))
                })
        })
        .collect()
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
    /// Whether this build serves (default): upstream identity providers are resolved (their
    /// discovery documents fetched) and native TLS's files read. The operator's commands
    /// build without ([`for_commands`](Self::for_commands)): they sign nobody in and serve
    /// nothing, and must work while a provider is unreachable or the certificate is the
    /// service's alone (systemd's `LoadCredential=`).
    pub serving: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            fetch_policy: mcpauth_fetch::FetchPolicy::default(),
            clock: Arc::new(SystemClock),
            serving: true,
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

    /// A build for the operator's commands: no upstream identity provider contacted (no
    /// federated sign-in), no TLS file read.
    #[must_use]
    pub fn for_commands(mut self) -> Self {
        self.serving = false;
        self
    }
}

/// What [`check_config`] found valid, for the build to go on with.
struct Checked {
    trusted_proxies: mcpauth_http::TrustedProxies,
    push_origins: Vec<url::Origin>,
    issuer: String,
    tls: Option<crate::tls::TlsCertificates>,
    engine_config: EngineConfig,
    encryption: Option<keys::KeyEncryption>,
}

/// Checks `config` as the server does before it opens the database: values, combinations,
/// production mode, the issuer, native TLS's files, the signing-key encryption key. Touches
/// nothing (`mcpauth-server config check`); what needs the database or the network (stored
/// keys, upstream providers' discovery) is checked at start.
///
/// # Errors
///
/// The first problem, as [`StartError`] names it at start.
pub fn check_config(config: &Config) -> Result<(), StartError> {
    checked(config, true).map(|_| ())
}

/// [`check_config`]'s work; with `read_tls` off (the operator's commands), native TLS's files
/// are not read.
fn checked(config: &Config, read_tls: bool) -> Result<Checked, StartError> {
    let trusted_proxies = mcpauth_http::TrustedProxies::new(
        &config.trusted_proxies,
        match config.forwarded_header {
            config::ForwardedHeaderName::Forwarded => mcpauth_http::ForwardedHeader::Forwarded,
            _ => mcpauth_http::ForwardedHeader::XForwardedFor,
        },
    )
    .map_err(|e| StartError::config_caused("trusted_proxies", e))?;
    let push_origins = push_origins(&config.ssf_push_origins)?;
    if !config.vouched_registration_grant_types.is_empty() && config.registration_token.is_none() {
        return Err(StartError::config(
            "vouched_registration_grant_types needs registration_token: only a registration \
             that presents it may have those grant types",
        ));
    }
    // RFC 6750 §2.1: a client presents it as `Authorization: Bearer <token>`, so a value
    // outside `b64token` syntax could never be presented and would close /register for good.
    if let Some(token) = &config.registration_token
        && mcpauth_oauth_types::parse_bearer_authorization(&format!("Bearer {}", token.expose()))
            .ok()
            .flatten()
            != Some(token.expose())
    {
        return Err(StartError::config(
            "registration_token may hold only letters, digits and -._~+/ (then = padding): \
             clients send it as `Authorization: Bearer <token>`; generate one with \
             `openssl rand -base64 32`",
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
    let tls = match (&config.tls_certificate, &config.tls_private_key) {
        (None, None) => None,
        (Some(certificate), Some(private_key)) => {
            if !issuer.starts_with("https://") {
                return Err(StartError::config(format!(
                    "native TLS is configured but the issuer `{issuer}` is not https: set \
                     issuer to the https URL clients use"
                )));
            }
            if read_tls {
                Some(crate::tls::TlsCertificates::load(certificate, private_key)?)
            } else {
                None
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(StartError::config(
                "tls_certificate and tls_private_key go together: set both for native TLS, \
                 or neither for plain HTTP behind a TLS proxy",
            ));
        }
    };
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
        .map(|key| {
            keys::KeyEncryption::from_base64(key.expose())?.with_previous(
                &config
                    .previous_signing_key_encryption_keys
                    .iter()
                    .map(Secret::expose)
                    .collect::<Vec<_>>(),
            )
        })
        .transpose()?;
    if encryption.is_none() && !config.previous_signing_key_encryption_keys.is_empty() {
        return Err(StartError::key(
            "previous_signing_key_encryption_keys is set without signing_key_encryption_key: \
             set the new key there, and keep the old ones as previous until every instance has it",
        ));
    }
    // The home page is served at the issuer's path: it must not be one of the server's own
    // routes at the root.
    let base = engine_config_issuer_path(&issuer);
    if ["/health", "/ready", "/metrics", "/jwks.json", "/static"].contains(&base.as_str()) {
        return Err(StartError::config(format!(
            "issuer path `{base}` is one of the server's own routes: choose another path"
        )));
    }
    Ok(Checked {
        trusted_proxies,
        push_origins,
        issuer,
        tls,
        engine_config,
        encryption,
    })
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
        serving,
    } = options;
    let Checked {
        trusted_proxies,
        push_origins,
        issuer,
        tls,
        mut engine_config,
        encryption,
    } = checked(config, serving)?;
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
    engine_config.dpop(dpop_policy(config, &store, clock.now()).await?);
    if !config.trusted_issuers.is_empty() {
        crate::assertions::warn_of_missing_workload_clients(config, &store).await;
        engine_config.trusted_issuers(
            crate::assertions::trusted_issuers(config)?,
            Arc::new(crate::assertions::JwksCache::new(
                &fetch_policy,
                clock.clone(),
            )?),
            Some(Arc::new(crate::assertions::EnterpriseAccounts {
                store: store.clone(),
                clock: clock.clone(),
            })),
        );
    }
    if !config.identity_assertion_audiences.is_empty() {
        engine_config.identity_assertion_audiences(crate::assertions::assertion_audiences(config)?);
        crate::assertions::warn_of_missing_exchange_clients(config, &store).await;
    }
    let engine = Arc::new(TokenEngine::new(
        engine_config,
        Arc::new(store.clone()),
        keys,
        Arc::new(OsRandom),
    ));
    let federation = if serving {
        federation::build(
            config,
            engine.clone(),
            &store,
            config
                .signing_key_encryption_key
                .as_ref()
                .map(|key| keys::key_bytes(key.expose()))
                .transpose()?,
            &config
                .previous_signing_key_encryption_keys
                .iter()
                .map(|key| keys::key_bytes(key.expose()))
                .collect::<Result<Vec<_>, _>>()?,
            clock.clone(),
        )
        .await?
    } else {
        None
    };
    let keys_loaded = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let key_ring = Arc::new(keys::KeyRing {
        store: store.clone(),
        engine: engine.clone(),
        encryption: encryption.map(Arc::new),
        rotation_lead: config.key_rotation_lead,
        loaded: keys_loaded.clone(),
        clock: clock.clone(),
    });
    let base = engine_config_issuer_path(&issuer);
    let metrics = Arc::new(metrics::Metrics::default());
    let audit = crate::audit::AuditQueue::start(store.clone(), metrics.clone(), clock.clone());
    let pages = Arc::new(pages::Pages {
        keys: key_ring.clone(),
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
    let push_client = if push_origins.is_empty() {
        None
    } else {
        Some(crate::shared_signals::push_client().map_err(|e| {
            StartError::config_caused("the HTTP client for Shared Signals push delivery", e)
        })?)
    };
    let transmitter = Arc::new(crate::shared_signals::Transmitter {
        engine: engine.clone(),
        store: store.clone(),
        clock: clock.clone(),
        issuer: issuer.clone(),
        base: base.clone(),
        metrics: metrics.clone(),
        push_origins,
        push_client,
    });
    let router = mcpauth_adapter_axum::router(Arc::new(authorization_server))
        // The authorization-server requests run to completion by themselves; the pages here.
        .merge(pages::routes(pages).layer(axum::middleware::from_fn(run_to_completion)))
        // Shared Signals (SSF 1.0, RFC 8936): resource servers poll for what ended access.
        .merge(crate::shared_signals::routes(transmitter.clone()))
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
    let metrics_route = axum::Router::new().route(
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
    );
    // Beside the OAuth endpoints, or on an address of its own (`metrics_listen`).
    let (router, metrics_listener) = match (config.metrics, config.metrics_listen) {
        (false, _) => (router, None),
        (true, None) => (router.merge(metrics_route), None),
        (true, Some(address)) => (router, Some((address, metrics_route))),
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
                counts: rate_limit::LocalCounts::default(),
            }),
            rate_limit::limit,
        ))
        // Counts everything, rate-limited answers included.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(metrics::Observed { metrics, base }),
            metrics::track,
        ))
        // The token, revocation and registration endpoints' audit records, with the caller's
        // address from the layer outside.
        .layer(axum::middleware::from_fn_with_state(
            audit.clone(),
            crate::audit::endpoint_events,
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
        keys: key_ring,
        federation,
        clock,
        // An event matters while a token it ends may live (an access token's lifetime),
        // plus a margin for clocks and receivers catching up.
        security_event_retention: config.access_token_ttl.saturating_add(300),
        audit_retention: (config.audit_retention_days > 0)
            .then(|| config.audit_retention_days.saturating_mul(86_400)),
        transmitter,
        audit,
        tls,
        metrics_listener,
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

/// RFC 9449 at the token endpoint: proofs required or not, and nonces MACed with a key every
/// instance reads from the database (the first to start stores it).
async fn dpop_policy(
    config: &Config,
    store: &SqlStore,
    now: mcpauth_token_engine::UnixTime,
) -> Result<mcpauth_token_engine::DpopPolicy, StartError> {
    if !config.dpop {
        if config.dpop_required || config.dpop_nonces {
            return Err(StartError::config(
                "dpop = false turns DPoP off; dpop_required and dpop_nonces need it on: set dpop = true, or turn them off",
            ));
        }
        return Ok(mcpauth_token_engine::DpopPolicy::disabled());
    }
    let policy = mcpauth_token_engine::DpopPolicy::default().required(config.dpop_required);
    if !config.dpop_nonces {
        return Ok(policy);
    }
    let mut candidate = [0u8; 32];
    mcpauth_token_engine::SecureRandom::fill(&OsRandom, &mut candidate)
        .map_err(|e| StartError::config_caused("randomness for the DPoP nonce key", e))?;
    let secret = store.shared_secret("dpop_nonce", &candidate, now).await?;
    Ok(policy.nonces(mcpauth_token_engine::NonceSource::new(
        &secret,
        DPOP_NONCE_PERIOD,
    )))
}

/// Seconds a DPoP nonce is current; it is accepted for up to twice as long.
const DPOP_NONCE_PERIOD: u64 = 60;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    #[test]
    fn ssf_push_origins_are_origins_alone() {
        let origins = super::push_origins(&[
            "https://rs.internal:8443".into(),
            "http://127.0.0.1:3000".into(),
            "http://localhost:3001".into(),
        ])
        .unwrap();
        assert_eq!(
            origins
                .iter()
                .map(url::Origin::ascii_serialization)
                .collect::<Vec<_>>(),
            [
                "https://rs.internal:8443",
                "http://127.0.0.1:3000",
                "http://localhost:3001"
            ]
        );
        assert!(super::push_origins(&[]).unwrap().is_empty());
        for wrong in [
            "https://rs.internal/ssf/push",
            "https://rs.internal/",
            "https://rs.internal?x=1",
            "https://user@rs.internal",
            "ftp://rs.internal",
            "rs.internal:8443",
            "http://rs.internal:8080",
            "http://10.0.0.7",
        ] {
            let error = super::push_origins(&[wrong.into()])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("ssf_push_origins") && error.contains(wrong),
                "{wrong}: {error}"
            );
        }
    }
}

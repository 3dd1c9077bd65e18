//! Server configuration: a TOML file (optional) and `MCPAUTH_*` environment variables, which
//! win over the file. With neither, the server listens on `127.0.0.1:8080`, keeps its data in
//! `./mcpauth.db`, and accepts tokens for any https or loopback resource.

mod assertion_audiences;
mod environment;
mod production;
mod trusted_issuers;
mod values;

pub use assertion_audiences::{AssertionAudienceConfig, AudienceClientConfig};
pub use trusted_issuers::{TrustedIssuerConfig, TrustedIssuerKind, WorkloadRuleConfig};

pub use values::{ForwardedHeaderName, LogFormat, Secret, TokenFormat, provider_secret_variable};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The server's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Issuer identifier; defaults to `http://<listen>`.
    pub issuer: Option<String>,
    /// Database URL: `sqlite://PATH` (one instance) or `postgres://USER@HOST/DATABASE` (any
    /// number of instances sharing it).
    pub database_url: String,
    /// Most database connections per instance.
    pub database_max_connections: u32,
    /// Seconds a request may wait for a database connection, and a statement may run, before
    /// it fails with `server_error` (so an unreachable database fails requests fast).
    pub database_timeout: u64,
    /// Seconds a client's registration is reused from memory instead of read per request (0:
    /// read every time). Another instance sees a client removed or a secret rotated within
    /// this time; the instance that made the change, at once.
    pub client_cache_ttl: u64,
    /// 32 bytes, base64: the AES-256-GCM key that encrypts the signing keys stored in the
    /// database. Required with PostgreSQL (the keys then sit on a shared server); optional with
    /// SQLite. Keys stored in plain text are encrypted at the next start once it is set.
    pub signing_key_encryption_key: Option<Secret>,
    /// Keys `signing_key_encryption_key` replaces: what they sealed (signing keys, kept
    /// upstream tokens) still opens, and stored signing keys are sealed again under the
    /// current key at start. Drop them once every instance runs with the new key
    /// (docs/deployment.md, "Rotating the encryption key").
    pub previous_signing_key_encryption_keys: Vec<Secret>,
    /// Seconds a rotated-in signing key is published before it signs, so every instance and
    /// every resource server's JWKS cache knows it first.
    pub key_rotation_lead: u64,
    /// Access-token lifetime in seconds.
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl: u64,
    /// Seconds after a refresh token's rotation during which presenting it again is taken for
    /// a retry (the same successor again); after that any replay revokes the family. 0: every
    /// replay revokes at once.
    pub refresh_reuse_grace: u64,
    /// Login-session lifetime in seconds.
    pub session_ttl: u64,
    /// Wrong passwords in a row that lock an account.
    pub login_lockout_after: u32,
    /// Seconds the first lock lasts; each further lock lasts twice as long.
    pub login_lockout_seconds: u64,
    /// Seconds the longest lock lasts (at most a day).
    pub login_lockout_max_seconds: u64,
    /// Scopes the server knows (empty: any syntactically valid scope).
    pub scopes_supported: Vec<String>,
    /// Human descriptions of scopes, shown on the consent and device pages beside the scope
    /// name (TOML table `[scope_descriptions]`, `"mcp:tools" = "Use the tools"`).
    pub scope_descriptions: BTreeMap<String, String>,
    /// Scope granted when a client asks for none.
    pub default_scope: Vec<String>,
    /// Resources (MCP server URIs) tokens may be issued for (empty: any https or loopback URI).
    pub resources: Vec<String>,
    /// Whether clients must send `resource` (RFC 8707); MCP clients since 2025-06-18 do. Off
    /// (the default), a request without it gets `default_resource`, else the only entry of
    /// `resources` when there is exactly one, else `invalid_target`.
    pub strict_resource: bool,
    /// Audience for clients that send no `resource`, used when `strict_resource` is off.
    pub default_resource: Option<String>,
    /// Whether RFC 7591 dynamic registration is open.
    pub dynamic_registration: bool,
    /// `jwt` (RFC 9068, verified offline) or `opaque` (checked by introspection).
    pub access_token_format: TokenFormat,
    /// An initial access token that `/register` requires (RFC 7591 §3); none: open.
    pub registration_token: Option<Secret>,
    /// Grant types a client may give itself at `/register` or in a Client ID Metadata
    /// Document: the grants through which a user delegates authority. Others are refused
    /// with `invalid_client_metadata`.
    pub self_registration_grant_types: Vec<String>,
    /// Grant types a self-registered client may also have when it presents the
    /// `registration_token` (typically `client_credentials`): the opt-in to machine clients
    /// that register themselves. Empty (the default): only `mcpauth-server client add` makes
    /// machine clients.
    pub vouched_registration_grant_types: Vec<String>,
    /// The `client_credentials` scope ceiling of such clients; never their own registration.
    pub vouched_client_scope: Vec<String>,
    /// Client ids that may introspect tokens (RFC 7662), besides clients added with
    /// `mcpauth-server client add --resource-server`.
    pub introspection_clients: Vec<String>,
    /// DPoP (RFC 9449) at the token endpoint (default on): proofs bind the tokens they obtain
    /// to the client's key, and `dpop_signing_alg_values_supported` says so, so clients such
    /// as `mcpauth` bind theirs. Off: nothing advertised, proofs ignored, Bearer tokens only,
    /// for resource servers that take Bearer tokens alone.
    pub dpop: bool,
    /// Refuse token requests without a DPoP proof (RFC 9449), so that every token issued is
    /// bound to its client's key. Off (the default): a proof binds what it obtains, and only
    /// clients that registered `dpop_bound_access_tokens` must send one.
    pub dpop_required: bool,
    /// Require DPoP proofs at the token endpoint to carry a nonce this server issued (RFC 9449
    /// §8), which limits how long a proof made in advance stays usable. Every instance
    /// shares the nonce secret through the database.
    pub dpop_nonces: bool,
    /// Issuers whose JWTs the token endpoint accepts with the JWT bearer grant (TOML
    /// `[[trusted_issuers]]`): enterprise identity providers' ID-JAGs (enterprise-managed
    /// authorization) and workload tokens (workload identity).
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Authorization servers this server issues ID-JAGs for, as an enterprise identity
    /// provider (TOML `[[identity_assertion_audiences]]`): token exchange turns the refresh
    /// token of a user's sign-in here into an ID-JAG the listed clients present there.
    pub identity_assertion_audiences: Vec<AssertionAudienceConfig>,
    /// Accept `private_key_jwt` assertions whose `aud` is the token endpoint URL or an
    /// array (RFC 7523's older forms); off: the issuer identifier alone.
    pub legacy_assertion_audience: bool,
    /// Most clients that may be registered at once.
    pub max_clients: Option<u64>,
    /// Registrations allowed per IP address per hour.
    pub registrations_per_ip_per_hour: u32,
    /// Reverse proxies (addresses or CIDR networks) whose `forwarded_header` names the
    /// client: only requests from them are read for it, so every per-address limit counts the
    /// real client. Empty: the TCP peer is the client, whatever headers say.
    pub trusted_proxies: Vec<String>,
    /// Origins (`https://rs.internal:8443`) that Shared Signals push streams may deliver to
    /// (RFC 8935). A resource server asks for a push endpoint when it creates its stream;
    /// the server posts only to origins listed here, so a receiver's credentials cannot point
    /// it anywhere else. Empty (the default): push delivery is refused and receivers poll.
    pub ssf_push_origins: Vec<String>,
    /// The header the trusted proxies write the client in: `x-forwarded-for` or `forwarded`
    /// (RFC 7239).
    pub forwarded_header: ForwardedHeaderName,
    /// Sign-in attempts allowed per IP address (an IPv6 /64) per hour, across accounts.
    pub sign_in_attempts_per_ip_per_hour: u32,
    /// Wrong passwords in a row for one account, from every address together, that lock it
    /// for everyone for `login_lockout_max_seconds`: the ceiling on guessing one account from
    /// many addresses, which the lockout per account and address alone does not stop.
    pub login_lockout_account_after: u32,
    /// Wrong device user codes allowed per IP address (an IPv6 /64) per minute (RFC 8628 §5.1).
    pub user_code_attempts_per_ip_per_minute: u32,
    /// Token requests allowed per IP address per minute, and as many revocation requests
    /// (0: no limit).
    pub token_requests_per_ip_per_minute: u32,
    /// Device authorization requests allowed per IP address per minute (0: no limit).
    pub device_authorizations_per_ip_per_minute: u32,
    /// Days audit records are kept (`audit_events`); 0 keeps them forever.
    pub audit_retention_days: u64,
    /// Apply the database migrations this version has at start (default). Off
    /// (`mcpauth-server --no-migrate`): refuse a database that lacks any, for deployments that
    /// run `mcpauth-server migrate` as a step of their own.
    pub migrate: bool,
    /// A PEM certificate chain (the server's certificate first): serve HTTPS natively, with
    /// `tls_private_key`. Read again every 30 seconds, so a renewed certificate is used
    /// without a restart. None: plain HTTP, for TLS at a reverse proxy.
    pub tls_certificate: Option<std::path::PathBuf>,
    /// The PEM private key of `tls_certificate` (PKCS#8, PKCS#1 or SEC1).
    pub tls_private_key: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics: bool,
    /// A bearer token `/metrics` requires (`Authorization: Bearer …`); none: open to anyone
    /// who can reach it (restrict it at your proxy).
    pub metrics_token: Option<Secret>,
    /// Serve `/metrics` on this address of its own instead of beside the OAuth endpoints (a
    /// private interface the scraper reaches and clients do not). Production mode accepts it
    /// without `metrics_token`.
    pub metrics_listen: Option<SocketAddr>,
    /// Log format on standard error: `text` (human) or `json` (one object per line).
    pub log_format: LogFormat,
    /// Production mode: refuse to start with a non-https issuer, a default database location,
    /// a missing or weak signing-key encryption key, or a short registration token.
    pub production: bool,
    /// Lifetime of issued client secrets in seconds; none: they do not expire.
    pub client_secret_ttl: Option<u64>,
    /// Accept `https` URLs as `client_id` and fetch their Client ID Metadata Documents.
    pub client_metadata_documents: bool,
    /// Delete dynamically registered clients that never completed an authorization after this
    /// many seconds (none: keep them).
    pub unused_registration_ttl: Option<u64>,
    /// Upstream identity providers users may sign in with (TOML `[[providers]]`): Google,
    /// GitHub, Microsoft Entra ID, GitLab, Slack, Discord, any OpenID Connect or OAuth 2.0
    /// provider. Each client secret may come from `MCPAUTH_PROVIDER_<ID>_CLIENT_SECRET`.
    pub providers: Vec<mcpauth_proxy::ProviderConfig>,
    /// Whether local users may sign in with a password (turn off to offer only the providers).
    pub password_login: bool,
    /// Email domains whose users may sign in through the providers (empty: anyone the
    /// provider signs in). Only verified addresses count.
    pub federated_email_domains: Vec<String>,
    /// Keep each federated user's upstream tokens, sealed with a key derived from
    /// `signing_key_encryption_key` (required then), for the application's own calls upstream.
    pub keep_upstream_tokens: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            database_url: "sqlite://mcpauth.db".into(),
            database_max_connections: 10,
            database_timeout: 5,
            client_cache_ttl: 5,
            signing_key_encryption_key: None,
            previous_signing_key_encryption_keys: Vec::new(),
            key_rotation_lead: 600,
            access_token_ttl: 3600,
            refresh_token_ttl: 14 * 24 * 3600,
            refresh_reuse_grace: 10,
            session_ttl: 12 * 3600,
            login_lockout_after: 6,
            login_lockout_seconds: 60,
            login_lockout_max_seconds: 3600,
            scopes_supported: Vec::new(),
            scope_descriptions: BTreeMap::new(),
            default_scope: Vec::new(),
            resources: Vec::new(),
            strict_resource: false,
            default_resource: None,
            dynamic_registration: true,
            access_token_format: TokenFormat::Jwt,
            registration_token: None,
            self_registration_grant_types: mcpauth_token_engine::USER_DELEGATED_GRANT_TYPES
                .iter()
                .map(|g| (*g).to_owned())
                .collect(),
            vouched_registration_grant_types: Vec::new(),
            vouched_client_scope: Vec::new(),
            introspection_clients: Vec::new(),
            legacy_assertion_audience: false,
            trusted_issuers: Vec::new(),
            identity_assertion_audiences: Vec::new(),
            dpop: true,
            dpop_required: false,
            dpop_nonces: false,
            max_clients: None,
            registrations_per_ip_per_hour: 30,
            trusted_proxies: Vec::new(),
            ssf_push_origins: Vec::new(),
            forwarded_header: ForwardedHeaderName::XForwardedFor,
            sign_in_attempts_per_ip_per_hour: 200,
            login_lockout_account_after: 100,
            user_code_attempts_per_ip_per_minute: 10,
            token_requests_per_ip_per_minute: 600,
            device_authorizations_per_ip_per_minute: 30,
            audit_retention_days: 90,
            migrate: true,
            tls_certificate: None,
            tls_private_key: None,
            metrics: true,
            metrics_token: None,
            metrics_listen: None,
            log_format: LogFormat::Text,
            production: false,
            client_secret_ttl: None,
            client_metadata_documents: true,
            unused_registration_ttl: Some(30 * 24 * 3600),
            providers: Vec::new(),
            password_login: true,
            federated_email_domains: Vec::new(),
            keep_upstream_tokens: false,
        }
    }
}

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// An environment variable has an invalid value.
    #[error("environment variable {name} is invalid: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Why, and what is expected.
        reason: String,
    },
}

impl Config {
    /// Reads `path` if given, then applies `MCPAUTH_*` variables from `env`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file or variable that is wrong.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.display().to_string(),
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(env)?;
        Ok(config)
    }

    /// The `MCPAUTH_*` variables among `names` that nothing reads: a misspelling, or the
    /// secret of a provider that is not configured. The server warns about each at start
    /// (a misspelt variable would otherwise be ignored without a word).
    #[must_use]
    pub fn unread_variables<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        // Read by the command line and the logging set-up rather than here.
        const ELSEWHERE: [&str; 2] = ["MCPAUTH_CONFIG", "MCPAUTH_LOG"];
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let mut probe = self.clone();
        let _ = probe.apply_env(|name| {
            read.borrow_mut().insert(name.to_owned());
            None
        });
        let read = read.into_inner();
        names
            .into_iter()
            .filter(|name| name.starts_with("MCPAUTH_"))
            .filter(|name| !read.contains(*name) && !ELSEWHERE.contains(name))
            .map(str::to_owned)
            .collect()
    }

    /// This configuration with no secret left in it for printing (`config check`): the
    /// secret settings print as `[redacted]` already; here the database URL's password (in
    /// its userinfo, or a `password` / `sslpassword` parameter) becomes `REDACTED`.
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if let Ok(mut url) = url::Url::parse(&self.database_url) {
            let mut changed = false;
            if url.password().is_some() {
                changed |= url.set_password(Some("REDACTED")).is_ok();
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(name, value)| {
                    let secret = matches!(name.as_ref(), "password" | "sslpassword");
                    changed |= secret;
                    (
                        name.into_owned(),
                        if secret {
                            "REDACTED".to_owned()
                        } else {
                            value.into_owned()
                        },
                    )
                })
                .collect();
            if changed {
                if !pairs.is_empty() {
                    url.query_pairs_mut().clear().extend_pairs(&pairs);
                }
                copy.database_url = url.to_string();
            }
        }
        copy
    }

    /// The SQLite database's file, when the database is SQLite on a file.
    #[must_use]
    pub fn sqlite_file(&self) -> Option<&Path> {
        production::sqlite_path(&self.database_url)
    }

    /// The issuer: configured, or `http://<listen>` (`https://` with native TLS).
    #[must_use]
    pub fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| {
            let scheme = if self.tls_certificate.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", self.listen)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A misspelt variable, or a provider secret for no configured provider, is named at
    // start instead of being ignored without a word.
    #[test]
    fn variables_nothing_reads_are_named() -> Result<(), ConfigError> {
        let config = Config::load(None, |_| None)?;
        let unread = config.unread_variables([
            "MCPAUTH_ISSUER",
            "MCPAUTH_ISUER",
            "MCPAUTH_LOG",
            "MCPAUTH_CONFIG",
            "MCPAUTH_PROVIDER_NOPE_CLIENT_SECRET",
            "PATH",
        ]);
        assert_eq!(
            unread,
            ["MCPAUTH_ISUER", "MCPAUTH_PROVIDER_NOPE_CLIENT_SECRET"]
        );
        Ok(())
    }

    #[test]
    fn defaults_listen_on_loopback_8080_with_a_local_sqlite_file() -> Result<(), ConfigError> {
        let config = Config::load(None, |_| None)?;
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://mcpauth.db");
        assert_eq!(config.issuer(), "http://127.0.0.1:8080");
        Ok(())
    }

    #[test]
    fn environment_overrides_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("mcpauth-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("mcpauth.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nresources = [\"https://a.example/mcp\"]\naccess_token_ttl = 60\n",
        )?;
        let config = Config::load(Some(&path), |name| {
            (name == "MCPAUTH_ACCESS_TOKEN_TTL").then(|| "120".to_owned())
        })?;
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.resources, ["https://a.example/mcp"]);
        assert_eq!(config.access_token_ttl, 120);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn production_mode_refuses_http_default_database_and_weak_secrets() {
        let mut config = Config {
            production: true,
            ..Config::default()
        };
        let problems = config.production_problems(|_| true);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("issuer is not set"));
        assert!(problems[1].contains("database_url is the default"));
        assert!(problems[2].contains("signing_key_encryption_key is not set"));
        assert!(problems[3].contains("metrics is on without metrics_token"));
        // Metrics off, or behind a long enough token: nothing to say about them.
        config.metrics = false;
        assert_eq!(config.production_problems(|_| true).len(), 3);
        config.metrics = true;
        config.metrics_token = Some(Secret::new("m".repeat(40)));
        assert_eq!(config.production_problems(|_| true).len(), 3);

        config.issuer = Some("http://as.example".into());
        config.database_url = "sqlite:///var/lib/mcpauth/mcpauth.db".into();
        config.signing_key_encryption_key = Some(Secret::new("A".repeat(43)));
        config.registration_token = Some(Secret::from("changeme"));
        let problems = config.production_problems(|_| false);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("is not https"));
        assert!(problems[1].contains("does not exist"));
        assert!(problems[2].contains("placeholder"));
        assert!(problems[3].contains("registration_token is shorter"));

        config.issuer = Some("https://as.example".into());
        config.registration_token = Some(Secret::new("x".repeat(40)));
        config.signing_key_encryption_key =
            Some(Secret::from("0J8vTqf2m1Lx5aZ9cWkR3eHn7uYbVs4dGpQ6tXiC2oE="));
        assert!(
            config.production_problems(|_| true).is_empty(),
            "{:?}",
            config.production_problems(|_| true)
        );
        config.database_url = "sqlite://data/mcpauth.db".into();
        assert!(config.production_problems(|_| true)[0].contains("relative"));
        config.database_url = "postgres://mcpauth@db/mcpauth".into();
        assert!(config.production_problems(|_| false).is_empty());
    }

    // The quick start's configuration (examples/mcpauth.toml) loads, and serves a client that
    // names neither scope nor resource a token the example MCP server accepts: the example
    // requires `mcp:tools` at `http://127.0.0.1:3000/mcp`.
    #[test]
    fn the_example_configuration_gives_scopeless_clients_what_the_example_server_requires()
    -> Result<(), ConfigError> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mcpauth.toml");
        let config = Config::load(Some(&path), |_| None)?;
        assert_eq!(config.default_scope, ["mcp:tools"]);
        assert_eq!(config.resources, ["http://127.0.0.1:3000/mcp"]);
        assert!(!config.strict_resource, "the only resource is the default");
        assert_eq!(config.database_url, Config::default().database_url);
        Ok(())
    }

    // docs/federation.md's first walk-through (examples/local-idp.toml): the provider the
    // local oidc-provider is started for, its secret from the variable the guide sets, and
    // the callback the guide registers there.
    #[test]
    fn the_local_provider_walk_through_configuration_loads()
    -> Result<(), Box<dyn std::error::Error>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/local-idp.toml");
        let config = Config::load(Some(&path), |name| {
            (name == "MCPAUTH_PROVIDER_LOCAL_CLIENT_SECRET").then(|| "a-local-test-secret".into())
        })?;
        let provider = &config.providers[0];
        assert_eq!(provider.id, "local");
        assert_eq!(provider.client_id, "mcpauth");
        assert_eq!(
            provider.client_secret.as_deref(),
            Some("a-local-test-secret")
        );
        let guide = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/federation.md"),
        )?;
        for step in [
            "cargo run -p mcpauth-server -- --config examples/local-idp.toml",
            "MCPAUTH_PROVIDER_LOCAL_CLIENT_SECRET=a-local-test-secret",
            r#""client_secret": "a-local-test-secret""#,
            r#""redirect_uri": "http://127.0.0.1:8080/upstream/local/callback""#,
            r#""port": 4000"#,
        ] {
            assert!(guide.contains(step), "docs/federation.md lost `{step}`");
        }
        Ok(())
    }

    // Every value of every switch added for the safe defaults parses from the environment.
    #[test]
    fn the_safe_default_switches_read_each_of_their_values() -> Result<(), ConfigError> {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let defaults = Config::load(None, |_| None)?;
        assert_eq!(
            defaults.self_registration_grant_types,
            [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code"
            ]
        );
        assert!(defaults.vouched_registration_grant_types.is_empty());
        assert!(!defaults.legacy_assertion_audience);
        assert!(!defaults.strict_resource);
        assert_eq!(
            defaults.forwarded_header,
            ForwardedHeaderName::XForwardedFor
        );
        let set = Config::load(
            None,
            env(&[
                (
                    "MCPAUTH_SELF_REGISTRATION_GRANT_TYPES",
                    "authorization_code",
                ),
                (
                    "MCPAUTH_VOUCHED_REGISTRATION_GRANT_TYPES",
                    "client_credentials",
                ),
                ("MCPAUTH_VOUCHED_CLIENT_SCOPE", "mcp:tools"),
                ("MCPAUTH_INTROSPECTION_CLIENTS", "rs-1 rs-2"),
                ("MCPAUTH_LEGACY_ASSERTION_AUDIENCE", "true"),
                ("MCPAUTH_STRICT_RESOURCE", "true"),
                ("MCPAUTH_TRUSTED_PROXIES", "127.0.0.1 10.0.0.0/8"),
                ("MCPAUTH_AUDIT_RETENTION_DAYS", "0"),
                ("MCPAUTH_TLS_CERTIFICATE", "/etc/mcpauth/fullchain.pem"),
                ("MCPAUTH_PREVIOUS_SIGNING_KEY_ENCRYPTION_KEYS", "a= b="),
                ("MCPAUTH_MIGRATE", "false"),
                ("MCPAUTH_METRICS_LISTEN", "127.0.0.1:9090"),
                ("MCPAUTH_TLS_PRIVATE_KEY", "/etc/mcpauth/privkey.pem"),
                (
                    "MCPAUTH_SSF_PUSH_ORIGINS",
                    "https://rs.internal:8443 http://127.0.0.1:3000",
                ),
                ("MCPAUTH_FORWARDED_HEADER", "forwarded"),
                ("MCPAUTH_SIGN_IN_ATTEMPTS_PER_IP_PER_HOUR", "7"),
                ("MCPAUTH_LOGIN_LOCKOUT_ACCOUNT_AFTER", "5"),
                ("MCPAUTH_USER_CODE_ATTEMPTS_PER_IP_PER_MINUTE", "3"),
                ("MCPAUTH_REFRESH_REUSE_GRACE", "0"),
                ("MCPAUTH_DPOP", "false"),
                ("MCPAUTH_DPOP_REQUIRED", "1"),
                ("MCPAUTH_DPOP_NONCES", "yes"),
            ]),
        )?;
        assert!(defaults.dpop && !defaults.dpop_required && !defaults.dpop_nonces);
        assert!(!set.dpop && set.dpop_required && set.dpop_nonces);
        assert_eq!(set.self_registration_grant_types, ["authorization_code"]);
        assert_eq!(set.vouched_registration_grant_types, ["client_credentials"]);
        assert_eq!(set.vouched_client_scope, ["mcp:tools"]);
        assert_eq!(set.introspection_clients, ["rs-1", "rs-2"]);
        assert!(set.legacy_assertion_audience);
        assert!(set.strict_resource);
        assert_eq!(set.trusted_proxies, ["127.0.0.1", "10.0.0.0/8"]);
        assert!(defaults.ssf_push_origins.is_empty());
        assert_eq!(
            (defaults.audit_retention_days, set.audit_retention_days),
            (90, 0)
        );
        assert_eq!(
            (
                defaults.tls_certificate.as_deref(),
                defaults.tls_private_key.as_deref()
            ),
            (None, None)
        );
        assert_eq!(
            (
                set.tls_certificate.as_deref(),
                set.tls_private_key.as_deref()
            ),
            (
                Some(Path::new("/etc/mcpauth/fullchain.pem")),
                Some(Path::new("/etc/mcpauth/privkey.pem"))
            )
        );
        assert!(set.issuer().starts_with("https://") && defaults.issuer().starts_with("http://"));
        assert!(defaults.previous_signing_key_encryption_keys.is_empty());
        assert_eq!(
            set.previous_signing_key_encryption_keys
                .iter()
                .map(Secret::expose)
                .collect::<Vec<_>>(),
            ["a=", "b="]
        );
        assert!(defaults.migrate && !set.migrate);
        assert_eq!(defaults.metrics_listen, None);
        assert_eq!(set.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(
            set.ssf_push_origins,
            ["https://rs.internal:8443", "http://127.0.0.1:3000"]
        );
        assert_eq!(set.forwarded_header, ForwardedHeaderName::Forwarded);
        assert_eq!(set.sign_in_attempts_per_ip_per_hour, 7);
        assert_eq!(set.login_lockout_account_after, 5);
        assert_eq!(defaults.login_lockout_account_after, 100);
        assert_eq!(set.user_code_attempts_per_ip_per_minute, 3);
        assert_eq!(set.refresh_reuse_grace, 0);
        assert_eq!(defaults.refresh_reuse_grace, 10);
        assert!(
            Config::load(None, env(&[("MCPAUTH_FORWARDED_HEADER", "x-real-ip")])).is_err(),
            "an unknown header is refused by name"
        );
        Ok(())
    }

    // `config check` prints the configuration: the database password never.
    #[test]
    fn the_printed_configuration_has_no_database_password() {
        let mut config = Config::default();
        for url in [
            "postgres://mcpauth:s3cret-pass@db.internal/mcpauth",
            "postgres://mcpauth@db.internal/mcpauth?password=s3cret-pass&sslmode=require",
        ] {
            config.database_url = url.into();
            let printed = format!("{:#?}", config.redacted());
            assert!(!printed.contains("s3cret-pass"), "{printed}");
            assert!(printed.contains("db.internal") && printed.contains("REDACTED"));
        }
        config.database_url = "sqlite:///var/lib/mcpauth/mcpauth.db".into();
        assert_eq!(config.redacted().database_url, config.database_url);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
        assert!(
            Config::load(None, |n| (n == "MCPAUTH_LISTEN").then(|| "nope".to_owned())).is_err()
        );
    }

    // docs/configuration.md is the operator's reference: every variable the server reads and
    // every key of the TOML file must be in it.
    #[test]
    fn the_configuration_reference_lists_every_option() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        // Every file of this module: the variables are read in environment.rs and values.rs,
        // the keys declared here.
        let mut source = String::new();
        for entry in std::fs::read_dir(dir.join("src/config"))? {
            let text = std::fs::read_to_string(entry?.path())?;
            // The code only: the tests name misspelt variables on purpose.
            source.push_str(text.split("#[cfg(test)]").next().unwrap_or_default());
        }
        let reference = std::fs::read_to_string(dir.join("../../docs/configuration.md"))?;
        let mut variables: Vec<&str> = source
            .match_indices("\"MCPAUTH_")
            .filter_map(|(at, _)| source.get(at + 1..)?.split('"').next())
            .collect();
        variables.dedup();
        assert!(variables.len() > 30, "{variables:?}");
        for variable in variables {
            assert!(
                reference.contains(variable),
                "docs/configuration.md lacks {variable}"
            );
        }
        let struct_body = source
            .split("pub struct Config {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .ok_or("no Config struct")?;
        for line in struct_body.lines() {
            if let Some(key) = line
                .trim()
                .strip_prefix("pub ")
                .and_then(|l| l.split(':').next())
            {
                assert!(
                    reference.contains(&format!("`{key}`")),
                    "docs/configuration.md lacks the key `{key}`"
                );
            }
        }
        // Its example file, every default spelled out, is a valid configuration.
        let example = reference
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .ok_or("no TOML example")?;
        let path = std::env::temp_dir().join(format!("mcpauth-config-{}.toml", std::process::id()));
        std::fs::write(&path, example)?;
        let loaded = Config::load(Some(&path), |_| None);
        std::fs::remove_file(&path)?;
        let loaded = loaded?;
        let defaults = Config::default();
        assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
        Ok(())
    }
}

#![doc = include_str!("../README.md")]

pub mod admin;
mod assertions;
pub mod audit;
mod build;
mod config;
mod error;
pub mod federation;
pub mod keys;
mod metrics;
mod pages;
mod rate_limit;
mod serve;
pub mod shared_signals;
mod tls;
pub mod users;

pub use build::{BuildOptions, build, build_with, check_config, open_store};
pub use error::{StartError, said};
pub use serve::{serve, serve_on};
pub use tls::TlsCertificates;

use std::sync::Arc;

use axum::Router;
use mcpauth_adapter_axum::now;
use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::{Clock, TokenEngine};

pub use config::{
    AssertionAudienceConfig, AudienceClientConfig, Config, ConfigError, ForwardedHeaderName,
    LogFormat, Secret, TokenFormat, TrustedIssuerConfig, TrustedIssuerKind, WorkloadRuleConfig,
    provider_secret_variable,
};

/// Where the device flow's verification page lives, below the issuer (RFC 8628 §3.2
/// `verification_uri`).
pub(crate) const DEVICE_PATH: &str = "/device";

/// The issuer's path without a trailing slash: empty for `https://as.example/`, `/tenant`
/// for `https://as.example/tenant`. The pages live below it, like the endpoints.
pub(crate) fn engine_config_issuer_path(issuer: &str) -> String {
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
    /// The stored signing keys: reloaded, rotated. Its `loaded` flag is cleared when they
    /// could not be loaded (a key this instance cannot decrypt or parse): `/ready` then
    /// answers 503, as this instance no longer publishes every key its peers may sign with.
    pub(crate) keys: Arc<keys::KeyRing>,
    pub(crate) federation: Option<Arc<federation::Federation>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long security events are kept for Shared Signals receivers, in seconds.
    pub(crate) security_event_retention: u64,
    /// How long audit records are kept, in seconds (`None`: forever).
    pub(crate) audit_retention: Option<u64>,
    /// The Shared Signals transmitter, whose pushes [`serve_on`] delivers.
    pub(crate) transmitter: Arc<shared_signals::Transmitter>,
    /// The queue to the writer of the token, revocation and registration endpoints' audit
    /// records.
    pub(crate) audit: audit::AuditQueue,
    /// The certificate and key of native TLS, when configured.
    pub(crate) tls: Option<tls::TlsCertificates>,
    /// `/metrics` on an address of its own (`metrics_listen`), which [`serve_on`] binds.
    pub(crate) metrics_listener: Option<(std::net::SocketAddr, Router)>,
}

/// How often a running server reloads its signing keys from the database, so a rotation
/// made by `mcpauth-server key rotate` (or another instance) is picked up.
pub(crate) const KEY_RELOAD_INTERVAL: u64 = 60;
/// Seconds past the refresh-reuse grace window a rotated token's sealed successor is kept,
/// so retries at the window's edge and small clock differences between instances are safe.
pub(crate) const SUCCESSOR_MARGIN: u64 = 5;
/// A Shared Signals stream not polled for this long is deleted: its receiver is gone (a
/// resource server polls every second or so while it runs; one that comes back creates a
/// new stream, which starts with every event still kept, so nothing is missed).
pub(crate) const SSF_STREAM_IDLE: u64 = 3600;

impl Server {
    /// Runs one housekeeping pass now, as the running server does every ten minutes:
    /// expired rows, security events no token can need, idle Shared Signals streams, audit
    /// records past `audit_retention_days`, registrations never used.
    pub async fn sweep_now(&self) {
        self.housekeeping().sweep().await;
    }

    /// The certificate and key native TLS serves with (`tls_certificate`), when configured:
    /// [`TlsCertificates::reload`] reads the files again now (the server does every 30 s).
    #[must_use]
    pub fn tls(&self) -> Option<TlsCertificates> {
        self.tls.clone()
    }

    /// Waits until the audit records of the requests answered so far are stored. The token,
    /// revocation and registration endpoints' records are written in batches by a task of
    /// their own; [`serve_on`] waits for them as it stops.
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    pub(crate) fn housekeeping(&self) -> serve::Housekeeping {
        serve::Housekeeping {
            store: self.store.clone(),
            clock: self.clock.clone(),
            unused_registration_ttl: self.unused_registration_ttl,
            security_event_retention: self.security_event_retention,
            audit_retention: self.audit_retention,
        }
    }

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
        self.keys.reload().await
    }

    /// Stores a new signing key of `algorithm` (`ES256` or `EdDSA`) and returns its kid.
    /// Running instances publish it within a minute; it signs after the rotation lead.
    ///
    /// # Errors
    ///
    /// [`StartError::Store`] or [`StartError::Key`].
    pub async fn rotate_key(&self, algorithm: &str) -> Result<String, StartError> {
        self.keys
            .rotate(algorithm, &admin::Actor::command_line())
            .await
    }

    /// Every stored key with its state now, newest first.
    ///
    /// # Errors
    ///
    /// [`StartError::Store`].
    pub async fn list_keys(
        &self,
    ) -> Result<Vec<(mcpauth_store_sql::SigningKeyRow, keys::KeyState)>, StartError> {
        self.keys.list().await
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
                admin::audited(
                    &self.store,
                    audit::events::KEY_REMOVED,
                    None,
                    None,
                    Some(kid),
                )
                .await;
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
    match store.create_user(&user_id, &email, &hash, now()).await {
        Ok(()) => {
            admin::audited(store, audit::events::USER_ADDED, Some(&user_id), None, None).await;
            Ok(user_id)
        }
        // The email is the table's unique key: the database decides, races included.
        Err(e) if e.is_unique_violation() => Err(users::UserError::UserExists(email).into()),
        Err(e) => Err(e.into()),
    }
}

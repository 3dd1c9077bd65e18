//! The federated sign-in, start to finish: hold the MCP client's request, send the user
//! upstream, take the callback, and finish the MCP client's authorization with the
//! engine's own code for the subject the application's [`TokenMapper`] chooses.
//!
//! Framework-neutral: [`FederatedLogin::begin`] returns the redirect and the cookie to set,
//! [`FederatedLogin::callback`] takes the callback's query and `Cookie` header and returns
//! where to send the browser (or why not). The server binary and library authors' axum or
//! actix-web apps wrap these in a few lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcpauth_oauth_types::AuthorizeErrorCode;
use mcpauth_token_engine::{
    OAuthServerModel, PendingAuthorization, SecureRandom, TokenEngine, UnixTime,
};
use serde_json::Value;
use url::Url;

use crate::id_token::{self, IdTokenError};
use crate::identity::UpstreamIdentity;
use crate::provider::{Preset, Provider, ProviderConfig, ProviderError};
use crate::upstream::{
    self, Callback, CallbackError, ProxyError, Purpose, Transport, UpstreamRequest, UpstreamTokens,
};

/// Seconds a user may take at the upstream before the held request expires.
pub const UPSTREAM_REQUEST_TTL: u64 = 600;

/// How long a provider's JWK Set is reused before it is fetched again; a token signed by an
/// unknown key refetches it sooner, at most once a minute.
const JWKS_TTL: u64 = 3600;
const JWKS_REFETCH_AFTER: u64 = 60;

/// Where the proxy keeps upstream requests between the redirect and the callback.
#[async_trait::async_trait]
pub trait UpstreamRequestStore: Send + Sync {
    /// The storage error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores `request` under `key` (the hash of its `state`).
    async fn save_upstream_request(
        &self,
        key: &str,
        request: &UpstreamRequest,
    ) -> Result<(), Self::Error>;

    /// Removes and returns the request under `key`, if any and not expired at `now`: exactly
    /// one caller gets it, so a replayed callback finds nothing.
    async fn take_upstream_request(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UpstreamRequest>, Self::Error>;
}

/// Upstream requests in memory: one process, tests and examples. Kept serialized, as a
/// database keeps them (the pending authorization inside cannot be copied).
#[derive(Debug, Default)]
pub struct MemoryUpstreamRequests(Mutex<HashMap<String, String>>);

#[async_trait::async_trait]
impl UpstreamRequestStore for MemoryUpstreamRequests {
    type Error = serde_json::Error;

    async fn save_upstream_request(
        &self,
        key: &str,
        request: &UpstreamRequest,
    ) -> Result<(), serde_json::Error> {
        let record = serde_json::to_string(request)?;
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(key.to_owned(), record);
        Ok(())
    }

    async fn take_upstream_request(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<UpstreamRequest>, serde_json::Error> {
        let record = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        let request: Option<UpstreamRequest> = record
            .map(|record| serde_json::from_str(&record))
            .transpose()?;
        Ok(request.filter(|r| r.expires_at > now.0))
    }
}

/// The application's decision about an upstream user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mapping {
    /// Sign in as this local subject (the `sub` of our tokens).
    Subject(String),
    /// Refuse: the MCP client gets `access_denied`, the user sees `message`.
    Refuse(String),
    /// The application failed (its storage, say): the MCP client gets `server_error`;
    /// `reason` goes to the log.
    Fail(String),
}

/// Maps an upstream identity to a local subject: look up or create the local user, or
/// refuse. The upstream tokens are the application's to keep (encrypted) for its own calls
/// to the upstream; they are never given to the MCP client.
#[async_trait::async_trait]
pub trait TokenMapper: Send + Sync {
    /// Decides who `identity` is here, for `client`'s request (`None`: a plain sign-in to
    /// the application, from its device or account page).
    async fn map(
        &self,
        identity: &UpstreamIdentity,
        tokens: &UpstreamTokens,
        client: Option<&PendingAuthorization>,
    ) -> Mapping;
}

/// A mapper that signs everyone in as `{provider}:{upstream subject}`: stable, never an
/// email (which another account could later own), distinct per provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderSubject;

#[async_trait::async_trait]
impl TokenMapper for ProviderSubject {
    async fn map(
        &self,
        identity: &UpstreamIdentity,
        _tokens: &UpstreamTokens,
        _client: Option<&PendingAuthorization>,
    ) -> Mapping {
        Mapping::Subject(format!("{}:{}", identity.provider, identity.subject))
    }
}

/// The redirect that sends the user upstream, with the cookie that binds the callback to
/// this browser.
#[derive(Debug)]
#[non_exhaustive]
pub struct UpstreamRedirect {
    /// The upstream authorization URL.
    pub location: String,
    /// The `Set-Cookie` value to send with the redirect.
    pub set_cookie: String,
}

/// How a callback ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallbackOutcome {
    /// Send the browser back to the MCP client: with our code, or with an error the client
    /// must hear (`access_denied` when the user or the mapper refused, `server_error` when
    /// the upstream failed). `clear_cookie` ends the browser binding.
    ToClient {
        /// The MCP client's redirect URI with `code` or `error`, `state` and `iss`.
        location: String,
        /// The `Set-Cookie` value that deletes the binding cookie.
        clear_cookie: String,
        /// What went wrong, when the client gets an error (for the log, never the client's
        /// secret).
        failure: Option<String>,
        /// The local subject the mapper chose, when the sign-in succeeded (to start the
        /// application's own session for the browser).
        subject: Option<String>,
    },
    /// A plain sign-in ([`FederatedLogin::begin_sign_in`]) ended: start the application's
    /// session for `subject` and send the browser to `return_to`, or show `failure`.
    SignedIn {
        /// The local subject, when the sign-in succeeded.
        subject: Option<String>,
        /// Where the sign-in was started to return (a path on this server).
        return_to: String,
        /// The `Set-Cookie` value that deletes the binding cookie.
        clear_cookie: String,
        /// Why it failed (for the log and the page; never a secret).
        failure: Option<String>,
    },
    /// The callback cannot be tied to a sign-in this browser started (forged, replayed,
    /// expired, from another browser, unknown provider): show an error page, redirect
    /// nowhere.
    Refused(CallbackError),
    /// Something on our side failed (storage, randomness): show an error page.
    Failed(String),
}

/// The name of the cookie that binds the callback for `state_key` to the browser: one per
/// sign-in, so sign-ins in several tabs do not overwrite each other's binding.
fn binding_cookie_name(state_key: &str) -> String {
    format!(
        "mcpauth_upstream_{}",
        state_key.get(..16).unwrap_or(state_key)
    )
}

fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[derive(Debug)]
struct CachedJwks {
    document: Vec<u8>,
    fetched_at: u64,
}

/// Federated sign-in for one engine.
pub struct FederatedLogin<M: ?Sized, S> {
    engine: Arc<TokenEngine<M>>,
    providers: Vec<Provider>,
    issuer: Url,
    store: S,
    mapper: Arc<dyn TokenMapper>,
    transport: Arc<dyn Transport>,
    rng: Arc<dyn SecureRandom>,
    secure_cookies: bool,
    jwks: Mutex<HashMap<String, CachedJwks>>,
}

impl<M: ?Sized, S> std::fmt::Debug for FederatedLogin<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedLogin")
            .field("providers", &self.providers)
            .field("issuer", &self.issuer.as_str())
            .finish_non_exhaustive()
    }
}

/// Resolves `config`: presets at once, generic OpenID Connect providers from their
/// discovery documents (fetched through `transport`).
///
/// # Errors
///
/// [`ProviderError`] naming the provider and what is wrong.
pub async fn resolve_provider(
    config: &ProviderConfig,
    transport: &dyn Transport,
) -> Result<Provider, ProviderError> {
    if config.preset != Preset::Oidc {
        return Provider::from_config(config);
    }
    let issuer = config
        .issuer
        .as_ref()
        .ok_or_else(|| ProviderError::Config {
            provider: config.id.clone(),
            reason: "issuer is required for an OpenID Connect provider".into(),
        })?;
    if !crate::provider::secure_or_loopback(issuer) {
        return Err(ProviderError::Config {
            provider: config.id.clone(),
            reason: format!("issuer `{issuer}` must be https (http only on loopback)"),
        });
    }
    let url = Provider::discovery_url(issuer);
    let fail = |reason: String| ProviderError::Discovery {
        provider: config.id.clone(),
        reason,
    };
    let request = http::Request::get(&url)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| fail(e.to_string()))?;
    let response = transport
        .send(request)
        .await
        .map_err(|e| fail(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(fail(format!("{url} answered {}", response.status())));
    }
    Provider::from_discovery(config, response.body())
}

impl<M, S> FederatedLogin<M, S>
where
    M: OAuthServerModel + ?Sized,
    S: UpstreamRequestStore,
{
    /// Federated sign-in through `providers` for `engine`, keeping upstream requests in
    /// `store`. Callbacks are served at [`callback_url`](Self::callback_url), below the
    /// engine's issuer.
    pub fn new(
        engine: Arc<TokenEngine<M>>,
        providers: Vec<Provider>,
        store: S,
        mapper: Arc<dyn TokenMapper>,
        transport: Arc<dyn Transport>,
        rng: Arc<dyn SecureRandom>,
    ) -> Self {
        let issuer = engine.config().issuer().clone();
        Self {
            secure_cookies: issuer.scheme() == "https",
            engine,
            providers,
            issuer,
            store,
            mapper,
            transport,
            rng,
            jwks: Mutex::new(HashMap::new()),
        }
    }

    /// The configured providers, in order (for a chooser page).
    #[must_use]
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The provider with this id.
    #[must_use]
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// The path of `provider`'s callback, below the issuer's path: one per provider, so a
    /// response is always checked against the provider the user was sent to.
    #[must_use]
    pub fn callback_path(&self, provider: &str) -> String {
        format!(
            "{}/upstream/{provider}/callback",
            self.issuer.path().trim_end_matches('/')
        )
    }

    /// The name and path of the cookie binding sign-in `key` at `provider` to the browser:
    /// on an https issuer a `__Host-` cookie at `Path=/` (no other host or plain-http page
    /// can set it), else scoped to the provider's callback path.
    fn binding_cookie(&self, key: &str, provider: &str) -> (String, String) {
        let name = binding_cookie_name(key);
        if self.secure_cookies {
            (format!("__Host-{name}"), "/".to_owned())
        } else {
            (name, self.callback_path(provider))
        }
    }

    /// The redirect URI to register at `provider`.
    #[must_use]
    pub fn callback_url(&self, provider: &str) -> Url {
        let mut url = self.issuer.clone();
        url.set_path(&self.callback_path(provider));
        url.set_query(None);
        url
    }

    /// Holds `pending` and sends the user to `provider`.
    ///
    /// # Errors
    ///
    /// [`ProxyError`] for an unknown provider (as [`CallbackError::WrongProvider`]),
    /// randomness or storage failure.
    pub async fn begin(
        &self,
        provider: &str,
        pending: PendingAuthorization,
        now: UnixTime,
    ) -> Result<UpstreamRedirect, ProxyError> {
        self.start(provider, Purpose::from(pending), now).await
    }

    /// Sends the user to `provider` only to sign in to the application (its device or account
    /// page), coming back to `return_to`, a path on this server.
    ///
    /// # Errors
    ///
    /// [`ProxyError`] for an unknown provider, a `return_to` that is not a local path (it
    /// would be an open redirect), randomness or storage failure.
    pub async fn begin_sign_in(
        &self,
        provider: &str,
        return_to: &str,
        now: UnixTime,
    ) -> Result<UpstreamRedirect, ProxyError> {
        if !upstream::is_local_path(return_to) {
            return Err(ProxyError::Callback(CallbackError::Malformed(
                "return_to must be a path on this server",
            )));
        }
        let purpose = Purpose::SignIn {
            return_to: return_to.to_owned(),
        };
        self.start(provider, purpose, now).await
    }

    async fn start(
        &self,
        provider: &str,
        purpose: Purpose,
        now: UnixTime,
    ) -> Result<UpstreamRedirect, ProxyError> {
        let provider = self
            .provider(provider)
            .ok_or(ProxyError::Callback(CallbackError::WrongProvider))?;
        let started = upstream::start(
            provider,
            &self.callback_url(&provider.id),
            purpose,
            &*self.rng,
            now,
            UPSTREAM_REQUEST_TTL,
        )?;
        let key = upstream::state_key(&started.state);
        self.store
            .save_upstream_request(&key, &started.record)
            .await
            .map_err(|e| ProxyError::Token(format!("storing the sign-in failed: {e}")))?;
        let (name, path) = self.binding_cookie(&key, &provider.id);
        let set_cookie = format!(
            "{name}={}; Path={path}; Max-Age={UPSTREAM_REQUEST_TTL}; HttpOnly; SameSite=Lax{}",
            started.browser_binding,
            if self.secure_cookies { "; Secure" } else { "" },
        );
        Ok(UpstreamRedirect {
            location: started.location.into(),
            set_cookie,
        })
    }

    /// Takes the callback of `provider` (its path segment), with the raw `query` and the
    /// request's `Cookie` header.
    pub async fn callback(
        &self,
        provider: &str,
        query: &str,
        cookie_header: &str,
        now: UnixTime,
    ) -> CallbackOutcome {
        let callback = match upstream::parse_callback(query) {
            Ok(callback) => callback,
            Err(e) => return CallbackOutcome::Refused(e),
        };
        let Some(provider) = self.provider(provider) else {
            return CallbackOutcome::Refused(CallbackError::WrongProvider);
        };
        let key = upstream::state_key(callback.state());
        let record = match self.store.take_upstream_request(&key, now).await {
            Ok(Some(record)) => record,
            Ok(None) => return CallbackOutcome::Refused(CallbackError::UnknownState),
            Err(e) => return CallbackOutcome::Failed(format!("reading the sign-in failed: {e}")),
        };
        let (cookie_name, cookie_path) = self.binding_cookie(&key, &provider.id);
        if let Err(e) = upstream::check_record(
            &record,
            provider,
            cookie_value(cookie_header, &cookie_name),
            now,
        ) {
            return CallbackOutcome::Refused(e);
        }
        let clear_cookie = format!(
            "{cookie_name}=; Path={cookie_path}; Max-Age=0; HttpOnly; SameSite=Lax{}",
            if self.secure_cookies { "; Secure" } else { "" },
        );
        // From here the request is this browser's own: whatever happens, its MCP client (or
        // the application's page) hears the outcome.
        let signed_in = self.sign_in(provider, &record, &callback, now).await;
        let pending = match record.purpose {
            Purpose::Authorize(pending) => *pending,
            Purpose::SignIn { return_to } => {
                let (subject, failure) = match signed_in {
                    Ok(subject) => (Some(subject), None),
                    Err((_, why)) => (None, Some(why)),
                };
                return CallbackOutcome::SignedIn {
                    subject,
                    return_to,
                    clear_cookie,
                    failure,
                };
            }
        };
        let (redirect, failure, subject) = match signed_in {
            Ok(subject) => (
                self.engine.approve(pending, &subject, now).await,
                None,
                Some(subject),
            ),
            Err((code, why)) => {
                let description = if code == AuthorizeErrorCode::AccessDenied {
                    "the sign-in was refused"
                } else {
                    "the sign-in at the identity provider failed"
                };
                (
                    self.engine.fail(pending, code, description),
                    Some(why),
                    None,
                )
            }
        };
        match redirect {
            Ok(redirect) => CallbackOutcome::ToClient {
                location: redirect.location,
                clear_cookie,
                failure,
                subject,
            },
            Err(e) => CallbackOutcome::Failed(format!("finishing the authorization failed: {e}")),
        }
    }

    /// Everything between a genuine callback and a local subject.
    async fn sign_in(
        &self,
        provider: &Provider,
        record: &UpstreamRequest,
        callback: &Callback,
        now: UnixTime,
    ) -> Result<String, (AuthorizeErrorCode, String)> {
        let server_error = |why: String| (AuthorizeErrorCode::ServerError, why);
        upstream::check_issuer(provider, callback.iss())
            .map_err(|e| server_error(e.to_string()))?;
        let code = match callback {
            Callback::Code { code, .. } => code,
            Callback::Error { error, .. } => {
                let code = match error.as_str() {
                    "access_denied" => AuthorizeErrorCode::AccessDenied,
                    "temporarily_unavailable" => AuthorizeErrorCode::TemporarilyUnavailable,
                    _ => AuthorizeErrorCode::ServerError,
                };
                let error: String = error.chars().take(64).collect();
                return Err((code, format!("the identity provider answered `{error}`")));
            }
        };
        let callback_url = self.callback_url(&provider.id);
        let tokens = upstream::exchange_code(
            provider,
            &callback_url,
            code,
            record.pkce_verifier.as_deref(),
            &*self.transport,
        )
        .await
        .map_err(|e| server_error(e.to_string()))?;
        let claims = if provider.openid {
            let id_token = tokens
                .id_token
                .as_deref()
                .ok_or_else(|| server_error("no ID token came with the tokens".into()))?;
            let nonce = record.nonce.as_deref().unwrap_or_default();
            Some(
                self.validate_id_token(provider, id_token, nonce, now)
                    .await
                    .map_err(|e| server_error(e.to_string()))?,
            )
        } else {
            None
        };
        let identity =
            upstream::fetch_identity(provider, &tokens, claims.as_ref(), &*self.transport)
                .await
                .map_err(|e| server_error(e.to_string()))?;
        match self
            .mapper
            .map(&identity, &tokens, record.purpose.pending())
            .await
        {
            Mapping::Subject(subject) if !subject.is_empty() => Ok(subject),
            Mapping::Subject(_) => Err(server_error("the mapper chose an empty subject".into())),
            Mapping::Refuse(message) => Err((AuthorizeErrorCode::AccessDenied, message)),
            Mapping::Fail(reason) => Err(server_error(reason)),
        }
    }

    async fn validate_id_token(
        &self,
        provider: &Provider,
        token: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<Value, ProxyError> {
        let now = now.0;
        let cached = {
            let cache = self
                .jwks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache
                .get(&provider.id)
                .filter(|c| c.fetched_at.saturating_add(JWKS_TTL) > now)
                .map(|c| (c.document.clone(), c.fetched_at))
        };
        let (document, fetched_at) = match cached {
            Some(cached) => cached,
            None => (self.fetch_jwks(provider, UnixTime(now)).await?, now),
        };
        match id_token::validate(provider, &document, token, nonce, UnixTime(now)) {
            // The provider may have rotated its keys since the set was fetched.
            Err(IdTokenError::UnknownKey)
                if fetched_at.saturating_add(JWKS_REFETCH_AFTER) <= now =>
            {
                let document = self.fetch_jwks(provider, UnixTime(now)).await?;
                Ok(id_token::validate(
                    provider,
                    &document,
                    token,
                    nonce,
                    UnixTime(now),
                )?)
            }
            other => Ok(other?),
        }
    }

    async fn fetch_jwks(&self, provider: &Provider, now: UnixTime) -> Result<Vec<u8>, ProxyError> {
        let now = now.0;
        let url = provider
            .jwks_uri
            .as_ref()
            .ok_or_else(|| ProxyError::Token("the provider publishes no JWK Set".into()))?;
        let request = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| upstream::TransportError(e.to_string()))?;
        let response = self.transport.send(request).await?;
        if !response.status().is_success() {
            return Err(ProxyError::Upstream {
                endpoint: "JWK Set",
                status: response.status().as_u16().to_string(),
            });
        }
        let document = response.into_body();
        let mut cache = self
            .jwks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.insert(
            provider.id.clone(),
            CachedJwks {
                document: document.clone(),
                fetched_at: now,
            },
        );
        Ok(document)
    }
}

//! [`OAuthClient`]: one MCP server, start to finish. Discovers once, gets a client identity
//! (pre-registered, metadata document, or dynamic registration kept per authorization
//! server), authorizes in the browser through the loopback listener, keeps tokens in a
//! [`TokenStore`], refreshes them shortly before they expire (one refresh at a time, shared
//! by every concurrent caller), steps up on `insufficient_scope`, and revokes on logout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use url::Url;

use crate::Error;
use crate::authorize::{authorization_request, read_authorization_response};
use crate::challenge::BearerChallenge;
use crate::discovery::{Discovered, discover};
use crate::http::{HttpClient, ReqwestClient, UrlPolicy};
use crate::loopback::LoopbackListener;
use crate::registration::{ClientCredentials, RegistrationRequest, register};
use crate::store::{MemoryStore, TokenStore};
use crate::token::{TokenSet, exchange_code, refresh};

/// Refresh this long before the access token expires.
pub const REFRESH_LEEWAY: u64 = 60;

/// Opens the authorization URL for the user.
#[async_trait::async_trait]
pub trait Browser: Send + Sync {
    /// Opens `url`.
    ///
    /// # Errors
    ///
    /// [`Error::Browser`] when it cannot.
    async fn open(&self, url: &Url) -> Result<(), Error>;
}

/// The desktop's browser, started without a shell (a URL is never parsed as a command:
/// mcp-remote's remote code execution came from that).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemBrowser;

#[async_trait::async_trait]
impl Browser for SystemBrowser {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::Browser(format!("refusing to open {url}")));
        }
        let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
            ("open", vec![url.as_str()])
        } else if cfg!(target_os = "windows") {
            (
                "rundll32",
                vec!["url.dll,FileProtocolHandler", url.as_str()],
            )
        } else {
            ("xdg-open", vec![url.as_str()])
        };
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(|_| ())
            .map_err(|e| {
                Error::Browser(format!("cannot start {program}: {e}; open {url} yourself"))
            })
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A client identity configured on the builder, bound to the one authorization server it
/// was registered at: its credentials are never sent to another.
#[derive(Clone)]
enum Configured {
    /// A pre-registered `client_id` and, for a confidential client, its secret.
    PreRegistered {
        issuer: String,
        client_id: String,
        secret: Option<String>,
    },
    /// `client_id` authenticating with `private_key_jwt`: the PEM and the algorithm.
    PrivateKey {
        issuer: String,
        client_id: String,
        pem: String,
        algorithm: String,
    },
}

impl Configured {
    fn issuer(&self) -> &str {
        match self {
            Self::PreRegistered { issuer, .. } | Self::PrivateKey { issuer, .. } => issuer,
        }
    }
}

// Never the secret or the private key.
impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PreRegistered {
                issuer,
                client_id,
                secret,
            } => f
                .debug_struct("PreRegistered")
                .field("issuer", issuer)
                .field("client_id", client_id)
                .field("secret", &secret.as_ref().map(|_| "[redacted]"))
                .finish(),
            Self::PrivateKey {
                issuer,
                client_id,
                algorithm,
                ..
            } => f
                .debug_struct("PrivateKeyJwt")
                .field("issuer", issuer)
                .field("client_id", client_id)
                .field("algorithm", algorithm)
                .field("private_key", &"[redacted]")
                .finish(),
        }
    }
}

/// Builds an [`OAuthClient`].
#[derive(Debug)]
#[must_use]
pub struct OAuthClientBuilder {
    server: String,
    client_name: String,
    policy: UrlPolicy,
    configured: Option<Configured>,
    machine: bool,
    metadata_document_url: Option<String>,
    scope: Option<String>,
    authorization_timeout: Duration,
    http: Option<Arc<dyn HttpClient>>,
    store: Option<Arc<dyn TokenStore>>,
    browser: Option<Arc<dyn Browser>>,
    interactive: bool,
}

impl std::fmt::Debug for dyn HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl std::fmt::Debug for dyn Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Browser")
    }
}

impl OAuthClientBuilder {
    /// The name shown on the authorization server's consent page (dynamic registration).
    pub fn client_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.client_name);
        self
    }

    /// Accepts plain-http URLs on loopback hosts (development servers).
    pub fn allow_loopback_http(mut self) -> Self {
        self.policy.allow_loopback_http = true;
        self
    }

    /// Lets the authorization server and the URLs discovery finds be on private networks
    /// ([`UrlPolicy::allow_private_network`]); by default only the MCP server's own host may
    /// resolve to a private or reserved address.
    pub fn allow_private_network(mut self) -> Self {
        self.policy.allow_private_network = true;
        self
    }

    /// Uses a client registered beforehand at the authorization server `issuer` (first in
    /// the specification's order of preference). Its credentials are bound to that issuer:
    /// when discovery finds another, the client refuses to go on rather than send them there.
    pub fn pre_registered(
        mut self,
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Self {
        self.configured = Some(Configured::PreRegistered {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            secret: client_secret.map(str::to_owned),
        });
        self
    }

    /// Authenticates as `client_id`, registered at the authorization server `issuer`, with
    /// `private_key_jwt` (RFC 7523): assertions signed by `private_key_pem` (PKCS#8) with
    /// `algorithm` (`ES256`, `EdDSA`, `RS256`). Bound to `issuer` like
    /// [`pre_registered`](Self::pre_registered).
    pub fn private_key_jwt(
        mut self,
        issuer: &str,
        client_id: &str,
        private_key_pem: &str,
        algorithm: &str,
    ) -> Self {
        self.configured = Some(Configured::PrivateKey {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            pem: private_key_pem.to_owned(),
            algorithm: algorithm.to_owned(),
        });
        self
    }

    /// A machine client: tokens come from the `client_credentials` grant (RFC 6749 §4.4)
    /// with the pre-registered client (`client_secret_basic`) or `private_key_jwt`; no user,
    /// no browser.
    pub fn client_credentials(mut self) -> Self {
        self.machine = true;
        self
    }

    /// Uses this Client ID Metadata Document URL as the client id where the authorization
    /// server accepts them (`client_id_metadata_document_supported`).
    pub fn metadata_document(mut self, url: &str) -> Self {
        self.metadata_document_url = Some(url.to_owned());
        self
    }

    /// Asks for this scope (space-separated) beside what the server says it needs.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    /// How long the user may take in the browser (default five minutes).
    pub fn authorization_timeout(mut self, timeout: Duration) -> Self {
        self.authorization_timeout = timeout;
        self
    }

    /// Sends requests through `http` (default: [`ReqwestClient`]).
    pub fn http(mut self, http: Arc<dyn HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Keeps identities and tokens in `store` (default: memory).
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Opens authorization URLs with `browser` (default: [`SystemBrowser`]).
    pub fn browser(mut self, browser: Arc<dyn Browser>) -> Self {
        self.browser = Some(browser);
        self
    }

    /// Never asks the user: [`OAuthClient::get_valid_token`] refreshes but fails with
    /// [`Error::NotAuthorized`] instead of starting a new authorization (scripts, `mcpauth
    /// get`).
    pub fn non_interactive(mut self) -> Self {
        self.interactive = false;
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`Error::Insecure`] for a server URL the policy refuses; [`Error::Network`] when the
    /// HTTP client cannot start.
    pub fn build(self) -> Result<OAuthClient, Error> {
        let server = self.policy.check(&self.server)?;
        let http: Arc<dyn HttpClient> = match self.http {
            Some(http) => http,
            None => Arc::new(ReqwestClient::for_server(&server, self.policy)?),
        };
        Ok(OAuthClient {
            server: self.server,
            client_name: self.client_name,
            policy: self.policy,
            configured: self.configured,
            machine: self.machine,
            metadata_document_url: self.metadata_document_url,
            scope: self.scope,
            authorization_timeout: self.authorization_timeout,
            http,
            store: self
                .store
                .unwrap_or_else(|| Arc::new(MemoryStore::default())),
            browser: self.browser.unwrap_or_else(|| Arc::new(SystemBrowser)),
            interactive: self.interactive,
            discovered: Mutex::new(None),
            flight: Mutex::new(()),
        })
    }
}

/// An MCP server's OAuth, from the client's seat.
#[derive(Debug)]
pub struct OAuthClient {
    server: String,
    client_name: String,
    policy: UrlPolicy,
    configured: Option<Configured>,
    machine: bool,
    metadata_document_url: Option<String>,
    scope: Option<String>,
    authorization_timeout: Duration,
    http: Arc<dyn HttpClient>,
    store: Arc<dyn TokenStore>,
    browser: Arc<dyn Browser>,
    interactive: bool,
    discovered: Mutex<Option<Discovered>>,
    /// Held while tokens are refreshed or obtained: concurrent callers wait, then use the
    /// result, so one expiring token causes one refresh.
    flight: Mutex<()>,
}

impl OAuthClient {
    /// A builder for the MCP server at `server` (its full URL, e.g. `https://mcp.example/mcp`).
    pub fn builder(server: &str) -> OAuthClientBuilder {
        OAuthClientBuilder {
            server: server.to_owned(),
            client_name: "mcpauth".into(),
            policy: UrlPolicy::https_only(),
            configured: None,
            machine: false,
            metadata_document_url: None,
            scope: None,
            authorization_timeout: Duration::from_secs(300),
            http: None,
            store: None,
            browser: None,
            interactive: true,
        }
    }

    /// The MCP server's URL.
    #[must_use]
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Discovers the authorization server (once; later calls reuse the result): asks the MCP
    /// server without a token and follows its `401`.
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] naming the URL that failed, [`Error::Network`], [`Error::Insecure`].
    pub async fn discover(&self) -> Result<Discovered, Error> {
        let mut cached = self.discovered.lock().await;
        if let Some(discovered) = cached.as_ref() {
            return Ok(discovered.clone());
        }
        let challenge = self.probe().await?;
        let discovered =
            discover(&*self.http, &self.server, challenge.as_ref(), self.policy).await?;
        *cached = Some(discovered.clone());
        Ok(discovered)
    }

    /// Rediscovers on the next call (the server moved to another authorization server).
    pub async fn forget_discovery(&self) {
        *self.discovered.lock().await = None;
    }

    /// An unauthenticated request to the MCP server: its `401` challenge, if any.
    async fn probe(&self) -> Result<Option<BearerChallenge>, Error> {
        let request = http::Request::post(self.server.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .body(
                br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpauth","version":"0"}}}"#
                    .to_vec(),
            )
            .map_err(|e| Error::Network {
                url: self.server.clone(),
                reason: e.to_string(),
            })?;
        let response = self.http.send(request).await?;
        if response.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        Ok(BearerChallenge::from_headers(
            response
                .headers()
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        ))
    }

    /// The identity configured on the builder (pre-registered or `private_key_jwt`), if any,
    /// for the authorization server `issuer`.
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] when it was configured for another issuer: its credentials are
    /// not sent to this one.
    fn configured_credentials(&self, issuer: &str) -> Result<Option<ClientCredentials>, Error> {
        let Some(configured) = &self.configured else {
            return Ok(None);
        };
        if !crate::discovery::same_issuer(configured.issuer(), issuer) {
            return Err(Error::Discovery {
                url: self.server.clone(),
                reason: format!(
                    "the client is configured for the authorization server {}, but this MCP \
                     server names {issuer}: its credentials are not sent there",
                    configured.issuer()
                ),
            });
        }
        Ok(Some(match configured {
            Configured::PreRegistered {
                client_id, secret, ..
            } => ClientCredentials::pre_registered(issuer, client_id, secret.as_deref()),
            Configured::PrivateKey {
                client_id,
                pem,
                algorithm,
                ..
            } => ClientCredentials::private_key_jwt(issuer, client_id, pem, algorithm),
        }))
    }

    /// The client's identity at the discovered authorization server, registering when it
    /// has none (with `redirect_uri` as its redirect URI).
    async fn credentials(
        &self,
        discovered: &Discovered,
        redirect_uri: &str,
    ) -> Result<ClientCredentials, Error> {
        let issuer = discovered.issuer();
        if let Some(configured) = self.configured_credentials(issuer)? {
            return Ok(configured);
        }
        if let Some(stored) = self.store.load_credentials(issuer).await?
            && !stored.expired(now())
        {
            return Ok(stored);
        }
        if let Some(document) = &self.metadata_document_url
            && discovered
                .authorization_server
                .client_id_metadata_document_supported
        {
            return Ok(ClientCredentials::pre_registered(issuer, document, None));
        }
        let request = RegistrationRequest::native(
            &self.client_name,
            vec![redirect_uri.to_owned()],
            discovered
                .authorization_server
                .device_authorization_endpoint
                .is_some(),
        );
        let credentials = register(
            &*self.http,
            &discovered.authorization_server,
            &request,
            self.policy,
        )
        .await?;
        self.store.save_credentials(&credentials).await?;
        Ok(credentials)
    }

    fn token_endpoint(&self, discovered: &Discovered) -> Result<Url, Error> {
        let endpoint = discovered
            .authorization_server
            .token_endpoint
            .as_deref()
            .ok_or_else(|| Error::Discovery {
                url: discovered.issuer().to_owned(),
                reason: "no token_endpoint".into(),
            })?;
        self.policy.check(endpoint)
    }

    /// The scope to ask for: what discovery found, what the builder added, and `more`.
    fn wanted_scope(&self, discovered: &Discovered, more: Option<&str>) -> Option<String> {
        let mut scopes: Vec<&str> = Vec::new();
        for part in [discovered.scope.as_deref(), self.scope.as_deref(), more]
            .into_iter()
            .flatten()
        {
            for scope in part.split_ascii_whitespace() {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        (!scopes.is_empty()).then(|| scopes.join(" "))
    }

    /// Authorizes in the browser (authorization code + PKCE through the loopback listener),
    /// asking for `scope` on top of what the server needs; keeps and returns the tokens.
    ///
    /// # Errors
    ///
    /// Any [`Error`]: discovery, registration, the user's refusal, the time limit, the code
    /// exchange, storage.
    pub async fn authorize(&self, scope: Option<&str>) -> Result<TokenSet, Error> {
        let _flight = self.flight.lock().await;
        self.authorize_locked(scope).await
    }

    async fn authorize_locked(&self, scope: Option<&str>) -> Result<TokenSet, Error> {
        if self.machine {
            return self.client_credentials_locked(scope).await;
        }
        if !self.interactive {
            return Err(Error::NotAuthorized {
                server: self.server.clone(),
            });
        }
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let stored = self.store.load_credentials(&issuer).await?;
        let preferred_port = stored
            .as_ref()
            .and_then(|c| c.redirect_uris.first())
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| u.port());
        let listener = LoopbackListener::bind(preferred_port).await?;
        let redirect_uri = listener.redirect_uri();
        let credentials = self.credentials(&discovered, &redirect_uri).await?;
        let wanted = self.wanted_scope(&discovered, scope);
        let request = authorization_request(
            &discovered.authorization_server,
            &credentials.client_id,
            &redirect_uri,
            wanted.as_deref(),
            &discovered.resource,
        )?;
        self.browser.open(&request.url).await?;
        let query = listener
            .wait(&request.state, self.authorization_timeout)
            .await?;
        let code =
            read_authorization_response(&query, &request.state, &discovered.authorization_server)?;
        let tokens = exchange_code(
            &*self.http,
            &self.token_endpoint(&discovered)?,
            &credentials,
            &code,
            &request.redirect_uri,
            &request.verifier,
            &discovered.resource,
            wanted.as_deref(),
            now(),
        )
        .await?;
        self.store
            .save_tokens(&issuer, &discovered.resource, &tokens)
            .await?;
        Ok(tokens)
    }

    /// The `client_credentials` grant for a machine client.
    async fn client_credentials_locked(&self, scope: Option<&str>) -> Result<TokenSet, Error> {
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let credentials =
            self.configured_credentials(&issuer)?
                .ok_or_else(|| Error::Registration {
                    url: issuer.clone(),
                    reason:
                        "the client_credentials grant needs a pre-registered client (a secret or \
                         a private key)"
                            .into(),
                })?;
        let wanted = self.wanted_scope(&discovered, scope);
        let tokens = crate::token::client_credentials(
            &*self.http,
            &self.token_endpoint(&discovered)?,
            &credentials,
            wanted.as_deref(),
            &discovered.resource,
            now(),
        )
        .await?;
        self.store
            .save_tokens(&issuer, &discovered.resource, &tokens)
            .await?;
        Ok(tokens)
    }

    /// Authorizes with the device flow (RFC 8628), for when there is no browser here: `show`
    /// gets the user code and where to enter it, then the client polls until the user
    /// decides. Keeps and returns the tokens.
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] when the server offers no device flow; the user's refusal
    /// ([`Error::Denied`]), the code's expiry ([`Error::Timeout`]), and the other steps'.
    pub async fn authorize_device(
        &self,
        scope: Option<&str>,
        show: &(dyn Fn(&crate::device::DeviceCode) + Send + Sync),
    ) -> Result<TokenSet, Error> {
        let _flight = self.flight.lock().await;
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let endpoint = discovered
            .authorization_server
            .device_authorization_endpoint
            .as_deref()
            .ok_or_else(|| Error::Discovery {
                url: discovered
                    .metadata_url
                    .clone()
                    .unwrap_or_else(|| issuer.clone()),
                reason: "the authorization server offers no device flow \
                         (no device_authorization_endpoint): authorize in a browser"
                    .into(),
            })?;
        let endpoint = self.policy.check(endpoint)?;
        // Registered with a loopback redirect URI too (any port, RFC 8252 §7.3), so the same
        // identity serves browser authorizations later.
        let credentials = self
            .credentials(&discovered, "http://127.0.0.1/callback")
            .await?;
        let wanted = self.wanted_scope(&discovered, scope);
        let code = crate::device::request_device_code(
            &*self.http,
            &endpoint,
            &credentials,
            wanted.as_deref(),
            &discovered.resource,
            now(),
        )
        .await?;
        show(&code);
        let tokens = crate::device::poll_for_tokens(
            &*self.http,
            &self.token_endpoint(&discovered)?,
            &credentials,
            &code,
            &discovered.resource,
            wanted.as_deref(),
            now,
        )
        .await?;
        self.store
            .save_tokens(&issuer, &discovered.resource, &tokens)
            .await?;
        Ok(tokens)
    }

    /// The tokens held for this server, if any (no network).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], or discovery's errors (the issuer names the entry).
    pub async fn held_tokens(&self) -> Result<Option<TokenSet>, Error> {
        let discovered = self.discover().await?;
        self.store
            .load_tokens(discovered.issuer(), &discovered.resource)
            .await
    }

    /// An access token good for at least [`REFRESH_LEEWAY`] more seconds: the one held,
    /// else a refreshed one, else (no tokens, or the refresh token refused) a new
    /// authorization in the browser. Concurrent callers share one refresh.
    ///
    /// # Errors
    ///
    /// Any [`Error`].
    pub async fn get_valid_token(&self) -> Result<String, Error> {
        let _flight = self.flight.lock().await;
        self.valid_token_locked(true)
            .await?
            .ok_or_else(|| Error::NotAuthorized {
                server: self.server.clone(),
            })
    }

    /// Like [`get_valid_token`](Self::get_valid_token), but never starts a new
    /// authorization: the held token (refreshed if needed), or `None`. An MCP client sends
    /// its first request with this and lets the server's `401` say what it needs.
    ///
    /// # Errors
    ///
    /// Discovery, storage and network errors.
    pub async fn held_or_refreshed_token(&self) -> Result<Option<String>, Error> {
        let _flight = self.flight.lock().await;
        self.valid_token_locked(false).await
    }

    /// Answers an MCP server's `401` (RFC 6750 §3 / RFC 9728 §5.1): rediscovers from its
    /// challenge (the server may have moved to another authorization server: credentials
    /// and tokens are never carried across), then refreshes the refused token `sent` or
    /// authorizes for the challenge's scope.
    ///
    /// # Errors
    ///
    /// Any [`Error`].
    pub async fn answer_unauthorized(
        &self,
        challenge: &BearerChallenge,
        sent: Option<&str>,
    ) -> Result<String, Error> {
        let _flight = self.flight.lock().await;
        let discovered = discover(&*self.http, &self.server, Some(challenge), self.policy).await?;
        *self.discovered.lock().await = Some(discovered.clone());
        let issuer = discovered.issuer().to_owned();
        if let Some(mut tokens) = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?
        {
            if Some(tokens.access_token.as_str()) != sent {
                // Another caller got a new token meanwhile.
                return Ok(tokens.access_token);
            }
            // Refused before its time: refresh it (or authorize again).
            tokens.expires_at = Some(0);
            self.store
                .save_tokens(&issuer, &discovered.resource, &tokens)
                .await?;
            return self
                .valid_token_locked(true)
                .await?
                .ok_or_else(|| Error::NotAuthorized {
                    server: self.server.clone(),
                });
        }
        Ok(self.authorize_locked(None).await?.access_token)
    }

    /// The held token, refreshed when it is about to expire; `authorize`: a new
    /// authorization when there is none (or the refresh token is dead).
    async fn valid_token_locked(&self, authorize: bool) -> Result<Option<String>, Error> {
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let held = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?;
        if let Some(tokens) = &held
            && !tokens.expires_within(now(), REFRESH_LEEWAY)
        {
            return Ok(Some(tokens.access_token.clone()));
        }
        // Other processes sharing the store wait here; after the wait the tokens may be
        // fresh already (another process refreshed them), so read them again.
        let _entry = self
            .store
            .lock_tokens(&issuer, &discovered.resource)
            .await?;
        let held = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?;
        let refreshed = match held {
            Some(tokens) if !tokens.expires_within(now(), REFRESH_LEEWAY) => {
                return Ok(Some(tokens.access_token));
            }
            Some(tokens) if tokens.refresh_token.is_some() => {
                match self.refresh_locked(&discovered, &tokens).await {
                    Ok(fresh) => return Ok(Some(fresh.access_token)),
                    Err(Error::Refresh { .. }) => {
                        // The refresh token is dead: forget it and ask the user again.
                        self.store
                            .delete_tokens(&issuer, &discovered.resource)
                            .await?;
                        false
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => false,
        };
        if authorize && !refreshed {
            return Ok(Some(self.authorize_locked(None).await?.access_token));
        }
        Ok(None)
    }

    /// Refreshes `held`, retrying network failures (not refusals) with backoff.
    async fn refresh_locked(
        &self,
        discovered: &Discovered,
        held: &TokenSet,
    ) -> Result<TokenSet, Error> {
        let credentials = match self.configured_credentials(discovered.issuer())? {
            Some(configured) => configured,
            None => self
                .store
                .load_credentials(discovered.issuer())
                .await?
                .ok_or_else(|| Error::Refresh {
                    url: discovered.issuer().to_owned(),
                    error: None,
                    description: Some("no client identity is kept for this server".into()),
                })?,
        };
        let endpoint = self.token_endpoint(discovered)?;
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0;
        let fresh = loop {
            attempt += 1;
            match refresh(
                &*self.http,
                &endpoint,
                &credentials,
                held,
                &discovered.resource,
                now(),
            )
            .await
            {
                Err(e) if e.is_transient() && attempt < 3 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => break other?,
            }
        };
        self.store
            .save_tokens(discovered.issuer(), &discovered.resource, &fresh)
            .await?;
        Ok(fresh)
    }

    /// Marks the held access token as expired, so the next
    /// [`get_valid_token`](Self::get_valid_token) refreshes it: for when the MCP server
    /// refused it (`401 invalid_token`) before its time.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], discovery's errors.
    pub async fn expire_access_token(&self) -> Result<(), Error> {
        let _flight = self.flight.lock().await;
        let discovered = self.discover().await?;
        if let Some(mut tokens) = self
            .store
            .load_tokens(discovered.issuer(), &discovered.resource)
            .await?
        {
            tokens.expires_at = Some(0);
            self.store
                .save_tokens(discovered.issuer(), &discovered.resource, &tokens)
                .await?;
        }
        Ok(())
    }

    /// Step-up (RFC 6750 §3.1 `insufficient_scope`): authorizes again for the union of the
    /// scope held and the scope the challenge names. Callers stop after a few attempts (the
    /// MCP specification's conformance suite expects at most three).
    ///
    /// # Errors
    ///
    /// Any [`Error`] of [`authorize`](Self::authorize).
    pub async fn step_up(&self, challenge: &BearerChallenge) -> Result<String, Error> {
        let _flight = self.flight.lock().await;
        let held = self.held_tokens().await?;
        let mut union: Vec<String> = held
            .as_ref()
            .map(|t| t.scopes().map(str::to_owned).collect())
            .unwrap_or_default();
        for scope in challenge
            .scope
            .as_deref()
            .unwrap_or("")
            .split_ascii_whitespace()
        {
            if !union.iter().any(|s| s == scope) {
                union.push(scope.to_owned());
            }
        }
        let scope = union.join(" ");
        Ok(self
            .authorize_locked(Some(&scope).filter(|s| !s.is_empty()).map(String::as_str))
            .await?
            .access_token)
    }

    /// Logs out: revokes the refresh token and the access token where the server offers
    /// revocation (RFC 7009), then forgets them. Revocation failures do not keep the tokens.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], discovery's errors.
    pub async fn logout(&self) -> Result<(), Error> {
        let _flight = self.flight.lock().await;
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        if let Some(tokens) = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?
            && let Some(endpoint) = discovered
                .authorization_server
                .revocation_endpoint
                .as_deref()
                .map(|e| self.policy.check(e))
                .transpose()?
        {
            let credentials = match self.configured_credentials(&issuer)? {
                Some(configured) => Some(configured),
                None => self.store.load_credentials(&issuer).await?,
            };
            if let Some(credentials) = credentials {
                let hints = [
                    (tokens.refresh_token.as_deref(), "refresh_token"),
                    (Some(tokens.access_token.as_str()), "access_token"),
                ];
                for (token, hint) in hints {
                    if let Some(token) = token {
                        self.revoke(&endpoint, &credentials, token, hint).await;
                    }
                }
            }
        }
        self.store
            .delete_tokens(&issuer, &discovered.resource)
            .await
    }

    async fn revoke(&self, endpoint: &Url, client: &ClientCredentials, token: &str, hint: &str) {
        let params = [("token", token), ("token_type_hint", hint)];
        if let Ok(request) = crate::token::authenticated_form(endpoint, client, &params, now()) {
            // RFC 7009 §2.2: 200 whether or not the token was valid; nothing to do on failure
            // but forget the token anyway.
            let _ = self.http.send(request).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const SECRET: &str = "s3cr3t-client-secret-value";
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";

    // Never leak secrets in Debug: neither the builder nor the client prints a client secret
    // or a private key.
    #[test]
    fn no_debug_output_shows_a_secret_or_a_private_key() {
        let with_secret = OAuthClient::builder("https://mcp.example/mcp").pre_registered(
            "https://as.example",
            "client-1",
            Some(SECRET),
        );
        let with_key = OAuthClient::builder("https://mcp.example/mcp").private_key_jwt(
            "https://as.example",
            "client-2",
            PEM,
            "ES256",
        );
        for text in [
            format!("{with_secret:?}"),
            format!("{with_key:?}"),
            format!("{:?}", with_secret.build().unwrap()),
            format!("{:?}", with_key.build().unwrap()),
        ] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("MIGHAgEA"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
    }
}

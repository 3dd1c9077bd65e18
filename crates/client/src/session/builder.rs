//! [`OAuthClientBuilder`]: what an [`OAuthClient`] is configured with.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::Error;
use crate::http::{HttpClient, ReqwestClient, UrlPolicy};
use crate::store::{MemoryStore, TokenStore};

use super::{Browser, OAuthClient, SystemBrowser};

/// A client identity configured on the builder, bound to the one authorization server it
/// was registered at: its credentials are never sent to another.
#[derive(Clone)]
pub(super) enum Configured {
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
    pub(super) fn issuer(&self) -> &str {
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
    dpop: bool,
    assertion: Option<crate::assertion::AssertionSource>,
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

    /// Authorizes without a browser, with the JWT bearer grant (RFC 7523 §2.1): an ID-JAG
    /// obtained from the user's enterprise identity provider (enterprise-managed
    /// authorization), or a workload's own token (workload identity). A configured client
    /// ([`pre_registered`](Self::pre_registered)) authenticates the request; without one, a
    /// workload token is sent alone.
    pub fn assertion(mut self, source: crate::assertion::AssertionSource) -> Self {
        self.assertion = Some(source);
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

    /// Whether to bind tokens to a DPoP key (RFC 9449) where the authorization server takes
    /// proofs this client makes (`ES256` in `dpop_signing_alg_values_supported`): on by
    /// default. Off, tokens are bearer tokens everywhere, and a server that requires DPoP
    /// refuses them.
    pub fn dpop(mut self, enabled: bool) -> Self {
        self.dpop = enabled;
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
            dpop: self.dpop,
            assertion: self.assertion,
            resource_nonce: std::sync::Mutex::new(None),
            discovered: Mutex::new(None),
            flight: Mutex::new(()),
        })
    }
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
            dpop: true,
            assertion: None,
        }
    }
}

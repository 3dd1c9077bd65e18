//! [`OAuthClient`]: one MCP server, start to finish. Discovers once, gets a client identity
//! (pre-registered, metadata document, or dynamic registration kept per authorization
//! server), authorizes in the browser through the loopback listener, keeps tokens in a
//! [`TokenStore`], refreshes them shortly before they expire (one refresh at a time, shared
//! by every concurrent caller), steps up on `insufficient_scope`, and revokes on logout.

mod browser;
mod builder;
mod credentials;
mod grants;
mod resource;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use url::Url;

use crate::Error;
use crate::challenge::BearerChallenge;
use crate::discovery::{Discovered, discover};
use crate::http::{HttpClient, UrlPolicy};
use crate::store::TokenStore;

pub use browser::{Browser, SystemBrowser};
use builder::Configured;
pub use builder::OAuthClientBuilder;
pub use resource::ResourceAuthorization;
pub use tokens::LoggedOut;

/// Refresh this long before the access token expires.
pub const REFRESH_LEEWAY: u64 = 60;

/// Seconds since the epoch, from the workspace's one system clock.
pub(crate) fn now() -> u64 {
    mcpauth_oauth_types::now().0
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
    /// Bind tokens to a DPoP key where the authorization server takes proofs.
    dpop: bool,
    /// Where the JWT bearer grant's assertion comes from, for clients that authorize with it.
    assertion: Option<crate::assertion::AssertionSource>,
    /// The resource server's last `DPoP-Nonce` (RFC 9449 §9).
    resource_nonce: std::sync::Mutex<Option<String>>,
    discovered: Mutex<Option<Discovered>>,
    /// Held while tokens are refreshed or obtained: concurrent callers wait, then use the
    /// result, so one expiring token causes one refresh.
    flight: Mutex<()>,
}

impl OAuthClient {
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
                reason: "the request could not be built".into(),
                source: Some(Box::new(e)),
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

    /// A fresh DPoP key for the tokens an authorization is about to obtain, when this client
    /// binds tokens and the authorization server takes its proofs (RFC 9449).
    fn dpop_key_for(
        &self,
        discovered: &Discovered,
    ) -> Result<Option<crate::dpop::DpopKeyMaterial>, Error> {
        if self.dpop && crate::dpop::supported_by(&discovered.authorization_server) {
            crate::dpop::DpopKeyMaterial::generate().map(Some)
        } else {
            Ok(None)
        }
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

//! Getting tokens: the authorization code flow through the browser and the loopback listener,
//! `client_credentials`, and the device flow.

use url::Url;

use crate::Error;
use crate::authorize::{authorization_request, read_authorization_response};
use crate::loopback::LoopbackListener;
use crate::token::{TokenSet, exchange_code};

use super::*;

impl OAuthClient {
    /// Authorizes in the browser (authorization code + PKCE through the loopback listener),
    /// asking for `scope` on top of what the server needs; keeps and returns the tokens.
    /// Where no browser opens on this machine ([`Browser::opens_on_this_machine`]) and the
    /// server offers the device flow, uses it instead ([`Browser::show_device_code`]).
    ///
    /// [`Browser::opens_on_this_machine`]: crate::Browser::opens_on_this_machine
    /// [`Browser::show_device_code`]: crate::Browser::show_device_code
    ///
    /// # Errors
    ///
    /// Any [`Error`]: discovery, registration, the user's refusal, the time limit, the code
    /// exchange, storage.
    pub async fn authorize(&self, scope: Option<&str>) -> Result<TokenSet, Error> {
        let _flight = self.flight.lock().await;
        self.authorize_locked(scope).await
    }

    pub(super) async fn authorize_locked(&self, scope: Option<&str>) -> Result<TokenSet, Error> {
        if let Some(source) = &self.assertion {
            return self.jwt_bearer_locked(source, scope).await;
        }
        if self.machine {
            return self.client_credentials_locked(scope).await;
        }
        if !self.interactive {
            return Err(Error::NotAuthorized {
                server: self.server.clone(),
            });
        }
        let discovered = self.discover().await?;
        // Nobody can finish in a browser here (a headless machine): the device flow, where
        // the server offers it, instead of waiting for a redirect that cannot come.
        if !self.browser.opens_on_this_machine()
            && discovered
                .authorization_server
                .device_authorization_endpoint
                .is_some()
        {
            let browser = self.browser.clone();
            return self
                .authorize_device_locked(scope, &move |code| browser.show_device_code(code))
                .await;
        }
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
        let dpop = self.dpop_key_for(&discovered)?;
        let mut request = authorization_request(
            &discovered.authorization_server,
            &credentials.client_id,
            &redirect_uri,
            wanted.as_deref(),
            &discovered.resource,
        )?;
        if let Some(dpop) = &dpop {
            // RFC 9449 §10: the code is bound to the key, so only this client can redeem it.
            request
                .url
                .query_pairs_mut()
                .append_pair("dpop_jkt", dpop.key()?.thumbprint());
        }
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
            dpop.as_ref(),
        )
        .await?;
        self.store
            .save_tokens(&issuer, &discovered.resource, &tokens)
            .await?;
        Ok(tokens)
    }

    /// The JWT bearer grant (RFC 7523 §2.1) with an ID-JAG from the enterprise identity
    /// provider, or with a workload token.
    async fn jwt_bearer_locked(
        &self,
        source: &crate::assertion::AssertionSource,
        scope: Option<&str>,
    ) -> Result<TokenSet, Error> {
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let wanted = self.wanted_scope(&discovered, scope);
        // The configured client is bound to its authorization server: checked before anything
        // is asked of the identity provider for this one.
        let credentials = self.configured_credentials(&issuer)?;
        // One key for the chain: the provider binds the ID-JAG to it, the authorization
        // server the token.
        let dpop = self.dpop_key_for(&discovered)?;
        let assertion = match (source, source.workload_token()?) {
            (_, Some(token)) => token,
            (crate::assertion::AssertionSource::EnterpriseIdp(idp), None) => {
                let endpoint = self.policy.check(&idp.token_endpoint)?;
                crate::assertion::request_identity_assertion(
                    &*self.http,
                    &endpoint,
                    idp,
                    &issuer,
                    &discovered.resource,
                    wanted.as_deref(),
                    dpop.as_ref(),
                )
                .await?
            }
            (crate::assertion::AssertionSource::GitHubActions, None) => {
                crate::assertion::github_actions_token(&*self.http, self.policy, &issuer).await?
            }
            (_, None) => {
                return Err(Error::Storage("no workload token to present".into()));
            }
        };
        crate::assertion::check_audience(&assertion, &issuer)?;
        let tokens = crate::assertion::jwt_bearer(
            &*self.http,
            &self.token_endpoint(&discovered)?,
            credentials.as_ref(),
            &assertion,
            &discovered.resource,
            wanted.as_deref(),
            now(),
            dpop.as_ref(),
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
        let dpop = self.dpop_key_for(&discovered)?;
        let tokens = crate::token::client_credentials(
            &*self.http,
            &self.token_endpoint(&discovered)?,
            &credentials,
            wanted.as_deref(),
            &discovered.resource,
            now(),
            dpop.as_ref(),
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
        self.authorize_device_locked(scope, show).await
    }

    async fn authorize_device_locked(
        &self,
        scope: Option<&str>,
        show: &(dyn Fn(&crate::device::DeviceCode) + Send + Sync),
    ) -> Result<TokenSet, Error> {
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
            self.dpop_key_for(&discovered)?.as_ref(),
        )
        .await?;
        self.store
            .save_tokens(&issuer, &discovered.resource, &tokens)
            .await?;
        Ok(tokens)
    }
}

//! The client identity at one authorization server: configured, a Client ID Metadata Document, or
//! dynamic registration (kept per server).

use crate::Error;
use crate::discovery::Discovered;
use crate::registration::{ClientCredentials, RegistrationRequest, register};

use super::*;

impl OAuthClient {
    /// The identity configured on the builder (pre-registered or `private_key_jwt`), if any,
    /// for the authorization server `issuer`.
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] when it was configured for another issuer: its credentials are
    /// not sent to this one.
    pub(super) fn configured_credentials(
        &self,
        issuer: &str,
    ) -> Result<Option<ClientCredentials>, Error> {
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
    pub(super) async fn credentials(
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
}

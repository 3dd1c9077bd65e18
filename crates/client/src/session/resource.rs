//! Requests to the MCP server: the `Authorization` header for the token held (`Bearer`, or
//! `DPoP` with a fresh proof for a bound token, RFC 9449 §7), and the resource server's nonce
//! (§9), kept for the next proofs.

use super::*;

/// What a request to the MCP server carries to present a token.
#[derive(Clone)]
#[non_exhaustive]
pub struct ResourceAuthorization {
    /// The `Authorization` header's value: `Bearer <token>`, or `DPoP <token>` for a token
    /// bound to a key.
    pub authorization: String,
    /// The `DPoP` header's value: a proof for this one request (bound tokens only).
    pub dpop: Option<String>,
}

impl std::fmt::Debug for ResourceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceAuthorization")
            .field(
                "scheme",
                &self.authorization.split(' ').next().unwrap_or_default(),
            )
            .field("dpop", &self.dpop.as_ref().map(|_| "[proof]"))
            .finish()
    }
}

impl ResourceAuthorization {
    /// Puts the headers on `headers`.
    ///
    /// # Errors
    ///
    /// [`Error::Dpop`] if a value cannot be a header (it always can: tokens and proofs are
    /// visible ASCII).
    pub fn apply(&self, headers: &mut http::HeaderMap) -> Result<(), Error> {
        let value = |v: &str| {
            http::HeaderValue::from_str(v)
                .map_err(|_| Error::Dpop("a token or proof is not a header value".into()))
        };
        headers.insert(http::header::AUTHORIZATION, value(&self.authorization)?);
        if let Some(proof) = &self.dpop {
            headers.insert(http::HeaderName::from_static("dpop"), value(proof)?);
        }
        Ok(())
    }
}

impl OAuthClient {
    /// How a `method` request to `uri` presents `access_token` (one this client holds):
    /// `Bearer`, or for a DPoP-bound token `DPoP` and a proof for this request, signed over the
    /// token's hash and the resource server's last nonce (RFC 9449 §7, §9).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], discovery's errors, [`Error::Dpop`].
    pub async fn resource_authorization(
        &self,
        access_token: &str,
        method: &str,
        uri: &str,
    ) -> Result<ResourceAuthorization, Error> {
        let discovered = self.discover().await?;
        let held = self
            .store
            .load_tokens(discovered.issuer(), &discovered.resource)
            .await?
            .filter(|held| held.access_token == access_token);
        let Some(key) = held.as_ref().and_then(|held| held.dpop_key.as_ref()) else {
            return Ok(ResourceAuthorization {
                authorization: format!("Bearer {access_token}"),
                dpop: None,
            });
        };
        let nonce = self.resource_nonce();
        let proof = crate::dpop::proof(
            &key.key()?,
            method,
            uri,
            nonce.as_deref(),
            Some(access_token),
        )?;
        Ok(ResourceAuthorization {
            authorization: format!("DPoP {access_token}"),
            dpop: Some(proof),
        })
    }

    /// The resource server asked for a nonce (`use_dpop_nonce`, RFC 9449 §9) in a response
    /// this client's transport did not show: asks it again with `access_token` and an empty
    /// JSON-RPC body (refused before it is read, so nothing runs), keeps the `DPoP-Nonce` it
    /// answers with, and says whether there was one.
    ///
    /// # Errors
    ///
    /// [`Error::Network`], and those of [`resource_authorization`](Self::resource_authorization).
    pub async fn refresh_resource_nonce(&self, access_token: &str) -> Result<bool, Error> {
        self.set_resource_nonce(None);
        let authorization = self
            .resource_authorization(access_token, "POST", &self.server)
            .await?;
        let mut request = http::Request::post(self.server.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .body(b"{}".to_vec())
            .map_err(|e| Error::Network {
                url: self.server.clone(),
                reason: "the request could not be built".into(),
                source: Some(Box::new(e)),
            })?;
        authorization.apply(request.headers_mut())?;
        let response = self.http.send(request).await?;
        let nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 512)
            .map(str::to_owned);
        let found = nonce.is_some();
        self.set_resource_nonce(nonce);
        Ok(found)
    }

    /// Keeps the nonce a resource server sent in `DPoP-Nonce` for the next proofs (RFC 9449
    /// §9); `None` forgets it.
    pub fn set_resource_nonce(&self, nonce: Option<String>) {
        *self
            .resource_nonce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = nonce;
    }

    fn resource_nonce(&self) -> Option<String> {
        self.resource_nonce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

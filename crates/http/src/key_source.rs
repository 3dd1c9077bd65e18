//! Where a resource server gets what it checks tokens against: the authorization server's JWK
//! Set (RFC 7517, at its `jwks_uri`) and, for opaque tokens, RFC 7662 introspection answers.
//!
//! The admission state machine never reaches the network itself; it asks a [`KeySource`].
//! [`HttpKeySource`] (reqwest, no redirects, 5 s timeout) is the default; a test, a
//! framework with its own HTTP client, or a deployment that ships keys another way plugs in
//! its own.

use bytes::Bytes;

use crate::resource_server::IntrospectionClient;

/// Why a [`KeySource`] could not answer. The resource server then answers `503` with
/// `Retry-After` (the token may be fine) and logs the cause.
pub type KeySourceError = Box<dyn std::error::Error + Send + Sync>;

/// Fetches what tokens are checked against. Answers larger than 64 KiB are not used.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// The JWK Set document at `jwks_uri`, as fetched (a `200` answer's body).
    ///
    /// # Errors
    ///
    /// The authorization server could not be reached or did not answer `200`.
    async fn jwk_set(&self, jwks_uri: &str) -> Result<Bytes, KeySourceError>;

    /// The RFC 7662 introspection answer for the access token `token`, asked as `client`
    /// (RFC 7662 §2.1: the resource server authenticates).
    ///
    /// # Errors
    ///
    /// The endpoint could not be reached or did not answer `200`.
    async fn introspect(
        &self,
        client: &IntrospectionClient,
        token: &str,
    ) -> Result<Bytes, KeySourceError>;

    /// A call of the revocation receiver to the authorization server's Shared Signals
    /// transmitter (SSF 1.0, RFC 8936): `method` on `url`, as the client `credentials` (id and
    /// secret, HTTP Basic) when given, with a JSON `body`. The answer's status and body, whatever
    /// the status. By default the source does not make such calls.
    ///
    /// # Errors
    ///
    /// The transmitter could not be reached, or this source makes no such calls.
    async fn shared_signals(
        &self,
        method: &str,
        url: &str,
        credentials: Option<(&str, &str)>,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), KeySourceError> {
        let _ = (method, url, credentials, body);
        Err("this KeySource makes no Shared Signals calls: implement KeySource::shared_signals, or use HttpKeySource".into())
    }
}

/// The default [`KeySource`] (the `reqwest` feature): HTTP with reqwest, redirects not followed (an authorization
/// server's keys are where its metadata says), 5 s per request.
#[cfg(feature = "reqwest")]
#[derive(Debug, Clone)]
pub struct HttpKeySource {
    http: reqwest::Client,
}

#[cfg(feature = "reqwest")]
impl HttpKeySource {
    /// A source with its own HTTP client.
    ///
    /// # Errors
    ///
    /// The HTTP client could not be built (no TLS roots on this system).
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        Ok(Self { http })
    }

    /// A source over an HTTP client of the application's (its proxy, roots and timeouts). Give
    /// it one that does not follow redirects: an authorization server's keys are where its
    /// metadata says.
    #[must_use]
    pub fn with_client(http: reqwest::Client) -> Self {
        Self { http }
    }
}

#[cfg(feature = "reqwest")]
#[async_trait::async_trait]
impl KeySource for HttpKeySource {
    async fn jwk_set(&self, jwks_uri: &str) -> Result<Bytes, KeySourceError> {
        let response = self.http.get(jwks_uri).send().await?.error_for_status()?;
        Ok(response.bytes().await?)
    }

    async fn introspect(
        &self,
        client: &IntrospectionClient,
        token: &str,
    ) -> Result<Bytes, KeySourceError> {
        // RFC 6749 §2.3.1: the credentials are form-encoded before Basic encoding.
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&client.endpoint)
            .basic_auth(
                encode(&client.client_id),
                Some(encode(&client.client_secret)),
            )
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await?
            .error_for_status()?;
        Ok(response.bytes().await?)
    }

    async fn shared_signals(
        &self,
        method: &str,
        url: &str,
        credentials: Option<(&str, &str)>,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes), KeySourceError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self.http.request(method, url);
        if let Some((id, secret)) = credentials {
            // RFC 6749 §2.3.1: the credentials are form-encoded before Basic encoding.
            let encode =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(id), Some(encode(secret)));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?))
    }
}

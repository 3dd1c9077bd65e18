//! How requests reach the upstream: a `Transport` (reqwest by default, SSRF-safe, size- and
//! time-limited).

use super::{MAX_RESPONSE_BYTES, UPSTREAM_TIMEOUT};

/// Sends upstream requests. [`ReqwestTransport`] is the real one; tests plug in recorded
/// provider responses.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends `request` and returns the response (at most [`MAX_RESPONSE_BYTES`] of body).
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError>;
}

/// An upstream request failed before an HTTP answer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("request to the identity provider failed: {0}")]
pub struct TransportError(pub String);

/// The real transport: rustls, no redirects, a time limit, a size cap.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with [`UPSTREAM_TIMEOUT`] and no redirects.
    ///
    /// # Errors
    ///
    /// [`TransportError`] when the TLS backend cannot start.
    pub fn new() -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(UPSTREAM_TIMEOUT)
            .user_agent(concat!("mcpauth-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError(e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl Transport for ReqwestTransport {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let (parts, body) = request.into_parts();
        let mut response = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| TransportError(e.without_url().to_string()))?;
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(TransportError("the response is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| TransportError(e.to_string()))
    }
}

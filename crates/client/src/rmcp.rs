//! The official Rust MCP SDK (`rmcp`) on mcpauth's tokens: [`AuthorizedHttpClient`] wraps
//! any rmcp streamable-HTTP client, puts a valid access token on every request (refreshed
//! before it expires), refreshes once and retries when the server answers `401`, and steps
//! up on `403 insufficient_scope` (at most [`MAX_STEP_UPS`] times per client).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rmcp::ServiceExt as _;
//!
//! let auth = Arc::new(mcpauth_client::OAuthClient::builder("https://mcp.example.com/mcp").build()?);
//! let transport = mcpauth_client::rmcp::transport(auth);
//! let client = ().serve(transport).await?;
//! let tools = client.list_all_tools().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::rmcp::model::ClientJsonRpcMessage;
use ::rmcp::transport::StreamableHttpClientTransport;
use ::rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse,
};
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use sse_stream::Sse;

use crate::challenge::BearerChallenge;
use crate::session::OAuthClient;

/// Step-ups allowed per client before an `insufficient_scope` is returned to the caller:
/// with the first authorization, three in all (the MCP conformance suite's limit: a server
/// that keeps asking must not loop the user).
pub const MAX_STEP_UPS: usize = 2;

/// An rmcp HTTP client that authorizes its requests with an [`OAuthClient`].
#[derive(Clone, Debug)]
pub struct AuthorizedHttpClient<C = reqwest::Client> {
    inner: C,
    auth: Arc<OAuthClient>,
    step_ups: Arc<AtomicUsize>,
}

impl<C> AuthorizedHttpClient<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, auth: Arc<OAuthClient>) -> Self {
        Self {
            inner,
            auth,
            step_ups: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// A streamable-HTTP transport to the client's MCP server, authorized by `auth`.
#[must_use]
pub fn transport(auth: Arc<OAuthClient>) -> StreamableHttpClientTransport<AuthorizedHttpClient> {
    let uri = auth.server().to_owned();
    StreamableHttpClientTransport::with_client(
        AuthorizedHttpClient::new(reqwest::Client::new(), auth),
        StreamableHttpClientTransportConfig::with_uri(uri),
    )
}

fn auth_error<E: std::error::Error + Send + Sync + 'static>(
    e: &crate::Error,
) -> StreamableHttpError<E> {
    StreamableHttpError::UnexpectedServerResponse(format!("authorization failed: {e}").into())
}

impl<C: StreamableHttpClient + Sync> AuthorizedHttpClient<C> {
    async fn token(&self) -> Result<String, StreamableHttpError<C::Error>> {
        self.auth
            .get_valid_token()
            .await
            .map_err(|e| auth_error(&e))
    }
}

impl<C: StreamableHttpClient + Sync> StreamableHttpClient for AuthorizedHttpClient<C> {
    type Error = C::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            let sent = self
                .inner
                .post_message(
                    uri.clone(),
                    message.clone(),
                    session_id.clone(),
                    Some(token.clone()),
                    custom_headers.clone(),
                )
                .await;
            match sent {
                // The server no longer takes the token (revoked, keys rotated): refresh once.
                Err(StreamableHttpError::AuthRequired(_)) if !refreshed => {
                    refreshed = true;
                    self.auth
                        .expire_access_token()
                        .await
                        .map_err(|e| auth_error(&e))?;
                    token = self.token().await?;
                }
                Err(StreamableHttpError::InsufficientScope(e))
                    if self.step_ups.fetch_add(1, Ordering::SeqCst) < MAX_STEP_UPS =>
                {
                    let challenge =
                        BearerChallenge::from_headers([e.www_authenticate_header.as_str()])
                            .unwrap_or_default();
                    token = self
                        .auth
                        .step_up(&challenge)
                        .await
                        .map_err(|e| auth_error(&e))?;
                }
                other => return other,
            }
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let token = self.token().await?;
        self.inner
            .delete_session(uri, session_id, Some(token), custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let token = self.token().await?;
        self.inner
            .get_stream(uri, session_id, last_event_id, Some(token), custom_headers)
            .await
    }
}

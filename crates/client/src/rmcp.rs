//! The official Rust MCP SDK (`rmcp`) on mcpauth's tokens: [`AuthorizedHttpClient`] wraps
//! any rmcp streamable-HTTP client, puts the held access token on every request (refreshed
//! before it expires; a DPoP-bound one as `DPoP` with a proof per request, and the resource
//! server's nonce when it asks for one, RFC 9449 §7, §9), answers a `401` once (rediscovering from its challenge, then
//! refreshing or authorizing for the scope it names), and steps up on
//! `403 insufficient_scope` (at most [`MAX_STEP_UPS`] times per client).
//!
//! [`connect`] starts the client the way the 2026-07-28 revision asks (`server/discover`,
//! then self-contained requests), falling back to the `initialize` handshake for servers
//! of earlier revisions ([`lifecycle`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! let auth = Arc::new(mcpauth_client::OAuthClient::builder("https://mcp.example.com/mcp").build()?);
//! let client = mcpauth_client::rmcp::connect((), auth).await?;
//! let tools = client.list_all_tools().await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::rmcp::model::{ClientJsonRpcMessage, ProtocolVersion};
use ::rmcp::service::{ClientInitializeError, RunningService};
use ::rmcp::transport::StreamableHttpClientTransport;
use ::rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse,
};
use ::rmcp::{ClientLifecycleMode, ClientServiceExt as _, RoleClient, Service};
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

/// The lifecycle [`connect`] uses: `server/discover` at the 2026-07-28 revision, and the
/// `initialize` handshake of the server's own revision when it answers as an older server.
#[must_use]
pub fn lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: None,
    }
}

/// Starts `service` (`()` for a plain client) on [`transport`]`(auth)` with [`lifecycle`]:
/// the first request gets the server's `401`, which `auth` answers by discovering and
/// authorizing (or by using the tokens it holds).
///
/// # Errors
/// When neither lifecycle starts; an authorization failure shows in its message.
pub async fn connect<S: Service<RoleClient>>(
    service: S,
    auth: Arc<OAuthClient>,
) -> Result<RunningService<RoleClient, S>, ClientInitializeError> {
    service
        .serve_with_lifecycle(transport(auth), lifecycle())
        .await
}

fn auth_error<E: std::error::Error + Send + Sync + 'static>(
    e: &crate::Error,
) -> StreamableHttpError<E> {
    StreamableHttpError::UnexpectedServerResponse(
        format!("authorization failed: {}", crate::said(&e)).into(),
    )
}

/// The protocol version an `initialize` request proposes.
fn initialize_version(message: &ClientJsonRpcMessage) -> Option<HeaderValue> {
    let value = serde_json::to_value(message).ok()?;
    if value.get("method")?.as_str()? != "initialize" {
        return None;
    }
    HeaderValue::from_str(value.pointer("/params/protocolVersion")?.as_str()?).ok()
}

impl<C: StreamableHttpClient + Sync> AuthorizedHttpClient<C> {
    /// The held token (refreshed when needed), without starting an authorization.
    async fn token(&self) -> Result<Option<String>, StreamableHttpError<C::Error>> {
        self.auth
            .held_or_refreshed_token()
            .await
            .map_err(|e| auth_error(&e))
    }

    /// `custom_headers` with what presents `token` on a `method` request to `uri`: rmcp's own
    /// `Authorization: Bearer` is not used, so that a DPoP-bound token goes as `DPoP` with
    /// its proof (RFC 9449 §7).
    async fn authorized(
        &self,
        token: Option<&str>,
        method: &str,
        uri: &str,
        custom_headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Result<HashMap<HeaderName, HeaderValue>, StreamableHttpError<C::Error>> {
        let mut headers = custom_headers.clone();
        let Some(token) = token else {
            return Ok(headers);
        };
        let authorization = self
            .auth
            .resource_authorization(token, method, uri)
            .await
            .map_err(|e| auth_error(&e))?;
        let mut map = http::HeaderMap::new();
        authorization.apply(&mut map).map_err(|e| auth_error(&e))?;
        for (name, value) in &map {
            headers.insert(name.clone(), value.clone());
        }
        Ok(headers)
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
        // rmcp adds MCP-Protocol-Version after initialization; servers of the 2026-07-28
        // revision want it on `initialize` too: the version the request proposes.
        let mut custom_headers = custom_headers;
        if let Some(version) = initialize_version(&message) {
            custom_headers
                .entry(HeaderName::from_static("mcp-protocol-version"))
                .or_insert(version);
        }
        // The first request may go without a token: the server's 401 says what it needs.
        let mut token = self.token().await?;
        let mut answered = false;
        let mut nonce_fetched = false;
        loop {
            let headers = self
                .authorized(token.as_deref(), "POST", &uri, &custom_headers)
                .await?;
            let sent = self
                .inner
                .post_message(
                    uri.clone(),
                    message.clone(),
                    session_id.clone(),
                    None,
                    headers,
                )
                .await;
            match sent {
                // RFC 9449 §9: the resource server wants its nonce in the proof. rmcp does not
                // show the response's headers, so the nonce is fetched once, then the request
                // is sent again with a proof over it.
                Err(StreamableHttpError::AuthRequired(e))
                    if !nonce_fetched
                        && BearerChallenge::from_headers([e.www_authenticate_header.as_str()])
                            .is_some_and(|c| c.is_use_dpop_nonce()) =>
                {
                    nonce_fetched = true;
                    if let Some(token) = token.as_deref() {
                        self.auth
                            .refresh_resource_nonce(token)
                            .await
                            .map_err(|e| auth_error(&e))?;
                    }
                }
                // No token, or the server no longer takes it (revoked, expired early, the
                // server moved to another authorization server): answer its challenge once.
                Err(StreamableHttpError::AuthRequired(e)) if !answered => {
                    answered = true;
                    let challenge =
                        BearerChallenge::from_headers([e.www_authenticate_header.as_str()])
                            .unwrap_or_default();
                    token = Some(
                        self.auth
                            .answer_unauthorized(&challenge, token.as_deref())
                            .await
                            .map_err(|e| auth_error(&e))?,
                    );
                }
                Err(StreamableHttpError::InsufficientScope(e))
                    if self.step_ups.fetch_add(1, Ordering::SeqCst) < MAX_STEP_UPS =>
                {
                    let challenge =
                        BearerChallenge::from_headers([e.www_authenticate_header.as_str()])
                            .unwrap_or_default();
                    token = Some(
                        self.auth
                            .step_up(&challenge)
                            .await
                            .map_err(|e| auth_error(&e))?,
                    );
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
        let headers = self
            .authorized(token.as_deref(), "DELETE", &uri, &custom_headers)
            .await?;
        self.inner
            .delete_session(uri, session_id, None, headers)
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
        let headers = self
            .authorized(token.as_deref(), "GET", &uri, &custom_headers)
            .await?;
        self.inner
            .get_stream(uri, session_id, last_event_id, None, headers)
            .await
    }
}

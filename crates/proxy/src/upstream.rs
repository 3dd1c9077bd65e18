//! Talking to the upstream: the authorization request we send the user with (our own
//! `state`, `nonce` and PKCE), the callback we get back, the code exchange (through the
//! `oauth2` crate) with each provider's quirks, and the identity requests.

use mcpauth_token_engine::UnixTime;
use std::time::Duration;

use mcpauth_token_engine::{PendingAuthorization, SecureRandom};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{EndpointNotSet, EndpointSet, StandardRevocableToken, TokenResponse as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::identity::{self, IdentityError, UpstreamIdentity};
use crate::provider::{IdentitySource, IssuerRule, Provider};

/// Largest upstream response read (token, userinfo, JWKS, discovery).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How long any one upstream request may take.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// What the proxy keeps between sending the user upstream and the callback. Stored
/// server-side under the hash of `state`, taken once.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamRequest {
    /// The provider the user was sent to; the callback must arrive at its own URL.
    pub provider: String,
    /// The nonce sent (OpenID Connect), to be found in the ID token.
    pub nonce: Option<String>,
    /// The PKCE verifier, when PKCE was sent.
    pub pkce_verifier: Option<String>,
    /// SHA-256 of the browser-binding cookie set with the redirect: the callback must come
    /// from the same browser (login CSRF defence).
    pub browser_binding_hash: String,
    /// What the sign-in is for: an MCP client's authorization request, finished after the
    /// callback, or a plain sign-in to the application.
    pub purpose: Purpose,
    /// When this request stops being accepted.
    pub expires_at: u64,
}

/// What a federated sign-in is for.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Finish this MCP client's authorization request with the engine's code.
    Authorize(PendingAuthorization),
    /// Only sign the user in to the application (its device or account page), then send the
    /// browser to `return_to`, a path on this server.
    SignIn {
        /// Where to go afterwards: an absolute path (`/device?user_code=…`).
        return_to: String,
    },
}

impl From<PendingAuthorization> for Purpose {
    fn from(pending: PendingAuthorization) -> Self {
        Self::Authorize(pending)
    }
}

impl Purpose {
    /// The MCP client's request, for an authorization.
    #[must_use]
    pub fn pending(&self) -> Option<&PendingAuthorization> {
        match self {
            Self::Authorize(pending) => Some(pending),
            Self::SignIn { .. } => None,
        }
    }
}

/// Whether `path` is a path on this server (`/x`), never another site (`//evil`, `/\evil`,
/// `https://…`): the only places a plain sign-in returns to.
#[must_use]
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

/// The redirect that sends the user upstream.
#[derive(Debug)]
#[non_exhaustive]
pub struct Started {
    /// The upstream authorization URL.
    pub location: Url,
    /// The `state` sent: the caller stores `record` under [`state_key`] of it.
    pub state: String,
    /// The browser-binding value to set as a cookie.
    pub browser_binding: String,
    /// What to store until the callback.
    pub record: UpstreamRequest,
}

/// The key under which an upstream request is stored: SHA-256 of its `state`, so a stolen
/// database does not hold usable states.
#[must_use]
pub fn state_key(state: &str) -> String {
    mcpauth_token_engine::SecretHash::of(state).into_string()
}

/// 32 random bytes, base64url: states, nonces, PKCE verifiers, browser bindings.
///
/// # Errors
///
/// [`ProxyError::Random`] when the random source fails.
pub fn random_value(rng: &dyn SecureRandom) -> Result<String, ProxyError> {
    mcpauth_token_engine::random_token(rng).map_err(|_| ProxyError::Random)
}

/// Why a federated sign-in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The random source failed.
    #[error("the random source failed")]
    Random,
    /// The callback is unusable (see [`CallbackError`]).
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The upstream refused the code or answered something unusable.
    #[error("the identity provider's token endpoint: {0}")]
    Token(String),
    /// The ID token was refused.
    #[error(transparent)]
    IdToken(#[from] crate::id_token::IdTokenError),
    /// The identity could not be read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An upstream request failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An upstream answered an error at its userinfo or user API.
    #[error("the identity provider's {endpoint} answered {status}")]
    Upstream {
        /// Which endpoint.
        endpoint: &'static str,
        /// The HTTP status (or Slack's error code).
        status: String,
    },
}

/// Why a callback was refused. None of these changes any state except consuming the
/// stored request (a callback is single use, replays find nothing).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackError {
    /// The query is malformed: missing `state`, `code` and `error` both or neither, a
    /// repeated parameter.
    #[error("the callback is malformed: {0}")]
    Malformed(&'static str),
    /// No sign-in is waiting for this `state`: forged, expired, or already used (a replay).
    #[error("no sign-in is waiting for this callback (forged, expired or already used)")]
    UnknownState,
    /// The callback arrived at another provider's URL than the one the user was sent to.
    #[error("the callback arrived for another identity provider")]
    WrongProvider,
    /// The browser is not the one that started the sign-in.
    #[error("the callback came from another browser than the one that started the sign-in")]
    WrongBrowser,
    /// RFC 9207: `iss` names another issuer (a mix-up attack), or is missing although the
    /// provider promised it.
    #[error("the callback's issuer is not this identity provider (RFC 9207)")]
    WrongIssuer,
}

/// The parsed callback query.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The user signed in.
    Code {
        /// The upstream code.
        code: String,
        /// Our `state`, echoed.
        state: String,
        /// RFC 9207 `iss`, when sent.
        iss: Option<String>,
    },
    /// The upstream answered an error (RFC 6749 §4.1.2.1).
    Error {
        /// The error code (`access_denied`, …).
        error: String,
        /// Its description, if any.
        description: Option<String>,
        /// Our `state`, echoed.
        state: String,
        /// RFC 9207 `iss`, when sent.
        iss: Option<String>,
    },
}

impl Callback {
    /// The `state` the callback carries.
    #[must_use]
    pub fn state(&self) -> &str {
        match self {
            Self::Code { state, .. } | Self::Error { state, .. } => state,
        }
    }

    /// The `iss` the callback carries.
    #[must_use]
    pub fn iss(&self) -> Option<&str> {
        match self {
            Self::Code { iss, .. } | Self::Error { iss, .. } => iss.as_deref(),
        }
    }
}

/// Parses the callback's query string (without `?`). Repeated parameters are refused
/// (RFC 6749 §3.1).
///
/// # Errors
///
/// [`CallbackError::Malformed`].
pub fn parse_callback(query: &str) -> Result<Callback, CallbackError> {
    let mut code = None;
    let mut state = None;
    let mut iss = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "iss" => &mut iss,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.is_some() {
            return Err(CallbackError::Malformed("a parameter is repeated"));
        }
        if value.len() > 4096 {
            return Err(CallbackError::Malformed("a parameter is too long"));
        }
        *slot = Some(value.into_owned());
    }
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or(CallbackError::Malformed("state is missing"))?;
    match (code, error) {
        (Some(code), None) if !code.is_empty() => Ok(Callback::Code { code, state, iss }),
        (None, Some(error)) if !error.is_empty() => Ok(Callback::Error {
            error,
            description,
            state,
            iss,
        }),
        _ => Err(CallbackError::Malformed(
            "exactly one of code and error must be present",
        )),
    }
}

/// RFC 9207 §2.4: when the callback carries `iss`, it must be the provider's issuer; when
/// the provider promised `iss` (`authorization_response_iss_parameter_supported`), it must
/// be there.
///
/// # Errors
///
/// [`CallbackError::WrongIssuer`].
pub fn check_issuer(provider: &Provider, iss: Option<&str>) -> Result<(), CallbackError> {
    match (iss, &provider.issuer, &provider.issuer_rule) {
        (None, _, _) if provider.requires_iss => Err(CallbackError::WrongIssuer),
        (None, _, _) => Ok(()),
        (Some(iss), Some(issuer), _) if iss == issuer => Ok(()),
        (Some(iss), None, Some(IssuerRule::AzureAnyTenant))
            if crate::provider::azure_tenant_of(iss).is_some() =>
        {
            Ok(())
        }
        // An `iss` from a provider with no known issuer (GitHub, Discord, plain OAuth 2.0)
        // cannot be checked against anything: refuse rather than guess.
        (Some(_), _, _) => Err(CallbackError::WrongIssuer),
    }
}

/// Builds the redirect that sends the user to `provider`, returning to `callback_url`, for
/// `purpose` (an MCP client's request, or a plain sign-in). Fresh `state`, browser binding, and (as the
/// provider supports them) `nonce` and PKCE S256; the record expires after `ttl` seconds.
///
/// # Errors
///
/// [`ProxyError::Random`].
pub fn start(
    provider: &Provider,
    callback_url: &Url,
    purpose: impl Into<Purpose>,
    rng: &dyn SecureRandom,
    now: UnixTime,
    ttl: u64,
) -> Result<Started, ProxyError> {
    let now = now.0;
    let state = random_value(rng)?;
    let browser_binding = random_value(rng)?;
    let nonce = provider.openid.then(|| random_value(rng)).transpose()?;
    let verifier = provider.pkce.then(|| random_value(rng)).transpose()?;
    let client = oauth_client(provider, callback_url);
    let csrf = state.clone();
    let mut request = client
        .authorize_url(move || oauth2::CsrfToken::new(csrf))
        .add_scopes(provider.scopes.iter().cloned().map(oauth2::Scope::new));
    if let Some(nonce) = &nonce {
        request = request.add_extra_param("nonce", nonce.clone());
    }
    if let Some(verifier) = &verifier {
        let verifier = oauth2::PkceCodeVerifier::new(verifier.clone());
        request = request.set_pkce_challenge(oauth2::PkceCodeChallenge::from_code_verifier_sha256(
            &verifier,
        ));
    }
    let (location, _) = request.url();
    Ok(Started {
        location,
        record: UpstreamRequest {
            provider: provider.id.clone(),
            nonce,
            pkce_verifier: verifier,
            browser_binding_hash: mcpauth_token_engine::SecretHash::of(&browser_binding)
                .into_string(),
            purpose: purpose.into(),
            expires_at: now.saturating_add(ttl),
        },
        state,
        browser_binding,
    })
}

/// Checks a stored request against the callback that claimed it: the right provider's URL,
/// the same browser, not expired.
///
/// # Errors
///
/// [`CallbackError`].
pub fn check_record(
    record: &UpstreamRequest,
    provider: &Provider,
    browser_binding: Option<&str>,
    now: UnixTime,
) -> Result<(), CallbackError> {
    let now = now.0;
    use subtle::ConstantTimeEq as _;
    if record.expires_at <= now {
        return Err(CallbackError::UnknownState);
    }
    if record.provider != provider.id {
        return Err(CallbackError::WrongProvider);
    }
    let presented = browser_binding
        .map(|binding| mcpauth_token_engine::SecretHash::of(binding).into_string())
        .unwrap_or_default();
    if !bool::from(
        presented
            .as_bytes()
            .ct_eq(record.browser_binding_hash.as_bytes()),
    ) {
        return Err(CallbackError::WrongBrowser);
    }
    Ok(())
}

/// Extra token-response fields we read: the ID token.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdTokenField {
    /// The ID token (OpenID Connect Core §3.1.3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type UpstreamTokenResponse = oauth2::StandardTokenResponse<IdTokenField, BasicTokenType>;

type UpstreamClient = oauth2::Client<
    BasicErrorResponse,
    UpstreamTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn oauth_client(provider: &Provider, callback_url: &Url) -> UpstreamClient {
    let mut client = oauth2::Client::new(oauth2::ClientId::new(provider.client_id.clone()))
        .set_auth_uri(oauth2::AuthUrl::from_url(
            provider.authorization_endpoint.clone(),
        ))
        .set_token_uri(oauth2::TokenUrl::from_url(provider.token_endpoint.clone()))
        .set_redirect_uri(oauth2::RedirectUrl::from_url(callback_url.clone()))
        .set_auth_type(if provider.basic_auth {
            oauth2::AuthType::BasicAuth
        } else {
            oauth2::AuthType::RequestBody
        });
    if let Some(secret) = &provider.client_secret {
        client = client.set_client_secret(oauth2::ClientSecret::new(secret.0.clone()));
    }
    client
}

/// The upstream's tokens. They stay on this side: the MCP client only ever gets ours.
#[derive(Clone)]
#[non_exhaustive]
pub struct UpstreamTokens {
    /// The upstream access token (for the identity requests, and for the application).
    pub access_token: String,
    /// The upstream refresh token, if issued.
    pub refresh_token: Option<String>,
    /// Seconds the access token lives, if said.
    pub expires_in: Option<u64>,
    /// The scope granted, if said.
    pub scope: Option<String>,
    /// The ID token, if issued.
    pub id_token: Option<String>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Makes a token-endpoint response readable by the `oauth2` crate, whatever the provider's
/// habits: an error answered with `200 OK` (GitHub's `{"error": …}`, Slack's
/// `{"ok": false, "error": …}`) becomes a `400`; a form-encoded body (GitHub without
/// `Accept: application/json`, some older providers) becomes JSON.
#[must_use]
pub fn normalize_token_response(
    provider: &Provider,
    response: http::Response<Vec<u8>>,
) -> http::Response<Vec<u8>> {
    let (mut parts, body) = response.into_parts();
    let form_encoded = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
                || ct.to_ascii_lowercase().starts_with("text/plain")
        });
    let mut body = body;
    if form_encoded {
        let object: serde_json::Map<String, Value> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| {
                let value = match (k.as_ref(), v.parse::<u64>()) {
                    ("expires_in", Ok(n)) => Value::from(n),
                    _ => Value::String(v.into_owned()),
                };
                (k.into_owned(), value)
            })
            .collect();
        body = serde_json::to_vec(&object).unwrap_or_default();
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    if provider.errors_with_200
        && parts.status == http::StatusCode::OK
        && let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&body)
        && (object.contains_key("error") || object.get("ok") == Some(&Value::Bool(false)))
    {
        object
            .entry("error")
            .or_insert_with(|| Value::String("invalid_request".into()));
        body = serde_json::to_vec(&object).unwrap_or_default();
        parts.status = http::StatusCode::BAD_REQUEST;
    }
    http::Response::from_parts(parts, body)
}

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

/// Exchanges the upstream `code` (with the PKCE verifier when one was sent), through the
/// `oauth2` crate.
///
/// # Errors
///
/// [`ProxyError::Token`] with the upstream's error code, or [`ProxyError::Transport`].
pub async fn exchange_code(
    provider: &Provider,
    callback_url: &Url,
    code: &str,
    pkce_verifier: Option<&str>,
    transport: &dyn Transport,
) -> Result<UpstreamTokens, ProxyError> {
    let client = oauth_client(provider, callback_url);
    let mut request = client.exchange_code(oauth2::AuthorizationCode::new(code.to_owned()));
    if let Some(verifier) = pkce_verifier {
        request = request.set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier.to_owned()));
    }
    let response = request
        .request_async(&Via {
            provider,
            transport,
        })
        .await
        .map_err(token_error)?;
    Ok(tokens_from(&response))
}

/// Trades `refresh_token` at `provider` for new tokens (RFC 6749 §6) through the `oauth2`
/// crate. A response without a new refresh token keeps `refresh_token` (the provider does
/// not rotate it).
///
/// # Errors
///
/// [`ProxyError::Token`] with the upstream's error code (`invalid_grant`: the user must sign
/// in again), or [`ProxyError::Transport`].
pub async fn refresh_tokens(
    provider: &Provider,
    refresh_token: &str,
    transport: &dyn Transport,
) -> Result<UpstreamTokens, ProxyError> {
    // The refresh request sends no redirect URI; the client type needs one.
    let client = oauth_client(provider, &provider.token_endpoint);
    let refresh_token = oauth2::RefreshToken::new(refresh_token.to_owned());
    let response = client
        .exchange_refresh_token(&refresh_token)
        .request_async(&Via {
            provider,
            transport,
        })
        .await
        .map_err(token_error)?;
    let mut tokens = tokens_from(&response);
    if tokens.refresh_token.is_none() {
        tokens.refresh_token = Some(refresh_token.into_secret());
    }
    Ok(tokens)
}

/// The `oauth2` crate's HTTP client: our [`Transport`], with the provider's token-response
/// quirks smoothed. A named type rather than a closure, so the futures stay `Send` (a
/// closure returning a borrowing future defeats the compiler's `Send` inference).
struct Via<'a> {
    provider: &'a Provider,
    transport: &'a dyn Transport,
}

impl<'c> oauth2::AsyncHttpClient<'c> for Via<'_> {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            self.transport
                .send(request)
                .await
                .map(|response| normalize_token_response(self.provider, response))
        })
    }
}

fn token_error<E: std::error::Error + 'static>(
    e: oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> ProxyError {
    ProxyError::Token(match e {
        oauth2::RequestTokenError::ServerResponse(error) => {
            format!("it answered `{}`", error.error().as_ref())
        }
        oauth2::RequestTokenError::Request(e) => e.to_string(),
        oauth2::RequestTokenError::Parse(_, _) => "its response does not parse".into(),
        oauth2::RequestTokenError::Other(reason) => reason,
    })
}

fn tokens_from(response: &UpstreamTokenResponse) -> UpstreamTokens {
    UpstreamTokens {
        access_token: response.access_token().secret().clone(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        expires_in: response.expires_in().map(|d| d.as_secs()),
        scope: response.scopes().map(|scopes| {
            scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        id_token: response.extra_fields().id_token.clone(),
    }
}

/// A GET with the upstream access token, returning the JSON body.
async fn get_json(
    transport: &dyn Transport,
    url: &Url,
    access_token: &str,
    endpoint: &'static str,
    github: bool,
) -> Result<Value, ProxyError> {
    let mut request = http::Request::get(url.as_str()).header(
        http::header::AUTHORIZATION,
        format!("Bearer {access_token}"),
    );
    request = if github {
        request
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    } else {
        request.header(http::header::ACCEPT, "application/json")
    };
    let request = request
        .body(Vec::new())
        .map_err(|e| TransportError(e.to_string()))?;
    let response = transport.send(request).await?;
    if !response.status().is_success() {
        return Err(ProxyError::Upstream {
            endpoint,
            status: response.status().as_u16().to_string(),
        });
    }
    let value: Value = serde_json::from_slice(response.body())
        .map_err(|_| IdentityError::NotAnObject { what: endpoint })?;
    // Slack answers failures with 200 and `"ok": false`.
    if value.get("ok") == Some(&Value::Bool(false)) {
        return Err(ProxyError::Upstream {
            endpoint,
            status: value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("ok: false")
                .chars()
                .take(64)
                .collect(),
        });
    }
    Ok(value)
}

/// Reads who signed in: the validated ID-token `claims` (OpenID Connect providers),
/// completed by the userinfo endpoint; or the provider's user API.
///
/// # Errors
///
/// [`ProxyError`] when a request fails or the identity is unusable.
pub async fn fetch_identity(
    provider: &Provider,
    tokens: &UpstreamTokens,
    id_token_claims: Option<&Value>,
    transport: &dyn Transport,
) -> Result<UpstreamIdentity, ProxyError> {
    let access_token = tokens.access_token.as_str();
    match &provider.identity {
        IdentitySource::IdToken => {
            let claims = id_token_claims
                .ok_or(ProxyError::Token("no ID token came with the tokens".into()))?;
            let userinfo = match &provider.userinfo_endpoint {
                Some(url) => {
                    Some(get_json(transport, url, access_token, "userinfo endpoint", false).await?)
                }
                None => None,
            };
            Ok(identity::from_id_token(
                &provider.id,
                claims,
                userinfo.as_ref(),
            )?)
        }
        IdentitySource::GitHub => {
            let user_url = provider
                .userinfo_endpoint
                .clone()
                .ok_or(ProxyError::Token("no user endpoint".into()))?;
            let user = get_json(transport, &user_url, access_token, "user API", true).await?;
            let emails_url = user_url.join("user/emails").ok();
            let emails = match emails_url {
                // Without the `user:email` scope this answers 404: go on without it.
                Some(url) => get_json(transport, &url, access_token, "emails API", true)
                    .await
                    .ok(),
                None => None,
            };
            Ok(identity::from_github(&provider.id, &user, emails.as_ref())?)
        }
        IdentitySource::Discord => {
            let url = provider
                .userinfo_endpoint
                .clone()
                .ok_or(ProxyError::Token("no user endpoint".into()))?;
            let me = get_json(transport, &url, access_token, "user API", false).await?;
            Ok(identity::from_discord(&provider.id, &me)?)
        }
        IdentitySource::Userinfo(mapping) => {
            let url = provider
                .userinfo_endpoint
                .clone()
                .ok_or(ProxyError::Token("no userinfo endpoint".into()))?;
            let info = get_json(transport, &url, access_token, "userinfo endpoint", false).await?;
            Ok(identity::from_mapping(&provider.id, mapping, &info)?)
        }
    }
}

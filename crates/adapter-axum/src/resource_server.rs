//! Protecting an MCP server (the resource server): a tower layer that verifies bearer tokens
//! (RFC 6750, RFC 9068) and answers RFC 6750 §3 / RFC 9728 §5.1 challenges, and the RFC 9728
//! protected-resource metadata document.
//!
//! Keys come from the authorization server's `jwks_uri`, fetched on first use and again when a
//! token names an unknown `kid` (at most once every 30 seconds, so garbage tokens cannot make
//! us hammer the authorization server).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcpauth_bearer::{Challenge, TokenVerifier, VerifiedToken, VerifyError, extract_bearer};
use mcpauth_metadata::ProtectedResourceMetadata;
use tokio::sync::{Mutex, RwLock};

/// How a resource server is protected.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResourceServerConfig {
    /// This server's resource identifier (its canonical URI), the `aud` tokens must carry.
    pub resource: String,
    /// The authorization server's issuer identifier.
    pub issuer: String,
    /// The authorization server's JWK Set URL.
    pub jwks_uri: String,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
    /// Scopes published in the metadata.
    pub scopes_supported: Vec<String>,
    /// Human-readable name published in the metadata.
    pub resource_name: Option<String>,
}

impl ResourceServerConfig {
    /// Protection of `resource` by the authorization server `issuer`, whose keys are at
    /// `jwks_uri`. No scope is required.
    pub fn new(
        resource: impl Into<String>,
        issuer: impl Into<String>,
        jwks_uri: impl Into<String>,
    ) -> Self {
        Self {
            resource: resource.into(),
            issuer: issuer.into(),
            jwks_uri: jwks_uri.into(),
            required_scopes: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
        }
    }
}

/// The configuration cannot protect a resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceServerError {
    /// The resource identifier is not an https (or loopback http) URL without fragment.
    #[error("resource identifier: {0}")]
    Resource(#[from] mcpauth_metadata::WellKnownError),
    /// The resource identifier does not parse.
    #[error("resource identifier is not a URL: {0}")]
    Url(#[from] url::ParseError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A protected resource: verifier, key cache and metadata. Share it in an `Arc`.
pub struct ResourceServer {
    config: ResourceServerConfig,
    metadata_url: String,
    metadata_path: String,
    verifier: RwLock<TokenVerifier>,
    last_fetch: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// The verified token of the current request, put in the request extensions by
/// [`BearerLayer`]. Also an extractor: handlers behind the layer take it as an argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub VerifiedToken);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only reachable without the layer in front: a wiring mistake, not the client's.
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl ResourceServer {
    /// Builds the protection for `config`.
    ///
    /// # Errors
    ///
    /// [`ResourceServerError`] when the resource identifier is unusable.
    pub fn new(config: ResourceServerConfig) -> Result<Self, ResourceServerError> {
        let resource = url::Url::parse(&config.resource)?;
        let metadata_url = mcpauth_metadata::protected_resource_metadata_url(&resource)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            metadata_path: metadata_url.path().to_owned(),
            metadata_url: metadata_url.into(),
            verifier: RwLock::new(TokenVerifier::new(
                config.issuer.clone(),
                config.resource.clone(),
            )),
            last_fetch: Mutex::new(None),
            config,
            http,
        })
    }

    /// The RFC 9728 document.
    #[must_use]
    pub fn metadata(&self) -> ProtectedResourceMetadata {
        let mut metadata = ProtectedResourceMetadata::new(
            self.config.resource.clone(),
            self.config.issuer.clone(),
        );
        metadata
            .scopes_supported
            .clone_from(&self.config.scopes_supported);
        metadata
            .resource_name
            .clone_from(&self.config.resource_name);
        metadata
    }

    /// The URL of the metadata document (what `resource_metadata` in challenges points to).
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// Routes serving the metadata at its path-inserted well-known URL (RFC 9728 §3.1) and at
    /// the root well-known URL that older clients try.
    pub fn metadata_router(self: &Arc<Self>) -> Router {
        let document = Arc::new(self.metadata());
        let handler = move || {
            let document = document.clone();
            async move {
                (
                    [
                        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    axum::Json((*document).clone()),
                )
            }
        };
        let mut router = Router::new().route(&self.metadata_path, get(handler.clone()));
        if self.metadata_path != "/.well-known/oauth-protected-resource" {
            router = router.route("/.well-known/oauth-protected-resource", get(handler));
        }
        router
    }

    fn challenge(&self) -> Challenge {
        Challenge::new(self.metadata_url.clone()).with_scope(&self.config.required_scopes.join(" "))
    }

    /// Verifies the request's bearer token, or returns the 401/403 answer to send.
    ///
    /// # Errors
    ///
    /// The challenge response.
    pub async fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<VerifiedToken, Response> {
        let token = match extract_bearer(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Err(challenge_response(&self.challenge())),
            Err(e) => {
                return Err(challenge_response(
                    &self.challenge().invalid_request(&e.to_string()),
                ));
            }
        };
        let verified = match self.verify(token).await {
            Ok(verified) => verified,
            Err(e) => {
                return Err(challenge_response(
                    &self.challenge().invalid_token(&e.to_string()),
                ));
            }
        };
        let missing: Vec<&str> = self
            .config
            .required_scopes
            .iter()
            .map(String::as_str)
            .filter(|s| !verified.scope.contains(s))
            .collect();
        if !missing.is_empty() {
            return Err(challenge_response(
                &Challenge::new(self.metadata_url.clone())
                    .insufficient_scope(&self.config.required_scopes.join(" ")),
            ));
        }
        Ok(verified)
    }

    async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let first = self.verifier.read().await.verify(token, now);
        match first {
            Err(VerifyError::UnknownKey) if self.refresh_keys().await => {
                self.verifier.read().await.verify(token, now)
            }
            other => other,
        }
    }

    /// Fetches the JWK Set unless it was fetched within the last 30 seconds. Returns whether
    /// new keys were loaded.
    async fn refresh_keys(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        let body = async {
            let response = self
                .http
                .get(&self.config.jwks_uri)
                .send()
                .await?
                .error_for_status()?;
            response.bytes().await
        }
        .await;
        match body {
            Ok(bytes) if bytes.len() <= 64 * 1024 => {
                match self.verifier.write().await.set_jwks(&bytes) {
                    Ok(count) => {
                        tracing::debug!(count, jwks_uri = %self.config.jwks_uri, "loaded signing keys");
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, jwks_uri = %self.config.jwks_uri, "JWK Set does not parse");
                        false
                    }
                }
            }
            Ok(_) => {
                tracing::warn!(jwks_uri = %self.config.jwks_uri, "JWK Set is larger than 64 KiB");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, jwks_uri = %self.config.jwks_uri, "fetching the JWK Set failed");
                false
            }
        }
    }
}

fn challenge_response(challenge: &Challenge) -> Response {
    let status = StatusCode::from_u16(challenge.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let value = HeaderValue::from_str(&challenge.header_value())
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    let body = axum::Json(serde_json::json!({
        "error": challenge.error().map_or("invalid_token", |e| e.as_str()),
        "error_description": "authorization is required: see the WWW-Authenticate header",
    }));
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, value);
    // Browser-based MCP clients must be able to read the challenge.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate"),
    );
    response
}

/// A tower layer that lets a request through only with a valid bearer token, and puts the
/// [`Authenticated`] token in its extensions.
#[derive(Clone, Debug)]
pub struct BearerLayer {
    resource: Arc<ResourceServer>,
}

impl BearerLayer {
    /// A layer enforcing `resource`'s rules.
    #[must_use]
    pub fn new(resource: Arc<ResourceServer>) -> Self {
        Self { resource }
    }
}

impl<S> tower::Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            resource: self.resource.clone(),
        }
    }
}

/// The service made by [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    resource: Arc<ResourceServer>,
}

impl<S> tower::Service<Request> for BearerService<S>
where
    S: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The clone is not ready; call the instance that is (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let resource = self.resource.clone();
        Box::pin(async move {
            // CORS preflights carry no credentials and must pass.
            if request.method() == axum::http::Method::OPTIONS {
                return inner.call(request).await;
            }
            match resource.authenticate(request.headers()).await {
                Ok(verified) => {
                    request.extensions_mut().insert(Authenticated(verified));
                    inner.call(request).await
                }
                Err(response) => Ok(response),
            }
        })
    }
}

//! Protecting an MCP server in axum: a tower layer over the framework-neutral
//! [`ResourceServer`] that lets a request through only with a valid bearer token, an
//! [`Authenticated`] extractor, and routes for the RFC 9728 metadata document.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcpauth_http::{HttpResponse, ResourceServer, SESSION_HEADER, VerifiedToken, body_too_large};

fn into_axum(response: HttpResponse) -> Response {
    response.map(axum::body::Body::from).into_response()
}

/// The verified token of the current request, as an extractor: handlers behind a
/// [`BearerLayer`] take it as an argument. (The layer puts the [`VerifiedToken`] itself in the
/// request extensions, where framework-neutral code such as `rmcp` tools finds it.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub VerifiedToken);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only reachable without the layer in front: a wiring mistake, not the client's.
        parts
            .extensions
            .get::<VerifiedToken>()
            .cloned()
            .map(Authenticated)
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Routes serving a [`ResourceServer`]'s RFC 9728 document at its well-known URLs.
pub trait MetadataRouter {
    /// The routes; merge them into the app, outside the [`BearerLayer`].
    fn metadata_router(&self) -> Router;
}

impl MetadataRouter for Arc<ResourceServer> {
    fn metadata_router(&self) -> Router {
        self.metadata_paths()
            .iter()
            .fold(Router::new(), |router, path| {
                let resource = self.clone();
                router.route(
                    path,
                    get(move || async move { into_axum(resource.metadata_response()) }),
                )
            })
    }
}

/// A tower layer that lets a request through only with a valid bearer token carrying
/// `scopes` (by default the resource's required scopes) and the scopes of the MCP tools it
/// calls ([`ResourceServerConfig::tool_scopes`](mcpauth_http::ResourceServerConfig)), with a
/// body no larger than the configured limit, and puts the [`VerifiedToken`] in its
/// extensions. Layer routes separately to require more scopes on some of them.
#[derive(Clone, Debug)]
pub struct BearerLayer {
    resource: Arc<ResourceServer>,
    scopes: Option<Arc<[String]>>,
    user: bool,
}

impl BearerLayer {
    /// A layer enforcing `resource`'s rules.
    #[must_use]
    pub fn new(resource: Arc<ResourceServer>) -> Self {
        Self {
            resource,
            scopes: None,
            user: false,
        }
    }

    /// Requires `scopes` on the routes this layer wraps instead of the configured ones.
    #[must_use]
    pub fn requiring(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Requires a user behind the token on the routes this wraps: a client's own token
    /// (`client_credentials`) is answered `401 insufficient_user_authentication` (RFC 9470).
    #[must_use]
    pub fn requiring_user(mut self) -> Self {
        self.user = true;
        self
    }
}

impl<S> tower::Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    layer: BearerLayer,
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

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is not ready; call the instance that is (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            // CORS preflights carry no credentials and must pass.
            if request.method() == axum::http::Method::OPTIONS {
                return inner.call(request).await;
            }
            let verified = match &layer.scopes {
                Some(scopes) => {
                    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    layer
                        .resource
                        .authenticate_with_scopes(request.headers(), &scopes)
                        .await
                }
                None => layer.resource.authenticate(request.headers()).await,
            };
            let verified = match verified {
                Ok(verified) => verified,
                Err(response) => return Ok(into_axum(response)),
            };
            let resource = &layer.resource;
            if layer.user
                && let Some(response) = resource.refuse_without_user(&verified)
            {
                return Ok(into_axum(response));
            }
            if let Some(response) = resource.refuse_declared_length(request.headers()) {
                return Ok(into_axum(response));
            }
            let session =
                match resource.check_session(request.method(), request.headers(), &verified) {
                    Ok(session) => session,
                    Err(response) => return Ok(into_axum(response)),
                };
            let limit = resource.max_body_bytes();
            let (mut parts, body) = request.into_parts();
            let body = if resource.reads_body(&parts.method) {
                let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
                    return Ok(into_axum(body_too_large()));
                };
                if let Some(response) =
                    resource.refuse_tool_calls(&verified, &parts.headers, &bytes)
                {
                    return Ok(into_axum(response));
                }
                Body::from(bytes)
            } else {
                // Bodies without a declared length are cut off at the limit as they stream.
                Body::new(http_body_util::Limited::new(body, limit))
            };
            parts.extensions.insert(verified);
            let response = inner.call(Request::from_parts(parts, body)).await?;
            let opened = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok());
            resource.record_session(session, response.status(), opened);
            Ok(response)
        })
    }
}

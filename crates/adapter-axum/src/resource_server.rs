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
use mcpauth_http::{
    Admission, HttpResponse, MAX_PUSHED_EVENT_BYTES, ResourceServer, RouteRules, VerifiedToken, now,
};

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
                let route = get(move || async move { into_axum(resource.metadata_response()) });
                // Browser clients send MCP-Protocol-Version here, so their GET is preflighted.
                let route = if self.config().cors {
                    let resource = self.clone();
                    route.options(move |headers: axum::http::HeaderMap| async move {
                        into_axum(resource.preflight_response(&headers))
                    })
                } else {
                    route
                };
                router.route(path, route)
            })
    }
}

/// The route where the authorization server pushes revocations to a [`ResourceServer`]
/// (RFC 8935; [`RevocationStream::push_to`](mcpauth_http::RevocationStream::push_to)).
pub trait RevocationPushRouter {
    /// The route (none without a push endpoint configured); merge it into the app, outside
    /// the [`BearerLayer`] (the transmitter authenticates with the credential the receiver
    /// gave it, not a bearer token).
    fn revocation_push_router(&self) -> Router;
}

impl RevocationPushRouter for Arc<ResourceServer> {
    fn revocation_push_router(&self) -> Router {
        let Some(path) = self.revocation_push_path() else {
            return Router::new();
        };
        let resource = self.clone();
        Router::new().route(
            &path,
            axum::routing::post(move |request: Request| async move {
                let authorization = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match axum::body::to_bytes(request.into_body(), MAX_PUSHED_EVENT_BYTES).await {
                    Ok(body) => into_axum(
                        resource
                            .receive_pushed_event(authorization.as_deref(), &body)
                            .await,
                    ),
                    Err(_) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
                }
            }),
        )
    }
}

/// A tower layer that lets a request through only with a valid bearer token carrying
/// `scopes` (by default the resource's required scopes) and the scopes of the MCP tools it
/// calls ([`ResourceServerConfig::tool_scopes`](mcpauth_http::ResourceServerConfig)), with a
/// body no larger than the configured limit, and puts the [`VerifiedToken`] in its
/// extensions. Layer routes separately to require more scopes on some of them. The decisions
/// are [`ResourceServer::admit`]'s; this only carries them out.
#[derive(Clone, Debug)]
pub struct BearerLayer {
    resource: Arc<ResourceServer>,
    rules: RouteRules,
}

impl BearerLayer {
    /// A layer enforcing `resource`'s rules.
    #[must_use]
    pub fn new(resource: Arc<ResourceServer>) -> Self {
        Self {
            resource,
            rules: RouteRules::new(),
        }
    }

    /// Requires `scopes` on the routes this layer wraps instead of the configured ones.
    #[must_use]
    pub fn requiring(mut self, scopes: &[&str]) -> Self {
        self.rules = self.rules.requiring(scopes);
        self
    }

    /// Requires a user behind the token on the routes this wraps: a client's own token
    /// (`client_credentials`) is answered `401 insufficient_user_authentication` (RFC 9470).
    #[must_use]
    pub fn requiring_user(mut self) -> Self {
        self.rules = self.rules.requiring_user();
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
        let BearerLayer { resource, rules } = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let admission = resource
                .admit(&parts.method, &parts.headers, &rules, now())
                .await;
            let (admitted, body) = match admission {
                Admission::Refuse(response) => return Ok(into_axum(response)),
                Admission::Preflight => return inner.call(Request::from_parts(parts, body)).await,
                Admission::NeedsBody(pending) => {
                    let Ok(bytes) = axum::body::to_bytes(body, pending.limit()).await else {
                        return Ok(into_axum(pending.too_large()));
                    };
                    match pending.check(&bytes) {
                        Ok(admitted) => (admitted, Body::from(bytes)),
                        Err(response) => return Ok(into_axum(response)),
                    }
                }
                Admission::Admit(admitted) => {
                    let limit = admitted.body_limit();
                    (
                        admitted,
                        Body::new(http_body_util::Limited::new(body, limit)),
                    )
                }
            };
            parts.extensions.insert(admitted.token().clone());
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            admitted.finish(response.status(), response.headers());
            resource.add_cors_headers(response.headers_mut());
            Ok(response)
        })
    }
}

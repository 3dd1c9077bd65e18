//! Protecting an MCP server in actix-web: a middleware over the framework-neutral
//! [`ResourceServer`] that lets a request through only with a valid bearer token, an
//! [`Authenticated`] extractor, and routes for the RFC 9728 metadata document.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use bytes::Bytes;
use mcpauth_http::{
    Admission, HttpResponse, MAX_PUSHED_EVENT_BYTES, ResourceServer, RouteRules, VerifiedToken, now,
};

use crate::{http_method, into_actix};

/// The verified token of the current request, as an extractor: handlers behind a
/// [`BearerGuard`] take it as an argument. (The guard puts the [`VerifiedToken`] itself in the
/// request extensions.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub VerifiedToken);

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        // Only missing without the guard in front: a wiring mistake, not the client's.
        ready(
            request
                .extensions()
                .get::<VerifiedToken>()
                .cloned()
                .map(Authenticated)
                .ok_or_else(|| {
                    actix_web::error::ErrorInternalServerError("no BearerGuard on this route")
                }),
        )
    }
}

/// Serves a [`ResourceServer`]'s RFC 9728 document at its well-known URLs; pass it to
/// [`App::configure`](actix_web::App::configure), outside the [`BearerGuard`].
pub fn protected_resource_metadata(
    resource: Arc<ResourceServer>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        for path in resource.metadata_paths() {
            let resource = resource.clone();
            let cors = resource.config().cors;
            let document = resource.clone();
            config.route(
                &path,
                web::get().to(move || {
                    let response = into_actix(document.metadata_response());
                    async move { response }
                }),
            );
            // Browser clients send MCP-Protocol-Version here, so their GET is preflighted.
            if cors {
                config.route(
                    &path,
                    web::method(actix_web::http::Method::OPTIONS).to(
                        move |request: actix_web::HttpRequest| {
                            let response = into_actix(
                                resource
                                    .preflight_response(&crate::http_headers(request.headers())),
                            );
                            async move { response }
                        },
                    ),
                );
            }
        }
    }
}

/// Serves the route where the authorization server pushes revocations to a
/// [`ResourceServer`] (RFC 8935;
/// [`RevocationStream::push_to`](mcpauth_http::RevocationStream::push_to)), if one is
/// configured; pass it to [`App::configure`](actix_web::App::configure), outside the
/// [`BearerGuard`] (the transmitter authenticates with the credential the receiver gave it).
pub fn revocation_push(resource: Arc<ResourceServer>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let Some(path) = resource.revocation_push_path() else {
            return;
        };
        config.route(
            &path,
            web::post().to(move |request: HttpRequest, body: web::Payload| {
                let resource = resource.clone();
                async move {
                    let authorization = request
                        .headers()
                        .get(actix_web::http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match body.to_bytes_limited(MAX_PUSHED_EVENT_BYTES).await {
                        Ok(Ok(body)) => into_actix(
                            resource
                                .receive_pushed_event(authorization.as_deref(), &body)
                                .await,
                        ),
                        _ => actix_web::HttpResponse::PayloadTooLarge().finish(),
                    }
                }
            }),
        );
    }
}

/// Middleware that lets a request through only with a valid bearer token carrying `scopes`
/// (by default the resource's required scopes) and the scopes of the MCP tools it calls
/// ([`ResourceServerConfig::tool_scopes`](mcpauth_http::ResourceServerConfig)), with a body
/// no larger than the configured limit, and puts the [`VerifiedToken`] in its extensions.
/// Wrap scopes or resources separately to require more on some routes. The decisions are
/// [`ResourceServer::admit`]'s; this only carries them out.
#[derive(Clone, Debug)]
pub struct BearerGuard {
    resource: Arc<ResourceServer>,
    rules: RouteRules,
}

impl BearerGuard {
    /// A guard enforcing `resource`'s rules.
    #[must_use]
    pub fn new(resource: Arc<ResourceServer>) -> Self {
        Self {
            resource,
            rules: RouteRules::new(),
        }
    }

    /// Requires `scopes` on the routes this guard wraps instead of the configured ones.
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

impl<S, B> Transform<S, ServiceRequest> for BearerGuard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = BearerGuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BearerGuardService {
            service: Rc::new(service),
            guard: self.clone(),
        }))
    }
}

/// The service made by [`BearerGuard`].
#[derive(Debug)]
pub struct BearerGuardService<S> {
    service: Rc<S>,
    guard: BearerGuard,
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

fn refuse<B>(request: ServiceRequest, answer: HttpResponse) -> ServiceResponse<EitherBody<B>> {
    request
        .into_response(into_actix(answer))
        .map_into_right_body()
}

impl<S, B> Service<ServiceRequest> for BearerGuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let BearerGuard { resource, rules } = self.guard.clone();
        Box::pin(async move {
            let method = http_method(request.method());
            let headers = crate::http_headers(request.headers());
            let admitted = match resource.admit(&method, &headers, &rules, now()).await {
                Admission::Refuse(refusal) => return Ok(refuse(request, refusal)),
                Admission::Preflight => {
                    return Ok(service.call(request).await?.map_into_left_body());
                }
                Admission::NeedsBody(pending) => {
                    let payload = request.extract::<web::Payload>().await?;
                    let Ok(Ok(body)) = payload.to_bytes_limited(pending.limit()).await else {
                        return Ok(refuse(request, pending.too_large()));
                    };
                    match pending.check(&body) {
                        Ok(admitted) => {
                            request.set_payload(actix_web::dev::Payload::from(body));
                            admitted
                        }
                        Err(refusal) => return Ok(refuse(request, refusal)),
                    }
                }
                Admission::Admit(admitted) => {
                    // Bodies without a declared length are cut off at the limit as they stream.
                    let limited = LimitedPayload {
                        inner: request.take_payload(),
                        remaining: Some(admitted.body_limit()),
                    };
                    request.set_payload(actix_web::dev::Payload::Stream {
                        payload: Box::pin(limited),
                    });
                    admitted
                }
            };
            request.extensions_mut().insert(admitted.token().clone());
            let mut response = service.call(request).await?;
            admitted.finish(
                http::StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                &crate::http_headers(response.headers()),
            );
            let mut cors = http::HeaderMap::new();
            resource.add_cors_headers(&mut cors);
            for (name, value) in &cors {
                if !response.headers().contains_key(name.as_str())
                    && let (Ok(name), Ok(value)) = (
                        actix_web::http::header::HeaderName::from_bytes(name.as_ref()),
                        actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
                    )
                {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response.map_into_left_body())
        })
    }
}

/// A request body that fails with [`PayloadError::Overflow`] once more than its limit has
/// streamed through, and ends there, as axum's `Limited` body does.
struct LimitedPayload {
    inner: actix_web::dev::Payload,
    /// Bytes still allowed; `None` once the limit was passed.
    remaining: Option<usize>,
}

impl futures_core::Stream for LimitedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(remaining) = this.remaining else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.remaining = remaining.checked_sub(chunk.len());
                Poll::Ready(Some(match this.remaining {
                    Some(_) => Ok(chunk),
                    None => Err(PayloadError::Overflow),
                }))
            }
            other => other,
        }
    }
}

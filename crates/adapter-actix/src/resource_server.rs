//! Protecting an MCP server in actix-web: a middleware over the framework-neutral
//! [`ResourceServer`] that lets a request through only with a valid bearer token, an
//! [`Authenticated`] extractor, and routes for the RFC 9728 metadata document.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use mcpauth_http::{HttpResponse, ResourceServer, SESSION_HEADER, VerifiedToken, body_too_large};

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
            config.route(
                &path,
                web::get().to(move || {
                    let response = into_actix(resource.metadata_response());
                    async move { response }
                }),
            );
        }
    }
}

/// Middleware that lets a request through only with a valid bearer token carrying `scopes`
/// (by default the resource's required scopes) and the scopes of the MCP tools it calls
/// ([`ResourceServerConfig::tool_scopes`](mcpauth_http::ResourceServerConfig)), with a body
/// no larger than the configured limit (by `Content-Length`; handlers' extractors cap the
/// rest), and puts the [`VerifiedToken`] in its extensions. Wrap scopes or resources
/// separately to require more on some routes.
#[derive(Clone, Debug)]
pub struct BearerGuard {
    resource: Arc<ResourceServer>,
    scopes: Option<Arc<[String]>>,
    user: bool,
}

impl BearerGuard {
    /// A guard enforcing `resource`'s rules.
    #[must_use]
    pub fn new(resource: Arc<ResourceServer>) -> Self {
        Self {
            resource,
            scopes: None,
            user: false,
        }
    }

    /// Requires `scopes` on the routes this guard wraps instead of the configured ones.
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
        let guard = self.guard.clone();
        Box::pin(async move {
            // CORS preflights carry no credentials and must pass.
            if request.method() == actix_web::http::Method::OPTIONS {
                return Ok(service.call(request).await?.map_into_left_body());
            }
            let headers = crate::http_headers(request.headers());
            let verified = match &guard.scopes {
                Some(scopes) => {
                    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    guard
                        .resource
                        .authenticate_with_scopes(&headers, &scopes)
                        .await
                }
                None => guard.resource.authenticate(&headers).await,
            };
            let resource = &guard.resource;
            let verified = match verified {
                Ok(verified) => verified,
                Err(refusal) => return Ok(refuse(request, refusal)),
            };
            if guard.user
                && let Some(refusal) = resource.refuse_without_user(&verified)
            {
                return Ok(refuse(request, refusal));
            }
            if let Some(refusal) = resource.refuse_declared_length(&headers) {
                return Ok(refuse(request, refusal));
            }
            let session =
                match resource.check_session(&http_method(request.method()), &headers, &verified) {
                    Ok(session) => session,
                    Err(refusal) => return Ok(refuse(request, refusal)),
                };
            if resource.reads_body(&http_method(request.method())) {
                let payload = request.extract::<web::Payload>().await?;
                let Ok(Ok(body)) = payload.to_bytes_limited(resource.max_body_bytes()).await else {
                    return Ok(refuse(request, body_too_large()));
                };
                if let Some(refusal) = resource.refuse_tool_calls(&verified, &headers, &body) {
                    return Ok(refuse(request, refusal));
                }
                request.set_payload(actix_web::dev::Payload::from(body));
            }
            request.extensions_mut().insert(verified);
            let response = service.call(request).await?;
            let opened = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok());
            resource.record_session(
                session,
                http::StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                opened,
            );
            Ok(response.map_into_left_body())
        })
    }
}

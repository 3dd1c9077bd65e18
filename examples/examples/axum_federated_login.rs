//! An authorization server in your own axum app whose users sign in at an upstream OpenID
//! Connect provider (`mcpauth-proxy`), while MCP clients get this server's own tokens.
//!
//! ```text
//! UPSTREAM_ISSUER=https://accounts.google.com UPSTREAM_CLIENT_ID=… UPSTREAM_CLIENT_SECRET=… \
//!   cargo run --example axum_federated_login      # on http://127.0.0.1:8090
//! ```
//!
//! Register `http://127.0.0.1:8090/upstream/upstream/callback` at the provider. `EXAMPLE_LISTEN`
//! changes the address (port 0 picks a free one); the server prints `listening on <issuer>`.
//!
//! What your app writes is the consent page: MCP clients register themselves, so the user
//! must approve *this* client before being sent upstream (the upstream may remember an
//! earlier sign-in and answer at once: its consent says nothing about this client). The rest
//! is the proxy's: `begin` holds the client's request and redirects upstream with a cookie
//! binding the callback to this browser; `callback` checks it, exchanges the code, validates
//! the ID token, asks the `TokenMapper` who the user is here, and finishes the client's
//! authorization with the engine's own code. Storage is in memory: a real app uses
//! `mcpauth-store-sql` (or its own model) and keeps held requests in its database.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mcpauth_adapter_axum::now;
use mcpauth_http::{AuthorizationServer, HttpResponse, Interaction, OsRandom};
use mcpauth_proxy::upstream::ReqwestTransport;
use mcpauth_proxy::{
    CallbackOutcome, FederatedLogin, MemoryUpstreamRequests, Preset, ProviderConfig,
    ProviderSubject,
};
use mcpauth_token_engine::{
    EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
};

type Federation = FederatedLogin<MemoryModel, MemoryUpstreamRequests>;

/// The app's state: the engine, the proxy, and requests waiting for the user's consent.
struct App {
    engine: Arc<TokenEngine<MemoryModel>>,
    federation: Federation,
    /// Waiting for consent: id → (request, CSRF token). A real app stores these with an
    /// expiry in its database.
    waiting: Mutex<HashMap<String, (PendingAuthorization, String)>>,
}

fn random_id() -> Option<String> {
    mcpauth_token_engine::random_token(&OsRandom).ok()
}

/// Text for HTML: the client's name is chosen by whoever registered it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn redirect(location: &str, cookies: &[&str]) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
    for value in std::iter::once(location)
        .map(|l| (header::LOCATION, l))
        .chain(cookies.iter().map(|c| (header::SET_COOKIE, *c)))
    {
        if let Ok(v) = HeaderValue::from_str(value.1) {
            response.headers_mut().append(value.0, v);
        }
    }
    response
}

/// The adapter calls this for every valid authorization request: show the consent page.
struct ConsentFirst(Arc<App>);

#[async_trait::async_trait]
impl Interaction for ConsentFirst {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        _request: &http::request::Parts,
    ) -> HttpResponse {
        let (Some(id), Some(csrf)) = (random_id(), random_id()) else {
            let mut failed = HttpResponse::default();
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return failed;
        };
        let client = escape(pending.client_name().unwrap_or("An application"));
        let resources = escape(&pending.resources().join(", "));
        let scope = escape(pending.scope());
        let providers: String = self
            .0
            .federation
            .providers()
            .iter()
            .map(|p| {
                format!(
                    r#"<button name="provider" value="{}">Continue with {}</button>"#,
                    escape(&p.id),
                    escape(&p.display_name)
                )
            })
            .collect();
        self.0
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), (pending, csrf.clone()));
        let page = format!(
            r#"<!doctype html><title>Authorize {client}</title>
<h1>Authorize {client}?</h1>
<p>It asks to act for you at {resources} with scope <code>{scope}</code>.</p>
<form method="post" action="/consent/{id}"><input type="hidden" name="csrf" value="{csrf}">
{providers}<button name="provider" value="">Deny</button></form>"#
        );
        let mut response = HttpResponse::new(page.into());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // Binds the form to this browser (double submit), only for this request's path.
        if let Ok(v) = HeaderValue::from_str(&format!(
            "consent_csrf={csrf}; Path=/consent/{id}; HttpOnly; SameSite=Lax; Max-Age=600"
        )) {
            headers.append(header::SET_COOKIE, v);
        }
        response
    }
}

#[derive(serde::Deserialize)]
struct ConsentForm {
    csrf: String,
    provider: String,
}

/// `POST /consent/{id}`: approved with a provider (go upstream), or denied.
async fn consent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let taken = {
        let mut waiting = app
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let genuine = waiting.get(&id).is_some_and(|(_, csrf)| {
            mcpauth_oauth_types::constant_time_eq(csrf.as_bytes(), form.csrf.as_bytes())
                && cookie(&headers, "consent_csrf").is_some_and(|c| {
                    mcpauth_oauth_types::constant_time_eq(c.as_bytes(), csrf.as_bytes())
                })
        });
        if genuine { waiting.remove(&id) } else { None }
    };
    let Some((pending, _)) = taken else {
        return (
            StatusCode::FORBIDDEN,
            "This request expired or is not yours.",
        )
            .into_response();
    };
    if form.provider.is_empty() {
        return match app.engine.deny(pending) {
            Ok(to_client) => redirect(&to_client.location, &[]),
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
    }
    match app.federation.begin(&form.provider, pending, now()).await {
        Ok(upstream) => redirect(&upstream.location, &[&upstream.set_cookie]),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `GET /upstream/{provider}/callback`: the provider sends the user back.
async fn callback(
    State(app): State<Arc<App>>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let cookies = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match app
        .federation
        .callback(&provider, &query.unwrap_or_default(), cookies, now())
        .await
    {
        CallbackOutcome::ToClient {
            location,
            clear_cookie,
            ..
        } => redirect(&location, &[&clear_cookie]),
        CallbackOutcome::Refused(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        CallbackOutcome::Failed(e) => {
            tracing::error!(error = %e, "federated sign-in failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let listener = tokio::net::TcpListener::bind(
        std::env::var("EXAMPLE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into()),
    )
    .await?;
    let issuer = format!("http://{}", listener.local_addr()?);

    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .map_err(|_| "key generation failed")?;
    let engine = Arc::new(TokenEngine::new(
        EngineConfig::new(issuer.parse()?)?,
        Arc::new(MemoryModel::new()),
        SigningKey::es256_from_pkcs8_der(pkcs8.as_ref())?,
        Arc::new(OsRandom),
    ));

    // The upstream: any OpenID Connect provider, read from its discovery document.
    let transport = Arc::new(ReqwestTransport::new()?);
    let provider = mcpauth_proxy::resolve_provider(
        &ProviderConfig::new("upstream", Preset::Oidc, &var("UPSTREAM_CLIENT_ID")?)
            .issuer(var("UPSTREAM_ISSUER")?.parse()?)
            .client_secret(&var("UPSTREAM_CLIENT_SECRET")?),
        &*transport,
    )
    .await?;
    let federation = FederatedLogin::new(
        engine.clone(),
        vec![provider],
        MemoryUpstreamRequests::default(),
        // Our tokens' `sub` is `upstream:<the provider's sub>`; write your own TokenMapper to
        // look up or create local users, or refuse some.
        Arc::new(ProviderSubject),
        transport,
        Arc::new(OsRandom),
    );
    let app = Arc::new(App {
        engine: engine.clone(),
        federation,
        waiting: Mutex::new(HashMap::new()),
    });

    let server = AuthorizationServer::new(engine, Arc::new(ConsentFirst(app.clone())));
    let router = mcpauth_adapter_axum::router(Arc::new(server)).merge(
        Router::new()
            .route("/consent/{id}", post(consent))
            .route("/upstream/{provider}/callback", get(callback))
            .with_state(app),
    );
    println!("listening on {issuer}");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPAUTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

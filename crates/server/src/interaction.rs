//! The built-in login and consent pages: the server's [`InteractionHandler`].
//!
//! An interaction is the pending authorization stored server-side under a random id (hashed
//! at rest), for ten minutes. Its forms carry a CSRF token that must equal both the one whose
//! hash is stored and a cookie scoped to the interaction's path, so the decision is bound to
//! the browser that started it and an attacker cannot post it cross-site. A decision is taken
//! once: the interaction is deleted atomically before the code is issued.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use mcpauth_adapter_axum::{InteractionHandler, now};
use mcpauth_store_sql::{InteractionRow, SqlStore};
use mcpauth_token_engine::{
    ClientIdentity, PendingAuthorization, RateLimitStore, TokenEngine, secret_hash,
};
use serde::Deserialize;

use crate::users;

const INTERACTION_TTL: u64 = 600;
const SESSION_COOKIE: &str = "mcpauth_session";
const CSRF_COOKIE: &str = "mcpauth_csrf";
/// Sign-in attempts allowed per account and per address in a window. The counters live in the
/// database, so every instance behind a load balancer counts the same attempts.
const LOGIN_WINDOW: u64 = 900;
const LOGIN_ATTEMPTS_PER_ADDRESS: u32 = 50;

/// Shared state of the pages.
pub(crate) struct Pages {
    pub(crate) store: SqlStore,
    pub(crate) engine: Arc<TokenEngine<SqlStore>>,
    pub(crate) secure_cookies: bool,
    pub(crate) session_ttl: u64,
    pub(crate) lockout: mcpauth_store_sql::LockoutPolicy,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    client_name: &'a str,
    action: String,
    csrf_token: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_name: &'a str,
    client_id: &'a str,
    identity: String,
    user_email: &'a str,
    resources: &'a [String],
    scopes: Vec<&'a str>,
    redirect_host: String,
    action: String,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
}

fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Headers every page carries: no caching, no framing (clickjacking), no referrer leaks.
fn page(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let Ok(html) = html else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response();
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // No form-action: Chrome applies it to the redirect to the client after a POST.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
        ],
        html,
    )
        .into_response()
}

fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    page(
        status,
        MessagePage {
            heading,
            message: text,
        }
        .render(),
    )
}

fn server_error(cause: &dyn std::fmt::Display) -> Response {
    tracing::error!(%cause, "login page failed");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not complete this step. Try again in a moment.",
    )
}

fn expired() -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired",
        "It was already completed, or it is more than ten minutes old. Return to the application and start again.",
    )
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, value),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => message(
            StatusCode::BAD_REQUEST,
            "Cannot redirect",
            "The application's redirect address is not valid.",
        ),
    }
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

impl Pages {
    fn cookie_attributes(&self) -> &'static str {
        if self.secure_cookies {
            "; HttpOnly; SameSite=Lax; Secure"
        } else {
            "; HttpOnly; SameSite=Lax"
        }
    }

    fn set_cookie(
        &self,
        response: &mut Response,
        name: &str,
        value: &str,
        path: &str,
        max_age: u64,
    ) {
        let text = format!(
            "{name}={value}; Path={path}; Max-Age={max_age}{}",
            self.cookie_attributes()
        );
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }

    async fn session_user(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let user_id = self
            .store
            .session_user(&secret_hash(id), now().0)
            .await
            .ok()
            .flatten()?;
        let user = self.store.find_user_by_id(&user_id).await.ok().flatten()?;
        (!user.disabled).then_some(SignedIn {
            id: user.user_id,
            email: user.email,
        })
    }

    /// Loads the interaction and checks that the browser holds its CSRF cookie.
    async fn load(
        &self,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<(InteractionRow, String), Response> {
        let row = match self.store.find_interaction(&secret_hash(id), now().0).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(expired()),
            Err(e) => return Err(server_error(&e)),
        };
        let Some(csrf) = cookie(headers, CSRF_COOKIE) else {
            return Err(message(
                StatusCode::FORBIDDEN,
                "Open this page in the browser that started sign-in",
                "This sign-in request belongs to another browser session (or cookies are blocked). Return to the application and start again.",
            ));
        };
        if !mcpauth_oauth_types::constant_time_eq(
            secret_hash(csrf).as_bytes(),
            row.csrf_hash.as_bytes(),
        ) {
            return Err(message(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Return to the application and start again.",
            ));
        }
        Ok((row, csrf.to_owned()))
    }
}

/// The signed-in user, as the pages need it.
struct SignedIn {
    id: String,
    email: String,
}

/// The [`InteractionHandler`] the adapter calls for a valid authorization request.
pub(crate) struct BuiltInInteraction(pub(crate) Arc<Pages>);

#[async_trait::async_trait]
impl InteractionHandler for BuiltInInteraction {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        _request: &axum::http::request::Parts,
    ) -> Response {
        let pages = &self.0;
        let (Some(id), Some(csrf)) = (random_token(), random_token()) else {
            return server_error(&"no randomness");
        };
        let stored = match serde_json::to_string(&pending) {
            Ok(json) => {
                pages
                    .store
                    .insert_interaction(
                        &secret_hash(&id),
                        &json,
                        &secret_hash(&csrf),
                        now().plus(INTERACTION_TTL).0,
                    )
                    .await
            }
            Err(e) => return server_error(&e),
        };
        if let Err(e) = stored {
            return server_error(&e);
        }
        let path = format!("/interaction/{id}");
        let mut response = see_other(&path);
        // Scoped to this interaction's path: concurrent sign-ins in one browser do not clash.
        pages.set_cookie(&mut response, CSRF_COOKIE, &csrf, &path, INTERACTION_TTL);
        response
    }
}

pub(crate) fn routes(pages: Arc<Pages>) -> Router {
    Router::new()
        .route("/interaction/{id}", get(show))
        .route("/interaction/{id}/login", post(login))
        .route("/interaction/{id}/consent", post(consent))
        .with_state(pages)
}

async fn show(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (row, csrf) = match pages.load(&id, &headers).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let Ok(pending) = serde_json::from_str::<PendingAuthorization>(&row.pending) else {
        return server_error(&"stored interaction does not parse");
    };
    let client_name = pending
        .client_name
        .clone()
        .unwrap_or_else(|| "An application".into());
    let user = match &row.user_id {
        Some(user_id) => pages
            .store
            .find_user_by_id(user_id)
            .await
            .ok()
            .flatten()
            .map(|u| SignedIn {
                id: u.user_id,
                email: u.email,
            }),
        None => pages.session_user(&headers).await,
    };
    match user {
        None => page(
            StatusCode::OK,
            LoginPage {
                client_name: &client_name,
                action: format!("/interaction/{id}/login"),
                csrf_token: &csrf,
                email: "",
                error: None,
            }
            .render(),
        ),
        Some(user) => {
            if row.user_id.is_none()
                && let Err(e) = pages
                    .store
                    .set_interaction_user(&secret_hash(&id), &user.id)
                    .await
            {
                return server_error(&e);
            }
            let redirect_host = url::Url::parse(&pending.redirect_uri)
                .ok()
                .map(|u| {
                    u.host_str()
                        .map_or_else(|| u.scheme().to_owned(), str::to_owned)
                })
                .unwrap_or_default();
            page(
                StatusCode::OK,
                ConsentPage {
                    client_name: &client_name,
                    client_id: &pending.client_id,
                    identity: match &pending.client_identity {
                        ClientIdentity::MetadataDocument { host } => format!("published by {host}"),
                        ClientIdentity::SelfRegistered => {
                            "unverified: it registered itself".to_owned()
                        }
                        _ => "registered by this server's operator".to_owned(),
                    },
                    user_email: &user.email,
                    resources: &pending.resources,
                    scopes: pending.scope.split(' ').filter(|s| !s.is_empty()).collect(),
                    redirect_host,
                    action: format!("/interaction/{id}/consent"),
                    csrf_token: &csrf,
                }
                .render(),
            )
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    csrf_token: String,
    email: String,
    password: String,
}

/// `429` for a locked account, with `Retry-After` until the lock ends.
fn locked(until: u64) -> Response {
    let wait = until.saturating_sub(now().0).max(1);
    let mut response = message(
        StatusCode::TOO_MANY_REQUESTS,
        "This account is locked",
        &format!(
            "Too many wrong passwords in a row. Try again in {} minute(s).",
            wait.div_ceil(60)
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Counts this attempt against the caller's address; `Some` refusal once it is over its
/// limit, until the window ends.
async fn throttle_login(store: &SqlStore, peer: Option<std::net::IpAddr>) -> Option<Response> {
    // Per account, the lockout (after the password check) bounds guessing; per address, this
    // window bounds one caller spraying many accounts.
    let peer = peer?;
    let now = now();
    let key = format!("login-address:{peer}");
    match store.hit(&key, now, LOGIN_WINDOW).await {
        Ok(hits) if hits > LOGIN_ATTEMPTS_PER_ADDRESS => {
            tracing::warn!("sign-in attempts over the limit");
            let wait = LOGIN_WINDOW - now.0 % LOGIN_WINDOW;
            let mut response = message(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-in attempts",
                &format!("Wait {} minutes, then try again.", wait.div_ceil(60).max(1)),
            );
            if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Some(response)
        }
        Ok(_) => None,
        Err(e) => Some(server_error(&e)),
    }
}

async fn login(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let (row, csrf) = match pages.load(&id, &headers).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    if !mcpauth_oauth_types::constant_time_eq(form.csrf_token.as_bytes(), csrf.as_bytes()) {
        return message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Return to the application and start again.",
        );
    }
    let email = users::normalize_email(&form.email).unwrap_or_default();
    let peer = peer.map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr.ip());
    if let Some(refusal) = throttle_login(&pages.store, peer).await {
        return refusal;
    }
    // A locked account is refused before its password is checked, so guessing stops for the
    // lock's duration. Unknown emails lock the same way: the answer tells nothing about which
    // accounts exist.
    let account = secret_hash(&email);
    match pages.store.login_locked_until(&account, now().0).await {
        Ok(Some(until)) => return locked(until),
        Ok(None) => {}
        Err(e) => return server_error(&e),
    }
    let user = match pages.store.find_user_by_email(&email).await {
        Ok(user) => user,
        Err(e) => return server_error(&e),
    };
    // Verify against a dummy hash when there is no usable account, so timing does not tell
    // which emails are registered. argon2 is CPU-bound: keep it off the async workers.
    let stored = user.as_ref().filter(|u| !u.disabled).map_or_else(
        || users::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || users::verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        _ => {
            tracing::info!("failed login attempt");
            match pages
                .store
                .record_login_failure(&account, now().0, &pages.lockout)
                .await
            {
                Ok(Some(until)) => {
                    tracing::warn!("account locked after repeated wrong passwords");
                    return locked(until);
                }
                Ok(None) => {}
                Err(e) => return server_error(&e),
            }
            let client_name = serde_json::from_str::<PendingAuthorization>(&row.pending)
                .ok()
                .and_then(|p| p.client_name)
                .unwrap_or_else(|| "An application".into());
            return page(
                StatusCode::UNAUTHORIZED,
                LoginPage {
                    client_name: &client_name,
                    action: format!("/interaction/{id}/login"),
                    csrf_token: &csrf,
                    email: &email,
                    error: Some("Wrong email or password."),
                }
                .render(),
            );
        }
    };
    if let Err(e) = pages.store.clear_login_failures(&account).await {
        return server_error(&e);
    }
    if let Err(e) = pages
        .store
        .set_interaction_user(&secret_hash(&id), &user.user_id)
        .await
    {
        return server_error(&e);
    }
    let Some(session) = random_token() else {
        return server_error(&"no randomness");
    };
    let now = now().0;
    if let Err(e) = pages
        .store
        .insert_session(
            &secret_hash(&session),
            &user.user_id,
            now,
            now + pages.session_ttl,
        )
        .await
    {
        return server_error(&e);
    }
    let mut response = see_other(&format!("/interaction/{id}"));
    pages.set_cookie(
        &mut response,
        SESSION_COOKIE,
        &session,
        "/",
        pages.session_ttl,
    );
    response
}

#[derive(Deserialize)]
struct ConsentForm {
    csrf_token: String,
    decision: String,
}

async fn consent(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ConsentForm>,
) -> Response {
    let (row, csrf) = match pages.load(&id, &headers).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    if !mcpauth_oauth_types::constant_time_eq(form.csrf_token.as_bytes(), csrf.as_bytes()) {
        return message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Return to the application and start again.",
        );
    }
    let Some(user_id) = row.user_id else {
        return see_other(&format!("/interaction/{id}"));
    };
    let Ok(pending) = serde_json::from_str::<PendingAuthorization>(&row.pending) else {
        return server_error(&"stored interaction does not parse");
    };
    // Only the request that deletes the interaction may decide.
    match pages.store.take_interaction(&secret_hash(&id)).await {
        Ok(true) => {}
        Ok(false) => return expired(),
        Err(e) => return server_error(&e),
    }
    let decided = match form.decision.as_str() {
        "approve" => pages.engine.approve(pending, &user_id, now()).await,
        _ => pages.engine.deny(pending),
    };
    let mut response = match decided {
        Ok(redirect) => see_other(&redirect.location),
        Err(e) => mcpauth_adapter_axum::show_error_page(&e),
    };
    pages.set_cookie(
        &mut response,
        CSRF_COOKIE,
        "",
        &format!("/interaction/{id}"),
        0,
    );
    response
}

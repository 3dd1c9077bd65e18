//! The server's own pages, rendered on the server by auto-escaping templates (askama), with
//! no JavaScript: sign-in and consent for authorization requests ([`interaction`]), code
//! entry and confirmation for the device flow ([`device`], RFC 8628 §3.3), and the account
//! page where remembered consent is withdrawn ([`account`]).
//!
//! Every page is served with `no-store`, `X-Frame-Options: DENY`, a CSP with
//! `frame-ancestors 'none'` (clickjacking), no referrer, and `nosniff`. Every form carries a
//! CSRF token that must match a cookie only this site can set (`SameSite=Lax; HttpOnly`).

mod account;
mod admin;
mod device;
mod federated;
mod interaction;
mod sign_in;

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::{SecretHash, TokenEngine};

pub(crate) use interaction::BuiltInInteraction;

const SESSION_COOKIE: &str = "mcpauth_session";
/// The CSRF cookie of forms outside an interaction (device, account, sign-out): one per
/// browser, compared with the form's hidden field (double submit).
const FORM_CSRF_COOKIE: &str = "mcpauth_form";
const FORM_CSRF_TTL: u64 = 24 * 3600;
const STYLESHEET: &str = include_str!("../../static/mcpauth.css");

/// Shared state of the pages.
pub(crate) struct Pages {
    /// The signing keys, which the admin console lists and rotates.
    pub(crate) keys: Arc<crate::keys::KeyRing>,
    /// Where the time comes from (a `ManualClock` in tests).
    pub(crate) clock: Arc<dyn mcpauth_token_engine::Clock>,
    pub(crate) store: SqlStore,
    pub(crate) engine: Arc<TokenEngine<SqlStore>>,
    pub(crate) secure_cookies: bool,
    pub(crate) session_ttl: u64,
    pub(crate) lockout: mcpauth_store_sql::LockoutPolicy,
    /// The issuer's path (empty, or `/tenant`): every page lives below it.
    pub(crate) base: String,
    /// The device verification page's path below `base`.
    pub(crate) device_path: String,
    /// Human descriptions of scopes, shown beside the scope names.
    pub(crate) scope_descriptions: BTreeMap<String, String>,
    /// Federated sign-in through upstream providers, when configured.
    pub(crate) federation: Option<Arc<crate::federation::Federation>>,
    /// Whether local users may sign in with a password.
    pub(crate) password_login: bool,
    /// Sign-in attempts allowed per address per hour.
    pub(crate) sign_in_attempts_per_hour: u32,
    /// The lock of an account for everyone (`login_lockout_account_after` wrong passwords in
    /// a row, from any address), for `login_lockout_max_seconds`.
    pub(crate) account_lockout: mcpauth_store_sql::LockoutPolicy,
}

/// A scope as the consent and device pages list it.
struct ScopeLine<'a> {
    name: &'a str,
    description: Option<&'a str>,
}

impl Pages {
    fn scope_lines<'a>(&'a self, scope: &'a str) -> Vec<ScopeLine<'a>> {
        scope
            .split_ascii_whitespace()
            .map(|name| ScopeLine {
                name,
                description: self
                    .scope_descriptions
                    .get(name)
                    .map(String::as_str)
                    // An operator's wording wins; `openid` means the same everywhere.
                    .or((name == mcpauth_token_engine::OPENID_SCOPE).then_some(
                        "Know who you are: your account's identifier here, in a signed ID token",
                    )),
            })
            .collect()
    }
}

/// The "signed in as … / sign out" bar.
struct SessionBar<'a> {
    email: &'a str,
    sign_out_action: String,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    base: &'a str,
    heading: &'a str,
    message: &'a str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    base: &'a str,
    device_path: &'a str,
    metadata: &'a str,
}

/// `GET {base}/`: what this server is, for a person who opens it in a browser.
async fn home(axum::extract::State(pages): axum::extract::State<Arc<Pages>>) -> Response {
    let metadata = url::Url::parse(&pages.engine.metadata().issuer)
        .ok()
        .and_then(|issuer| mcpauth_metadata::authorization_server_metadata_url(&issuer).ok())
        .map(String::from)
        .unwrap_or_default();
    page(
        StatusCode::OK,
        HomePage {
            base: &pages.base,
            device_path: &pages.device_path,
            metadata: &metadata,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    base: &'a str,
    client_name: Option<&'a str>,
    purpose: &'a str,
    action: String,
    csrf_token: &'a str,
    hidden: Vec<(&'static str, String)>,
    email: &'a str,
    error: Option<&'a str>,
    /// "Continue with …" buttons (federated sign-in), each its own form.
    providers: Vec<ProviderButton<'a>>,
    password_login: bool,
}

/// A "Continue with …" button: the provider's name and where its form posts.
struct ProviderButton<'a> {
    name: &'a str,
    action: String,
}

pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Headers every page carries: no caching, no framing (clickjacking), no referrer leaks,
/// styles only from this origin.
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
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        html,
    )
        .into_response()
}

impl Pages {
    fn message(&self, status: StatusCode, heading: &str, text: &str) -> Response {
        page(
            status,
            MessagePage {
                base: &self.base,
                heading,
                message: text,
            }
            .render(),
        )
    }

    fn server_error(&self, cause: &dyn std::fmt::Display) -> Response {
        tracing::error!(%cause, "page failed");
        self.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server could not complete this step. Try again in a moment.",
        )
    }

    fn password_login_off(&self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            "Password sign-in is off",
            "This server signs users in through their identity provider only. Return to the application and start again.",
        )
    }

    fn form_expired(&self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Go back, reload the page and try again.",
        )
    }

    /// `429` with `Retry-After`.
    fn too_many(&self, heading: &str, text: &str, retry_after: u64) -> Response {
        let mut response = self.message(StatusCode::TOO_MANY_REQUESTS, heading, text);
        if let Ok(value) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }

    fn cookie_attributes(&self) -> &'static str {
        if self.secure_cookies {
            "; HttpOnly; SameSite=Lax; Secure"
        } else {
            "; HttpOnly; SameSite=Lax"
        }
    }

    /// A cookie's name as set and read: on an https issuer with the `__Host-` prefix, which
    /// browsers accept only with `Secure`, `Path=/` and no `Domain`, so no other host of the
    /// site and no plain-http page can set or overwrite it (cookie tossing).
    fn cookie_name(&self, name: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
    }

    /// Sets cookie `name` (a `__Host-` one on an https issuer, at `Path=/`; `path` applies
    /// on a development http issuer).
    fn set_cookie(
        &self,
        response: &mut Response,
        name: &str,
        value: &str,
        path: &str,
        max_age: u64,
    ) {
        let name = self.cookie_name(name);
        let path = if self.secure_cookies { "/" } else { path };
        let text = format!(
            "{name}={value}; Path={path}; Max-Age={max_age}{}",
            self.cookie_attributes()
        );
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }

    fn cookie_path(&self) -> &str {
        if self.base.is_empty() {
            "/"
        } else {
            &self.base
        }
    }

    /// The current time, from the server's clock.
    pub(crate) fn now(&self) -> mcpauth_token_engine::UnixTime {
        self.clock.now()
    }

    /// The signed-in user of this browser, if its session is live and the user enabled.
    async fn session_user(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let id = cookie(headers, &self.cookie_name(SESSION_COOKIE))?;
        let user_id = self
            .store
            .session_user(&SecretHash::of(id), self.now())
            .await
            .ok()
            .flatten()?;
        let user = self.store.find_user_by_id(&user_id).await.ok().flatten()?;
        (!user.disabled).then_some(SignedIn {
            id: user.user_id,
            email: user.email,
            admin: user.admin,
        })
    }

    /// Ends this browser's session (server-side too) and clears its cookie on `response`.
    async fn end_session(&self, headers: &HeaderMap, response: &mut Response) {
        if let Some(id) = cookie(headers, &self.cookie_name(SESSION_COOKIE))
            && let Err(e) = self.store.delete_session(&SecretHash::of(id)).await
        {
            tracing::warn!(error = %e, "deleting a session failed");
        }
        self.set_cookie(response, SESSION_COOKIE, "", "/", 0);
    }

    /// This browser's form CSRF token, and whether the cookie must be set on the response.
    fn form_csrf(&self, headers: &HeaderMap) -> Option<(String, bool)> {
        match cookie(headers, &self.cookie_name(FORM_CSRF_COOKIE)).filter(|v| v.len() == 43) {
            Some(token) => Some((token.to_owned(), false)),
            None => random_token().map(|token| (token, true)),
        }
    }

    fn with_form_csrf(&self, mut response: Response, token: &str, new: bool) -> Response {
        if new {
            let path = self.cookie_path().to_owned();
            self.set_cookie(&mut response, FORM_CSRF_COOKIE, token, &path, FORM_CSRF_TTL);
        }
        response
    }

    /// Whether a posted form's token matches this browser's form CSRF cookie.
    fn form_csrf_matches(&self, headers: &HeaderMap, submitted: &str) -> bool {
        // Only a token of the shape this server mints: a cookie someone else planted (on a
        // development http issuer, without the `__Host-` prefix) is no token.
        cookie(headers, &self.cookie_name(FORM_CSRF_COOKIE)).is_some_and(|expected| {
            expected.len() == 43
                && mcpauth_oauth_types::constant_time_eq(expected.as_bytes(), submitted.as_bytes())
        })
    }
}

/// An axum response as the framework-neutral one the authorization server sends (the
/// built-in interaction renders with axum). Pages are small; a body that cannot be read
/// becomes a `500`.
async fn into_http(response: Response) -> mcpauth_http::HttpResponse {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => axum::http::Response::from_parts(parts, bytes),
        Err(e) => {
            tracing::error!(error = %e, "interaction response body failed");
            let mut failed = axum::http::Response::new(axum::body::Bytes::new());
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            failed
        }
    }
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
        Err(_) => (StatusCode::BAD_REQUEST, "the redirect address is not valid").into_response(),
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

/// The signed-in user, as the pages need it.
struct SignedIn {
    id: String,
    email: String,
    /// Whether they may use the admin console.
    admin: bool,
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Every page route, below the issuer's path.
pub(crate) fn routes(pages: Arc<Pages>) -> Router {
    let base = pages.base.clone();
    let at = |path: &str| format!("{base}{path}");
    Router::new()
        .route(&at("/interaction/{id}"), get(interaction::show))
        .route(&at("/interaction/{id}/login"), post(interaction::login))
        .route(&at("/interaction/{id}/consent"), post(interaction::consent))
        .route(
            &at("/interaction/{id}/sign-out"),
            post(interaction::sign_out),
        )
        .route(
            &at("/interaction/{id}/upstream/{provider}"),
            post(interaction::upstream),
        )
        .route(
            &at("/upstream/{provider}/callback"),
            get(federated::callback),
        )
        .route(
            &at(&pages.device_path),
            get(device::show).post(device::decide),
        )
        .route(
            &at(&format!("{}/code", pages.device_path)),
            post(device::lookup),
        )
        .route(&at("/account"), get(account::show))
        .route(&at("/account/withdraw"), post(account::withdraw))
        .merge(admin::routes(&base))
        .route(&at("/sign-in"), post(sign_in::sign_in))
        .route(
            &at("/sign-in/upstream/{provider}"),
            post(sign_in::sign_in_upstream),
        )
        .route(&at("/sign-out"), post(sign_in::sign_out))
        .route(&at("/static/mcpauth.css"), get(stylesheet))
        .route(if base.is_empty() { "/" } else { &base }, get(home))
        .with_state(pages)
}

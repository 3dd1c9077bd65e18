//! Password sign-in, shared by every page that asks for it, and browser sessions.
//!
//! Guessing is bounded twice, with the counters in the database so every instance counts the
//! same attempts: per account, a lock with progressive backoff after repeated wrong passwords
//! ([`LockoutPolicy`](mcpauth_store_sql::LockoutPolicy)); per address, a window of attempts
//! (one caller spraying many accounts).

use mcpauth_token_engine::UnixTime;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use mcpauth_store_sql::UserRow;
use mcpauth_token_engine::{RateLimitKey, RateLimitStore, SecretHash};
use serde::Deserialize;

use super::{LoginPage, Pages, ProviderButton, SESSION_COOKIE, page, random_token, see_other};
use crate::audit::{self, AuditOutcome, AuditRecord, events};
use crate::users;

/// The window of the per-address sign-in limit (`sign_in_attempts_per_ip_per_hour`).
const LOGIN_WINDOW: u64 = 3600;

/// The caller's address, when the server was started with connect info.
pub(super) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub(super) fn peer_ip(peer: Peer) -> Option<IpAddr> {
    peer.map(|Extension(ConnectInfo(addr))| addr.ip())
}

/// How a password check ended.
pub(super) enum PasswordCheck {
    /// The password is right and the account enabled.
    Accepted(UserRow),
    /// Wrong email or password (the answer does not say which); the normalised email.
    Wrong(String),
    /// Refused before or after checking (locked, throttled, storage failure): send this.
    Refused(Response),
}

/// Checks `email` and `password`, counting failures toward the account's lock and the
/// address's window.
pub(super) async fn check_password(
    pages: &Pages,
    peer: Option<IpAddr>,
    email: &str,
    password: String,
) -> PasswordCheck {
    let email = users::normalize_email(email).unwrap_or_default();
    let failed = |detail: &str| {
        AuditRecord::new(events::SIGN_IN, AuditOutcome::Failure, pages.now())
            .address(peer)
            .detail(detail)
    };
    if let Some((refusal, first)) = throttle_address(pages, peer).await {
        // One record per address and window: refused attempts cost nothing to send.
        if first {
            audit::record(
                &pages.store,
                failed("too many attempts from this address (the rest of the hour not recorded)"),
            )
            .await;
        }
        return PasswordCheck::Refused(refusal);
    }
    // A locked account is refused before its password is checked, so guessing stops for the
    // lock's duration. Unknown emails lock the same way: the answer tells nothing about which
    // accounts exist. The lock is per account *and* caller (an address, an IPv6 /64): one
    // abusive client locks the account for itself, never for its owner elsewhere, and the
    // per-address limit above caps how many accounts one caller can try. Guessing one
    // account from many addresses meets the account's own lock (`account_lockout`), which
    // counts only wrong passwords that were checked: a caller already locked out adds
    // nothing to it, so no one address can lock an account for everyone.
    let caller = peer.map_or_else(|| "unknown".to_owned(), mcpauth_http::caller_key);
    let account = SecretHash::of(&format!("{email}\n{caller}"));
    let whole_account = crate::admin::whole_account_lock(&email);
    for key in [&account, &whole_account] {
        match pages.store.login_locked_until(key, pages.now()).await {
            Ok(Some(until)) => {
                audit::record(&pages.store, failed("account locked")).await;
                return PasswordCheck::Refused(locked(pages, until));
            }
            Ok(None) => {}
            Err(e) => return PasswordCheck::Refused(pages.server_error(&e)),
        }
    }
    let user = match pages.store.find_user_by_email(&email).await {
        Ok(user) => user,
        Err(e) => return PasswordCheck::Refused(pages.server_error(&e)),
    };
    // Verify against a dummy hash when there is no usable account, so timing does not tell
    // which emails are registered. argon2 is CPU-bound: keep it off the async workers.
    // Accounts that sign in only upstream have no password: they are checked against the
    // dummy too, and never accepted.
    let usable = user
        .as_ref()
        .filter(|u| !u.disabled && u.password_hash != mcpauth_store_sql::NO_PASSWORD);
    let stored = usable.map_or_else(
        || users::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let has_password = usable.is_some();
    let verified = tokio::task::spawn_blocking(move || users::verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if verified && has_password => {
            for key in [&account, &whole_account] {
                if let Err(e) = pages.store.clear_login_failures(key).await {
                    return PasswordCheck::Refused(pages.server_error(&e));
                }
            }
            PasswordCheck::Accepted(user)
        }
        _ => {
            tracing::info!("failed sign-in attempt");
            // Operators may learn which accounts exist; the caller never does.
            let (why, concerned) = match &user {
                None => ("unknown account", None),
                Some(u) if u.disabled => ("account disabled", Some(u.user_id.as_str())),
                Some(u) if u.password_hash == mcpauth_store_sql::NO_PASSWORD => {
                    ("no password (signs in upstream)", Some(u.user_id.as_str()))
                }
                Some(u) => ("wrong password", Some(u.user_id.as_str())),
            };
            let mut record = failed(why);
            if let Some(user_id) = concerned {
                record = record.user(user_id);
            }
            audit::record(&pages.store, record).await;
            let locked_now = |scope: &str| {
                let record =
                    AuditRecord::new(events::ACCOUNT_LOCKED, AuditOutcome::Failure, pages.now())
                        .address(peer)
                        .detail(scope);
                match concerned {
                    Some(user_id) => record.user(user_id),
                    None => record,
                }
            };
            let now = pages.now().0;
            let here = pages
                .store
                .record_login_failure(&account, UnixTime(now), &pages.lockout)
                .await;
            let everywhere = pages
                .store
                .record_login_failure(&whole_account, UnixTime(now), &pages.account_lockout)
                .await;
            match (here, everywhere) {
                (Err(e), _) | (_, Err(e)) => PasswordCheck::Refused(pages.server_error(&e)),
                (Ok(Some(until)), _) => {
                    tracing::warn!("account locked for one caller after repeated wrong passwords");
                    audit::record(&pages.store, locked_now("for this caller")).await;
                    PasswordCheck::Refused(locked(pages, until))
                }
                (Ok(None), Ok(Some(until))) => {
                    tracing::warn!(
                        "account locked for everyone after repeated wrong passwords from many addresses"
                    );
                    audit::record(&pages.store, locked_now("for everyone")).await;
                    PasswordCheck::Refused(locked(pages, until))
                }
                (Ok(None), Ok(None)) => PasswordCheck::Wrong(email),
            }
        }
    }
}

/// `429` for a locked account, with `Retry-After` until the lock ends.
fn locked(pages: &Pages, until: u64) -> Response {
    let wait = until.saturating_sub(pages.now().0).max(1);
    pages.too_many(
        "This account is locked",
        &format!(
            "Too many wrong passwords in a row. Try again in {} minute(s).",
            wait.div_ceil(60)
        ),
        wait,
    )
}

/// Counts this attempt against the caller's address; `Some` refusal once it is over its
/// limit, until the window ends, with whether it is the first refusal of the window.
pub(super) async fn throttle_address(
    pages: &Pages,
    peer: Option<IpAddr>,
) -> Option<(Response, bool)> {
    let peer = peer?;
    let now = pages.now();
    let key = RateLimitKey::new("login-address", &mcpauth_http::caller_key(peer));
    match pages.store.hit(&key, now, LOGIN_WINDOW).await {
        Ok(hits) if hits > pages.sign_in_attempts_per_hour => {
            let first = hits == pages.sign_in_attempts_per_hour.saturating_add(1);
            tracing::warn!("sign-in attempts over the limit");
            let wait = LOGIN_WINDOW - now.0 % LOGIN_WINDOW;
            Some((
                pages.too_many(
                    "Too many sign-in attempts",
                    &format!("Wait {} minutes, then try again.", wait.div_ceil(60).max(1)),
                    wait,
                ),
                first,
            ))
        }
        Ok(_) => None,
        Err(e) => Some((pages.server_error(&e), false)),
    }
}

/// Starts a session for `user_id`, who signed in `how` (audited once the session is
/// stored) from `address`, and sets its cookie on `response`.
pub(super) async fn start_session(
    pages: &Pages,
    user_id: &str,
    how: &str,
    address: Option<IpAddr>,
    mut response: Response,
) -> Response {
    let Some(session) = random_token() else {
        return pages.server_error(&"no randomness");
    };
    let now = pages.now().0;
    if let Err(e) = pages
        .store
        .insert_session(
            &SecretHash::of(&session),
            user_id,
            UnixTime(now),
            now + pages.session_ttl,
        )
        .await
    {
        return pages.server_error(&e);
    }
    audit::record(
        &pages.store,
        AuditRecord::new(events::SIGN_IN, AuditOutcome::Success, pages.now())
            .user(user_id)
            .address(address)
            .detail(how),
    )
    .await;
    pages.set_cookie(
        &mut response,
        SESSION_COOKIE,
        &session,
        "/",
        pages.session_ttl,
    );
    response
}

/// Where a stand-alone sign-in returns to.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Next {
    /// The device page.
    Device,
    /// The account page.
    Account,
    /// The admin console.
    Admin,
}

/// The sign-in form of the device and account pages.
pub(super) fn sign_in_page(
    pages: &Pages,
    status: StatusCode,
    csrf_token: &str,
    next: Next,
    user_code: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> Response {
    let mut hidden = vec![(
        "next",
        match next {
            Next::Device => "device",
            Next::Account => "account",
            Next::Admin => "admin",
        }
        .to_owned(),
    )];
    if let Some(code) = user_code {
        hidden.push(("user_code", code.to_owned()));
    }
    let providers = pages
        .federation
        .as_ref()
        .map(|federation| {
            federation
                .login
                .providers()
                .iter()
                .map(|p| ProviderButton {
                    name: &p.display_name,
                    action: format!("{}/sign-in/upstream/{}", pages.base, p.id),
                })
                .collect()
        })
        .unwrap_or_default();
    page(
        status,
        LoginPage {
            base: &pages.base,
            client_name: None,
            purpose: match next {
                Next::Device => "Sign in to connect a device to your account.",
                Next::Account => "Sign in to see the applications you allowed.",
                Next::Admin => "Sign in as an administrator to manage this server.",
            },
            action: format!("{}/sign-in", pages.base),
            csrf_token,
            hidden,
            email,
            error,
            providers,
            password_login: pages.password_login,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    csrf_token: String,
    email: String,
    password: String,
    next: Next,
    #[serde(default)]
    user_code: Option<String>,
}

/// `POST {base}/sign-in`: the device and account pages' sign-in.
pub(super) async fn sign_in(
    State(pages): State<Arc<Pages>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !pages.password_login {
        return pages.password_login_off();
    }
    if !pages.form_csrf_matches(&headers, &form.csrf_token) {
        return pages.form_expired();
    }
    let user_code = form.user_code.as_deref().filter(|c| !c.trim().is_empty());
    match check_password(&pages, peer_ip(peer), &form.email, form.password).await {
        PasswordCheck::Accepted(user) => {
            let next = match form.next {
                Next::Device => pages.device_page_url(user_code),
                Next::Account => format!("{}/account", pages.base),
                Next::Admin => format!("{}/admin", pages.base),
            };
            start_session(
                &pages,
                &user.user_id,
                "password",
                peer_ip(peer),
                see_other(&next),
            )
            .await
        }
        PasswordCheck::Wrong(email) => sign_in_page(
            &pages,
            StatusCode::UNAUTHORIZED,
            &form.csrf_token,
            form.next,
            user_code,
            &email,
            Some("Wrong email or password."),
        ),
        PasswordCheck::Refused(response) => response,
    }
}

#[derive(Deserialize)]
pub(super) struct UpstreamSignInForm {
    csrf_token: String,
    next: Next,
    #[serde(default)]
    user_code: Option<String>,
}

/// `POST {base}/sign-in/upstream/{provider}`: the device and account pages' sign-in through
/// an upstream provider; the callback starts the session and comes back to the page.
pub(super) async fn sign_in_upstream(
    State(pages): State<Arc<Pages>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Form(form): Form<UpstreamSignInForm>,
) -> Response {
    if !pages.form_csrf_matches(&headers, &form.csrf_token) {
        return pages.form_expired();
    }
    let Some(federation) = pages.federation.clone() else {
        return pages.message(
            StatusCode::NOT_FOUND,
            "No identity providers",
            "This server signs users in with a password only.",
        );
    };
    let user_code = form.user_code.as_deref().filter(|c| !c.trim().is_empty());
    let return_to = match form.next {
        Next::Device => pages.device_page_url(user_code),
        Next::Account => format!("{}/account", pages.base),
        Next::Admin => format!("{}/admin", pages.base),
    };
    match federation
        .login
        .begin_sign_in(&provider, &return_to, pages.now())
        .await
    {
        Ok(upstream) => {
            let mut response = see_other(&upstream.location);
            if let Ok(value) = axum::http::HeaderValue::from_str(&upstream.set_cookie) {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, value);
            }
            response
        }
        Err(mcpauth_proxy::ProxyError::Callback(_)) => pages.message(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            "Go back and choose one of the providers listed.",
        ),
        Err(e) => pages.server_error(&e),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf_token: String,
}

/// `POST {base}/sign-out`: ends this browser's session.
pub(super) async fn sign_out(
    State(pages): State<Arc<Pages>>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !pages.form_csrf_matches(&headers, &form.csrf_token) {
        return pages.form_expired();
    }
    let mut response = pages.message(
        StatusCode::OK,
        "You are signed out",
        "This browser no longer has a session. Applications you allowed keep their access until you withdraw it.",
    );
    pages.end_session(&headers, &mut response).await;
    response
}

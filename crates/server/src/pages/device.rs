//! RFC 8628 §3.3: the verification page of the device flow, at the `verification_uri` the
//! device authorization endpoint publishes (`{issuer}/device`).
//!
//! The user signs in, types the code the device shows (or arrives with it filled in through
//! `verification_uri_complete`) and posts it with the form's CSRF token, sees which client
//! asks for what and how far its identity is verified, and approves or denies.
//! The confirmation is always shown, even with remembered consent: §5.4 (remote phishing)
//! asks that the user check the code against their device before approving. Wrong codes count
//! against the caller (§5.1), in the database.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcpauth_token_engine::{ClientIdentity, DeviceUserError, PendingDevice};
use serde::Deserialize;

use super::sign_in::{Next, Peer, peer_ip, sign_in_page};
use super::{Pages, ScopeLine, SessionBar, page, see_other};
use crate::audit::{self, AuditOutcome, AuditRecord, events};

#[derive(Template)]
#[template(path = "device_entry.html")]
struct EntryPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    action: String,
    user_code: &'a str,
    error: Option<&'a str>,
}

/// The path the code-entry form posts to: a lookup is a POST with the form's CSRF token, so
/// another site cannot make a signed-in browser try codes (and spend its attempts).
const CODE_PATH: &str = "/code";

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    client_name: &'a str,
    client_id: &'a str,
    identity: &'a str,
    user_code: &'a str,
    resources: &'a [String],
    scopes: Vec<ScopeLine<'a>>,
    action: String,
}

impl Pages {
    /// The device page, with `user_code` filled in when given.
    pub(super) fn device_page_url(&self, user_code: Option<&str>) -> String {
        let path = format!("{}{}", self.base, self.device_path);
        match user_code {
            Some(code) => format!(
                "{path}?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("user_code", code)
                    .finish()
            ),
            None => path,
        }
    }

    pub(super) fn session_bar<'a>(&self, email: &'a str, csrf_token: &'a str) -> SessionBar<'a> {
        SessionBar {
            email,
            sign_out_action: format!("{}/sign-out", self.base),
            csrf_token,
        }
    }

    fn device_entry(
        &self,
        status: StatusCode,
        bar: SessionBar<'_>,
        user_code: &str,
        error: Option<&str>,
    ) -> Response {
        page(
            status,
            EntryPage {
                base: &self.base,
                signed_in: bar,
                action: format!("{}{CODE_PATH}", self.device_page_url(None)),
                user_code,
                error,
            }
            .render(),
        )
    }

    /// The answer to a user code the engine refused.
    fn device_code_refused(
        &self,
        error: &DeviceUserError,
        bar: SessionBar<'_>,
        user_code: &str,
    ) -> Response {
        match error {
            DeviceUserError::UnknownCode => self.device_entry(
                StatusCode::BAD_REQUEST,
                bar,
                user_code,
                Some("This code is not valid, has expired, or was already used. Check it against your device and try again."),
            ),
            DeviceUserError::TooManyAttempts => self.too_many(
                "Too many attempts",
                "Too many wrong codes. Wait a minute, then try again.",
                60,
            ),
            DeviceUserError::InactiveUser => self.message(
                StatusCode::FORBIDDEN,
                "This account cannot approve requests",
                "It is disabled or was removed. Ask the server's operator.",
            ),
            other => self.server_error(other),
        }
    }
}

/// Who is typing codes, for the per-caller limit: the address, else the account.
fn caller_key(peer: Peer, user_id: &str) -> String {
    peer_ip(peer).map_or_else(|| format!("user:{user_id}"), mcpauth_http::caller_key)
}

#[derive(Deserialize)]
pub(super) struct DeviceQuery {
    #[serde(default)]
    user_code: Option<String>,
}

/// `GET {base}/device[?user_code=…]`: the sign-in form, or the code-entry form (filled in
/// from `verification_uri_complete`). Nothing is looked up: that takes the form's POST.
pub(super) async fn show(
    State(pages): State<Arc<Pages>>,
    headers: HeaderMap,
    Query(query): Query<DeviceQuery>,
) -> Response {
    let Some((csrf, new)) = pages.form_csrf(&headers) else {
        return pages.server_error(&"no randomness");
    };
    let user_code = query
        .user_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let response = match pages.session_user(&headers).await {
        None => sign_in_page(
            &pages,
            StatusCode::OK,
            &csrf,
            Next::Device,
            user_code,
            "",
            None,
        ),
        Some(user) => {
            let bar = pages.session_bar(&user.email, &csrf);
            pages.device_entry(StatusCode::OK, bar, user_code.unwrap_or_default(), None)
        }
    };
    pages.with_form_csrf(response, &csrf, new)
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    csrf_token: String,
    user_code: String,
}

/// `POST {base}/device/code`: the code the user typed (rate-limited per caller, RFC 8628
/// §5.1), answered with the confirmation page.
pub(super) async fn lookup(
    State(pages): State<Arc<Pages>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if !pages.form_csrf_matches(&headers, &form.csrf_token) {
        return pages.form_expired();
    }
    let code = form.user_code.trim();
    let Some(user) = pages.session_user(&headers).await else {
        return see_other(&pages.device_page_url(Some(code).filter(|c| !c.is_empty())));
    };
    let bar = pages.session_bar(&user.email, &form.csrf_token);
    match pages
        .engine
        .device_lookup(code, &caller_key(peer, &user.id), pages.now())
        .await
    {
        Ok(pending) => confirm_page(&pages, bar, &pending),
        Err(e) => pages.device_code_refused(&e, bar, code),
    }
}

fn confirm_page(pages: &Pages, bar: SessionBar<'_>, pending: &PendingDevice) -> Response {
    let client_name = pending.client_name().unwrap_or("A device");
    let identity = match pending.client_identity() {
        ClientIdentity::MetadataDocument { host } => format!("published by {host}"),
        ClientIdentity::SelfRegistered => "unverified: it registered itself".to_owned(),
        _ => "registered by this server's operator".to_owned(),
    };
    page(
        StatusCode::OK,
        ConfirmPage {
            base: &pages.base,
            signed_in: bar,
            client_name,
            client_id: pending.client_id(),
            identity: &identity,
            user_code: pending.user_code(),
            resources: pending.resources(),
            scopes: pages.scope_lines(pending.scope()),
            action: pages.device_page_url(None),
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    csrf_token: String,
    user_code: String,
    decision: String,
}

/// `POST {base}/device`: the user's decision on a code they confirmed.
pub(super) async fn decide(
    State(pages): State<Arc<Pages>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    if !pages.form_csrf_matches(&headers, &form.csrf_token) {
        return pages.form_expired();
    }
    let Some(user) = pages.session_user(&headers).await else {
        return see_other(&pages.device_page_url(Some(&form.user_code)));
    };
    // Through the rate-limited lookup first, so posting decisions cannot try codes faster
    // than typing them.
    let pending = match pages
        .engine
        .device_lookup(&form.user_code, &caller_key(peer, &user.id), pages.now())
        .await
    {
        Ok(pending) => pending,
        Err(e) => {
            let bar = pages.session_bar(&user.email, &form.csrf_token);
            return pages.device_code_refused(&e, bar, &form.user_code);
        }
    };
    let approve = form.decision == "approve";
    let record = AuditRecord::new(
        events::DEVICE_APPROVAL,
        if approve {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        },
        pages.now(),
    )
    .user(&user.id)
    .client(pending.client_id())
    .address(peer_ip(peer))
    .detail(if approve { "approved" } else { "denied" });
    let decided = if approve {
        pages
            .engine
            .approve_device(pending, &user.id, pages.now())
            .await
    } else {
        pages.engine.deny_device(pending, pages.now()).await
    };
    if decided.is_ok() {
        audit::record(&pages.store, record).await;
    }
    match decided {
        Ok(()) if form.decision == "approve" => {
            tracing::info!("device authorization approved");
            pages.message(
                StatusCode::OK,
                "Device connected",
                "You can return to your device: it will continue on its own.",
            )
        }
        Ok(()) => pages.message(
            StatusCode::OK,
            "Request denied",
            "The device was refused access. You can close this page.",
        ),
        Err(e) => {
            let bar = pages.session_bar(&user.email, &form.csrf_token);
            pages.device_code_refused(&e, bar, &form.user_code)
        }
    }
}

//! The interaction's routes: the page for a pending authorization, and the sign-in, consent,
//! sign-out and provider forms posted from it (each checked against the interaction's CSRF cookie).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcpauth_token_engine::{PendingAuthorization, SecretHash};
use serde::Deserialize;

use super::render::{ConsentPage, describe_client};
use super::{Decision, csrf_cookie};
use crate::audit::{self, AuditOutcome, AuditRecord, events};
use crate::pages::sign_in::{PasswordCheck, Peer, check_password, peer_ip, start_session};
use crate::pages::{Pages, SessionBar, SignedIn, page, see_other};

/// `GET {base}/interaction/{id}`: the sign-in page, the consent page, or (consent
/// remembered) straight back to the client.
pub(in crate::pages) async fn show(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let (row, csrf) = match pages.load(&id, &headers).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let Ok(pending) = PendingAuthorization::restore(&row.pending) else {
        return pages.server_error(&"stored interaction does not parse");
    };
    let user = match &row.user_id {
        Some(user_id) => pages
            .store
            .find_user_by_id(user_id)
            .await
            .ok()
            .flatten()
            .filter(|u| !u.disabled)
            .map(|u| SignedIn {
                id: u.user_id,
                email: u.email,
                admin: u.admin,
            }),
        None => pages.session_user(&headers).await,
    };
    let Some(user) = user else {
        if let Some(federation) = &pages.federation {
            return pages.chooser_page(&id, &pending, federation, &csrf);
        }
        return pages.login_page(StatusCode::OK, &id, &row.pending, &csrf, "", None);
    };
    if row.user_id.is_none()
        && let Err(e) = pages
            .store
            .set_interaction_user(&SecretHash::of(&id), &user.id)
            .await
    {
        return pages.server_error(&e);
    }
    // RFC 8252 §8.6: only a client whose identity is assured may skip the page, and only for
    // exactly what the user approved before at the same redirect URI.
    if pending.consent_may_be_remembered() {
        match pages
            .store
            .consent_covers(
                &user.id,
                pending.client_id(),
                pending.redirect_uri(),
                pending.scope(),
                pending.resources(),
            )
            .await
        {
            Ok(true) => {
                tracing::debug!(client_id = %pending.client_id(), "consent remembered: not asking again");
                let record = AuditRecord::new(events::CONSENT, AuditOutcome::Success, pages.now())
                    .user(&user.id)
                    .client(pending.client_id())
                    .address(peer_ip(peer))
                    .detail("approved before (remembered)");
                let response = pages
                    .decide(&id, pending, &user.id, Decision::Approve)
                    .await;
                if response.status().is_redirection() {
                    audit::record(&pages.store, record).await;
                }
                return response;
            }
            Ok(false) => {}
            Err(e) => return pages.server_error(&e),
        }
    }
    let client = describe_client(&pending);
    page(
        StatusCode::OK,
        ConsentPage {
            base: &pages.base,
            signed_in: SessionBar {
                email: &user.email,
                sign_out_action: format!("{}/sign-out", pages.interaction_path(&id)),
                csrf_token: &csrf,
            },
            client_name: &client.name,
            client_id: pending.client_id(),
            identity: client.identity,
            resources: pending.resources(),
            scopes: pages.scope_lines(pending.scope()),
            redirect_host: client.redirect_host,
            redirect_warning: client.redirect_warning,
            remember_offered: pending.consent_may_be_remembered(),
            action: format!("{}/consent", pages.interaction_path(&id)),
            csrf_token: &csrf,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(in crate::pages) struct LoginForm {
    csrf_token: String,
    email: String,
    password: String,
}

/// `POST {base}/interaction/{id}/login`.
pub(in crate::pages) async fn login(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !pages.password_login {
        return pages.password_login_off();
    }
    let (row, csrf) = match pages.load_posted(&id, &headers, &form.csrf_token).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let user = match check_password(&pages, peer_ip(peer), &form.email, form.password).await {
        PasswordCheck::Accepted(user) => user,
        PasswordCheck::Wrong(email) => {
            return pages.login_page(
                StatusCode::UNAUTHORIZED,
                &id,
                &row.pending,
                &csrf,
                &email,
                Some("Wrong email or password."),
            );
        }
        PasswordCheck::Refused(response) => return response,
    };
    if let Err(e) = pages
        .store
        .set_interaction_user(&SecretHash::of(&id), &user.user_id)
        .await
    {
        return pages.server_error(&e);
    }
    start_session(
        &pages,
        &user.user_id,
        "password",
        peer_ip(peer),
        see_other(&pages.interaction_path(&id)),
    )
    .await
}

#[derive(Deserialize)]
pub(in crate::pages) struct ConsentForm {
    csrf_token: String,
    decision: String,
    #[serde(default)]
    remember: Option<String>,
}

/// `POST {base}/interaction/{id}/consent`: approve or deny, optionally remembered.
pub(in crate::pages) async fn consent(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let (row, _) = match pages.load_posted(&id, &headers, &form.csrf_token).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let Ok(pending) = PendingAuthorization::restore(&row.pending) else {
        return pages.server_error(&"stored interaction does not parse");
    };
    let approve = form.decision == "approve";
    let Some(user_id) = row.user_id else {
        // Anyone holding the form may refuse (the chooser's Deny); approving needs a user.
        if approve {
            return see_other(&pages.interaction_path(&id));
        }
        return pages.decide(&id, pending, "", Decision::Deny).await;
    };
    let decision = match (
        approve,
        form.remember.is_some() && pending.consent_may_be_remembered(),
    ) {
        (false, _) => Decision::Deny,
        (true, false) => Decision::Approve,
        (true, true) => Decision::ApproveAndRemember,
    };
    let record = AuditRecord::new(
        events::CONSENT,
        if approve {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        },
        pages.now(),
    )
    .user(&user_id)
    .client(pending.client_id())
    .address(peer_ip(peer))
    .detail(match decision {
        Decision::Deny => "denied",
        Decision::Approve => "approved",
        _ => "approved and remembered",
    });
    let response = pages.decide(&id, pending, &user_id, decision).await;
    if response.status().is_redirection() {
        audit::record(&pages.store, record).await;
    }
    response
}

#[derive(Deserialize)]
pub(in crate::pages) struct SignOutForm {
    csrf_token: String,
}

/// `POST {base}/interaction/{id}/sign-out`: "not you?" — ends the session and shows the
/// sign-in page for the same request.
pub(in crate::pages) async fn sign_out(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if let Err(response) = pages.load_posted(&id, &headers, &form.csrf_token).await {
        return response;
    }
    if let Err(e) = pages
        .store
        .clear_interaction_user(&SecretHash::of(&id))
        .await
    {
        return pages.server_error(&e);
    }
    let mut response = see_other(&pages.interaction_path(&id));
    pages.end_session(&headers, &mut response).await;
    response
}

/// `POST {base}/interaction/{id}/upstream/{provider}`: the user approved the request on the
/// chooser and picked `provider`. The interaction is taken (once), its request is held by
/// the federated sign-in, and the browser goes upstream with a cookie binding the callback
/// to it.
pub(in crate::pages) async fn upstream(
    State(pages): State<Arc<Pages>>,
    Path((id, provider)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let Some(federation) = pages.federation.clone() else {
        return pages.message(
            StatusCode::NOT_FOUND,
            "No identity providers",
            "This server signs users in with a password only.",
        );
    };
    let (row, _) = match pages.load_posted(&id, &headers, &form.csrf_token).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    if federation.login.provider(&provider).is_none() {
        return pages.message(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            "Go back and choose one of the providers listed.",
        );
    }
    let Ok(pending) = PendingAuthorization::restore(&row.pending) else {
        return pages.server_error(&"stored interaction does not parse");
    };
    match pages.store.take_interaction(&SecretHash::of(&id)).await {
        Ok(true) => {}
        Ok(false) => return pages.expired(),
        Err(e) => return pages.server_error(&e),
    }
    let redirect = match federation
        .login
        .begin(&provider, pending, pages.now())
        .await
    {
        Ok(redirect) => redirect,
        Err(e) => return pages.server_error(&e),
    };
    let mut response = see_other(&redirect.location);
    if let Ok(value) = axum::http::HeaderValue::from_str(&redirect.set_cookie) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    pages.set_cookie(
        &mut response,
        &csrf_cookie(&id),
        "",
        &pages.interaction_path(&id),
        0,
    );
    response
}

//! `{base}/account`: the signed-in user's remembered consent, each withdrawable. Withdrawing
//! forgets the decision (the consent page is shown again) and revokes the user's grants to
//! that client in the same transaction.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcpauth_token_engine::ClientStore;
use serde::Deserialize;

use super::sign_in::{Next, sign_in_page};
use super::{Pages, SessionBar, page, see_other};

/// One remembered decision as the page lists it.
struct ConsentLine {
    client_id: String,
    client_name: String,
    /// Per resource, the scopes approved for it.
    approvals: Vec<(String, Vec<String>)>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    consents: Vec<ConsentLine>,
    revoke_action: String,
}

/// `GET {base}/account`.
pub(super) async fn show(State(pages): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    let Some((csrf, new)) = pages.form_csrf(&headers) else {
        return pages.server_error(&"no randomness");
    };
    let response = match pages.session_user(&headers).await {
        None => sign_in_page(&pages, StatusCode::OK, &csrf, Next::Account, None, "", None),
        Some(user) => match pages.store.list_consents(&user.id).await {
            Ok(rows) => {
                let mut consents = Vec::with_capacity(rows.len());
                for row in rows {
                    let client_name = pages
                        .store
                        .find_client(&mcpauth_token_engine::ClientId::from(
                            row.client_id.as_str(),
                        ))
                        .await
                        .ok()
                        .flatten()
                        .and_then(|c| c.metadata.client_name)
                        .unwrap_or_else(|| "(removed application)".to_owned());
                    consents.push(ConsentLine {
                        client_id: row.client_id,
                        client_name,
                        approvals: row
                            .approvals
                            .into_iter()
                            .map(|a| {
                                (
                                    a.resource,
                                    a.scope
                                        .split_ascii_whitespace()
                                        .map(str::to_owned)
                                        .collect(),
                                )
                            })
                            .collect(),
                    });
                }
                page(
                    StatusCode::OK,
                    AccountPage {
                        base: &pages.base,
                        signed_in: pages.session_bar(&user.email, &csrf),
                        consents,
                        revoke_action: format!("{}/account/withdraw", pages.base),
                    }
                    .render(),
                )
            }
            Err(e) => pages.server_error(&e),
        },
    };
    pages.with_form_csrf(response, &csrf, new)
}

#[derive(Deserialize)]
pub(super) struct WithdrawForm {
    csrf_token: String,
    client_id: String,
}

/// `POST {base}/account/withdraw`.
pub(super) async fn withdraw(
    State(pages): State<Arc<Pages>>,
    peer: super::sign_in::Peer,
    headers: HeaderMap,
    Form(form): Form<WithdrawForm>,
) -> Response {
    if !pages.form_csrf_matches(&headers, &form.csrf_token) {
        return pages.form_expired();
    }
    let account = format!("{}/account", pages.base);
    let Some(user) = pages.session_user(&headers).await else {
        return see_other(&account);
    };
    match pages
        .store
        .revoke_consent(&user.id, &form.client_id, pages.now())
        .await
    {
        Ok(false) => see_other(&account),
        Ok(true) => {
            tracing::info!(client_id = %form.client_id, "consent withdrawn; grants revoked");
            crate::audit::record(
                &pages.store,
                crate::audit::AuditRecord::new(
                    crate::audit::events::CONSENT_WITHDRAWN,
                    crate::audit::AuditOutcome::Success,
                    pages.now(),
                )
                .user(&user.id)
                .client(&form.client_id)
                .address(super::sign_in::peer_ip(peer)),
            )
            .await;
            see_other(&account)
        }
        Err(e) => pages.server_error(&e),
    }
}

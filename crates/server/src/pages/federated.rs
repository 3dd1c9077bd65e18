//! `GET {base}/upstream/{provider}/callback`: the upstream identity provider sends the user
//! back here. The proxy checks the callback (single use, this browser's, RFC 9207 `iss`),
//! exchanges the code, maps the upstream user to a local one, and finishes the MCP client's
//! authorization with our own code; the browser gets a session, so later requests in it go
//! straight to the consent page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use mcpauth_proxy::CallbackOutcome;

use super::sign_in::{Peer, peer_ip, start_session, throttle_address};
use super::{Pages, see_other};
use crate::audit::{self, AuditOutcome, AuditRecord, events};

/// Audits a federated sign-in through `provider` that failed, and why. Counted in the
/// caller's sign-in window (a failed callback costs a caller two requests), so each address
/// leaves at most that many records an hour.
async fn federated_sign_in_failed(
    pages: &Pages,
    provider: &str,
    failure: Option<&str>,
    address: Option<std::net::IpAddr>,
) {
    if let Some((_, first)) = throttle_address(pages, address).await
        && !first
    {
        return;
    }
    let record = AuditRecord::new(events::SIGN_IN, AuditOutcome::Failure, pages.now()).detail(
        &format!("through {provider}: {}", failure.unwrap_or("refused")),
    );
    audit::record(&pages.store, record.address(address)).await;
}

pub(super) async fn callback(
    State(pages): State<Arc<Pages>>,
    Path(provider): Path<String>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let peer_address = peer_ip(peer);
    let Some(federation) = pages.federation.clone() else {
        return pages.message(
            StatusCode::NOT_FOUND,
            "No identity providers",
            "This server signs users in with a password only.",
        );
    };
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let outcome = federation
        .login
        .callback(
            &provider,
            uri.query().unwrap_or_default(),
            &cookies,
            pages.now(),
        )
        .await;
    match outcome {
        CallbackOutcome::ToClient {
            location,
            clear_cookie,
            failure,
            subject,
        } => {
            let mut response = see_other(&location);
            if let Ok(value) = HeaderValue::from_str(&clear_cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            match (failure, subject) {
                (None, Some(user_id)) => {
                    tracing::info!(%provider, %user_id, "federated sign-in");
                    start_session(
                        &pages,
                        &user_id,
                        &format!("through {provider}"),
                        peer_address,
                        response,
                    )
                    .await
                }
                (failure, _) => {
                    federated_sign_in_failed(&pages, &provider, failure.as_deref(), peer_address)
                        .await;
                    // WARN: an upstream that refuses this server (a wrong client secret, a
                    // redirect URI it does not know) shows here first, and only here.
                    tracing::warn!(
                        %provider,
                        reason = failure.as_deref().unwrap_or("unknown"),
                        "federated sign-in failed (the MCP client is told the sign-in failed)"
                    );
                    response
                }
            }
        }
        CallbackOutcome::SignedIn {
            subject,
            return_to,
            clear_cookie,
            failure,
        } => match (subject, failure) {
            (Some(user_id), None) => {
                tracing::info!(%provider, %user_id, "federated sign-in to a page");
                let mut response = see_other(&return_to);
                if let Ok(value) = HeaderValue::from_str(&clear_cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
                start_session(
                    &pages,
                    &user_id,
                    &format!("through {provider}"),
                    peer_address,
                    response,
                )
                .await
            }
            (_, failure) => {
                federated_sign_in_failed(&pages, &provider, failure.as_deref(), peer_address).await;
                tracing::warn!(
                    %provider,
                    reason = failure.as_deref().unwrap_or("unknown"),
                    "federated sign-in to a page failed"
                );
                let mut response = pages.message(
                    StatusCode::FORBIDDEN,
                    "You could not be signed in",
                    "The identity provider did not sign you in, or this server does not accept your account there. Go back and try again, or ask the operator.",
                );
                if let Ok(value) = HeaderValue::from_str(&clear_cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
                response
            }
        },
        CallbackOutcome::Refused(e) => {
            tracing::warn!(%provider, error = %e, "upstream callback refused");
            pages.message(
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed",
                &format!(
                    "{}. Return to the application and start again.",
                    capitalized(&e.to_string())
                ),
            )
        }
        CallbackOutcome::Failed(e) => pages.server_error(&e),
        _ => pages.server_error(&"unknown callback outcome"),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

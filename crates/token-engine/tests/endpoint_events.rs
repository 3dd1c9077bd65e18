//! The audit events the HTTP entry attaches to its answers ([`EndpointEvent`]): what an audit
//! trail records of the token, revocation and registration endpoints, and nothing for the
//! answers it does not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use bytes::Bytes;
use common::{NOW, VERIFIER, harness, harness_with, query};
use http::{Request, Response, StatusCode};
use mcpauth_token_engine::{EndpointEvent, EndpointEventKind};
use serde_json::Value;

fn form(path: &str, pairs: &[(&str, &str)]) -> Request<Bytes> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(query(pairs)))
        .unwrap()
}

fn event(response: &Response<Bytes>) -> Option<EndpointEvent> {
    response.extensions().get::<EndpointEvent>().cloned()
}

fn body(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap_or(Value::Null)
}

fn redemption<'a>(code: &'a str, client_id: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", "http://127.0.0.1:49152/callback"),
        ("code_verifier", VERIFIER),
        ("client_id", client_id),
    ]
}

#[tokio::test]
async fn issued_tokens_name_the_client_the_user_and_the_grant_type() {
    let h = harness().await;
    let code = h.code().await;
    let response = h
        .engine
        .token_endpoint(form("/token", &redemption(&code, &h.client_id)), NOW)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let event = event(&response).expect("an event for issued tokens");
    assert_eq!(event.kind, EndpointEventKind::TokensIssued);
    assert_eq!(event.client_id.as_deref(), Some(h.client_id.as_str()));
    assert_eq!(event.subject.as_deref(), Some("alice"));
    assert_eq!(event.detail.as_deref(), Some("authorization_code"));
    // The event carries no secret of the answer.
    let tokens = body(&response);
    let debug = format!("{event:?}");
    assert!(!debug.contains(tokens["access_token"].as_str().unwrap()));
    assert!(!debug.contains(tokens["refresh_token"].as_str().unwrap()));
}

#[tokio::test]
async fn a_replayed_code_is_an_event_with_its_client() {
    let h = harness().await;
    let code = h.code().await;
    h.redeem(&code).await;
    let response = h
        .engine
        .token_endpoint(form("/token", &redemption(&code, &h.client_id)), NOW)
        .await;
    assert_eq!(body(&response)["error"], "invalid_grant");
    let event = event(&response).expect("an event for a replayed code");
    assert_eq!(event.kind, EndpointEventKind::CodeReplayed);
    assert_eq!(event.client_id.as_deref(), Some(h.client_id.as_str()));
}

#[tokio::test]
async fn a_replayed_refresh_token_is_an_event_and_a_fresh_one_is_issued_tokens() {
    let h = harness_with(|c| {
        c.refresh_reuse_grace(0);
    })
    .await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", old),
        ("client_id", h.client_id.as_str()),
    ];
    let first = h
        .engine
        .token_endpoint(form("/token", &refresh), NOW.plus(5))
        .await;
    let issued = event(&first).unwrap();
    assert_eq!(
        (
            issued.kind,
            issued.subject.as_deref(),
            issued.detail.as_deref()
        ),
        (
            EndpointEventKind::TokensIssued,
            Some("alice"),
            Some("refresh_token")
        )
    );
    let replay = h
        .engine
        .token_endpoint(form("/token", &refresh), NOW.plus(7))
        .await;
    assert_eq!(body(&replay)["error"], "invalid_grant");
    let event = event(&replay).expect("an event for a replayed refresh token");
    assert_eq!(event.kind, EndpointEventKind::RefreshReplayed);
    assert_eq!(event.client_id.as_deref(), Some(h.client_id.as_str()));
}

#[tokio::test]
async fn a_failed_client_authentication_names_the_claimed_client() {
    let h = harness().await;
    let response = h
        .engine
        .token_endpoint(
            form(
                "/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "nobody-registered-this"),
                    ("client_secret", "guess"),
                ],
            ),
            NOW,
        )
        .await;
    assert_eq!(body(&response)["error"], "invalid_client");
    let event = event(&response).expect("an event for a failed authentication");
    assert_eq!(event.kind, EndpointEventKind::ClientAuthenticationFailed);
    assert_eq!(event.client_id.as_deref(), Some("nobody-registered-this"));
    assert!(!format!("{event:?}").contains("guess"), "never the secret");
}

#[tokio::test]
async fn ordinary_refusals_and_malformed_requests_are_no_event() {
    let h = harness().await;
    let wrong_code = h
        .engine
        .token_endpoint(form("/token", &redemption("not-a-code", &h.client_id)), NOW)
        .await;
    assert_eq!(body(&wrong_code)["error"], "invalid_grant");
    assert_eq!(event(&wrong_code), None);
    let not_a_form = Request::post("/token")
        .header("content-type", "application/json")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let response = h.engine.token_endpoint(not_a_form, NOW).await;
    assert_eq!(body(&response)["error"], "invalid_request");
    assert_eq!(event(&response), None);
}

#[tokio::test]
async fn a_revocation_names_the_client_that_revoked() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let response = h
        .engine
        .revocation_endpoint(
            form(
                "/revoke",
                &[
                    ("token", tokens["refresh_token"].as_str().unwrap()),
                    ("token_type_hint", "refresh_token"),
                    ("client_id", &h.client_id),
                ],
            ),
            NOW.plus(2),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let event = event(&response).expect("an event for a revocation");
    assert_eq!(event.kind, EndpointEventKind::TokenRevoked);
    assert_eq!(event.client_id.as_deref(), Some(h.client_id.as_str()));
    assert_eq!(event.detail.as_deref(), Some("refresh_token"));
}

#[tokio::test]
async fn a_registration_and_its_refusal_are_events() {
    let h = harness().await;
    let register = |document: &'static [u8]| {
        Request::post("/register")
            .header("content-type", "application/json")
            .body(Bytes::from_static(document))
            .unwrap()
    };
    let response = h
        .engine
        .registration_endpoint(
            register(br#"{"redirect_uris":["http://localhost:6274/cb"],"token_endpoint_auth_method":"none"}"#),
            NOW,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered = event(&response).expect("an event for a registration");
    assert_eq!(registered.kind, EndpointEventKind::ClientRegistered);
    assert_eq!(
        registered.client_id.as_deref(),
        body(&response)["client_id"].as_str()
    );
    let refused = h
        .engine
        .registration_endpoint(
            register(br#"{"redirect_uris":["javascript:alert(1)"]}"#),
            NOW,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let event = event(&refused).expect("an event for a refused registration");
    assert_eq!(event.kind, EndpointEventKind::RegistrationRefused);
    assert_eq!(event.detail.as_deref(), Some("invalid_redirect_uri"));
    assert_eq!(event.client_id, None);
}

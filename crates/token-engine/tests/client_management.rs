//! RFC 7592 dynamic client registration management against its MUSTs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};

async fn register(h: &Harness, body: Value) -> Value {
    let request = Request::post("/register")
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let response = h.engine.registration_endpoint(request, NOW).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    serde_json::from_slice(response.body()).unwrap()
}

async fn manage(
    h: &Harness,
    method: &str,
    client_id: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, http::HeaderMap) {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/register/{client_id}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Bytes::from(
            body.map(|b| serde_json::to_vec(&b).unwrap())
                .unwrap_or_default(),
        ))
        .unwrap();
    let response = h
        .engine
        .client_configuration_endpoint(request, client_id, NOW.plus(1))
        .await;
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
        headers,
    )
}

// RFC 7592 §3: the registration response carries registration_access_token and
// registration_client_uri; §2.1: GET with the token reads the configuration.
#[tokio::test]
async fn registration_can_be_read_with_its_access_token() {
    let h = harness().await;
    let registered = register(
        &h,
        json!({ "redirect_uris": [REDIRECT], "client_name": "Reader" }),
    )
    .await;
    let id = registered["client_id"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    assert_eq!(
        registered["registration_client_uri"],
        format!("https://auth.example.com/register/{id}")
    );
    let (status, body, headers) = manage(&h, "GET", id, Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["client_name"], "Reader");
    assert!(
        body.get("registration_access_token").is_none(),
        "the token is shown once"
    );
}

// RFC 7592 §2: an invalid token is answered per RFC 6750 §3 (401 invalid_token), the same for
// an unknown client.
#[tokio::test]
async fn wrong_or_missing_registration_tokens_are_invalid_token() {
    let h = harness().await;
    let registered = register(&h, json!({ "redirect_uris": [REDIRECT] })).await;
    let id = registered["client_id"].as_str().unwrap();
    for (client, token) in [
        (id, None),
        (id, Some("wrong")),
        (
            "no-such-client",
            Some(registered["registration_access_token"].as_str().unwrap()),
        ),
    ] {
        let (status, body, headers) = manage(&h, "GET", client, token, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        assert_eq!(
            headers["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
    }
}

// RFC 7592 §2.2: PUT replaces the metadata, validated like a registration.
#[tokio::test]
async fn registration_can_be_updated_with_validation() {
    let h = harness().await;
    let registered = register(
        &h,
        json!({ "redirect_uris": [REDIRECT], "client_name": "Before" }),
    )
    .await;
    let id = registered["client_id"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let (status, body, _) = manage(&h, "PUT", id, Some(token), Some(json!({ "client_id": id, "redirect_uris": ["https://app.example.com/cb"], "client_name": "After" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client_name"], "After");
    assert_eq!(body["redirect_uris"], json!(["https://app.example.com/cb"]));
    let (status, body, _) = manage(
        &h,
        "PUT",
        id,
        Some(token),
        Some(json!({ "client_id": id, "redirect_uris": ["http://evil.example.com/cb"] })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri"))
    );
    let (_, unchanged, _) = manage(&h, "GET", id, Some(token), None).await;
    assert_eq!(
        unchanged["client_name"], "After",
        "a refused update changes nothing"
    );
}

// RFC 7592 §2.2: client_id must match; server-owned members must not be sent.
#[tokio::test]
async fn updates_must_name_the_client_and_not_send_server_owned_members() {
    let h = harness().await;
    let registered = register(&h, json!({ "redirect_uris": [REDIRECT] })).await;
    let id = registered["client_id"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let (status, _, _) = manage(
        &h,
        "PUT",
        id,
        Some(token),
        Some(json!({ "client_id": "other", "redirect_uris": [REDIRECT] })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body, _) = manage(&h, "PUT", id, Some(token), Some(json!({ "client_id": id, "redirect_uris": [REDIRECT], "registration_access_token": token }))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

// RFC 7592 §2.3: DELETE removes the client; its grants and tokens stop working.
#[tokio::test]
async fn deleting_a_registration_revokes_its_tokens() {
    let h = harness().await;
    let registered = register(
        &h,
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" }),
    )
    .await;
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let token = registered["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = h.code_for(&id, "alice").await;
    let (_, tokens, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", &id),
            ],
            None,
            NOW,
        )
        .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, _) = manage(&h, "DELETE", &id, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = manage(&h, "GET", &id, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the registration is gone");
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", &id),
            ],
            None,
            NOW.plus(2),
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (rs_id, rs_secret) = h.resource_server().await;
    let (_, introspection, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", tokens["access_token"].as_str().unwrap())],
            Some((&rs_id, &rs_secret)),
            NOW.plus(2),
        )
        .await;
    assert_eq!(
        introspection["active"], false,
        "access tokens of the deleted client are inactive"
    );
}

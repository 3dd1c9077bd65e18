//! RFC 8693 token exchange against its MUSTs and our narrowing rules.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use mcpauth_token_engine::ClientStore as _;

use common::*;
use http::StatusCode;
use mcpauth_token_engine::{ACCESS_TOKEN_TYPE, ExchangeRule, TOKEN_EXCHANGE_GRANT};
use serde_json::Value;

const DOWNSTREAM: &str = "https://downstream.example.com/api";

/// A harness whose MCP server (a confidential client) may exchange user tokens issued for
/// RESOURCE into tokens for DOWNSTREAM; returns it with the server's credentials and a user
/// token pair.
async fn setup() -> (Harness, (String, String), Value) {
    let probe = harness().await;
    // Rules name the client id, which is random: register in a probe engine with the same
    // seed so the id is known before the real engine is configured.
    let (server_id, _) = probe
        .confidential_client(&[TOKEN_EXCHANGE_GRANT], None)
        .await;
    let h = harness_with(|c| {
        c.token_exchange_rules(vec![ExchangeRule::new(
            server_id.clone(),
            RESOURCE,
            vec![DOWNSTREAM.into()],
        )]);
    })
    .await;
    let server = h.confidential_client(&[TOKEN_EXCHANGE_GRANT], None).await;
    assert_eq!(server.0, server_id, "same seed, same client id");
    // The MCP server is a resource server too: it may introspect.
    let mut record = h
        .engine
        .model()
        .find_client(&server.0.as_str().into())
        .await
        .unwrap()
        .unwrap();
    record.resource_server = true;
    assert!(h.engine.model().update_client(record).await.unwrap());
    let (_, user_tokens) = h.redeem(&h.code().await).await;
    (h, server, user_tokens)
}

async fn exchange(
    h: &Harness,
    server: &(String, String),
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut pairs = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
    ];
    pairs.extend_from_slice(extra);
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &pairs,
            Some((&server.0, &server.1)),
            NOW.plus(10),
        )
        .await;
    (status, body)
}

// RFC 8693 §2.2.1 and §4.1: a narrower token for the downstream service, the user still the
// subject, the exchanging client recorded as actor.
#[tokio::test]
async fn exchange_narrows_the_audience_and_records_the_actor() {
    let (h, server, user) = setup().await;
    let subject = user["access_token"].as_str().unwrap();
    let (status, body) = exchange(
        &h,
        &server,
        &[("subject_token", subject), ("resource", DOWNSTREAM)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    let original = jwt_part(subject, 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], DOWNSTREAM);
    assert_eq!(claims["client_id"], server.0.as_str());
    assert_eq!(claims["act"]["sub"], server.0.as_str());
    assert!(
        claims["exp"].as_u64() <= original["exp"].as_u64(),
        "never outlives the subject token"
    );
    assert_eq!(claims["scope"], "mcp:tools");
}

// RFC 8693 §2.2.2: invalid_target when unwilling to issue for the target.
#[tokio::test]
async fn exchange_for_a_target_no_rule_allows_is_invalid_target() {
    let (h, server, user) = setup().await;
    let subject = user["access_token"].as_str().unwrap();
    let (_, body) = exchange(
        &h,
        &server,
        &[
            ("subject_token", subject),
            ("resource", "https://elsewhere.example.com/api"),
        ],
    )
    .await;
    assert_eq!(error_of(&body), "invalid_target");
    let (_, body) = exchange(&h, &server, &[("subject_token", subject)]).await;
    assert_eq!(error_of(&body), "invalid_target", "a target must be named");
    let (other_id, other_secret) = h.confidential_client(&[TOKEN_EXCHANGE_GRANT], None).await;
    let (_, body) = exchange(
        &h,
        &(other_id, other_secret),
        &[("subject_token", subject), ("audience", DOWNSTREAM)],
    )
    .await;
    assert_eq!(error_of(&body), "invalid_target", "rules are per client");
}

// Scope only narrows.
#[tokio::test]
async fn exchange_cannot_widen_the_scope() {
    let (h, server, user) = setup().await;
    let subject = user["access_token"].as_str().unwrap();
    let (_, body) = exchange(
        &h,
        &server,
        &[
            ("subject_token", subject),
            ("resource", DOWNSTREAM),
            ("scope", "mcp:tools admin"),
        ],
    )
    .await;
    assert_eq!(error_of(&body), "invalid_scope");
}

// The exchanged token belongs to the user's grant: revoking the grant revokes it.
#[tokio::test]
async fn exchanged_tokens_die_with_the_users_grant() {
    let (h, server, user) = setup().await;
    let subject = user["access_token"].as_str().unwrap();
    let (_, body) = exchange(
        &h,
        &server,
        &[("subject_token", subject), ("resource", DOWNSTREAM)],
    )
    .await;
    let exchanged = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = h
        .post(
            Endpoint::Revoke,
            &[
                ("token", user["refresh_token"].as_str().unwrap()),
                ("client_id", &h.client_id),
            ],
            None,
            NOW.plus(11),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, introspection, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", &exchanged)],
            Some((&server.0, &server.1)),
            NOW.plus(12),
        )
        .await;
    assert_eq!(introspection["active"], false);
    let (_, body) = exchange(
        &h,
        &server,
        &[("subject_token", subject), ("resource", DOWNSTREAM)],
    )
    .await;
    assert_eq!(
        error_of(&body),
        "invalid_grant",
        "a revoked subject token cannot be exchanged"
    );
}

// RFC 7009 §2.1 revokes "the grant" a token came from; an exchanged token comes from the
// grant the user gave *another* client. The exchanging MCP server revoking what it got must
// not end the user's session with their own client.
#[tokio::test]
async fn revoking_an_exchanged_token_leaves_the_users_grant_alone() {
    let (h, server, user) = setup().await;
    let subject = user["access_token"].as_str().unwrap();
    let (_, body) = exchange(
        &h,
        &server,
        &[("subject_token", subject), ("resource", DOWNSTREAM)],
    )
    .await;
    let exchanged = body["access_token"].as_str().unwrap().to_owned();
    let (status, body, _) = h
        .post(
            Endpoint::Revoke,
            &[("token", &exchanged)],
            Some((&server.0, &server.1)),
            NOW.plus(11),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body), "unsupported_token_type");
    // The user's own client still refreshes: its grant is untouched.
    let (status, refreshed, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", user["refresh_token"].as_str().unwrap()),
                ("client_id", &h.client_id),
            ],
            None,
            NOW.plus(12),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
}

// RFC 8693 §2.1 parameters: unsupported token types and actor tokens are invalid_request.
#[tokio::test]
async fn malformed_exchange_requests_are_invalid_request() {
    let (h, server, user) = setup().await;
    let subject = user["access_token"].as_str().unwrap();
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", TOKEN_EXCHANGE_GRANT),
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
                ("resource", DOWNSTREAM),
            ],
            Some((&server.0, &server.1)),
            NOW,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (_, body) = exchange(
        &h,
        &server,
        &[
            ("subject_token", subject),
            ("resource", DOWNSTREAM),
            ("actor_token", "x"),
        ],
    )
    .await;
    assert_eq!(
        error_of(&body),
        "invalid_request",
        "actor_token without actor_token_type"
    );
    let (_, body) = exchange(
        &h,
        &server,
        &[
            ("subject_token", subject),
            ("resource", DOWNSTREAM),
            ("actor_token", "x"),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(error_of(&body), "invalid_request");
    let (_, body) = exchange(
        &h,
        &server,
        &[("subject_token", "not-a-token"), ("resource", DOWNSTREAM)],
    )
    .await;
    assert_eq!(error_of(&body), "invalid_grant");
}

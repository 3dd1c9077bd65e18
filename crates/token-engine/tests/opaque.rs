//! Opaque access tokens: stored hashed, described by introspection (RFC 7662), revocable at
//! once (RFC 7009).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use common::*;
use http::StatusCode;
use mcpauth_token_engine::AccessTokenFormat;

async fn opaque() -> Harness {
    harness_with(|c| {
        c.access_token_format(AccessTokenFormat::Opaque);
    })
    .await
}

#[tokio::test]
async fn opaque_access_tokens_are_not_jwts_and_introspect_active() {
    let h = opaque().await;
    let (rs_id, rs_secret) = h.resource_server().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(
        !access.contains('.'),
        "opaque tokens carry no readable claims"
    );
    assert!(access.len() >= 43);
    let (_, body, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW.plus(1),
        )
        .await;
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["aud"], RESOURCE);
    let (_, expired, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW.plus(4000),
        )
        .await;
    assert_eq!(expired["active"], false);
}

// RFC 7009: with opaque tokens even client_credentials tokens are revocable, at once.
#[tokio::test]
async fn opaque_client_credentials_tokens_are_revocable() {
    let h = opaque().await;
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (_, tokens, _) = h
        .post(
            Endpoint::Token,
            &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    let (rs_id, rs_secret) = h.resource_server().await;
    let (_, before, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW,
        )
        .await;
    assert_eq!(before["active"], true);
    let (status, _, _) = h
        .post(
            Endpoint::Revoke,
            &[("token", access), ("token_type_hint", "access_token")],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW,
        )
        .await;
    assert_eq!(after["active"], false);
}

// Revoking the grant makes its opaque access tokens inactive.
#[tokio::test]
async fn opaque_tokens_die_with_their_grant() {
    let h = opaque().await;
    let (rs_id, rs_secret) = h.resource_server().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let (status, _, _) = h
        .post(
            Endpoint::Revoke,
            &[
                ("token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", &h.client_id),
            ],
            None,
            NOW,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", tokens["access_token"].as_str().unwrap())],
            Some((&rs_id, &rs_secret)),
            NOW,
        )
        .await;
    assert_eq!(body["active"], false);
}

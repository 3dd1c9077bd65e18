//! The engine against the RFCs' MUSTs, on the memory model, with pinned time and a seeded
//! random source.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use mcpauth_oauth_types::{ClientMetadata, CodeVerifier};
use mcpauth_token_engine::{AuthorizeOutcome, MemoryModel, TokenEngine};
use serde_json::Value;

// OAuth 2.1 §4.1.1 / MCP authorization: PKCE with S256; "plain" is refused.
#[tokio::test]
async fn rejects_plain_code_challenge_method() {
    let h = harness().await;
    let mut q = h.authorize_query(REDIRECT);
    q.retain(|(k, _)| *k != "code_challenge_method");
    q.push(("code_challenge_method", "plain".into()));
    let params = redirect_params(&h.authorize(&q).await);
    assert!(
        params.contains(&("error".into(), "invalid_request".into())),
        "{params:?}"
    );
    assert!(params.contains(&("state".into(), "xyz state".into())));
}

// DESIGN §3b: a challenge without a method would default to plain (RFC 7636 §4.3); refuse.
#[tokio::test]
async fn rejects_code_challenge_without_method() {
    let h = harness().await;
    let mut q = h.authorize_query(REDIRECT);
    q.retain(|(k, _)| *k != "code_challenge_method");
    let params = redirect_params(&h.authorize(&q).await);
    assert!(params.contains(&("error".into(), "invalid_request".into())));
}

// OAuth 2.1 §4.1.1: code_challenge is required.
#[tokio::test]
async fn rejects_authorization_request_without_code_challenge() {
    let h = harness().await;
    let mut q = h.authorize_query(REDIRECT);
    q.retain(|(k, _)| !k.starts_with("code_challenge"));
    let params = redirect_params(&h.authorize(&q).await);
    assert!(params.contains(&("error".into(), "invalid_request".into())));
}

// RFC 9700 §2.1.2 and OAuth 2.1: the implicit grant (and any response type that puts a token
// in the front channel) is gone; the error goes to the client, never a token.
#[tokio::test]
async fn implicit_and_hybrid_response_types_are_refused() {
    let h = harness().await;
    for response_type in ["token", "code token", "id_token token"] {
        let mut q = h.authorize_query(REDIRECT);
        q.retain(|(k, _)| *k != "response_type");
        q.push(("response_type", response_type.into()));
        let params = redirect_params(&h.authorize(&q).await);
        assert!(
            params.contains(&("error".into(), "unsupported_response_type".into())),
            "{response_type}: {params:?}"
        );
        assert!(
            !params
                .iter()
                .any(|(k, _)| k == "access_token" || k == "code")
        );
    }
}

// RFC 9700 §2.1.1 and §4.8.2 (PKCE downgrade): a code issued for a challenge is redeemed
// only with its verifier; a request without one changes nothing.
#[tokio::test]
async fn a_token_request_without_the_code_verifier_is_refused_and_leaves_the_code_usable() {
    let h = harness().await;
    let code = h.code().await;
    let (status, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &h.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        ["invalid_request", "invalid_grant"].contains(&error_of(&body)),
        "{body}"
    );
    let (status, body) = h.redeem(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// RFC 6749 §6 and RFC 9700 §4.14: a refresh token works only for the client it was issued to;
// another client's attempt is invalid_grant and changes nothing.
#[tokio::test]
async fn a_refresh_token_works_only_for_its_client() {
    let h = harness().await;
    let code = h.code().await;
    let (_, tokens) = h.redeem(&code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut other = ClientMetadata::default();
    other.redirect_uris = vec![REDIRECT.into()];
    other.token_endpoint_auth_method = Some("none".into());
    let other = h.engine.register_client(other, NOW).await.unwrap();
    let (status, body, _) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &other.client_id),
        ])
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, body) = h.refresh_at(&refresh, NOW.plus(1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// RFC 6749 §4.1.2: "The client MUST NOT use the authorization code more than once."
#[tokio::test]
async fn code_is_single_use() {
    let h = harness().await;
    let code = h.code().await;
    let (status, body) = h.redeem(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h.redeem(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body), "invalid_grant");
}

// RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization
// server MUST deny the request and SHOULD revoke (when possible) all tokens previously
// issued based on that authorization code."
#[tokio::test]
async fn second_code_redemption_revokes_issued_tokens() {
    let h = harness().await;
    let code = h.code().await;
    let (_, first) = h.redeem(&code).await;
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let (_, second) = h.redeem(&code).await;
    assert_eq!(error_of(&second), "invalid_grant");
    let (status, body) = h.refresh_at(&refresh, NOW.plus(2)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

// DESIGN §2 "validate before consuming": a wrong verifier changes no state.
#[tokio::test]
async fn wrong_code_verifier_leaves_the_code_usable() {
    let h = harness().await;
    let code = h.code().await;
    let (_, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:49152/callback"),
            ("code_verifier", &"x".repeat(43)),
            ("client_id", &h.client_id),
        ])
        .await;
    assert_eq!(error_of(&body), "invalid_grant");
    let (status, _) = h.redeem(&code).await;
    assert_eq!(status, StatusCode::OK);
}

// RFC 6749 §4.1.3: redirect_uri must be identical to the one in the authorization request.
#[tokio::test]
async fn token_request_redirect_uri_must_be_identical() {
    let h = harness().await;
    let code = h.code().await;
    let (_, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/callback"),
            ("code_verifier", VERIFIER),
            ("client_id", &h.client_id),
        ])
        .await;
    assert_eq!(error_of(&body), "invalid_grant");
}

// OAuth 2.1 §4.3.1: refresh tokens for public clients are rotated.
#[tokio::test]
async fn refresh_token_rotates() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = h.refresh_at(old, NOW.plus(5)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let new = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(old, new);
    assert_ne!(tokens["access_token"], refreshed["access_token"]);
    let (status, _) = h.refresh_at(new, NOW.plus(6)).await;
    assert_eq!(status, StatusCode::OK);
}

// RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the whole family.
#[tokio::test]
async fn reused_refresh_token_revokes_family() {
    let h = harness_with(|c| {
        c.refresh_reuse_grace(0);
    })
    .await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (_, refreshed) = h.refresh_at(old, NOW.plus(5)).await;
    let new = refreshed["refresh_token"].as_str().unwrap();
    let (status, body) = h.refresh_at(old, NOW.plus(7)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, body) = h.refresh_at(new, NOW.plus(8)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "the family must be revoked"
    );
}

// DESIGN §3b: within the grace window a replay of the token just rotated is a retry: it
// gets the same successor again (one chain), with a fresh access token.
#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_successor() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (_, refreshed) = h.refresh_at(old, NOW.plus(5)).await;
    let new = refreshed["refresh_token"].as_str().unwrap();
    let (status, retried) = h.refresh_at(old, NOW.plus(10)).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(
        retried["refresh_token"], new,
        "the retry gets the same successor"
    );
    assert_ne!(
        retried["access_token"], refreshed["access_token"],
        "with a fresh access token"
    );
    let (status, next) = h.refresh_at(new, NOW.plus(11)).await;
    assert_eq!(status, StatusCode::OK, "the family lives on as one chain");
    // Whoever uses the successor again after its own window is caught.
    let (status, body) = h.refresh_at(new, NOW.plus(30)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, _) = h
        .refresh_at(next["refresh_token"].as_str().unwrap(), NOW.plus(31))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the replay after the window revoked the family"
    );
}

// RFC 9700 §4.14.2: once the successor has been rotated itself, the old token is no longer
// the one just rotated: a replay, even inside its window, revokes the family.
#[tokio::test]
async fn a_replay_after_the_successor_moved_on_revokes_the_family() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (_, first) = h.refresh_at(old, NOW.plus(1)).await;
    let (_, second) = h
        .refresh_at(first["refresh_token"].as_str().unwrap(), NOW.plus(2))
        .await;
    let (status, body) = h.refresh_at(old, NOW.plus(3)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, _) = h
        .refresh_at(second["refresh_token"].as_str().unwrap(), NOW.plus(4))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the family is revoked");
}

// With no grace window (strict), any replay revokes the family at once.
#[tokio::test]
async fn without_a_grace_window_any_replay_revokes_the_family() {
    let h = harness_with(|c| {
        c.refresh_reuse_grace(0);
    })
    .await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (_, refreshed) = h.refresh_at(old, NOW.plus(1)).await;
    let (status, _) = h.refresh_at(old, NOW.plus(1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .refresh_at(refreshed["refresh_token"].as_str().unwrap(), NOW.plus(2))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the family is revoked");
}

// The successor is kept sealed: the stored record does not hold it in the clear, and only
// the rotated token opens it.
#[tokio::test]
async fn the_kept_successor_is_sealed_with_the_rotated_token() {
    use mcpauth_token_engine::RefreshTokenStore as _;
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    let (_, refreshed) = h.refresh_at(old, NOW.plus(1)).await;
    let new = refreshed["refresh_token"].as_str().unwrap();
    let record = h
        .engine
        .model()
        .find_refresh(&mcpauth_token_engine::SecretHash::of(old))
        .await
        .unwrap()
        .unwrap();
    let sealed = record.sealed_successor.unwrap();
    assert!(
        !sealed.contains(new),
        "the successor is not stored in the clear"
    );
    let strict = harness_with(|c| {
        c.refresh_reuse_grace(0);
    })
    .await;
    let (_, tokens) = strict.redeem(&strict.code().await).await;
    let old = tokens["refresh_token"].as_str().unwrap();
    strict.refresh_at(old, NOW.plus(1)).await;
    let record = strict
        .engine
        .model()
        .find_refresh(&mcpauth_token_engine::SecretHash::of(old))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.sealed_successor, None,
        "without a grace window nothing is kept"
    );
}

// RFC 8252 §7.3 and OAuth 2.1 §4.1.1: exact match, except the port of a loopback URI.
#[tokio::test]
async fn redirect_uri_must_match_exactly_except_loopback_port() {
    let h = harness().await;
    assert!(matches!(
        h.authorize(&h.authorize_query("http://127.0.0.1:61000/callback"))
            .await,
        AuthorizeOutcome::NeedsConsent(_)
    ));
    assert!(matches!(
        h.authorize(&h.authorize_query("https://app.example.com/cb"))
            .await,
        AuthorizeOutcome::NeedsConsent(_)
    ));
    for bad in [
        "http://127.0.0.1:61000/callback/",
        "http://127.0.0.1:61000/Callback",
        "http://localhost:61000/callback",
        "https://app.example.com/cb?x=1",
        "https://app.example.com:444/cb",
        "https://app.example.com/cb#x",
        "https://app.example.com.evil.com/cb",
    ] {
        assert!(
            matches!(
                h.authorize(&h.authorize_query(bad)).await,
                AuthorizeOutcome::ShowError(_)
            ),
            "{bad}"
        );
    }
}

// RFC 8707 §2 and RFC 9068 §2.2: the token's audience is the requested resource.
#[tokio::test]
async fn token_audience_is_the_resource_parameter() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let token = tokens["access_token"].as_str().unwrap();
    let header = jwt_part(token, 0);
    let claims = jwt_part(token, 1);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], h.client_id.as_str());
    assert_eq!(claims["scope"], "mcp:tools");
    assert_eq!(claims["exp"].as_u64(), Some(NOW.plus(1).0 + 3600));
}

// RFC 8707 §2.2: a token request may narrow the resources, never name others.
#[tokio::test]
async fn token_request_cannot_widen_resources() {
    let h = harness().await;
    let code = h.code().await;
    let (_, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:49152/callback"),
            ("code_verifier", VERIFIER),
            ("client_id", &h.client_id),
            ("resource", "https://other.example.com/mcp"),
        ])
        .await;
    assert_eq!(error_of(&body), "invalid_target");
}

// RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching
// redirection URI, or if the client identifier is missing or invalid, the authorization
// server SHOULD inform the resource owner of the error and MUST NOT automatically redirect".
#[tokio::test]
async fn error_before_redirect_validation_is_not_redirected() {
    let h = harness().await;
    let mut unknown_client = h.authorize_query(REDIRECT);
    unknown_client[1].1 = "no-such-client".into();
    let mut bad_redirect = h.authorize_query("https://evil.example.com/cb");
    bad_redirect.retain(|(k, _)| *k != "response_type");
    let mut no_client = h.authorize_query(REDIRECT);
    no_client.retain(|(k, _)| *k != "client_id");
    let mut repeated = h.authorize_query("https://evil.example.com/cb");
    repeated.push(("state", "again".into()));
    for q in [unknown_client, bad_redirect, no_client, repeated] {
        let outcome = h.authorize(&q).await;
        assert!(
            matches!(outcome, AuthorizeOutcome::ShowError(_)),
            "{q:?} gave {outcome:?}"
        );
    }
}

// Unknown client and unregistered redirect URI must not be distinguishable.
#[tokio::test]
async fn unknown_client_and_bad_redirect_look_the_same() {
    let h = harness().await;
    let mut unknown_client = h.authorize_query(REDIRECT);
    unknown_client[1].1 = "no-such-client".into();
    let bad_redirect = h.authorize_query("https://evil.example.com/cb");
    let (AuthorizeOutcome::ShowError(a), AuthorizeOutcome::ShowError(b)) = (
        h.authorize(&unknown_client).await,
        h.authorize(&bad_redirect).await,
    ) else {
        panic!("both must be shown, not redirected");
    };
    assert_eq!((a.code(), a.description()), (b.code(), b.description()));
}

// RFC 9207 §2: iss in every authorization response; RFC 6749 §4.1.2: state returned as sent.
#[tokio::test]
async fn authorization_response_carries_state_and_iss() {
    let h = harness().await;
    let redirect = h
        .engine
        .approve(h.pending().await, "alice", NOW)
        .await
        .unwrap();
    let url = url::Url::parse(&redirect.location).unwrap();
    assert!(
        redirect
            .location
            .starts_with("http://127.0.0.1:49152/callback?")
    );
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(params.contains(&("state".into(), "xyz state".into())));
    assert!(params.contains(&("iss".into(), "https://auth.example.com".into())));
    let denied = h.engine.deny(h.pending().await).unwrap();
    let params: Vec<(String, String)> = url::Url::parse(&denied.location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(params.contains(&("error".into(), "access_denied".into())));
    assert!(params.contains(&("iss".into(), "https://auth.example.com".into())));
}

// RFC 6749 §5.1 / §5.2: no-store on token responses, success and error alike.
#[tokio::test]
async fn token_responses_are_not_cacheable() {
    let h = harness().await;
    let code = h.code().await;
    let (_, _, ok_headers) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:49152/callback"),
            ("code_verifier", VERIFIER),
            ("client_id", &h.client_id),
        ])
        .await;
    let (_, _, error_headers) = h.token(&[("grant_type", "password")]).await;
    for headers in [ok_headers, error_headers] {
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["content-type"], "application/json");
    }
}

// RFC 6749 §3.1: repeated parameters are invalid_request.
#[tokio::test]
async fn rejects_repeated_token_request_parameters() {
    let h = harness().await;
    let (status, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "a"),
            ("code", "b"),
        ])
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

// OAuth 2.1: no password or implicit grants.
#[tokio::test]
async fn rejects_unsupported_grant_types() {
    let h = harness().await;
    let (_, body, _) = h
        .token(&[("grant_type", "password"), ("client_id", &h.client_id)])
        .await;
    assert_eq!(error_of(&body), "unsupported_grant_type");
}

// RFC 6749 §2.3: a public client cannot authenticate with a made-up secret; unknown client
// is invalid_client with 401.
#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let h = harness().await;
    let code = h.code().await;
    let (status, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("client_id", "nobody"),
        ])
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

// RFC 6749 §5.2: failed Basic authentication is 401 with WWW-Authenticate: Basic.
#[tokio::test]
async fn failed_basic_authentication_is_401_with_challenge() {
    let h = harness().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", h.client_id))
    );
    let request = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic)
        .body(Bytes::from_static(
            b"grant_type=refresh_token&refresh_token=x",
        ))
        .unwrap();
    let response = h.engine.token_endpoint(request, NOW).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
}

// RFC 7009 §2.1: revoking a refresh token revokes its grant; a client revokes only its own.
#[tokio::test]
async fn revocation_revokes_the_grant_and_only_for_its_client() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let other = h.engine.register_client(
        {
            let mut m = ClientMetadata::default();
            m.redirect_uris = vec![REDIRECT.into()];
            m
        },
        NOW,
    );
    let other = other.await.unwrap();
    let revoke = |client_id: String, token: String| {
        let request = Request::post("/revoke")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from(query(&[
                ("token", &token),
                ("client_id", &client_id),
            ])))
            .unwrap();
        h.engine.revocation_endpoint(request, NOW.plus(2))
    };
    let response = revoke(other.client_id.clone(), refresh.to_owned()).await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "another client must not revoke the token"
    );
    assert_eq!(h.refresh_at(refresh, NOW.plus(3)).await.0, StatusCode::OK);
    // The refresh above rotated the token; revoke the family through the access token.
    let response = revoke(
        h.client_id.clone(),
        tokens["access_token"].as_str().unwrap().to_owned(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = revoke(h.client_id.clone(), "unknown-token".into()).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "RFC 7009 §2.2: unknown tokens answer 200"
    );
}

// RFC 7591 §3.2.2: invalid_redirect_uri for a redirect URI the policy refuses.
#[tokio::test]
async fn registration_rejects_unsafe_redirect_uris() {
    let h = harness().await;
    for bad in [
        "http://evil.example.com/cb",
        "https://a.example/cb#frag",
        "javascript:alert(1)",
    ] {
        let request = Request::post("/register")
            .header("content-type", "application/json")
            .body(Bytes::from(
                serde_json::to_vec(&serde_json::json!({ "redirect_uris": [bad] })).unwrap(),
            ))
            .unwrap();
        let response = h.engine.registration_endpoint(request, NOW).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "invalid_redirect_uri", "{bad}");
    }
}

// RFC 7591 §3.2.1: the response echoes the registered metadata with the new client_id.
#[tokio::test]
async fn registration_returns_the_registered_metadata() {
    let h = harness().await;
    let request = Request::post("/register")
        .header("content-type", "application/json")
        .body(Bytes::from_static(br#"{"redirect_uris":["http://localhost:6274/cb"],"client_name":"Inspector","token_endpoint_auth_method":"none"}"#))
        .unwrap();
    let response = h.engine.registration_endpoint(request, NOW).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert!(body["client_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert!(body.get("client_secret").is_none());
}

// A confidential client authenticates with client_secret_basic (form-urlencoded, RFC 6749
// §2.3.1) and cannot fall back to `none`.
#[tokio::test]
async fn confidential_clients_must_use_their_registered_method() {
    let h = harness().await;
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into()];
    metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
    let registered = h.engine.register_client(metadata, NOW).await.unwrap();
    let secret = registered.client_secret.clone().unwrap();
    let (_, body, _) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", &registered.client_id),
        ])
        .await;
    assert_eq!(
        error_of(&body),
        "invalid_client",
        "a confidential client may not act as public"
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", registered.client_id, secret))
    );
    let request = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic)
        .body(Bytes::from_static(
            b"grant_type=refresh_token&refresh_token=x",
        ))
        .unwrap();
    let response = h.engine.token_endpoint(request, NOW).await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(
        error_of(&body),
        "invalid_grant",
        "authentication must succeed, the token is what is wrong"
    );
}

// RFC 8414 §2: metadata advertises only what the engine does; S256 only; RFC 9207 flag.
#[tokio::test]
async fn metadata_advertises_s256_and_iss_support() {
    let h = harness().await;
    let metadata = h.engine.metadata();
    assert_eq!(metadata.issuer, "https://auth.example.com");
    assert_eq!(metadata.code_challenge_methods_supported, ["S256"]);
    assert!(metadata.authorization_response_iss_parameter_supported);
    assert_eq!(
        metadata.registration_endpoint.as_deref(),
        Some("https://auth.example.com/register")
    );
}

// Every rule of the model test kit, one test each, on the in-memory model.
mcpauth_token_engine::model_test_kit!(memory_model_kit, async { MemoryModel::new() });

#[test]
fn engine_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenEngine<MemoryModel>>();
    assert_send_sync::<
        TokenEngine<
            dyn mcpauth_token_engine::OAuthServerModel<
                    Error = mcpauth_token_engine::MemoryModelError,
                >,
        >,
    >();
}

#[test]
fn code_verifier_is_redacted_in_debug_output() {
    assert_eq!(
        format!("{:?}", CodeVerifier::new(VERIFIER.into())),
        "CodeVerifier([redacted])"
    );
}

// The consent step may narrow the scope, never widen it.
#[tokio::test]
async fn consent_can_narrow_but_not_widen_the_scope() {
    let h = harness().await;
    let mut q = h.authorize_query(REDIRECT);
    q.retain(|(k, _)| *k != "scope");
    q.push(("scope", "mcp:tools mcp:admin".into()));
    let AuthorizeOutcome::NeedsConsent(pending) = h.authorize(&q).await else {
        panic!()
    };
    let wider = mcpauth_oauth_types::Scope::parse("mcp:tools mcp:admin mcp:root").unwrap();
    assert!(
        h.engine
            .approve_scope(pending, "alice", &wider, NOW)
            .await
            .is_err()
    );
    // The refused decision consumed that request; the client asks again.
    let AuthorizeOutcome::NeedsConsent(pending) = h.authorize(&q).await else {
        panic!()
    };
    let narrower = mcpauth_oauth_types::Scope::parse("mcp:tools").unwrap();
    let redirect = h
        .engine
        .approve_scope(pending, "alice", &narrower, NOW)
        .await
        .unwrap();
    let code = code_of(&redirect.location);
    let (_, body, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &h.client_id),
        ])
        .await;
    assert_eq!(body["scope"], "mcp:tools");
}

// Concurrent refreshes of one token: one rotates, the others are retries inside the grace
// window and get the same successor, so there is one chain and never two live families.
#[tokio::test]
async fn concurrent_refreshes_leave_exactly_one_live_family() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let attempts = (0..8).map(|_| h.refresh_at(&refresh, NOW.plus(3)));
    let results = futures::future::join_all(attempts).await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    let successors: std::collections::BTreeSet<&str> = results
        .iter()
        .map(|(_, b)| b["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(successors.len(), 1, "one successor for every caller");
    let next = successors.first().unwrap();
    assert_eq!(
        h.refresh_at(next, NOW.plus(4)).await.0,
        StatusCode::OK,
        "the surviving family still works"
    );
}

async fn authorize_for_scope(h: &Harness, client_id: &str, scope: &str) -> AuthorizeOutcome {
    let mut q = h.authorize_query(REDIRECT);
    for (name, value) in &mut q {
        match *name {
            "client_id" => *value = client_id.to_owned(),
            "scope" => *value = scope.to_owned(),
            _ => {}
        }
    }
    h.authorize(&q).await
}

// MCP authorization, step-up: a client that registered itself with the scope it first needed
// later asks the user for one more (after 403 insufficient_scope). Its registered scope is its
// own claim (RFC 7591 §2), so the user's consent decides, not the registration.
#[tokio::test]
async fn a_self_registered_client_may_ask_the_user_for_more_than_it_registered() {
    let h = harness().await;
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into()];
    metadata.scope = Some("mcp:tools".into());
    let client = h.engine.register_client(metadata, NOW).await.unwrap();
    match authorize_for_scope(&h, &client.client_id, "mcp:tools mcp:admin").await {
        AuthorizeOutcome::NeedsConsent(pending) => {
            assert_eq!(pending.scope(), "mcp:tools mcp:admin");
        }
        other => panic!("expected consent for the wider scope, got {other:?}"),
    }
}

// RFC 6749 §3.3 / §5.2 invalid_scope: an administrator's registration bounds what the client
// may ask for; it has no RFC 7592 registration access token to manage itself with.
#[tokio::test]
async fn a_pre_registered_clients_scope_bounds_its_authorization_requests() {
    let h = harness().await;
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into()];
    metadata.scope = Some("mcp:tools".into());
    let client = h.engine.preregister_client(metadata, NOW).await.unwrap();
    assert!(client.registration_access_token.is_none());
    assert!(client.registration_client_uri.is_none());
    let outcome = authorize_for_scope(&h, &client.client_id, "mcp:tools mcp:admin").await;
    let params = redirect_params(&outcome);
    assert!(
        params.contains(&("error".into(), "invalid_scope".into())),
        "{params:?}"
    );
    match authorize_for_scope(&h, &client.client_id, "mcp:tools").await {
        AuthorizeOutcome::NeedsConsent(pending) => assert_eq!(
            pending.client_identity(),
            &mcpauth_token_engine::ClientIdentity::PreRegistered
        ),
        other => panic!("expected consent, got {other:?}"),
    }
}

/// Users the application disabled, as the engine's `SubjectStatus` sees them.
#[derive(Default)]
struct DisabledUsers(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl mcpauth_token_engine::SubjectStatus for DisabledUsers {
    async fn is_active(
        &self,
        subject: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        Ok(!self.0.lock().unwrap().iter().any(|d| d == subject))
    }
}

// Decisions re-check the user: consent by a disabled user issues no code, and a code approved
// before the user was disabled yields no tokens (its grant is revoked).
#[tokio::test]
async fn approving_consent_and_redeeming_the_code_re_check_the_user() {
    let users = std::sync::Arc::new(DisabledUsers::default());
    let status = users.clone();
    let h = harness_with(move |c| {
        c.subject_status(status);
    })
    .await;
    let code = h.code().await;
    users.0.lock().unwrap().push("alice".into());
    let (status, body) = h.redeem(&code).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let pending = h.pending().await;
    let refused = h.engine.approve(pending, "alice", NOW).await.unwrap_err();
    assert_eq!(
        refused.code(),
        mcpauth_oauth_types::AuthorizeErrorCode::AccessDenied
    );
}

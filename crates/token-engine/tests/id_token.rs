//! OpenID Connect Core 1.0 ID tokens for `openid` grants: what they say (§2, §3.1.3.3), what a
//! refresh answers (§12.2), the `nonce` (§3.1.2.1), and the attacker's view: an ID token is
//! no access token anywhere on this server.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;

use common::*;
use http::StatusCode;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, EngineConfig, MemoryModel, SigningKey, TOKEN_EXCHANGE_GRANT, TokenEngine,
};
use serde_json::Value;

const NONCE: &str = "n-0S6_WzA2Mj";
const CALLBACK: &str = "http://127.0.0.1:49152/callback";

impl Harness {
    /// Alice approves `scope` (with `extra` parameters) and the client redeems the code.
    async fn sign_in(&self, scope: &str, extra: &[(&'static str, &str)]) -> (StatusCode, Value) {
        let mut q = self.authorize_query(CALLBACK);
        q.retain(|(name, _)| *name != "scope");
        q.push(("scope", scope.into()));
        q.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let AuthorizeOutcome::NeedsConsent(pending) = self.authorize(&q).await else {
            panic!("consent expected");
        };
        let redirect = self.engine.approve(pending, "alice", NOW).await.unwrap();
        self.redeem(&code_of(&redirect.location)).await
    }
}

/// The claims of `id_token` after checking its signature against the engine's JWK Set, as
/// a client would.
fn verified(h: &Harness, id_token: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(h.engine.jwks()).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&h.client_id]);
    validation.set_issuer(&["https://auth.example.com"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(
        id_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn an_openid_grant_answers_an_id_token_for_the_client_naming_the_user_and_the_nonce() {
    let h = harness().await;
    let (status, body) = h.sign_in("openid mcp:tools", &[("nonce", NONCE)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = body["id_token"].as_str().unwrap();
    let header = jwt_part(id_token, 0);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "ES256");
    let claims = verified(&h, id_token);
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], h.client_id.as_str());
    assert_eq!(claims["nonce"], NONCE, "§3.1.3.3: the request's nonce");
    assert_eq!(claims["iat"], NOW.0 + 1);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600,
        "an ID token lives as long as an access token"
    );
    // Its jti names the grant, as the access token's does.
    let grant = |jwt: &str| {
        jwt_part(jwt, 1)["jti"]
            .as_str()
            .unwrap()
            .split_once('.')
            .unwrap()
            .0
            .to_owned()
    };
    assert_eq!(
        grant(id_token),
        grant(body["access_token"].as_str().unwrap())
    );
    // The metadata says how ID tokens are signed.
    let metadata = h.engine.metadata();
    assert_eq!(metadata.id_token_signing_alg_values_supported, ["ES256"]);
    assert_eq!(metadata.subject_types_supported, ["public"]);
}

#[tokio::test]
async fn without_openid_there_is_no_id_token_and_without_a_nonce_no_nonce_claim() {
    let h = harness().await;
    let (status, body) = h.sign_in("mcp:tools", &[("nonce", NONCE)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    // Without a nonce, an openid grant's ID token has none.
    let (_, body) = h.sign_in("openid", &[]).await;
    assert!(
        jwt_part(body["id_token"].as_str().unwrap(), 1)
            .get("nonce")
            .is_none()
    );
}

#[tokio::test]
async fn a_refresh_answers_a_new_id_token_with_the_same_iss_sub_and_aud_and_no_nonce() {
    let h = harness().await;
    let (_, first) = h.sign_in("openid mcp:tools", &[("nonce", NONCE)]).await;
    let before = jwt_part(first["id_token"].as_str().unwrap(), 1);
    let (status, refreshed) = h
        .refresh_at(first["refresh_token"].as_str().unwrap(), NOW.plus(60))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let after = verified(&h, refreshed["id_token"].as_str().unwrap());
    for claim in ["iss", "sub", "aud"] {
        assert_eq!(after[claim], before[claim], "§12.2: the same {claim}");
    }
    assert_eq!(
        after["iat"],
        NOW.0 + 60,
        "§12.2: iat is the time of the new token"
    );
    assert!(after.get("nonce").is_none(), "{after}");
    assert_ne!(after["jti"], before["jti"]);
    // A refresh that narrows the scope away from openid: no ID token.
    let (status, narrowed, _) = h
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", &h.client_id),
            ("scope", "mcp:tools"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert!(narrowed.get("id_token").is_none(), "{narrowed}");
}

#[tokio::test]
async fn a_nonce_longer_than_512_bytes_is_refused_at_the_authorization_endpoint() {
    let h = harness().await;
    let mut q = h.authorize_query(CALLBACK);
    q.retain(|(name, _)| *name != "scope");
    q.push(("scope", "openid".into()));
    q.push(("nonce", "n".repeat(513)));
    let outcome = h.authorize(&q).await;
    let params = redirect_params(&outcome);
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "error" && v == "invalid_request"),
        "{params:?}"
    );
}

#[tokio::test]
async fn a_server_signing_with_a_shared_secret_issues_no_id_tokens_and_advertises_none() {
    let engine = TokenEngine::new(
        EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        SigningKey::hs256(b"a shared secret of at least 32 bytes, for the test").unwrap(),
        Arc::new(SeededRandom::new(7)),
    );
    let registered = engine
        .register_client(
            {
                let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
                metadata.redirect_uris = vec![CALLBACK.into()];
                metadata
            },
            NOW,
        )
        .await
        .unwrap();
    let hs = Harness {
        engine,
        client_id: registered.client_id,
    };
    // `openid` is an ordinary scope there, as before ID tokens: granted, no ID token (a
    // secret the resource servers share could not convince a client), OpenID Connect's
    // request rules not applied.
    let (status, body) = hs
        .sign_in("openid mcp:tools", &[("prompt", "none"), ("nonce", NONCE)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "openid mcp:tools");
    assert!(body.get("id_token").is_none(), "{body}");
    let (status, refreshed) = hs
        .refresh_at(body["refresh_token"].as_str().unwrap(), NOW.plus(60))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed.get("id_token").is_none(), "{refreshed}");
    assert!(
        hs.engine
            .metadata()
            .id_token_signing_alg_values_supported
            .is_empty()
    );
    assert!(hs.engine.metadata().subject_types_supported.is_empty());
}

#[tokio::test]
async fn id_tokens_are_advertised_only_where_openid_is_a_supported_scope() {
    let without = harness_with(|c| {
        c.scopes_supported(vec!["mcp:tools".into()]);
    })
    .await;
    assert!(
        without
            .engine
            .metadata()
            .id_token_signing_alg_values_supported
            .is_empty()
    );
    let with = harness_with(|c| {
        c.scopes_supported(vec!["openid".into(), "mcp:tools".into()]);
    })
    .await;
    assert_eq!(
        with.engine.metadata().id_token_signing_alg_values_supported,
        ["ES256"]
    );
    // After a rotation to another algorithm, the retired key's stays listed while its ID
    // tokens may be in use.
    with.engine.replace_keys(
        mcpauth_token_engine::KeySet::new(
            SigningKey::generate(mcpauth_token_engine::KeyAlgorithm::EdDsa).unwrap(),
        )
        .with_retired(signing_key()),
    );
    assert_eq!(
        with.engine.metadata().id_token_signing_alg_values_supported,
        ["EdDSA", "ES256"]
    );
}

/// The authorization request for `scope` with `extra` parameters, and where it went.
async fn openid_request(h: &Harness, extra: &[(&'static str, &str)]) -> Vec<(String, String)> {
    let mut q = h.authorize_query(CALLBACK);
    q.retain(|(name, _)| *name != "scope");
    q.push(("scope", "openid mcp:tools".into()));
    for (name, value) in extra {
        q.retain(|(n, _)| n != name);
        if !value.is_empty() {
            q.push((name, (*value).to_owned()));
        }
    }
    redirect_params(&h.authorize(&q).await)
}

fn error_in(params: &[(String, String)]) -> &str {
    params
        .iter()
        .find(|(k, _)| k == "error")
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn what_an_openid_request_asks_that_this_server_cannot_honour_is_refused_not_ignored() {
    let h = harness().await;
    // §3.1.2.1: prompt=none forbids any page; this server shows its pages.
    let params = openid_request(&h, &[("prompt", "none")]).await;
    assert_eq!(error_in(&params), "interaction_required", "{params:?}");
    assert!(params.iter().any(|(k, v)| k == "state" && v == "xyz state"));
    let params = openid_request(&h, &[("prompt", "none login")]).await;
    assert_eq!(error_in(&params), "invalid_request", "{params:?}");
    let params = openid_request(&h, &[("prompt", "login")]).await;
    assert_eq!(error_in(&params), "login_required", "{params:?}");
    // max_age needs auth_time, which this server does not claim.
    let params = openid_request(&h, &[("max_age", "300")]).await;
    assert_eq!(error_in(&params), "invalid_request", "{params:?}");
    // §3.1.2.1: redirect_uri is REQUIRED (even with one registered URI).
    let one_uri = h.confidential_client(&["authorization_code"], None).await;
    let mut q = h.authorize_query(REDIRECT);
    q[1].1.clone_from(&one_uri.0);
    q.retain(|(name, _)| !["scope", "redirect_uri"].contains(name));
    q.push(("scope", "openid".into()));
    let params = redirect_params(&h.authorize(&q).await);
    assert_eq!(error_in(&params), "invalid_request", "{params:?}");
    // What it honours goes on to consent: prompt=consent, select_account.
    for prompt in ["consent", "select_account", "consent select_account"] {
        let mut q = h.authorize_query(CALLBACK);
        q.retain(|(name, _)| *name != "scope");
        q.push(("scope", "openid".into()));
        q.push(("prompt", prompt.into()));
        assert!(
            matches!(h.authorize(&q).await, AuthorizeOutcome::NeedsConsent(_)),
            "prompt={prompt}"
        );
    }
    // A plain OAuth request (no openid) is untouched by OpenID Connect's rules.
    let mut q = h.authorize_query(CALLBACK);
    q.push(("prompt", "none".into()));
    q.push(("max_age", "0".into()));
    assert!(matches!(
        h.authorize(&q).await,
        AuthorizeOutcome::NeedsConsent(_)
    ));
}

#[tokio::test]
async fn the_device_grant_answers_an_id_token_for_an_openid_request() {
    use mcpauth_token_engine::DEVICE_CODE_GRANT;
    let h = harness().await;
    let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
    metadata.grant_types = vec![DEVICE_CODE_GRANT.into()];
    metadata.token_endpoint_auth_method = Some("none".into());
    let client_id = h
        .engine
        .register_client(metadata, NOW)
        .await
        .unwrap()
        .client_id;
    let response = h
        .engine
        .device_authorization_endpoint(
            http::Request::post("/device_authorization")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(bytes::Bytes::from(query(&[
                    ("client_id", &client_id),
                    ("scope", "openid mcp:tools"),
                    ("resource", RESOURCE),
                ])))
                .unwrap(),
            NOW,
        )
        .await;
    let started: Value = serde_json::from_slice(response.body()).unwrap();
    let page = h
        .engine
        .device_lookup(started["user_code"].as_str().unwrap(), "page", NOW)
        .await
        .unwrap();
    h.engine.approve_device(page, "alice", NOW).await.unwrap();
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", started["device_code"].as_str().unwrap()),
                ("client_id", &client_id),
            ],
            None,
            NOW.plus(6),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = jwt_part(body["id_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], client_id.as_str());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn an_id_token_is_no_access_token_at_introspection_or_token_exchange() {
    let h = harness().await;
    let (_, body) = h.sign_in("openid mcp:tools", &[]).await;
    let id_token = body["id_token"].as_str().unwrap();
    let rs = h.resource_server().await;
    let (_, introspected, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", id_token)],
            Some((&rs.0, &rs.1)),
            NOW.plus(2),
        )
        .await;
    assert_eq!(introspected["active"], false, "{introspected}");
    // RFC 8693 exchange with the ID token as an access token: not one.
    let exchanger = h.confidential_client(&[TOKEN_EXCHANGE_GRANT], None).await;
    let (status, exchanged, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", TOKEN_EXCHANGE_GRANT),
                ("subject_token", id_token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("resource", RESOURCE),
            ],
            Some((&exchanger.0, &exchanger.1)),
            NOW.plus(2),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{exchanged}");
    assert_eq!(error_of(&exchanged), "invalid_grant");
}

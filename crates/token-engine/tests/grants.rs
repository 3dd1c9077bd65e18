//! client_credentials (RFC 6749 §4.4), introspection (RFC 7662) and resource indicators
//! (RFC 8707) against the RFCs' MUSTs.
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

const MACHINE_RESOURCE: &str = "https://api.example.com/mcp";

// RFC 6749 §4.4.3 / RFC 9068 §2.2: a client_credentials token has the client as subject and
// no refresh token.
#[tokio::test]
async fn client_credentials_token_has_no_user_and_no_refresh_token() {
    let h = harness().await;
    let (id, secret) = h
        .confidential_client(&["client_credentials"], Some("mcp:tools"))
        .await;
    let (status, body, headers) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MACHINE_RESOURCE),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        body.get("refresh_token").is_none(),
        "RFC 6749 §4.4.3: no refresh token"
    );
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["sub"],
        id.as_str(),
        "the subject is the client, not a user"
    );
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], MACHINE_RESOURCE);
    assert_eq!(
        claims["scope"], "mcp:tools",
        "no scope asked: the client's registered scope applies"
    );
}

// RFC 6749 §4.4: "MUST only be used by confidential clients".
#[tokio::test]
async fn client_credentials_is_refused_to_public_clients() {
    let h = harness().await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &h.client_id),
                ("resource", MACHINE_RESOURCE),
            ],
            None,
            NOW,
        )
        .await;
    assert_eq!(error_of(&body), "unauthorized_client");
    let request = axum_free_registration(&h, serde_json::json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(request.0, StatusCode::BAD_REQUEST);
    assert_eq!(request.1["error"], "invalid_client_metadata");
}

async fn axum_free_registration(
    h: &Harness,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    registration_with_token(h, body, None).await
}

async fn registration_with_token(
    h: &Harness,
    body: serde_json::Value,
    initial_access_token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = http::Request::post("/register");
    if let Some(token) = initial_access_token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let response = h.engine.registration_endpoint(request, NOW).await;
    (
        response.status(),
        serde_json::from_slice(response.body()).unwrap(),
    )
}

// RFC 7591 §2.1: a client_credentials-only client needs no redirect URI and gets no
// response types (registered with the operator's initial access token, which the policy
// requires for machine grants).
#[tokio::test]
async fn machine_clients_register_without_redirect_uris() {
    let h = harness_with(|c| {
        c.registration_policy(
            mcpauth_token_engine::RegistrationPolicy::default()
                .with_initial_access_tokens(&["operator-iat"])
                .with_vouched_grant_types(&["client_credentials"], &["mcp:tools"]),
        );
    })
    .await;
    let (status, body) = registration_with_token(&h, serde_json::json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}), Some("operator-iat")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 43)
    );
    assert_eq!(body["client_secret_expires_at"], 0);
    assert!(body.get("response_types").is_none());
    let (status, _) = registration_with_token(&h, serde_json::json!({"grant_types": ["client_credentials"], "response_types": ["code"], "token_endpoint_auth_method": "client_secret_post"}), Some("operator-iat")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "code without authorization_code is inconsistent"
    );
}

// RFC 6749 §5.2 unauthorized_client: the client did not register the grant it uses.
#[tokio::test]
async fn grant_types_the_client_did_not_register_are_unauthorized_client() {
    let h = harness().await;
    let (id, secret) = h.confidential_client(&["authorization_code"], None).await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MACHINE_RESOURCE),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(error_of(&body), "unauthorized_client");
}

// RFC 6749 §5.2 invalid_scope: beyond the client's registered scope.
#[tokio::test]
async fn client_credentials_scope_cannot_exceed_the_registered_scope() {
    let h = harness().await;
    let (id, secret) = h
        .confidential_client(&["client_credentials"], Some("read"))
        .await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
                ("resource", MACHINE_RESOURCE),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(error_of(&body), "invalid_scope");
}

// RFC 8707 §2 + MCP authorization: clients MUST send resource. With strict_resource on, a
// request without it is invalid_target, even when a default resource is configured.
#[tokio::test]
async fn strict_resource_requires_the_resource_parameter() {
    let h = harness_with(|c| {
        c.strict_resource(true)
            .default_resource(Some(MACHINE_RESOURCE.into()));
    })
    .await;
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(error_of(&body), "invalid_target");
    let mut q = h.authorize_query(REDIRECT);
    q.retain(|(k, _)| *k != "resource");
    let params = redirect_params(&h.authorize(&q).await);
    assert!(params.contains(&("error".into(), "invalid_target".into())));
}

async fn audience_without_resource(h: &Harness) -> Result<String, String> {
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    match body["access_token"].as_str() {
        Some(token) => Ok(jwt_part(token, 1)["aud"].as_str().unwrap().to_owned()),
        None => Err(error_of(&body).to_owned()),
    }
}

// Compatibility switch, off (the default): the default resource is the audience.
#[tokio::test]
async fn relaxed_resource_falls_back_to_the_default_resource() {
    let h = harness_with(|c| {
        c.strict_resource(false)
            .default_resource(Some(MACHINE_RESOURCE.into()));
    })
    .await;
    assert_eq!(
        audience_without_resource(&h).await.as_deref(),
        Ok(MACHINE_RESOURCE)
    );
}

// Off, no default resource: the only allowed resource; with several, or any URI allowed,
// there is no resource to bind the token to, so invalid_target.
#[tokio::test]
async fn relaxed_resource_falls_back_to_the_only_allowed_resource_and_no_further() {
    let single = harness_with(|c| {
        c.resources(mcpauth_token_engine::ResourcePolicy::Allowed(vec![
            RESOURCE.into(),
        ]));
    })
    .await;
    assert_eq!(
        audience_without_resource(&single).await.as_deref(),
        Ok(RESOURCE)
    );
    let several = harness_with(|c| {
        c.resources(mcpauth_token_engine::ResourcePolicy::Allowed(vec![
            RESOURCE.into(),
            MACHINE_RESOURCE.into(),
        ]));
    })
    .await;
    assert_eq!(
        audience_without_resource(&several).await,
        Err("invalid_target".to_owned())
    );
    let any = harness().await;
    assert_eq!(
        audience_without_resource(&any).await,
        Err("invalid_target".to_owned())
    );
}

// RFC 8707 §2: invalid_target for a resource the server does not serve.
#[tokio::test]
async fn unknown_resources_are_invalid_target() {
    let h = harness_with(|c| {
        c.resources(mcpauth_token_engine::ResourcePolicy::Allowed(vec![
            RESOURCE.into(),
        ]));
    })
    .await;
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MACHINE_RESOURCE),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(error_of(&body), "invalid_target");
    let (status, _, _) = h
        .post(
            Endpoint::Token,
            &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

// RFC 7662 §2.2: an active access token is described; an unknown one is just inactive.
#[tokio::test]
async fn introspection_describes_active_access_tokens() {
    let h = harness().await;
    let (rs_id, rs_secret) = h.resource_server().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, body, headers) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW.plus(5),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], h.client_id.as_str());
    assert_eq!(body["aud"], RESOURCE);
    assert_eq!(body["token_type"], "Bearer");
    let (_, unknown, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", "garbage")],
            Some((&rs_id, &rs_secret)),
            NOW,
        )
        .await;
    assert_eq!(unknown, serde_json::json!({ "active": false }));
    let (_, expired, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW.plus(3602),
        )
        .await;
    assert_eq!(expired, serde_json::json!({ "active": false }));
}

// RFC 7662 §2.1: the endpoint MUST require authorization; public clients cannot introspect.
#[tokio::test]
async fn introspection_requires_an_authenticated_confidential_caller() {
    let h = harness().await;
    let (status, body, _) = h
        .post(Endpoint::Introspect, &[("token", "x")], None, NOW)
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (status, body, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", "x"), ("client_id", &h.client_id)],
            None,
            NOW,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let (rs_id, _) = h.resource_server().await;
    let (status, _, headers) = h
        .post(
            Endpoint::Introspect,
            &[("token", "x")],
            Some((&rs_id, "wrong")),
            NOW,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let (rs_id, rs_secret) = h.resource_server().await;
    let (status, body, _) = h
        .post(Endpoint::Introspect, &[], Some((&rs_id, &rs_secret)), NOW)
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

// Revocation makes access and refresh tokens of the grant inactive at introspection.
#[tokio::test]
async fn introspection_reports_revoked_grants_inactive() {
    let h = harness().await;
    let (rs_id, rs_secret) = h.resource_server().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _, _) = h
        .post(
            Endpoint::Revoke,
            &[("token", refresh), ("client_id", &h.client_id)],
            None,
            NOW.plus(1),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs_id, &rs_secret)),
            NOW.plus(2),
        )
        .await;
    assert_eq!(body, serde_json::json!({ "active": false }));
}

// RFC 7662 §4: refresh tokens are described only to the client that holds them, and only
// when it is a resource server; a client that is not one learns nothing at all.
#[tokio::test]
async fn refresh_tokens_are_introspectable_only_by_their_client() {
    let h = harness().await;
    let (id, secret) = h
        .confidential_client(&["authorization_code", "refresh_token"], None)
        .await;
    let (other_id, other_secret) = h.resource_server().await;
    let code = h.code_for(&id, "bob").await;
    let (_, tokens, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (_, foreign, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", refresh)],
            Some((&other_id, &other_secret)),
            NOW,
        )
        .await;
    assert_eq!(foreign, serde_json::json!({ "active": false }));
    let mut record = h
        .engine
        .model()
        .find_client(&mcpauth_token_engine::ClientId::from(id.as_str()))
        .await
        .unwrap()
        .unwrap();
    record.resource_server = true;
    assert!(h.engine.model().update_client(record).await.unwrap());
    let (_, own, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", refresh), ("token_type_hint", "refresh_token")],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(own["active"], true);
    assert_eq!(own["token_type"], "refresh_token");
    assert_eq!(own["sub"], "bob");
}

// RFC 7662 §2.3 and §4: a client the operator did not make a resource server gets 403 and
// learns nothing about any token, its own included.
#[tokio::test]
async fn only_resource_servers_may_introspect() {
    let h = harness().await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (status, body, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::FORBIDDEN, "unauthorized_client")
    );
    assert!(body.get("active").is_none(), "{body}");
    // Listed by id in the configuration instead of marked.
    let listed = harness_with(|c| {
        c.introspection_clients(vec![id.clone()]);
    })
    .await;
    let (_, tokens) = listed.redeem(&listed.code().await).await;
    let (listed_id, listed_secret) = listed
        .confidential_client(&["client_credentials"], None)
        .await;
    assert_eq!(listed_id, id, "same seed and steps, same client id");
    let (status, body, _) = listed
        .post(
            Endpoint::Introspect,
            &[("token", tokens["access_token"].as_str().unwrap())],
            Some((&listed_id, &listed_secret)),
            NOW,
        )
        .await;
    assert_eq!(
        (status, body["active"].clone()),
        (StatusCode::OK, true.into())
    );
}

// RFC 7009 §2.2.1 unsupported_token_type: a self-contained client_credentials token has no
// server-side state to revoke.
#[tokio::test]
async fn client_credentials_tokens_are_unsupported_token_type_at_revocation() {
    let h = harness().await;
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (_, tokens, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MACHINE_RESOURCE),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    let (status, body, _) = h
        .post(
            Endpoint::Revoke,
            &[("token", tokens["access_token"].as_str().unwrap())],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "unsupported_token_type")
    );
}

// RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
// request."
#[tokio::test]
async fn more_than_one_authentication_method_is_invalid_request() {
    let h = harness().await;
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
                ("resource", MACHINE_RESOURCE),
            ],
            Some((&id, &secret)),
            NOW,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

struct TenantClaims;

impl mcpauth_token_engine::TokenCustomizer for TenantClaims {
    fn extra_claims(
        &self,
        context: &mcpauth_token_engine::TokenContext<'_>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut claims = serde_json::Map::new();
        claims.insert("tenant".into(), "acme".into());
        claims.insert("grant".into(), format!("{:?}", context.grant_type).into());
        // Attempts to override registered claims are dropped.
        claims.insert("sub".into(), "mallory".into());
        claims.insert("aud".into(), "https://evil.example.com".into());
        claims
    }
}

// The application's hook adds claims but cannot replace the RFC 9068 ones.
#[tokio::test]
async fn token_customizer_adds_claims_but_cannot_override_registered_ones() {
    let h = harness_with(|c| {
        c.token_customizer(std::sync::Arc::new(TenantClaims));
    })
    .await;
    let (_, tokens) = h.redeem(&h.code().await).await;
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["grant"], "AuthorizationCode");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], RESOURCE);
}

async fn strict() -> Harness {
    let h = harness().await;
    let config =
        mcpauth_token_engine::EngineConfig::strict("https://auth.example.com".parse().unwrap())
            .unwrap();
    let engine = mcpauth_token_engine::TokenEngine::new(
        config,
        std::sync::Arc::new(mcpauth_token_engine::MemoryModel::new()),
        signing_key(),
        std::sync::Arc::new(mcpauth_token_engine::testing::SeededRandom::new(11)),
    );
    Harness {
        engine,
        client_id: h.client_id,
    }
}

// Strict mode, RFC 7591 §2: "If unspecified or omitted, the default is client_secret_basic".
#[tokio::test]
async fn strict_mode_registers_client_secret_basic_when_the_method_is_omitted() {
    let h = strict().await;
    let (status, body) = axum_free_registration(
        &h,
        serde_json::json!({ "redirect_uris": ["http://127.0.0.1/cb"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert!(body["client_secret"].is_string());
    let lenient = harness().await;
    let (_, body) = axum_free_registration(
        &lenient,
        serde_json::json!({ "redirect_uris": ["http://127.0.0.1/cb"] }),
    )
    .await;
    assert_eq!(
        body["token_endpoint_auth_method"], "none",
        "the default configuration substitutes a public client"
    );
}

// Strict mode, RFC 8252 §8.3: localhost is NOT RECOMMENDED; loopback IP literals only.
#[tokio::test]
async fn strict_mode_refuses_localhost_redirect_uris() {
    let h = strict().await;
    let (status, body) = axum_free_registration(&h, serde_json::json!({ "redirect_uris": ["http://localhost:6274/oauth/callback"], "token_endpoint_auth_method": "none" })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri"))
    );
    let (status, _) = axum_free_registration(&h, serde_json::json!({ "redirect_uris": ["http://127.0.0.1:6274/oauth/callback"], "token_endpoint_auth_method": "none" })).await;
    assert_eq!(status, StatusCode::CREATED);
}

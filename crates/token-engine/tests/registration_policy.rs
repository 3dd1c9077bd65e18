//! The operator's registration policy (RFC 7591 §3 initial access tokens, abuse limits,
//! client-secret expiry).
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
use mcpauth_token_engine::ClientStore as _;
use mcpauth_token_engine::{CallerKey, RegistrationPolicy, UnixTime};
use serde_json::{Value, json};

async fn register(
    h: &Harness,
    bearer: Option<&str>,
    caller: Option<&str>,
    body: Value,
    now: UnixTime,
) -> (StatusCode, Value) {
    let mut request = Request::post("/register").header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut request = request
        .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    if let Some(caller) = caller {
        request.extensions_mut().insert(CallerKey(caller.into()));
    }
    let response = h.engine.registration_endpoint(request, now).await;
    (
        response.status(),
        serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    )
}

fn public_client() -> Value {
    json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" })
}

// RFC 7591 §3: with an initial access token required, a missing or wrong one is invalid_token.
#[tokio::test]
async fn protected_registration_requires_the_initial_access_token() {
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default().with_initial_access_tokens(&["let-me-register"]),
        );
    })
    .await;
    let (status, body) = register(&h, None, None, public_client(), NOW).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    assert_eq!(
        register(&h, Some("guess"), None, public_client(), NOW)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        register(&h, Some("let-me-register"), None, public_client(), NOW)
            .await
            .0,
        StatusCode::CREATED
    );
}

// Abuse limit: registrations per caller per hour, without locking out other callers.
#[tokio::test]
async fn registrations_are_rate_limited_per_caller() {
    let h = harness_with(|c| {
        c.registration_policy(RegistrationPolicy::default().with_per_caller_per_hour(2));
    })
    .await;
    let at = UnixTime(NOW.0 - NOW.0 % 3600);
    for _ in 0..2 {
        assert_eq!(
            register(&h, None, Some("198.51.100.7"), public_client(), at)
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let (status, _) = register(&h, None, Some("198.51.100.7"), public_client(), at.plus(5)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        register(&h, None, Some("203.0.113.9"), public_client(), at.plus(5))
            .await
            .0,
        StatusCode::CREATED,
        "other callers are not locked out"
    );
    assert_eq!(
        register(
            &h,
            None,
            Some("198.51.100.7"),
            public_client(),
            at.plus(3600)
        )
        .await
        .0,
        StatusCode::CREATED,
        "the limit resets"
    );
}

// Abuse limit: a cap on registered clients.
#[tokio::test]
async fn registrations_beyond_the_cap_are_refused() {
    let h = harness_with(|c| {
        c.registration_policy(RegistrationPolicy::default().with_max_clients(2));
    })
    .await;
    // The harness registered one client already.
    assert_eq!(
        register(&h, None, None, public_client(), NOW).await.0,
        StatusCode::CREATED
    );
    let (status, body) = register(&h, None, None, public_client(), NOW).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

// RFC 7591 §3.2.1 client_secret_expires_at, enforced at the token endpoint.
#[tokio::test]
async fn client_secrets_expire_when_configured() {
    let h = harness_with(|c| {
        c.registration_policy(RegistrationPolicy::default().with_client_secret_ttl(3600));
    })
    .await;
    let (status, body) = register(
        &h,
        None,
        None,
        json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post" }),
        NOW,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["client_secret_expires_at"], NOW.0 + 3600);
    let (id, secret) = (
        body["client_id"].as_str().unwrap(),
        body["client_secret"].as_str().unwrap(),
    );
    // A code that does not exist: a client that authenticates hears invalid_grant.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "no-such-code"),
        ("code_verifier", VERIFIER),
        ("client_id", id),
        ("client_secret", secret),
    ];
    let (status, body, _) = h.post(Endpoint::Token, &form, None, NOW.plus(3599)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "the secret still works"
    );
    let (status, body, _) = h.post(Endpoint::Token, &form, None, NOW.plus(3600)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

struct StatementIssuer {
    der: Vec<u8>,
    jwk: Value,
}

fn statement_issuer() -> StatementIssuer {
    let der =
        mcpauth_token_engine::SigningKey::generate_pkcs8(mcpauth_token_engine::KeyAlgorithm::Es256)
            .unwrap();
    let jwk = mcpauth_token_engine::SigningKey::es256_from_pkcs8_der(&der)
        .unwrap()
        .public_jwk()
        .cloned()
        .unwrap();
    StatementIssuer { der, jwk }
}

fn statement(issuer: &StatementIssuer, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = issuer.jwk["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&issuer.der),
    )
    .unwrap()
}

// RFC 7591 §2.3 / §3.1.1: statements from trusted issuers are verified and their claims take
// precedence; the response echoes the statement (§3.2.1).
#[tokio::test]
async fn software_statements_from_trusted_issuers_take_precedence() {
    let trusted = statement_issuer();
    let issuers = vec![mcpauth_dcr::TrustedStatementIssuer::new(
        "https://vendor.example.com",
        json!({ "keys": [trusted.jwk.clone()] }),
    )];
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default().with_software_statements(issuers, false),
        );
    })
    .await;
    let signed = statement(
        &trusted,
        &json!({ "iss": "https://vendor.example.com", "client_name": "Vendor App", "software_id": "vendor-app", "exp": NOW.0 + 3600 }),
    );
    let (status, body) = register(&h, None, None, json!({ "redirect_uris": [REDIRECT], "client_name": "Spoofed Name", "software_statement": signed }), NOW).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["client_name"], "Vendor App");
    assert_eq!(body["software_id"], "vendor-app");
    assert_eq!(body["software_statement"], signed);

    let stranger = statement_issuer();
    let untrusted = statement(
        &stranger,
        &json!({ "iss": "https://other.example.com", "client_name": "X" }),
    );
    let (_, body) = register(
        &h,
        None,
        None,
        json!({ "redirect_uris": [REDIRECT], "software_statement": untrusted }),
        NOW,
    )
    .await;
    assert_eq!(body["error"], "unapproved_software_statement");
    let forged = statement(
        &stranger,
        &json!({ "iss": "https://vendor.example.com", "client_name": "X" }),
    );
    let (_, body) = register(
        &h,
        None,
        None,
        json!({ "redirect_uris": [REDIRECT], "software_statement": forged }),
        NOW,
    )
    .await;
    assert_eq!(body["error"], "invalid_software_statement");
    let expired = statement(
        &trusted,
        &json!({ "iss": "https://vendor.example.com", "exp": NOW.0 - 1 }),
    );
    let (_, body) = register(
        &h,
        None,
        None,
        json!({ "redirect_uris": [REDIRECT], "software_statement": expired }),
        NOW,
    )
    .await;
    assert_eq!(body["error"], "invalid_software_statement");
    let (_, body) = register(
        &h,
        None,
        None,
        json!({ "redirect_uris": [REDIRECT], "software_statement": "not-a-jwt" }),
        NOW,
    )
    .await;
    assert_eq!(body["error"], "invalid_software_statement");
}

// A required statement must be present; without configuration statements are ignored
// (RFC 7591 §3.1.1).
#[tokio::test]
async fn software_statements_can_be_required_and_are_otherwise_ignored() {
    let trusted = statement_issuer();
    let issuers = vec![mcpauth_dcr::TrustedStatementIssuer::new(
        "https://vendor.example.com",
        json!({ "keys": [trusted.jwk.clone()] }),
    )];
    let strict = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default().with_software_statements(issuers, true),
        );
    })
    .await;
    let (status, body) = register(&strict, None, None, public_client(), NOW).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("unapproved_software_statement")
        )
    );
    let open = harness().await;
    let unverifiable = statement(
        &statement_issuer(),
        &json!({ "iss": "https://anyone.example.com", "client_name": "Ignored" }),
    );
    let (status, body) = register(&open, None, None, json!({ "redirect_uris": [REDIRECT], "client_name": "Plain", "software_statement": unverifiable }), NOW).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["client_name"], "Plain");
}

fn machine_client() -> Value {
    json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post", "scope": "mcp:tools mcp:admin" })
}

async fn client_credentials(
    h: &Harness,
    registered: &Value,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("resource", RESOURCE),
        ("client_id", registered["client_id"].as_str().unwrap()),
        (
            "client_secret",
            registered["client_secret"].as_str().unwrap(),
        ),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let (status, body, _) = h.post(Endpoint::Token, &form, None, NOW).await;
    (status, body)
}

// DESIGN §3c: an anonymous caller gets user-delegated authority only. The attack:
// register a client_credentials client with an admin scope, then mint a token.
#[tokio::test]
async fn a_self_registered_client_cannot_use_client_credentials() {
    let h = harness().await;
    let (status, body) = register(&h, None, None, machine_client(), NOW).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("mcpauth-server client add"),
        "the refusal says how to get such a client: {body}"
    );
    for grant in [
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_credentials",
    ] {
        let (status, _) = register(
            &h,
            None,
            None,
            json!({ "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", grant], "token_endpoint_auth_method": "client_secret_post" }),
            NOW,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grant}");
    }
    // The user-delegated grants stay open.
    let (status, body) = register(&h, None, None, json!({ "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"], "token_endpoint_auth_method": "none" }), NOW).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

// A record from before the allow-list (or written by hand) that claims client_credentials
// still gets nothing at the token endpoint unless someone vouched for it.
#[tokio::test]
async fn a_self_registered_record_with_client_credentials_is_unauthorized_at_the_token_endpoint() {
    use mcpauth_token_engine::ClientStore as _;
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default()
                .with_initial_access_tokens(&["operator-iat"])
                .with_vouched_grant_types(&["client_credentials"], &["mcp:tools"]),
        );
    })
    .await;
    let (status, registered) =
        register(&h, Some("operator-iat"), None, machine_client(), NOW).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let id = registered["client_id"].as_str().unwrap();
    let mut record = h
        .engine
        .model()
        .find_client(&mcpauth_token_engine::ClientId::from(id))
        .await
        .unwrap()
        .unwrap();
    record.vouched = None;
    assert!(h.engine.model().update_client(record).await.unwrap());
    let (status, body) = client_credentials(&h, &registered, None).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
}

// The operator's opt-in: with an initial access token, a self-registered machine client may
// use client_credentials, within the operator's scope ceiling, never its own registration's.
#[tokio::test]
async fn the_client_credentials_scope_ceiling_is_the_operators_not_the_registrations() {
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default()
                .with_initial_access_tokens(&["operator-iat"])
                .with_vouched_grant_types(&["client_credentials"], &["mcp:tools"]),
        );
    })
    .await;
    let (status, registered) =
        register(&h, Some("operator-iat"), None, machine_client(), NOW).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let (status, body) = client_credentials(&h, &registered, Some("mcp:tools mcp:admin")).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_scope"),
        "mcp:admin is in the registration, not in the operator's ceiling"
    );
    let (status, body) = client_credentials(&h, &registered, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools", "the ceiling is the default");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub_type"], "client", "no user stands behind it");
}

// Vouched grants need a voucher even when the operator opted in: an open registration (no
// initial access tokens configured, no statement) still cannot have them.
#[tokio::test]
async fn vouched_grant_types_need_an_initial_access_token_or_a_software_statement() {
    let issuer = statement_issuer();
    let issuers = vec![mcpauth_dcr::TrustedStatementIssuer::new(
        "https://vendor.example.com",
        json!({ "keys": [issuer.jwk] }),
    )];
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default()
                .with_software_statements(issuers, false)
                .with_vouched_grant_types(&["client_credentials"], &["mcp:tools"]),
        );
    })
    .await;
    let (status, body) = register(&h, None, None, machine_client(), NOW).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("software statement"),
        "{body}"
    );
    let signed = statement(
        &issuer,
        &json!({ "iss": "https://vendor.example.com", "software_id": "vendor-bot", "exp": NOW.0 + 3600 }),
    );
    let mut with_statement = machine_client();
    with_statement["software_statement"] = signed.into();
    let (status, registered) = register(&h, None, None, with_statement, NOW).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let (status, body) = client_credentials(&h, &registered, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// The allow-list itself is the operator's: a list without the device grant refuses it.
#[tokio::test]
async fn the_self_registration_grant_types_are_configurable() {
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default()
                .with_grant_types(&["authorization_code", "refresh_token"]),
        );
    })
    .await;
    let (status, _) = register(&h, None, None, json!({ "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"], "token_endpoint_auth_method": "none" }), NOW).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = register(&h, None, None, public_client(), NOW).await;
    assert_eq!(status, StatusCode::CREATED);
}

// RFC 7592 §2.2: an update is held to the same policy as the registration.
#[tokio::test]
async fn an_update_applies_the_registration_policy() {
    let h = harness_with(|c| {
        c.registration_policy(RegistrationPolicy::default().with_client_secret_ttl(3600));
    })
    .await;
    let (status, registered) = register(&h, None, None, public_client(), NOW).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = registered["client_id"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let put = |body: Value| {
        let request = Request::put(format!("/register/{id}"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let engine = &h.engine;
        async move {
            let response = engine
                .client_configuration_endpoint(request, id, NOW.plus(10))
                .await;
            (
                response.status(),
                serde_json::from_slice::<Value>(response.body()).unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = put(json!({ "client_id": id, "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post" })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
        "an update cannot add client_credentials"
    );
    let (status, body) = put(
        json!({ "client_id": id, "redirect_uris": [REDIRECT], "software_statement": "not-a-jwt" }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "statements are ignored without trusted issuers: {body}"
    );
    let (status, body) = put(json!({ "client_id": id, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["client_secret"].is_string());
    assert_eq!(
        body["client_secret_expires_at"],
        NOW.0 + 10 + 3600,
        "a secret issued on update honours client_secret_ttl"
    );
}

// RFC 7592 §2.2 for a client the application registered (register_client): its registered
// grants and scope are its ceiling, chosen by the application; the client may keep or narrow
// them by update, never add client_credentials or widen the scope.
#[tokio::test]
async fn an_application_registered_client_cannot_widen_its_grants_or_scope_by_update() {
    let h = harness().await;
    let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into()];
    metadata.scope = Some("mcp:tools".into());
    metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
    let registered = h.engine.register_client(metadata, NOW).await.unwrap();
    let id = registered.client_id.clone();
    let token = registered.registration_access_token.clone().unwrap();
    let put = |body: Value| {
        let request = Request::put(format!("/register/{id}"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let engine = &h.engine;
        let id = id.clone();
        async move {
            let response = engine
                .client_configuration_endpoint(request, &id, NOW.plus(10))
                .await;
            (
                response.status(),
                serde_json::from_slice::<Value>(response.body()).unwrap_or(Value::Null),
            )
        }
    };
    let refused = |(status, body): (StatusCode, Value)| {
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")),
            "{body}"
        );
    };
    let base = json!({ "client_id": id, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic" });
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    refused(
        put(with(
            json!({ "grant_types": ["client_credentials"], "scope": "mcp:tools" }),
        ))
        .await,
    );
    refused(put(with(json!({ "scope": "mcp:tools mcp:admin" }))).await);
    refused(put(with(json!({}))).await);
    let (status, body) = put(with(json!({ "scope": "mcp:tools" }))).await;
    assert_eq!(status, StatusCode::OK, "keeping the scope is fine: {body}");
    let stored = h
        .engine
        .model()
        .find_client(&mcpauth_token_engine::ClientId::from(id.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.metadata.scope.as_deref(), Some("mcp:tools"));
    assert!(
        !stored
            .metadata
            .grant_types
            .iter()
            .any(|g| g == "client_credentials")
    );
}

// RFC 7591 §3.2.2: a registration document nested beyond what client metadata needs is
// refused with invalid_client_metadata before it is parsed.
#[tokio::test]
async fn deeply_nested_registration_json_is_invalid_client_metadata() {
    let h = harness().await;
    let mut nested = json!("leaf");
    for _ in 0..40 {
        nested = json!([nested]);
    }
    let (status, body) = register(
        &h,
        None,
        None,
        json!({ "redirect_uris": [REDIRECT], "x-deep": nested }),
        NOW,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
}

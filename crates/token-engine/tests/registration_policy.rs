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
    let (status, body) = register(&h, None, None, json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post" }), NOW).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["client_secret_expires_at"], NOW.0 + 3600);
    let (id, secret) = (
        body["client_id"].as_str().unwrap(),
        body["client_secret"].as_str().unwrap(),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("resource", RESOURCE),
        ("client_id", id),
        ("client_secret", secret),
    ];
    assert_eq!(
        h.post(Endpoint::Token, &form, None, NOW.plus(3599)).await.0,
        StatusCode::OK
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
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let der = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap()
    .as_ref()
    .to_vec();
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

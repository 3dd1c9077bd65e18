//! RFC 7523 `private_key_jwt` client authentication against its MUSTs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use common::*;
use http::StatusCode;
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{SigningKey, UnixTime};
use serde_json::{Value, json};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const API: &str = "https://api.example.com/mcp";

struct KeyPair {
    der: Vec<u8>,
    public: Value,
}

fn key_pair() -> KeyPair {
    let der = SigningKey::generate_pkcs8(mcpauth_token_engine::KeyAlgorithm::Es256).unwrap();
    let public = SigningKey::es256_from_pkcs8_der(der.as_ref())
        .unwrap()
        .public_jwk()
        .cloned()
        .unwrap();
    KeyPair { der, public }
}

async fn register(h: &Harness, key: &KeyPair) -> String {
    let mut metadata = ClientMetadata::default();
    metadata.token_endpoint_auth_method = Some("private_key_jwt".into());
    metadata.grant_types = vec!["client_credentials".into()];
    metadata.jwks = Some(json!({ "keys": [key.public] }));
    let registered = h.engine.register_client(metadata, NOW).await.unwrap();
    assert!(
        registered.client_secret.is_none(),
        "private_key_jwt clients get no secret"
    );
    registered.client_id
}

fn assertion(key: &KeyPair, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = key.public["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key.der),
    )
    .unwrap()
}

fn claims(client_id: &str, jti: &str, now: UnixTime) -> Value {
    json!({ "iss": client_id, "sub": client_id, "aud": "https://auth.example.com", "jti": jti, "exp": now.0 + 60, "iat": now.0 })
}

async fn token_with(h: &Harness, assertion: &str, now: UnixTime) -> (StatusCode, Value) {
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("resource", API),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
            None,
            now,
        )
        .await;
    (status, body)
}

// RFC 7523 §2.2 / §3: a valid assertion authenticates the client.
#[tokio::test]
async fn signed_assertion_authenticates_the_client() {
    let h = harness().await;
    let key = key_pair();
    let id = register(&h, &key).await;
    let (status, body) = token_with(&h, &assertion(&key, &claims(&id, "a-1", NOW)), NOW).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["sub"],
        id.as_str()
    );
}

// draft-ietf-oauth-rfc7523bis §4: the audience is the issuer identifier as a single string;
// the token endpoint URL, or an array, only behind `legacy_assertion_audience`.
#[tokio::test]
async fn the_assertion_audience_must_be_the_issuer_alone() {
    for legacy in [false, true] {
        let h = harness_with(|c| {
            c.legacy_assertion_audience(legacy);
        })
        .await;
        let key = key_pair();
        let id = register(&h, &key).await;
        let forms = [
            ("token endpoint", json!("https://auth.example.com/token")),
            ("array", json!(["https://auth.example.com"])),
            (
                "array with another server",
                json!(["https://auth.example.com", "https://other.example.com"]),
            ),
        ];
        for (n, (name, aud)) in forms.into_iter().enumerate() {
            let mut c = claims(&id, &format!("legacy-{legacy}-{n}"), NOW);
            c["aud"] = aud;
            let (status, body) = token_with(&h, &assertion(&key, &c), NOW).await;
            let expected = if legacy {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(status, expected, "{name}, legacy {legacy}: {body}");
        }
        let (status, _) = token_with(
            &h,
            &assertion(&key, &claims(&id, &format!("issuer-{legacy}"), NOW)),
            NOW,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "the issuer, legacy {legacy}");
    }
}

// RFC 8414 §2: the algorithms accepted are exactly those advertised in
// token_endpoint_auth_signing_alg_values_supported.
#[tokio::test]
async fn accepted_assertion_algorithms_are_the_advertised_ones() {
    let h = harness().await;
    let advertised = h
        .engine
        .metadata()
        .token_endpoint_auth_signing_alg_values_supported;
    assert_eq!(advertised, ["ES256", "ES384", "RS256", "PS256", "EdDSA"]);
    let key = key_pair();
    let id = register(&h, &key).await;
    // RS384 is not advertised: refused before any key is tried.
    let c = claims(&id, "rs384", NOW);
    let header = json!({ "alg": "RS384", "typ": "JWT" });
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(v).unwrap(),
        )
    };
    let forged = format!("{}.{}.c2ln", b64(&header), b64(&c));
    let (status, body) = token_with(&h, &forged, NOW).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

// RFC 7523 §3 item 7: the server "MAY ensure that JWTs are not replayed"; we do.
#[tokio::test]
async fn replayed_assertion_is_refused() {
    let h = harness().await;
    let key = key_pair();
    let id = register(&h, &key).await;
    let jwt = assertion(&key, &claims(&id, "once", NOW));
    assert_eq!(token_with(&h, &jwt, NOW).await.0, StatusCode::OK);
    let (status, body) = token_with(&h, &jwt, NOW.plus(1)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

// RFC 7523 §3 items 3-5: audience, expiry, and a bounded lifetime.
#[tokio::test]
async fn assertions_with_wrong_audience_or_time_are_refused() {
    let h = harness().await;
    let key = key_pair();
    let id = register(&h, &key).await;
    let mut wrong_aud = claims(&id, "b-1", NOW);
    wrong_aud["aud"] = "https://other.example.com/token".into();
    let mut expired = claims(&id, "b-2", NOW);
    expired["exp"] = (NOW.0 - 120).into();
    let mut too_long = claims(&id, "b-3", NOW);
    too_long["exp"] = (NOW.0 + 3600).into();
    let mut string_exp = claims(&id, "b-4", NOW);
    string_exp["exp"] = (NOW.0 + 60).to_string().into();
    let mut no_jti = claims(&id, "b-5", NOW);
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut other_issuer = claims(&id, "b-6", NOW);
    other_issuer["iss"] = "someone-else".into();
    for (name, c) in [
        ("aud", wrong_aud),
        ("expired", expired),
        ("lifetime", too_long),
        ("string exp", string_exp),
        ("jti", no_jti),
        ("iss", other_issuer),
    ] {
        let (status, body) = token_with(&h, &assertion(&key, &c), NOW).await;
        assert_eq!(
            (status, error_of(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn assertion_signed_by_another_key_is_refused() {
    let h = harness().await;
    let key = key_pair();
    let id = register(&h, &key).await;
    let mut stranger = key_pair();
    stranger.public["kid"] = key.public["kid"].clone();
    let (status, _) = token_with(&h, &assertion(&stranger, &claims(&id, "c-1", NOW)), NOW).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

// RFC 6749 §2.3: one method per request.
#[tokio::test]
async fn assertion_together_with_a_secret_is_invalid_request() {
    let h = harness().await;
    let key = key_pair();
    let id = register(&h, &key).await;
    let jwt = assertion(&key, &claims(&id, "d-1", NOW));
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "client_credentials"),
                ("resource", API),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &jwt),
                ("client_secret", "x"),
                ("client_id", &id),
            ],
            None,
            NOW,
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

// RFC 7591 §2: private_key_jwt needs keys; jwks and jwks_uri are exclusive.
#[tokio::test]
async fn registration_requires_inline_keys_for_private_key_jwt() {
    let h = harness().await;
    let mut no_keys = ClientMetadata::default();
    no_keys.token_endpoint_auth_method = Some("private_key_jwt".into());
    no_keys.grant_types = vec!["client_credentials".into()];
    assert!(
        h.engine
            .register_client(no_keys.clone(), NOW)
            .await
            .is_err()
    );
    let mut both = no_keys.clone();
    both.jwks = Some(json!({ "keys": [key_pair().public] }));
    both.jwks_uri = Some("https://client.example.com/jwks.json".into());
    let error = h.engine.register_client(both, NOW).await.unwrap_err();
    assert_eq!(error.code().as_str(), "invalid_client_metadata");
    let mut garbage = no_keys;
    garbage.jwks = Some(json!({ "keys": [{ "kty": "nope" }] }));
    assert!(h.engine.register_client(garbage, NOW).await.is_err());
}

//! RFC 8935 at the resource server: what a push to [`ResourceServer::receive_pushed_event`]
//! must carry (the credential this receiver gave the transmitter, and a Security Event Token
//! of the issuer's for this receiver), what each refusal answers, and that a verification
//! event marks the stream as answering. The issuer's key is made here.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed unwrap is a failed test"
)]

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::dpop_tests::{Key, StaticKeys, es256_key};
use crate::{ResourceServer, ResourceServerConfig, RevocationStream};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://auth.example.com";
const RECEIVER: &str = "mcp-server";
const CREDENTIAL: &str = "Bearer the-credential-given-with-the-stream";

fn receiver(key: &Key, push: bool) -> ResourceServer {
    let mut jwk = key.jwk.clone();
    jwk["kid"] = json!("as-key");
    jwk["alg"] = json!("ES256");
    let stream = RevocationStream::new(ISSUER, RECEIVER, "secret");
    let stream = if push {
        stream.push_to("https://mcp.example.com/ssf/push")
    } else {
        stream
    };
    let config = ResourceServerConfig::new(RESOURCE, ISSUER, format!("{ISSUER}/jwks.json"))
        .with_revocation_stream(stream);
    let keys = Bytes::from(json!({ "keys": [jwk] }).to_string());
    let resource = ResourceServer::with_key_source(config, Arc::new(StaticKeys(keys))).unwrap();
    resource.push_state().authorization = Some(CREDENTIAL.to_owned());
    resource
}

/// A SET signed by `key` (as `as-key`) with `claims` over the defaults.
fn set(key: &Key, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.typ = Some("secevent+jwt".into());
    header.kid = Some("as-key".into());
    let mut all = json!({
        "iss": ISSUER, "aud": RECEIVER, "jti": "e1", "iat": mcpauth_oauth_types::now().0,
        "sub_id": { "format": "complex", "session": { "format": "opaque", "id": "g1" } },
        "events": { "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {} },
    });
    for (name, value) in claims.as_object().unwrap() {
        all[name] = value.clone();
    }
    jsonwebtoken::encode(&header, &all, &key.encoding).unwrap()
}

async fn push(resource: &ResourceServer, authorization: Option<&str>, body: &str) -> (u16, Value) {
    let answer = resource
        .receive_pushed_event(authorization, body.as_bytes())
        .await;
    let body = serde_json::from_slice(answer.body()).unwrap_or(Value::Null);
    (answer.status().as_u16(), body)
}

#[tokio::test]
async fn a_push_without_this_receivers_credential_is_refused_and_changes_nothing() {
    let key = es256_key();
    let resource = receiver(&key, true);
    let genuine = set(&key, json!({}));
    for authorization in [
        None,
        Some("Bearer guessed"),
        Some("Basic bWNwLXNlcnZlcjpzZWNyZXQ="),
    ] {
        let (status, body) = push(&resource, authorization, &genuine).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(body["err"], "authentication_failed");
    }
    assert_eq!(resource.revocations_held(), 0);
}

#[tokio::test]
async fn a_push_not_from_the_issuer_for_this_receiver_is_refused_with_rfc_8935_errors() {
    let key = es256_key();
    let resource = receiver(&key, true);
    let forger = es256_key();
    for (token, err) in [
        (
            set(&key, json!({ "aud": "another-receiver" })),
            "invalid_audience",
        ),
        (
            set(&key, json!({ "iss": "https://evil.example" })),
            "invalid_issuer",
        ),
        (set(&forger, json!({})), "invalid_key"),
        ("not a jwt".to_owned(), "invalid_request"),
        (set(&key, json!({ "events": "none" })), "invalid_request"),
    ] {
        let (status, body) = push(&resource, Some(CREDENTIAL), &token).await;
        assert_eq!(status, 400, "{err}: {body}");
        assert_eq!(body["err"], err, "{body}");
    }
    assert_eq!(resource.revocations_held(), 0);
}

#[tokio::test]
async fn a_genuine_push_is_applied_and_a_verification_marks_the_stream_answering() {
    let key = es256_key();
    let resource = receiver(&key, true);
    assert_eq!(
        resource.revocation_push_path().as_deref(),
        Some("/ssf/push")
    );
    let (status, _) = push(&resource, Some(CREDENTIAL), &set(&key, json!({}))).await;
    assert_eq!(status, 202);
    assert_eq!(resource.revocations_held(), 1);
    // Applying it again (a transmitter may push twice) changes nothing.
    let (status, _) = push(&resource, Some(CREDENTIAL), &set(&key, json!({}))).await;
    assert_eq!(status, 202);
    assert_eq!(resource.revocations_held(), 1);

    // The stream counts as answering up to when the verification was asked for, once it
    // arrives; one that was not asked for (or is stale) proves nothing.
    assert_eq!(resource.last_revocation_poll(), None);
    resource
        .push_state()
        .verifications
        .push(("asked".to_owned(), 1_800_000_000));
    let verification = |state: &str| {
        set(
            &key,
            json!({
                "jti": "e2",
                "sub_id": { "format": "opaque", "id": "stream" },
                "events": { "https://schemas.openid.net/secevent/ssf/event-type/verification": { "state": state } },
            }),
        )
    };
    let (status, _) = push(&resource, Some(CREDENTIAL), &verification("not asked")).await;
    assert_eq!(status, 202);
    assert_eq!(resource.last_revocation_poll(), None);
    let (status, _) = push(&resource, Some(CREDENTIAL), &verification("asked")).await;
    assert_eq!(status, 202);
    assert_eq!(resource.last_revocation_poll(), Some(1_800_000_000));
    assert!(resource.push_state().verifications.is_empty());

    // What an operator's /metrics shows.
    let metrics = resource.revocation_metrics();
    assert_eq!(metrics.events_applied, 4);
    assert_eq!(metrics.revocations_held, 1);
    let text = metrics.prometheus(1_800_000_005);
    for line in [
        "mcpauth_rs_revocation_last_answer_timestamp_seconds 1800000000",
        "mcpauth_rs_revocation_silence_seconds 5",
        "mcpauth_rs_revocations_held 1",
        "mcpauth_rs_revocation_events_total 4",
        "mcpauth_rs_tokens_refused_total{reason=\"revoked\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn a_push_signed_by_a_key_not_known_yet_is_sent_again_not_dropped() {
    let key = es256_key();
    let resource = receiver(&key, true);
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.typ = Some("secevent+jwt".into());
    header.kid = Some("rotated-in".into());
    let claims = json!({
        "iss": ISSUER, "aud": RECEIVER, "jti": "e1", "iat": mcpauth_oauth_types::now().0,
        "sub_id": { "format": "complex", "session": { "format": "opaque", "id": "g1" } },
        "events": { "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {} },
    });
    let token = jsonwebtoken::encode(&header, &claims, &es256_key().encoding).unwrap();
    // 503: the transmitter keeps it and pushes it again (a 400 would drop the revocation).
    let (status, _) = push(&resource, Some(CREDENTIAL), &token).await;
    assert_eq!(status, 503);
    assert_eq!(resource.revocations_held(), 0);
}

#[test]
fn a_push_stream_must_have_its_own_route_and_verify_within_the_silence_bound() {
    let key = es256_key();
    let make = |stream: RevocationStream| {
        let config = ResourceServerConfig::new(RESOURCE, ISSUER, format!("{ISSUER}/jwks.json"))
            .with_revocation_stream(stream);
        let keys = Bytes::from(json!({ "keys": [key.jwk.clone()] }).to_string());
        ResourceServer::with_key_source(config, Arc::new(StaticKeys(keys))).map(|_| ())
    };
    let stream = || RevocationStream::new(ISSUER, RECEIVER, "secret");
    assert_eq!(stream().verification_interval, 10);
    assert_eq!(stream().verification_interval(0).verification_interval, 1);
    assert!(make(stream().push_to("https://mcp.example.com/ssf/push")).is_ok());
    assert!(
        make(
            stream()
                .push_to("https://mcp.example.com/ssf/push")
                .verification_interval(29)
        )
        .is_ok()
    );
    for (wrong, why) in [
        (stream().push_to(RESOURCE), "its own route"),
        (
            stream().push_to("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
            "its own route",
        ),
        (
            stream().push_to("https://mcp.example.com/"),
            "its own route",
        ),
        (stream().push_to("ssf/push"), "absolute URL"),
        (
            stream()
                .push_to("https://mcp.example.com/ssf/push")
                .verification_interval(30),
            "below max_silence",
        ),
    ] {
        let error = make(wrong).unwrap_err().to_string();
        assert!(error.contains(why), "{error}");
    }
    // Polled, the verification interval is not used.
    assert!(make(stream().verification_interval(60)).is_ok());
}

#[tokio::test]
async fn a_resource_server_that_polls_takes_no_pushes() {
    let key = es256_key();
    let resource = receiver(&key, false);
    assert_eq!(resource.revocation_push_path(), None);
    let (status, _) = push(&resource, Some(CREDENTIAL), &set(&key, json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND.as_u16());
}

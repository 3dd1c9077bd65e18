//! Security Event Tokens (RFC 8417) as a resource server receives them from its authorization
//! server's Shared Signals stream, signed by the real engine, and the revocation list every
//! verified token is checked against.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "test keys"
)]

use std::sync::Arc;

use mcpauth_bearer::{Revocation, RevocationList, TokenVerifier, VerifyError};
use mcpauth_oauth_types::security_events::{
    ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED, SIGNING_KEY_REMOVED,
};
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime};
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime(1_800_000_000);
const ISSUER: &str = "https://auth.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const RECEIVER: &str = "the-mcp-server";

fn engine() -> TokenEngine<MemoryModel> {
    TokenEngine::new(
        EngineConfig::new(ISSUER.parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        SigningKey::generate(mcpauth_token_engine::KeyAlgorithm::Es256).unwrap(),
        Arc::new(SeededRandom::new(1)),
    )
}

fn verifier_for(engine: &TokenEngine<MemoryModel>) -> TokenVerifier {
    let mut verifier = TokenVerifier::new(ISSUER, RESOURCE);
    verifier
        .set_jwks(&serde_json::to_vec(&engine.jwks()).unwrap())
        .unwrap();
    verifier
}

fn set(engine: &TokenEngine<MemoryModel>, sub_id: Value, event_type: &str) -> String {
    engine
        .sign_security_event_token(&json!({
            "iss": ISSUER, "iat": NOW.0, "jti": "e1", "aud": RECEIVER,
            "sub_id": sub_id,
            "events": { event_type: { "event_timestamp": NOW.0 - 5 } },
        }))
        .unwrap()
}

fn user(sub: &str) -> Value {
    json!({ "format": "iss_sub", "iss": ISSUER, "sub": sub })
}

#[test]
fn each_event_type_is_read_as_what_it_ends() {
    let engine = engine();
    let verifier = verifier_for(&engine);
    let read = |token: String| {
        verifier
            .verify_security_event(&token, RECEIVER, NOW)
            .unwrap()
            .revocations
    };
    let session = json!({
        "format": "complex",
        "session": { "format": "opaque", "id": "grant-1" },
        "user": user("alice"),
        "application": { "format": "opaque", "id": "client-1" },
    });
    assert_eq!(
        read(set(&engine, session.clone(), SESSION_REVOKED)),
        [Revocation::Grant("grant-1".into())]
    );
    // When it happened, for the receiver's lag: the event's time, not the token's.
    let event = verifier
        .verify_security_event(&set(&engine, session, SESSION_REVOKED), RECEIVER, NOW)
        .unwrap();
    assert_eq!((event.occurred_at, event.verification), (NOW.0 - 5, None));
    let application =
        json!({ "format": "complex", "application": { "format": "opaque", "id": "client-1" } });
    assert_eq!(
        read(set(&engine, application, SESSION_REVOKED)),
        [Revocation::Client {
            client_id: "client-1".into(),
            before: NOW.0 - 5
        }]
    );
    for event_type in [ACCOUNT_DISABLED, CREDENTIAL_CHANGE] {
        assert_eq!(
            read(set(&engine, user("alice"), event_type)),
            [Revocation::User {
                subject: "alice".into(),
                before: NOW.0 - 5
            }]
        );
    }
    assert_eq!(
        read(set(
            &engine,
            json!({ "format": "opaque", "id": "kid-1" }),
            SIGNING_KEY_REMOVED
        )),
        [Revocation::Key("kid-1".into())]
    );
    // A user of another issuer, an event type it does not know: nothing ends.
    let foreign =
        json!({ "format": "iss_sub", "iss": "https://other.example.com", "sub": "alice" });
    assert!(read(set(&engine, foreign, ACCOUNT_DISABLED)).is_empty());
    assert!(
        read(set(
            &engine,
            user("alice"),
            "https://example.com/unknown-event"
        ))
        .is_empty()
    );
}

#[test]
fn a_security_event_token_is_checked_like_an_access_token() {
    let other = engine();
    let engine = engine();
    let verifier = verifier_for(&engine);
    let good = set(&engine, user("alice"), ACCOUNT_DISABLED);
    assert_eq!(
        verifier
            .verify_security_event(&good, RECEIVER, NOW)
            .unwrap()
            .jti,
        "e1"
    );
    // For another receiver.
    assert_eq!(
        verifier.verify_security_event(&good, "another-receiver", NOW),
        Err(VerifyError::WrongAudience)
    );
    // Tampered: a different user under the same signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value =
        serde_json::from_slice(&base64::Engine::decode(&b64, &parts[1]).unwrap()).unwrap();
    claims["sub_id"]["sub"] = "bob".into();
    parts[1] = base64::Engine::encode(&b64, claims.to_string());
    assert_eq!(
        verifier.verify_security_event(&parts.join("."), RECEIVER, NOW),
        Err(VerifyError::BadSignature)
    );
    // Signed by another authorization server's key.
    assert_eq!(
        verifier.verify_security_event(
            &set(&other, user("alice"), ACCOUNT_DISABLED),
            RECEIVER,
            NOW
        ),
        Err(VerifyError::UnknownKey)
    );
    // Any other JWT of the issuer (an access token's typ): not an event.
    let access_typed = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut header: Value =
            serde_json::from_slice(&base64::Engine::decode(&b64, &parts[0]).unwrap()).unwrap();
        header["typ"] = "at+jwt".into();
        parts[0] = base64::Engine::encode(&b64, header.to_string());
        parts.join(".")
    };
    assert_eq!(
        verifier.verify_security_event(&access_typed, RECEIVER, NOW),
        Err(VerifyError::WrongType)
    );
    // Issued in the future; no jti; no events.
    for claims in [
        json!({ "iss": ISSUER, "iat": NOW.0 + 3600, "jti": "e2", "aud": RECEIVER, "events": {} }),
        json!({ "iss": ISSUER, "iat": NOW.0, "aud": RECEIVER, "events": {} }),
        json!({ "iss": ISSUER, "iat": NOW.0, "jti": "e3", "aud": RECEIVER }),
        json!({ "iss": "https://other.example.com", "iat": NOW.0, "jti": "e4", "aud": RECEIVER, "events": {} }),
    ] {
        let token = engine.sign_security_event_token(&claims).unwrap();
        assert!(
            verifier
                .verify_security_event(&token, RECEIVER, NOW)
                .is_err(),
            "{claims}"
        );
    }
}

/// A token as the resource server sees it after introspection.
fn introspected(
    jti: &str,
    subject: &str,
    client_id: &str,
    issued_at: u64,
) -> mcpauth_bearer::VerifiedToken {
    mcpauth_bearer::verify_introspection(
        json!({
            "active": true, "iss": ISSUER, "aud": RESOURCE, "sub": subject,
            "client_id": client_id, "jti": jti, "iat": issued_at, "exp": NOW.0 + 3600,
        })
        .to_string()
        .as_bytes(),
        ISSUER,
        RESOURCE,
        NOW,
    )
    .unwrap()
}

#[test]
fn the_list_ends_exactly_the_tokens_each_revocation_names_until_it_is_forgotten() {
    let token = introspected("grant-1.r", "alice", "client-1", NOW.0);
    let mut list = RevocationList::new();
    assert!(!list.revokes(&token));
    // Another grant, a user or client revoked before this token was issued: it stands.
    list.add(&Revocation::Grant("grant-2".into()), NOW.0 + 3600);
    list.add(
        &Revocation::User {
            subject: "alice".into(),
            before: NOW.0 - 1,
        },
        NOW.0 + 3600,
    );
    list.add(
        &Revocation::Client {
            client_id: "client-1".into(),
            before: NOW.0 - 1,
        },
        NOW.0 + 3600,
    );
    assert!(!list.revokes(&token));
    // Its grant, its user or its client at or after its issue: refused.
    for revocation in [
        Revocation::Grant("grant-1".into()),
        Revocation::User {
            subject: "alice".into(),
            before: NOW.0,
        },
        Revocation::Client {
            client_id: "client-1".into(),
            before: NOW.0 + 10,
        },
    ] {
        let mut list = RevocationList::new();
        list.add(&revocation, NOW.0 + 3600);
        assert!(list.revokes(&token), "{revocation:?}");
        // Until every token it could end has expired.
        list.forget_before(NOW.0 + 3600);
        assert!(!list.revokes(&token) && list.is_empty(), "{revocation:?}");
    }
}

#[tokio::test]
async fn a_removed_key_ends_every_token_it_signed() {
    use base64::Engine as _;
    let engine = engine();
    let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
    metadata.grant_types = vec!["client_credentials".into()];
    metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
    let client = engine.preregister_client(metadata, NOW).await.unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            client.client_id,
            client.client_secret.unwrap()
        ))
    );
    let form = mcpauth_oauth_types::FormParams::from_pairs([
        ("grant_type", "client_credentials"),
        ("resource", RESOURCE),
    ]);
    let access = engine
        .token(Some(&basic), &form, NOW)
        .await
        .unwrap()
        .access_token;
    let token = verifier_for(&engine).verify(&access, NOW).unwrap();
    let kid = engine.keys().current().kid().to_owned();
    assert_eq!(token.key_id.as_deref(), Some(kid.as_str()));
    let mut list = RevocationList::new();
    list.add(&Revocation::Key("another-key".into()), NOW.0 + 3600);
    assert!(!list.revokes(&token));
    list.add(&Revocation::Key(kid), NOW.0 + 3600);
    assert!(list.revokes(&token));
}

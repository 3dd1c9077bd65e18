//! Every endpoint is a typed call an embedder with its own HTTP framing can make: the
//! `Authorization` value and the parsed form (or the registration's JSON) in, a typed answer
//! or refusal out, with the same rules as the HTTP endpoints.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use base64::Engine as _;
use common::{NOW, RESOURCE, harness, harness_with};
use mcpauth_oauth_types::{
    FormParams, IntrospectionErrorCode, RegistrationErrorCode, RevocationErrorCode, TokenErrorCode,
};
use mcpauth_token_engine::{RegistrationPolicy, RegistrationRefusal, RegistrationRequest};

fn basic(id: &str, secret: &str) -> String {
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn form(pairs: &[(&str, &str)]) -> FormParams {
    FormParams::from_pairs(pairs.iter().copied())
}

const METADATA: &[u8] =
    br#"{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}"#;

#[tokio::test]
async fn an_anonymous_typed_registration_gets_a_public_client_that_cannot_mint_client_credentials()
{
    let h = harness().await;
    let registered = h
        .engine
        .registration(
            RegistrationRequest::new(None, "203.0.113.9", Some(METADATA)),
            NOW,
        )
        .await
        .unwrap();
    assert!(registered.client_secret.is_none(), "a public client");
    let refused = h
        .engine
        .token(
            None,
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &registered.client_id),
            ]),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.error.code(), TokenErrorCode::UnauthorizedClient);
}

#[tokio::test]
async fn registration_without_the_initial_access_token_is_refused_as_invalid_token() {
    let h = harness_with(|c| {
        c.registration_policy(
            RegistrationPolicy::default().with_initial_access_tokens(&["operator-token"]),
        );
    })
    .await;
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Basic b3BlcmF0b3ItdG9rZW4="),
    ] {
        let refused = h
            .engine
            .registration(
                RegistrationRequest::new(authorization, "c", Some(METADATA)),
                NOW,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(refused, RegistrationRefusal::InvalidInitialAccessToken),
            "{authorization:?}: {refused:?}"
        );
    }
    h.engine
        .registration(
            RegistrationRequest::new(Some("Bearer operator-token"), "c", Some(METADATA)),
            NOW,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn registrations_over_the_callers_hourly_limit_say_when_to_retry() {
    let h = harness_with(|c| {
        c.registration_policy(RegistrationPolicy::default().with_per_caller_per_hour(1));
    })
    .await;
    let request = RegistrationRequest::new(None, "198.51.100.7", Some(METADATA));
    h.engine.registration(request, NOW).await.unwrap();
    let refused = h.engine.registration(request, NOW).await.unwrap_err();
    let RegistrationRefusal::TooManyRegistrations { retry_after } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(retry_after, 3600 - NOW.0 % 3600);
    // Another caller is counted apart.
    h.engine
        .registration(RegistrationRequest::new(None, "other", Some(METADATA)), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_registration_without_a_json_body_is_invalid_request() {
    let h = harness().await;
    let refused = h
        .engine
        .registration(RegistrationRequest::new(None, "c", None), NOW)
        .await
        .unwrap_err();
    let RegistrationRefusal::Refused(error) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(error.code(), RegistrationErrorCode::InvalidRequest);
}

#[tokio::test]
async fn introspection_and_revocation_are_typed_calls_for_authenticated_clients() {
    let h = harness().await;
    let (rs_id, rs_secret) = h.resource_server().await;
    let (id, secret) = h.confidential_client(&["client_credentials"], None).await;
    let tokens = h
        .engine
        .token(
            Some(&basic(&id, &secret)),
            &form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            NOW,
        )
        .await
        .unwrap();
    let access = tokens.access_token;

    let answer = h
        .engine
        .introspection(
            Some(&basic(&rs_id, &rs_secret)),
            &form(&[("token", &access)]),
            NOW,
        )
        .await
        .unwrap();
    assert!(answer.active);

    // RFC 7662 §4: a client that is not a resource server may not introspect.
    let refused = h
        .engine
        .introspection(
            Some(&basic(&id, &secret)),
            &form(&[("token", &access)]),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.error.code(),
        IntrospectionErrorCode::UnauthorizedClient
    );

    // RFC 7009 §2.2: an unknown token is revoked without error; a wrong secret is
    // invalid_client, with the Basic challenge.
    h.engine
        .revocation(
            Some(&basic(&id, &secret)),
            &form(&[("token", "no-such-token")]),
            NOW,
        )
        .await
        .unwrap();
    let refused = h
        .engine
        .revocation(
            Some(&basic(&id, "wrong")),
            &form(&[("token", &access)]),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.error.code(), RevocationErrorCode::InvalidClient);
    assert!(refused.basic_challenge);
}

// RFC 7592 as a typed call: the registration access token reads, updates and deletes the
// registration; a wrong token and an unknown client are refused alike.
#[tokio::test]
async fn client_configuration_is_a_typed_call_guarded_by_the_registration_token() {
    use mcpauth_token_engine::{ClientConfigurationRefusal, ClientConfigurationRequest};
    let h = harness().await;
    let registered = h
        .engine
        .registration(RegistrationRequest::new(None, "c", Some(METADATA)), NOW)
        .await
        .unwrap();
    let id = registered.client_id.clone();
    let token = format!(
        "Bearer {}",
        registered.registration_access_token.clone().unwrap()
    );
    let read = ClientConfigurationRequest::Read;
    for (client, authorization) in [
        (id.as_str(), Some("Bearer wrong")),
        (id.as_str(), None),
        ("unknown-client", Some(token.as_str())),
    ] {
        let refused = h
            .engine
            .client_configuration(client, authorization, read, NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ClientConfigurationRefusal::InvalidToken),
            "{client} {authorization:?}: {refused:?}"
        );
    }
    let view = h
        .engine
        .client_configuration(&id, Some(&token), read, NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.client_id, id);
    let update = format!(
        r#"{{"client_id":"{id}","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","client_name":"Renamed"}}"#
    );
    let updated = h
        .engine
        .client_configuration(
            &id,
            Some(&token),
            ClientConfigurationRequest::Update {
                body: update.as_bytes(),
            },
            NOW,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.metadata.client_name.as_deref(), Some("Renamed"));
    let deleted = h
        .engine
        .client_configuration(&id, Some(&token), ClientConfigurationRequest::Delete, NOW)
        .await
        .unwrap();
    assert!(deleted.is_none());
    assert!(matches!(
        h.engine
            .client_configuration(&id, Some(&token), read, NOW)
            .await,
        Err(ClientConfigurationRefusal::InvalidToken)
    ));
}

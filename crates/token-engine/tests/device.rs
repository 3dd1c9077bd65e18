//! RFC 8628 device authorization grant against its MUSTs, every §3.5 error code produced by a
//! real request.
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
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{DEVICE_CODE_GRANT, DeviceUserError, PendingDevice, UnixTime};
use serde_json::Value;

struct Device {
    client_id: String,
    device_code: String,
    user_code: String,
    body: Value,
}

async fn device_client(h: &Harness) -> String {
    let mut metadata = ClientMetadata::default();
    metadata.grant_types = vec![DEVICE_CODE_GRANT.into(), "refresh_token".into()];
    metadata.token_endpoint_auth_method = Some("none".into());
    metadata.client_name = Some("CLI".into());
    h.engine
        .register_client(metadata, NOW)
        .await
        .unwrap()
        .client_id
}

async fn start(h: &Harness) -> Device {
    let client_id = device_client(h).await;
    let request = Request::post("/device_authorization")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(query(&[
            ("client_id", &client_id),
            ("scope", "mcp:tools"),
            ("resource", RESOURCE),
        ])))
        .unwrap();
    let response = h.engine.device_authorization_endpoint(request, NOW).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    Device {
        client_id,
        device_code: body["device_code"].as_str().unwrap().to_owned(),
        user_code: body["user_code"].as_str().unwrap().to_owned(),
        body,
    }
}

/// What the verification page shows for `d`'s user code at `now`: the decision consumes it.
async fn shown(h: &Harness, d: &Device, now: UnixTime) -> PendingDevice {
    h.engine
        .device_lookup(&d.user_code, "verification-page", now)
        .await
        .unwrap()
}

async fn poll(h: &Harness, d: &Device, now: UnixTime) -> (StatusCode, Value) {
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", &d.device_code),
                ("client_id", &d.client_id),
            ],
            None,
            now,
        )
        .await;
    (status, body)
}

// RFC 8628 §3.2: device_code, user_code, verification_uri(_complete), expires_in, interval.
#[tokio::test]
async fn device_authorization_response_has_every_required_member() {
    let h = harness().await;
    let d = start(&h).await;
    assert!(d.device_code.len() >= 43, "the device code is high entropy");
    assert!(
        d.user_code.len() == 9 && d.user_code.as_bytes()[4] == b'-',
        "user code shown as XXXX-XXXX: {}",
        d.user_code
    );
    assert!(
        d.user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "RFC 8628 §6.1 alphabet"
    );
    assert_eq!(
        d.body["verification_uri"],
        "https://auth.example.com/device"
    );
    assert_eq!(
        d.body["verification_uri_complete"],
        format!("https://auth.example.com/device?user_code={}", d.user_code)
    );
    assert_eq!(d.body["expires_in"], 900);
    assert_eq!(d.body["interval"], 5);
}

// RFC 8628 §3.5: authorization_pending while the user has not decided.
#[tokio::test]
async fn polling_before_the_decision_is_authorization_pending() {
    let h = harness().await;
    let d = start(&h).await;
    let (status, body) = poll(&h, &d, NOW.plus(1)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );
}

// RFC 8628 §3.5: slow_down when polled faster than the interval; the interval then grows by 5.
#[tokio::test]
async fn polling_faster_than_the_interval_is_slow_down_and_raises_the_interval() {
    let h = harness().await;
    let d = start(&h).await;
    assert_eq!(
        error_of(&poll(&h, &d, NOW.plus(1)).await.1),
        "authorization_pending"
    );
    assert_eq!(error_of(&poll(&h, &d, NOW.plus(3)).await.1), "slow_down");
    // The interval is now 10 s: 8 s after the last poll is still too fast.
    assert_eq!(error_of(&poll(&h, &d, NOW.plus(11)).await.1), "slow_down");
    assert_eq!(
        error_of(&poll(&h, &d, NOW.plus(31)).await.1),
        "authorization_pending"
    );
}

// RFC 8628 §3.5: access_denied after the user denies.
#[tokio::test]
async fn denied_device_authorization_is_access_denied() {
    let h = harness().await;
    let d = start(&h).await;
    h.engine
        .deny_device(shown(&h, &d, NOW.plus(1)).await, NOW.plus(2))
        .await
        .unwrap();
    assert_eq!(
        error_of(&poll(&h, &d, NOW.plus(10)).await.1),
        "access_denied"
    );
}

// RFC 8628 §3.5: expired_token once the device code has expired.
#[tokio::test]
async fn expired_device_code_is_expired_token() {
    let h = harness().await;
    let d = start(&h).await;
    // Shown before it expired, decided after.
    let page = shown(&h, &d, NOW.plus(1)).await;
    assert_eq!(
        error_of(&poll(&h, &d, NOW.plus(900)).await.1),
        "expired_token"
    );
    assert!(matches!(
        h.engine.approve_device(page, "alice", NOW.plus(901)).await,
        Err(DeviceUserError::UnknownCode)
    ));
}

// RFC 8628 §3.5: after approval the poll returns tokens, exactly once.
#[tokio::test]
async fn approved_device_authorization_yields_tokens_once() {
    let h = harness().await;
    let d = start(&h).await;
    let pending = h
        .engine
        .device_lookup(&d.user_code.to_lowercase(), "ip-1", NOW.plus(1))
        .await
        .unwrap();
    assert_eq!(pending.client_name(), Some("CLI"));
    assert_eq!(pending.resources(), [RESOURCE]);
    // A second page showing the same code, decided after the first.
    let second_page = shown(&h, &d, NOW.plus(1)).await;
    h.engine
        .approve_device(pending, "alice", NOW.plus(2))
        .await
        .unwrap();
    let (status, tokens) = poll(&h, &d, NOW.plus(10)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("alice"), Some(RESOURCE))
    );
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(
        error_of(&poll(&h, &d, NOW.plus(20)).await.1),
        "invalid_grant",
        "the device code is single use"
    );
    assert!(
        matches!(
            h.engine.deny_device(second_page, NOW.plus(21)).await,
            Err(DeviceUserError::UnknownCode)
        ),
        "decided once"
    );
}

// RFC 8628 §5.1: user-code guessing is rate limited per caller.
#[tokio::test]
async fn user_code_guessing_is_rate_limited() {
    let h = harness().await;
    let d = start(&h).await;
    for _ in 0..10 {
        assert!(matches!(
            h.engine.device_lookup("BCDF-GHJK", "attacker", NOW).await,
            Err(DeviceUserError::UnknownCode)
        ));
    }
    assert!(
        matches!(
            h.engine.device_lookup(&d.user_code, "attacker", NOW).await,
            Err(DeviceUserError::TooManyAttempts)
        ),
        "even the right code is refused once limited"
    );
    assert!(
        h.engine
            .device_lookup(&d.user_code, "someone-else", NOW)
            .await
            .is_ok()
    );
    assert!(
        h.engine
            .device_lookup(&d.user_code, "attacker", NOW.plus(60))
            .await
            .is_ok(),
        "the limit lasts one window"
    );
}

// RFC 8628 §3.4 + RFC 6749 §5.2: another client cannot redeem the device code.
#[tokio::test]
async fn device_code_is_bound_to_its_client() {
    let h = harness().await;
    let d = start(&h).await;
    h.engine
        .approve_device(shown(&h, &d, NOW).await, "alice", NOW.plus(1))
        .await
        .unwrap();
    let other = device_client(&h).await;
    let (_, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", &d.device_code),
                ("client_id", &other),
            ],
            None,
            NOW.plus(10),
        )
        .await;
    assert_eq!(error_of(&body), "invalid_grant");
    assert_eq!(
        poll(&h, &d, NOW.plus(20)).await.0,
        StatusCode::OK,
        "the rightful client still gets its tokens"
    );
}

// RFC 6749 §5.2: a client that did not register the device grant is unauthorized_client.
#[tokio::test]
async fn clients_without_the_device_grant_are_unauthorized_client() {
    let h = harness().await;
    let request = Request::post("/device_authorization")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(query(&[
            ("client_id", &h.client_id),
            ("resource", RESOURCE),
        ])))
        .unwrap();
    let response = h.engine.device_authorization_endpoint(request, NOW).await;
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(error_of(&body), "unauthorized_client");
}

/// Users the application disabled, as the engine's `SubjectStatus` sees them.
#[derive(Default)]
struct Users {
    disabled: std::sync::Mutex<Vec<String>>,
}

impl Users {
    fn disable(&self, subject: &str) {
        self.disabled.lock().unwrap().push(subject.to_owned());
    }
}

#[async_trait::async_trait]
impl mcpauth_token_engine::SubjectStatus for Users {
    async fn is_active(
        &self,
        subject: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        Ok(!self.disabled.lock().unwrap().iter().any(|d| d == subject))
    }
}

async fn harness_with_users() -> (Harness, std::sync::Arc<Users>) {
    let users = std::sync::Arc::new(Users::default());
    let status = users.clone();
    let h = harness_with(move |c| {
        c.subject_status(status);
    })
    .await;
    (h, users)
}

// Decisions re-check the user: a disabled user cannot approve a device code.
#[tokio::test]
async fn a_disabled_user_cannot_approve_a_device_code() {
    let (h, users) = harness_with_users().await;
    let d = start(&h).await;
    users.disable("mallory");
    assert!(matches!(
        h.engine
            .approve_device(shown(&h, &d, NOW).await, "mallory", NOW)
            .await,
        Err(DeviceUserError::InactiveUser)
    ));
    let (_, body) = poll(&h, &d, NOW.plus(5)).await;
    assert_eq!(
        body["error"], "authorization_pending",
        "nothing was decided"
    );
}

// Redeeming an approved device code re-checks the user: disabled after approving, nothing is
// issued, and the approval's grant is revoked.
#[tokio::test]
async fn an_approved_device_code_of_a_user_disabled_since_yields_no_tokens() {
    let (h, users) = harness_with_users().await;
    let d = start(&h).await;
    h.engine
        .approve_device(shown(&h, &d, NOW).await, "alice", NOW)
        .await
        .unwrap();
    users.disable("alice");
    let (status, body) = poll(&h, &d, NOW.plus(5)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

// approve_device writes nothing for a code that is expired, denied or already decided.
#[tokio::test]
async fn approving_an_expired_denied_or_decided_code_changes_nothing() {
    let h = harness().await;
    let denied = start(&h).await;
    let other_page = shown(&h, &denied, NOW).await;
    h.engine
        .deny_device(shown(&h, &denied, NOW).await, NOW)
        .await
        .unwrap();
    assert!(matches!(
        h.engine.approve_device(other_page, "alice", NOW).await,
        Err(DeviceUserError::UnknownCode)
    ));
    let (_, body) = poll(&h, &denied, NOW.plus(5)).await;
    assert_eq!(body["error"], "access_denied", "still denied");

    let decided = start(&h).await;
    let other_page = shown(&h, &decided, NOW).await;
    h.engine
        .approve_device(shown(&h, &decided, NOW).await, "alice", NOW)
        .await
        .unwrap();
    assert!(matches!(
        h.engine.approve_device(other_page, "mallory", NOW).await,
        Err(DeviceUserError::UnknownCode)
    ));
    let (status, tokens) = poll(&h, &decided, NOW.plus(5)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        jwt_part(tokens["access_token"].as_str().unwrap(), 1)["sub"],
        "alice",
        "the first decision stands"
    );

    let expired = start(&h).await;
    let page = shown(&h, &expired, NOW).await;
    assert!(matches!(
        h.engine
            .approve_device(page, "alice", NOW.plus(15 * 60))
            .await,
        Err(DeviceUserError::UnknownCode)
    ));
}

// RFC 8628 §6.1: user codes are short, so a fresh one may already be held; the store refuses
// it (user codes are unique) and the server draws another rather than failing the request.
#[tokio::test]
async fn a_user_code_already_held_is_drawn_again() {
    use mcpauth_token_engine::{DeviceAuthorizationRecord, DeviceState, DeviceStore as _};
    // Same seed, same draws: the first engine shows which user code the second will draw.
    let first = harness().await;
    let taken = start(&first).await.user_code;
    let h = harness().await;
    let client_id = device_client(&h).await;
    h.engine
        .model()
        .insert_device(DeviceAuthorizationRecord {
            device_code_hash: mcpauth_token_engine::SecretHash::of("another device"),
            user_code_hash: mcpauth_token_engine::SecretHash::of(&taken.replace('-', "")),
            client_id: client_id.as_str().into(),
            scope: mcpauth_token_engine::Scope::from_tokens(["mcp:tools"]),
            resources: vec![RESOURCE.into()],
            expires_at: NOW.plus(600),
            interval: 5,
            last_polled_at: None,
            state: DeviceState::Pending,
            subject: None,
            grant_id: None,
        })
        .await
        .unwrap();
    let request = Request::post("/device_authorization")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(query(&[
            ("client_id", &client_id),
            ("resource", RESOURCE),
        ])))
        .unwrap();
    let response = h.engine.device_authorization_endpoint(request, NOW).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    let drawn = body["user_code"].as_str().unwrap();
    assert_ne!(drawn, taken, "a fresh code, not the one held");
    let held = h
        .engine
        .model()
        .find_device_by_user_code(&mcpauth_token_engine::SecretHash::of(
            &taken.replace('-', ""),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        held.device_code_hash,
        mcpauth_token_engine::SecretHash::of("another device"),
        "the held one is untouched"
    );
}

//! `DeviceStore` (optional): device authorizations move through their states; one consumption wins.

use super::*;

fn device() -> DeviceAuthorizationRecord {
    DeviceAuthorizationRecord {
        device_code_hash: hashed("device"),
        user_code_hash: hashed("user-code"),
        client_id: "kit-client".into(),
        scope: crate::Scope::from_tokens(["mcp"]),
        resources: vec!["https://mcp.example/mcp".into()],
        expires_at: NOW.plus(900),
        interval: 5,
        last_polled_at: None,
        state: DeviceState::Pending,
        subject: None,
        grant_id: None,
    }
}

/// RFC 8628: a poll reports the previous poll time; a decision is taken once, only while
/// pending and unexpired; an approved authorization is consumed once.
pub async fn device_authorizations_move_through_their_states<M: OAuthServerModel + ?Sized>(
    model: &M,
) {
    let Some(devices) = model.devices() else {
        panic!(
            "the model keeps no device authorizations (ModelBase::devices is None): a model \
             that implements DeviceStore returns Some(self)"
        );
    };
    let d = device();
    devices
        .insert_device(d.clone())
        .await
        .answered("insert_device");
    assert_eq!(
        devices
            .find_device_by_user_code(&d.user_code_hash)
            .await
            .answered("find_device_by_user_code")
            .as_ref(),
        Some(&d)
    );
    let first = devices
        .poll_device(&d.device_code_hash, NOW.plus(1))
        .await
        .answered("poll_device");
    assert_eq!(
        first.and_then(|r| r.last_polled_at),
        None,
        "the first poll sees no earlier poll"
    );
    let second = devices
        .poll_device(&d.device_code_hash, NOW.plus(7))
        .await
        .answered("poll_device");
    assert_eq!(
        second.and_then(|r| r.last_polled_at),
        Some(NOW.plus(1)),
        "a poll must see the previous poll's time"
    );
    devices
        .set_device_interval(&d.device_code_hash, 10)
        .await
        .answered("set_device_interval");
    let interval = devices
        .find_device_by_user_code(&d.user_code_hash)
        .await
        .answered("find_device_by_user_code")
        .map(|r| r.interval);
    assert_eq!(interval, Some(10), "set_device_interval sets the interval");
    assert!(matches!(
        devices.poll_device(&hashed("missing"), NOW).await,
        Ok(None)
    ));
    assert!(
        matches!(
            devices.consume_device(&d.device_code_hash, None).await,
            Ok(false)
        ),
        "a pending authorization cannot be consumed"
    );
    let approved_grant = grant("kit-client");
    let approve = DeviceDecision::Approve {
        grant: approved_grant.clone(),
    };
    assert!(matches!(
        devices
            .decide_device(&d.user_code_hash, approve.clone(), NOW.plus(10))
            .await,
        Ok(true)
    ));
    assert_eq!(
        model
            .find_grant(&approved_grant.grant_id)
            .await
            .answered("find_grant")
            .as_ref(),
        Some(&approved_grant),
        "an approval stores its grant"
    );
    let refused_grant = grant("kit-client");
    let approve_again = DeviceDecision::Approve {
        grant: refused_grant.clone(),
    };
    assert!(
        matches!(
            devices
                .decide_device(&d.user_code_hash, approve_again, NOW.plus(11))
                .await,
            Ok(false)
        ),
        "decided once"
    );
    assert_eq!(
        model
            .find_grant(&refused_grant.grant_id)
            .await
            .answered("find_grant"),
        None,
        "an approval that is not recorded stores no grant"
    );
    assert!(
        matches!(
            devices
                .decide_device(&d.user_code_hash, DeviceDecision::Deny, NOW.plus(11))
                .await,
            Ok(false)
        ),
        "decided once"
    );
    let approved = devices
        .find_device_by_user_code(&d.user_code_hash)
        .await
        .answered("find_device_by_user_code");
    assert_eq!(
        approved.as_ref().map(|r| r.state),
        Some(DeviceState::Approved)
    );
    assert_eq!(approved.and_then(|r| r.subject), Some("user-1".into()));
    let device_grant = grant("kit-client");
    let (first, second) = (refresh(&device_grant), refresh(&device_grant));
    assert!(matches!(
        devices
            .consume_device(&d.device_code_hash, Some(first.clone()))
            .await,
        Ok(true)
    ));
    assert!(
        matches!(
            devices
                .consume_device(&d.device_code_hash, Some(second.clone()))
                .await,
            Ok(false)
        ),
        "consumed once"
    );
    assert_eq!(
        model
            .find_refresh(&first.token_hash)
            .await
            .answered("find_refresh"),
        Some(first),
        "the refresh token is stored with the consumption"
    );
    assert_eq!(
        model
            .find_refresh(&second.token_hash)
            .await
            .answered("find_refresh"),
        None,
        "a refused consumption stores no refresh token"
    );
    let late = device();
    devices
        .insert_device(late.clone())
        .await
        .answered("insert_device");
    let late_grant = grant("kit-client");
    assert!(
        matches!(
            devices
                .decide_device(
                    &late.user_code_hash,
                    DeviceDecision::Approve {
                        grant: late_grant.clone()
                    },
                    NOW.plus(901)
                )
                .await,
            Ok(false)
        ),
        "no decision after expiry"
    );
    assert_eq!(
        model
            .find_grant(&late_grant.grant_id)
            .await
            .answered("find_grant"),
        None,
        "an expired authorization's approval stores no grant"
    );
    drop(approve);
}

/// Of many concurrent consumptions of one approved device authorization, exactly one wins.
pub async fn concurrent_device_consumptions_have_one_winner<M: OAuthServerModel + ?Sized>(
    model: &M,
) {
    let Some(devices) = model.devices() else {
        panic!(
            "the model keeps no device authorizations (ModelBase::devices is None): a model \
             that implements DeviceStore returns Some(self)"
        );
    };
    let d = device();
    devices
        .insert_device(d.clone())
        .await
        .answered("insert_device");
    let approve = DeviceDecision::Approve {
        grant: grant("kit-client"),
    };
    assert!(matches!(
        devices.decide_device(&d.user_code_hash, approve, NOW).await,
        Ok(true)
    ));
    let g = grant("kit-client");
    let tokens: Vec<RefreshTokenRecord> = (0..16).map(|_| refresh(&g)).collect();
    let attempts = tokens
        .iter()
        .map(|t| devices.consume_device(&d.device_code_hash, Some(t.clone())));
    let wins = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(wins, 1, "exactly one concurrent consume_device may win");
    assert_eq!(
        stored_refresh_tokens(model, &tokens).await,
        1,
        "only the winner's refresh token is stored"
    );
}

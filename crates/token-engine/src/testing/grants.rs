//! `GrantStore`: revocation is idempotent.

use super::*;

/// `revoke_grant` sets `revoked_at` once and keeps the first time.
pub async fn grants_revoke_idempotently<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    model.insert_grant(g.clone()).await.answered("insert_grant");
    assert_eq!(
        model
            .find_grant(&g.grant_id)
            .await
            .answered("find_grant")
            .as_ref(),
        Some(&g)
    );
    model
        .revoke_grant(&g.grant_id, NOW.plus(5))
        .await
        .answered("revoke_grant");
    model
        .revoke_grant(&g.grant_id, NOW.plus(9))
        .await
        .answered("revoke_grant");
    let revoked = model
        .find_grant(&g.grant_id)
        .await
        .answered("find_grant")
        .and_then(|g| g.revoked_at);
    assert_eq!(
        revoked,
        Some(NOW.plus(5)),
        "revoke_grant must keep the first revocation time"
    );
    model
        .revoke_grant(&unique("missing"), NOW)
        .await
        .answered("revoke_grant");
    let client_id = unique::<String>("client-of-grants");
    let (a, b) = (grant(&client_id), grant(&client_id));
    let other = grant("kit-other-client");
    for g in [&a, &b, &other] {
        model.insert_grant(g.clone()).await.answered("insert_grant");
    }
    model
        .revoke_client_grants(&ClientId::from(client_id.as_str()), NOW.plus(20))
        .await
        .answered("revoke_client_grants");
    for g in [&a, &b] {
        let revoked = model
            .find_grant(&g.grant_id)
            .await
            .answered("find_grant")
            .and_then(|g| g.revoked_at);
        assert_eq!(
            revoked,
            Some(NOW.plus(20)),
            "revoke_client_grants must revoke every grant of the client"
        );
    }
    let untouched = model
        .find_grant(&other.grant_id)
        .await
        .answered("find_grant")
        .and_then(|g| g.revoked_at);
    assert_eq!(untouched, None, "other clients' grants stay live");
}

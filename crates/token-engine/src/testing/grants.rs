//! `GrantStore`: revocation is idempotent and final.

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
    // The JWT bearer grant derives grant ids: inserting an id that exists must fail or
    // change nothing, never bring a revoked grant back.
    let _ = model
        .insert_grant(GrantRecord {
            revoked_at: None,
            ..g.clone()
        })
        .await;
    assert_eq!(
        model
            .find_grant(&g.grant_id)
            .await
            .answered("find_grant")
            .and_then(|g| g.revoked_at),
        Some(NOW.plus(5)),
        "insert_grant must not overwrite a grant with the same id (a revoked grant stays revoked)"
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

/// A code and a refresh token are read with their grant's state: live while the grant is
/// stored and not revoked, not live once it is revoked or when it was never stored.
pub async fn codes_and_refresh_tokens_are_read_with_their_grants_state<
    M: OAuthServerModel + ?Sized,
>(
    model: &M,
) {
    let g = grant("kit-client");
    model.insert_grant(g.clone()).await.answered("insert_grant");
    let (c, r) = (code(&g), refresh(&g));
    model.insert_code(c.clone()).await.answered("insert_code");
    model
        .insert_refresh(r.clone())
        .await
        .answered("insert_refresh");
    let orphan = grant("kit-client");
    let (orphan_code, orphan_refresh) = (code(&orphan), refresh(&orphan));
    model
        .insert_code(orphan_code.clone())
        .await
        .answered("insert_code");
    model
        .insert_refresh(orphan_refresh.clone())
        .await
        .answered("insert_refresh");

    let code_state = |hash: SecretHash| async move {
        model
            .find_code_and_grant(&hash)
            .await
            .answered("find_code_and_grant")
            .map(|(code, live)| (code.code_hash, live))
    };
    let refresh_state = |hash: SecretHash| async move {
        model
            .find_refresh_and_grant(&hash)
            .await
            .answered("find_refresh_and_grant")
            .map(|(token, live)| (token.token_hash, live))
    };
    assert_eq!(
        code_state(c.code_hash.clone()).await,
        Some((c.code_hash.clone(), true))
    );
    assert_eq!(
        refresh_state(r.token_hash.clone()).await,
        Some((r.token_hash.clone(), true))
    );
    assert_eq!(
        code_state(orphan_code.code_hash.clone()).await,
        Some((orphan_code.code_hash.clone(), false)),
        "a grant that was never stored is not live"
    );
    assert_eq!(
        refresh_state(orphan_refresh.token_hash.clone()).await,
        Some((orphan_refresh.token_hash.clone(), false))
    );
    assert_eq!(code_state(hashed("missing")).await, None);
    assert_eq!(refresh_state(hashed("missing")).await, None);

    model
        .revoke_grant(&g.grant_id, NOW.plus(1))
        .await
        .answered("revoke_grant");
    assert_eq!(
        code_state(c.code_hash.clone()).await,
        Some((c.code_hash.clone(), false)),
        "a revoked grant is not live"
    );
    assert_eq!(
        refresh_state(r.token_hash.clone()).await,
        Some((r.token_hash, false))
    );
}

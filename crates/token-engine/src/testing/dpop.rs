//! RFC 9449: the DPoP key a code (`dpop_jkt`, §10) or a public client's refresh token (§5) is
//! bound to is stored with it and read back by every read.

use super::*;

/// A thumbprint as the engine stores them (43 base64url characters).
const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

/// A code's and a refresh token's `dpop_jkt` survive every store and read: insert and find, a
/// consumption that stores the refresh token, a rotation that stores the successor, and the
/// reads with the grant's state.
pub async fn dpop_bindings_are_kept<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    model.insert_grant(g.clone()).await.answered("insert_grant");
    let bound_code = AuthorizationCodeRecord {
        dpop_jkt: Some(JKT.into()),
        ..code(&g)
    };
    model
        .insert_code(bound_code.clone())
        .await
        .answered("insert_code");
    assert_eq!(
        model
            .find_code(&bound_code.code_hash)
            .await
            .answered("find_code")
            .and_then(|c| c.dpop_jkt),
        Some(JKT.to_owned()),
        "find_code must read the code's dpop_jkt"
    );
    assert_eq!(
        model
            .find_code_and_grant(&bound_code.code_hash)
            .await
            .answered("find_code_and_grant")
            .and_then(|(c, _)| c.dpop_jkt),
        Some(JKT.to_owned()),
        "find_code_and_grant must read the code's dpop_jkt"
    );
    let bound_refresh = RefreshTokenRecord {
        dpop_jkt: Some(JKT.into()),
        ..refresh(&g)
    };
    match model
        .consume_code(&bound_code.code_hash, NOW, Some(bound_refresh.clone()))
        .await
        .answered("consume_code")
    {
        ConsumeCode::Fresh(consumed) => assert_eq!(consumed.dpop_jkt.as_deref(), Some(JKT)),
        other => panic!("consume_code of a fresh code answered {other:?}"),
    }
    assert_eq!(
        model
            .find_refresh_and_grant(&bound_refresh.token_hash)
            .await
            .answered("find_refresh_and_grant")
            .and_then(|(t, _)| t.dpop_jkt),
        Some(JKT.to_owned()),
        "the refresh token stored with a consumption keeps its dpop_jkt"
    );
    let successor = RefreshTokenRecord {
        dpop_jkt: Some(JKT.into()),
        ..refresh(&g)
    };
    assert!(matches!(
        model
            .rotate_refresh(
                &bound_refresh.token_hash,
                successor.clone(),
                None,
                NOW.plus(1)
            )
            .await
            .answered("rotate_refresh"),
        RotateRefresh::Rotated
    ));
    assert_eq!(
        model
            .find_refresh(&successor.token_hash)
            .await
            .answered("find_refresh")
            .and_then(|t| t.dpop_jkt),
        Some(JKT.to_owned()),
        "the successor stored by a rotation keeps its dpop_jkt"
    );
    let unbound = refresh(&g);
    model
        .insert_refresh(unbound.clone())
        .await
        .answered("insert_refresh");
    assert_eq!(
        model
            .find_refresh(&unbound.token_hash)
            .await
            .answered("find_refresh")
            .and_then(|t| t.dpop_jkt),
        None,
        "an unbound refresh token reads back unbound"
    );
}

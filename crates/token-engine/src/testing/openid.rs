//! OpenID Connect Core §3.1.2.1: the `nonce` of an authorization request is stored with its
//! code and read back by every read of the code, so the ID token can echo it.

use super::*;

/// A code's `nonce` survives the insert, both finds, and the consumption.
pub async fn openid_nonces_are_kept<M: OAuthServerModel + ?Sized>(model: &M) {
    const NONCE: &str = "n-0S6_WzA2Mj";
    let g = grant("kit-client");
    model.insert_grant(g.clone()).await.answered("insert_grant");
    let openid_code = AuthorizationCodeRecord {
        nonce: Some(NONCE.into()),
        ..code(&g)
    };
    model
        .insert_code(openid_code.clone())
        .await
        .answered("insert_code");
    assert_eq!(
        model
            .find_code(&openid_code.code_hash)
            .await
            .answered("find_code")
            .and_then(|c| c.nonce),
        Some(NONCE.to_owned()),
        "find_code must read the code's nonce"
    );
    assert_eq!(
        model
            .find_code_and_grant(&openid_code.code_hash)
            .await
            .answered("find_code_and_grant")
            .and_then(|(c, _)| c.nonce),
        Some(NONCE.to_owned()),
        "find_code_and_grant must read the code's nonce"
    );
    match model
        .consume_code(&openid_code.code_hash, NOW, None)
        .await
        .answered("consume_code")
    {
        ConsumeCode::Fresh(consumed) => assert_eq!(
            consumed.nonce.as_deref(),
            Some(NONCE),
            "consume_code must answer the code with its nonce"
        ),
        other => panic!("consume_code of a fresh code answered {other:?}"),
    }
    let plain = code(&g);
    model
        .insert_code(plain.clone())
        .await
        .answered("insert_code");
    assert_eq!(
        model
            .find_code(&plain.code_hash)
            .await
            .answered("find_code")
            .map(|c| c.nonce),
        Some(None),
        "a code without a nonce must read back without one"
    );
}

//! `CodeStore`: a code is consumed once, with its refresh token or not at all.

use super::*;

/// RFC 6749 §4.1.2: a code is consumed once; later attempts see `Reused` with the record.
pub async fn code_is_consumed_exactly_once<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let c = code(&g);
    model.insert_code(c.clone()).await.answered("insert_code");
    assert_eq!(
        model
            .find_code(&c.code_hash)
            .await
            .answered("find_code")
            .as_ref(),
        Some(&c),
        "find_code must not change the code"
    );
    // A consumption whose refresh token cannot be stored (its hash is taken) fails as a
    // whole: the code stays unused, as a rolled-back transaction leaves it.
    let taken = refresh(&g);
    model
        .insert_refresh(taken.clone())
        .await
        .answered("insert_refresh");
    assert!(
        model
            .consume_code(&c.code_hash, NOW, Some(taken))
            .await
            .is_err(),
        "a consumption storing a taken refresh hash must fail"
    );
    assert_eq!(
        model
            .find_code(&c.code_hash)
            .await
            .answered("find_code")
            .and_then(|c| c.consumed_at),
        None,
        "a failed consumption leaves the code unused"
    );
    let (first, second) = (refresh(&g), refresh(&g));
    match model
        .consume_code(&c.code_hash, NOW.plus(1), Some(first.clone()))
        .await
    {
        Ok(ConsumeCode::Fresh(record)) => assert_eq!(record.grant_id, c.grant_id),
        other => panic!("first consume_code must be Fresh, got {other:?}"),
    }
    assert_eq!(
        model
            .find_refresh(&first.token_hash)
            .await
            .answered("find_refresh"),
        Some(first),
        "the refresh token is stored with the consumption"
    );
    match model
        .consume_code(&c.code_hash, NOW.plus(2), Some(second.clone()))
        .await
    {
        Ok(ConsumeCode::Reused(record)) => {
            assert_eq!(record.grant_id, c.grant_id, "Reused must carry the grant")
        }
        other => panic!("second consume_code must be Reused, got {other:?}"),
    }
    assert_eq!(
        model
            .find_refresh(&second.token_hash)
            .await
            .answered("find_refresh"),
        None,
        "a Reused consumption stores no refresh token"
    );
    let consumed_at = model
        .find_code(&c.code_hash)
        .await
        .answered("find_code")
        .and_then(|c| c.consumed_at);
    assert_eq!(
        consumed_at,
        Some(NOW.plus(1)),
        "consumed_at must be the first consumption time"
    );
    assert!(matches!(
        model.consume_code(&hashed("missing"), NOW, None).await,
        Ok(ConsumeCode::NotFound)
    ));
}

/// Of many concurrent redemptions of one code, exactly one is `Fresh`.
pub async fn concurrent_code_redemptions_have_one_winner<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let c = code(&g);
    model.insert_code(c.clone()).await.answered("insert_code");
    let tokens: Vec<RefreshTokenRecord> = (0..16).map(|_| refresh(&g)).collect();
    let attempts = tokens
        .iter()
        .map(|t| model.consume_code(&c.code_hash, NOW, Some(t.clone())));
    let results = futures::future::join_all(attempts).await;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, Ok(ConsumeCode::Fresh(_))))
        .count();
    let reused = results
        .iter()
        .filter(|r| matches!(r, Ok(ConsumeCode::Reused(_))))
        .count();
    assert_eq!(
        (fresh, reused),
        (1, 15),
        "exactly one concurrent consume_code may win"
    );
    assert_eq!(
        stored_refresh_tokens(model, &tokens).await,
        1,
        "only the winner's refresh token is stored"
    );
}

//! `RefreshTokenStore`: rotation marks the old token and stores the new one, once.

use super::*;

/// Rotation marks the old token rotated and stores the new one; a second rotation of the old
/// token is `Reused` with its family and first rotation time, and stores nothing.
pub async fn refresh_rotation_marks_old_and_stores_new<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let old = refresh(&g);
    model
        .insert_refresh(old.clone())
        .await
        .answered("insert_refresh");
    assert_eq!(
        model
            .find_refresh(&old.token_hash)
            .await
            .answered("find_refresh")
            .as_ref(),
        Some(&old)
    );
    // A rotation whose new token cannot be stored (its hash is taken) fails as a whole: the
    // old token stays unrotated, as a rolled-back transaction leaves it.
    let taken = refresh(&g);
    model
        .insert_refresh(taken.clone())
        .await
        .answered("insert_refresh");
    assert!(
        model
            .rotate_refresh(&old.token_hash, taken.clone(), None, NOW.plus(2))
            .await
            .is_err(),
        "a rotation to a taken hash must fail"
    );
    assert_eq!(
        model
            .find_refresh(&old.token_hash)
            .await
            .answered("find_refresh")
            .and_then(|t| t.rotated_at),
        None,
        "a failed rotation leaves the old token unrotated"
    );
    let new = refresh(&g);
    assert!(matches!(
        model
            .rotate_refresh(
                &old.token_hash,
                new.clone(),
                Some("sealed-successor".into()),
                NOW.plus(3)
            )
            .await,
        Ok(RotateRefresh::Rotated)
    ));
    assert_eq!(
        model
            .find_refresh(&new.token_hash)
            .await
            .answered("find_refresh")
            .as_ref(),
        Some(&new),
        "the new token must be stored"
    );
    let rotated = model
        .find_refresh(&old.token_hash)
        .await
        .answered("find_refresh");
    assert_eq!(
        rotated.as_ref().and_then(|r| r.rotated_at),
        Some(NOW.plus(3)),
        "the old token must be marked rotated"
    );
    assert_eq!(
        rotated.and_then(|r| r.sealed_successor).as_deref(),
        Some("sealed-successor"),
        "the old token must keep its sealed successor"
    );
    let again = refresh(&g);
    match model
        .rotate_refresh(
            &old.token_hash,
            again.clone(),
            Some("other".into()),
            NOW.plus(7),
        )
        .await
    {
        Ok(RotateRefresh::Reused {
            grant_id,
            rotated_at,
        }) => {
            assert_eq!(grant_id, g.grant_id);
            assert_eq!(
                rotated_at,
                NOW.plus(3),
                "Reused must report the first rotation time"
            );
        }
        other => panic!("rotating a rotated token must be Reused, got {other:?}"),
    }
    assert!(
        matches!(model.find_refresh(&again.token_hash).await, Ok(None)),
        "a Reused rotation must not store the new token"
    );
    assert_eq!(
        model
            .find_refresh(&old.token_hash)
            .await
            .answered("find_refresh")
            .and_then(|r| r.sealed_successor)
            .as_deref(),
        Some("sealed-successor"),
        "a Reused rotation must not replace the sealed successor"
    );
    assert!(matches!(
        model
            .rotate_refresh(&hashed("missing"), refresh(&g), None, NOW)
            .await,
        Ok(RotateRefresh::NotFound)
    ));
}

/// Of many concurrent rotations of one refresh token, exactly one wins and stores its token.
pub async fn concurrent_refresh_rotations_have_one_winner<M: OAuthServerModel + ?Sized>(model: &M) {
    let g = grant("kit-client");
    let old = refresh(&g);
    model
        .insert_refresh(old.clone())
        .await
        .answered("insert_refresh");
    let candidates: Vec<RefreshTokenRecord> = (0..16).map(|_| refresh(&g)).collect();
    let attempts = candidates
        .iter()
        .map(|new| model.rotate_refresh(&old.token_hash, new.clone(), None, NOW));
    let results = futures::future::join_all(attempts).await;
    let rotated = results
        .iter()
        .filter(|r| matches!(r, Ok(RotateRefresh::Rotated)))
        .count();
    assert_eq!(
        rotated, 1,
        "exactly one concurrent rotate_refresh may win: {results:?}"
    );
    let mut stored = 0;
    for candidate in &candidates {
        if matches!(model.find_refresh(&candidate.token_hash).await, Ok(Some(_))) {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "only the winner's new token may be stored");
}

//! `ReplayStore`: one-time keys are remembered until they expire.

use super::*;

/// RFC 7523 §3 replay protection: a key is new once while it lives, then new again.
pub async fn one_time_keys_are_remembered_until_they_expire<M: OAuthServerModel + ?Sized>(
    model: &M,
) {
    let key = unique::<String>("jti");
    assert!(
        model
            .remember_once(&key, NOW.plus(60), NOW)
            .await
            .answered("remember_once")
    );
    assert!(
        !model
            .remember_once(&key, NOW.plus(60), NOW.plus(59))
            .await
            .answered("remember_once"),
        "a live key is not new"
    );
    assert!(
        model
            .remember_once(&key, NOW.plus(200), NOW.plus(60))
            .await
            .answered("remember_once"),
        "an expired key is new again"
    );
    let raced = unique::<String>("jti");
    let attempts = (0..16).map(|_| model.remember_once(&raced, NOW.plus(60), NOW));
    let firsts = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(
        firsts, 1,
        "exactly one concurrent remember_once may see the key as new"
    );
}

//! `RateLimitStore`: fixed windows.

use super::*;

/// Fixed windows: hits count up within a window and start over in the next.
pub async fn rate_limit_counters_count_per_window<M: OAuthServerModel + ?Sized>(model: &M) {
    let key = RateLimitKey::new("kit", &unique::<String>("limit"));
    let window_start = UnixTime(NOW.0 - NOW.0 % 60);
    for expected in 1..=3 {
        assert_eq!(
            model
                .hit(&key, window_start.plus(expected), 60)
                .await
                .answered("hit"),
            u32::try_from(expected).unwrap_or(0)
        );
    }
    assert_eq!(
        model
            .hit(&key, window_start.plus(60), 60)
            .await
            .answered("hit"),
        1,
        "a new window starts at 1"
    );
    assert_eq!(
        model
            .hit(
                &RateLimitKey::new("kit", &unique::<String>("other")),
                window_start,
                60
            )
            .await
            .answered("hit"),
        1,
        "keys are independent"
    );
}

/// Several hits added at once count as that many; a new window starts from what is added to
/// it; a late addition for a window that has ended changes nothing.
pub async fn rate_limit_counters_add_several_hits_at_once<M: OAuthServerModel + ?Sized>(model: &M) {
    let key = RateLimitKey::new("kit", &unique::<String>("batch"));
    let window_start = UnixTime(NOW.0 - NOW.0 % 60);
    let add = |at: UnixTime, hits: u32| model.add_hits(&key, at, 60, hits);
    assert_eq!(add(window_start, 1).await.answered("add_hits"), 1);
    assert_eq!(add(window_start.plus(1), 5).await.answered("add_hits"), 6);
    assert_eq!(
        model
            .hit(&key, window_start.plus(2), 60)
            .await
            .answered("hit"),
        7
    );
    assert_eq!(
        add(window_start.plus(60), 4).await.answered("add_hits"),
        4,
        "a new window starts from the hits added to it"
    );
    assert_eq!(
        add(window_start.plus(59), 3).await.answered("add_hits"),
        4,
        "a late addition for an ended window leaves the later window's count alone"
    );
    assert_eq!(add(window_start.plus(61), 1).await.answered("add_hits"), 5);
}

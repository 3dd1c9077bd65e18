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

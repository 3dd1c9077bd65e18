//! Time as the protocol crates see it: a number of seconds since the Unix epoch, always
//! given by the caller. No protocol crate reads the clock (each one's `clippy.toml` forbids
//! it); the edge does (`mcpauth_http::now`, the engine's `os` feature), tests step it.

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z. Stored absolute (`expires_at`), never relative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// `self + seconds`, saturating.
    #[must_use]
    pub const fn plus(self, seconds: u64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    /// Seconds from `earlier` to `self`, or 0 if `earlier` is later.
    #[must_use]
    pub const fn seconds_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Where the time comes from, for the parts of a server that read it (the HTTP edge, pages,
/// lockout, sweepers): the system's clock in production (`SystemClock`, the engine's `os`
/// feature), a [`ManualClock`] in tests, which step time instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// The system's clock, as a [`Clock`]: [`now`].
#[cfg(feature = "os")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(feature = "os")]
impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        now()
    }
}

/// The current time from the system clock (0 before 1970): the one place a protocol crate
/// reads it, for the edges (HTTP servers, sweepers) to call.
#[cfg(feature = "os")]
#[must_use]
#[expect(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the os feature is where the edges find the clock"
)]
pub fn now() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// A clock that moves only when told: tests step it past an expiry, a lock or a polling
/// interval instead of sleeping on the wall clock.
///
/// ```
/// use mcpauth_oauth_types::{Clock, ManualClock, UnixTime};
///
/// let clock = ManualClock::new(UnixTime(1_800_000_000));
/// clock.advance(5);
/// assert_eq!(clock.now(), UnixTime(1_800_000_005));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    seconds: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: UnixTime) -> Self {
        Self {
            seconds: std::sync::atomic::AtomicU64::new(start.0),
        }
    }

    /// Moves the clock `seconds` forward.
    pub fn advance(&self, seconds: u64) {
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self.seconds.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |now| Some(now.saturating_add(seconds)),
        );
    }

    /// Sets the clock to `time`.
    pub fn set(&self, time: UnixTime) {
        self.seconds
            .store(time.0, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.seconds.load(std::sync::atomic::Ordering::SeqCst))
    }
}

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

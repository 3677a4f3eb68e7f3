//! Wall-clock instants as whole seconds since the Unix epoch, the unit of JWT `NumericDate`
//! (RFC 7519 §2) and of the feed's timestamps.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z (RFC 7519 §2 `NumericDate`, integral).
///
/// Drivers read the clock and pass it in; pure code never does.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// Converts a wall-clock reading (instants before the epoch become 0).
    pub fn from_system_time(t: SystemTime) -> Self {
        Self(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }

    /// The instant as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.0)
    }

    /// `self + secs`, saturating at the far future.
    #[must_use]
    pub fn plus(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// Seconds from `earlier` to `self`, 0 when `earlier` is later.
    pub fn secs_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

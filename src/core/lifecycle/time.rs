//! Time arithmetic of the lifecycle: whole-second instants, saturating
//! additions and differences, and durations as text.

use std::time::Duration;

use jiff::Timestamp;

/// `1h5m`-style text for messages.
pub fn human(d: Duration) -> String {
    crate::api::format_duration(d)
}

/// Drop sub-second precision: `metav1.Time` is serialized in whole seconds,
/// so status computed from a finer clock would never equal what was stored.
pub fn truncate_to_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// `t + d`, saturating at the end of time.
pub(super) fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// `later - earlier`, zero when `later` is not later.
pub(super) fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

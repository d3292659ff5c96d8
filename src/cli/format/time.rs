//! Durations and times as kubectl prints them, and deadline states.

use std::time::Duration;

use jiff::Timestamp;

/// kubectl's `HumanDuration` (k8s.io/apimachinery `duration.HumanDuration`):
/// `45s`, `5m30s`, `12m`, `3h20m`, `20h`, `3d4h`, `120d`, `2y30d`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `later - earlier`, clamped at zero.
pub(super) fn span(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// RFC 3339 in UTC, whole seconds: `2026-11-22T10:00:00Z`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `12m ago` (or `in 3m` for a time in the future).
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    if t <= now {
        format!("{} ago", human_duration(span(now, t)))
    } else {
        format!("in {}", human_duration(span(t, now)))
    }
}

/// `2026-11-22T10:00:00Z (12m ago)`.
pub fn time_and_relative(t: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", format_time(t), relative(t, now))
}

/// A signed offset from `base` in Go duration style: `+2m10s`, `-30s`.
pub fn offset(t: Timestamp, base: Timestamp) -> String {
    if t >= base {
        format!("+{}", crate::api::format_duration(span(t, base)))
    } else {
        format!("-{}", crate::api::format_duration(span(base, t)))
    }
}

/// The text after a deadline: `in 3m`, `overdue by 2m`, `met`, `missed by 4m`.
/// `done_at` is when the deadline's goal was reached (acknowledged/resolved);
/// `done` says whether it was reached at all (the time may be unknown yet).
pub fn deadline_state(
    deadline: Timestamp,
    done: bool,
    done_at: Option<Timestamp>,
    now: Timestamp,
) -> String {
    if done {
        return match done_at {
            Some(t) if t > deadline => format!("missed by {}", human_duration(span(t, deadline))),
            _ => "met".to_string(),
        };
    }
    if now < deadline {
        format!("in {}", human_duration(span(deadline, now)))
    } else {
        format!("overdue by {}", human_duration(span(now, deadline)))
    }
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;

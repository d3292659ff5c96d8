use std::time::Duration;

use super::*;
use crate::cli::format::fixtures::t;

#[test]
fn human_durations_match_kubectl() {
    let cases = [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (130, "2m10s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600 + 20 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400, "8d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
    }
}

#[test]
fn relative_times_and_offsets() {
    let now = t("2026-11-22T10:12:00Z");
    assert_eq!(relative(t("2026-11-22T10:00:00Z"), now), "12m ago");
    assert_eq!(relative(t("2026-11-22T10:15:00Z"), now), "in 3m");
    assert_eq!(
        time_and_relative(t("2026-11-22T10:00:00Z"), now),
        "2026-11-22T10:00:00Z (12m ago)"
    );
    let base = t("2026-11-22T10:00:00Z");
    assert_eq!(offset(t("2026-11-22T10:02:10Z"), base), "+2m10s");
    assert_eq!(offset(base, base), "+0s");
    assert_eq!(offset(t("2026-11-22T09:59:30Z"), base), "-30s");
    assert_eq!(offset(t("2026-11-22T11:30:00Z"), base), "+1h30m");
}

#[test]
fn deadlines() {
    let d = t("2026-11-22T10:15:00Z");
    assert_eq!(
        deadline_state(d, false, None, t("2026-11-22T10:12:00Z")),
        "in 3m"
    );
    assert_eq!(
        deadline_state(d, false, None, t("2026-11-22T10:17:00Z")),
        "overdue by 2m"
    );
    assert_eq!(
        deadline_state(
            d,
            true,
            Some(t("2026-11-22T10:03:00Z")),
            t("2026-11-22T10:30:00Z")
        ),
        "met"
    );
    assert_eq!(
        deadline_state(
            d,
            true,
            Some(t("2026-11-22T10:19:00Z")),
            t("2026-11-22T10:30:00Z")
        ),
        "missed by 4m"
    );
    assert_eq!(
        deadline_state(d, true, None, t("2026-11-22T10:30:00Z")),
        "met"
    );
}

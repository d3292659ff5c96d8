//! The Incident's timeline: appended once per event, capped.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{IncidentStatus, TimelineEntry, TimelineType};

/// Timeline entries kept: the first (`Opened`) and the newest `TIMELINE_CAP - 1`.
pub const TIMELINE_CAP: usize = 100;

/// Append a timeline entry, skipping an exact repeat of the last entry, and
/// enforce [`TIMELINE_CAP`] (the first entry is kept; the oldest after it go,
/// counted in `timelineDropped`).
pub fn push_timeline(
    status: &mut IncidentStatus,
    type_: TimelineType,
    message: String,
    now: Timestamp,
) {
    if status
        .timeline
        .last()
        .is_some_and(|e| e.type_ == type_ && e.message == message)
    {
        return;
    }
    status.timeline.push(TimelineEntry {
        time: Time(now),
        type_,
        message,
    });
    while status.timeline.len() > TIMELINE_CAP {
        status.timeline.remove(1);
        status.timeline_dropped = Some(status.timeline_dropped.unwrap_or(0) + 1);
    }
}

//! The `Timeline:` table of `describe`.

use jiff::Timestamp;

use super::cell;
use super::time::{format_time, offset};
use crate::api::IncidentStatus;

/// The rows of the `Timeline:` table (no header): offset from `opened`
/// (else from the first entry), time, type, message; a marker row after
/// the first entry when older entries were dropped. `status.timeline` must
/// not be empty.
pub(super) fn rows(status: &IncidentStatus, opened: Option<Timestamp>) -> Vec<Vec<String>> {
    let base = opened.unwrap_or(status.timeline[0].time.0);
    let mut rows = Vec::new();
    for (i, e) in status.timeline.iter().enumerate() {
        rows.push(vec![
            offset(e.time.0, base),
            format_time(e.time.0),
            format!("{:?}", e.type_),
            cell(&e.message),
        ]);
        if i == 0 {
            if let Some(n) = status.timeline_dropped.filter(|n| *n > 0) {
                rows.push(vec![
                    "...".to_string(),
                    String::new(),
                    String::new(),
                    format!("({n} older entries dropped by the timeline cap)"),
                ]);
            }
        }
    }
    rows
}

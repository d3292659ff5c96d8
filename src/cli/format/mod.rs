//! Pure formatting of Incidents for people: the `list` table and the
//! `describe` page. Every function takes the data and `now` and returns a
//! `String`, so the output is unit-tested with golden strings.
//!
//! - `time`: durations and times as kubectl prints them, deadlines.
//! - `list`: the `list` table and its order.
//! - `describe`: the `describe` page.
//! - `steps`: mitigation steps (action, approval, change) and their table.
//! - `timeline`: the timeline table of `describe`.
//!
//! Everything public is re-exported here (`format::describe`, ...).

mod describe;
mod list;
mod steps;
mod time;
mod timeline;

#[cfg(test)]
mod fixtures;

use jiff::Timestamp;

use crate::api::{Incident, Phase, Severity, TargetKind, TargetRef};

pub use describe::describe;
pub use list::{list_table, sort_for_list};
pub use steps::{action_text, step_state, step_status};
pub use time::{deadline_state, format_time, human_duration, offset, relative, time_and_relative};

/// Shown for absent values, as kubectl does.
pub const NONE: &str = "<none>";

/// The effective severity: `status.severity`, else the declared one.
pub fn effective_severity(incident: &Incident) -> Severity {
    incident
        .status
        .as_ref()
        .and_then(|s| s.severity)
        .unwrap_or(incident.spec.severity)
}

/// The phase, if the operator has set one.
pub fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

/// When the Incident was opened: `status.openedAt`, else its creation time.
pub fn opened_at(incident: &Incident) -> Option<Timestamp> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.opened_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// `deployment/web`, `pod/web-0`.
pub fn target_text(target: Option<&TargetRef>) -> String {
    match target {
        Some(t) => {
            let kind = match t.kind {
                TargetKind::Deployment => "deployment",
                TargetKind::Pod => "pod",
                TargetKind::StatefulSet => "statefulset",
                TargetKind::DaemonSet => "daemonset",
                TargetKind::Job => "job",
                TargetKind::CronJob => "cronjob",
            };
            format!("{kind}/{}", t.name)
        }
        None => NONE.to_string(),
    }
}

/// Replace line breaks (and tabs) so a value stays on its table row.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

/// Align rows into columns separated by three spaces (like kubectl's
/// tabwriter), each line prefixed by `indent`; trailing spaces trimmed.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

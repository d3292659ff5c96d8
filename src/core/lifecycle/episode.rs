//! Episodes of the trouble: reopening a resolved incident when it recurs,
//! the symptoms seen in the current episode, and when it was first and
//! last seen.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::condition;
use super::inputs::Observation;
use super::time::{human, since, truncate_to_seconds};
use super::transition::Transition;
use crate::api::{IncidentSpec, TimelineType};
use crate::core::conditions::FALSE;

/// Minimum spacing of `lastSeenAt` updates (bounds status writes while a
/// symptom persists).
pub const LAST_SEEN_RESOLUTION: Duration = Duration::from_secs(60);

/// The recurrence an Incident's `kubeincident.io/recurred-at` annotation
/// records (written by the Alertmanager intake when a resolved group fires
/// again), if it parses.
pub fn recurred_at(annotations: &BTreeMap<String, String>) -> Option<Timestamp> {
    annotations
        .get(crate::api::RECURRED_AT_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
}

/// Reopen a resolved incident whose trouble recurred after it was resolved
/// (unless a person resolved it through `spec.resolution`).
pub(super) fn reopen(b: &mut Builder, spec: &IncidentSpec, observation: &Observation) {
    let (Some(resolved_at), Some(again)) = (
        b.status.resolved_at.as_ref().map(|t| t.0),
        observation.recurrence,
    ) else {
        return;
    };
    if again <= resolved_at || spec.resolution.is_some() {
        return;
    }
    let occurrences = b.status.occurrences.unwrap_or(1) + 1;
    b.status.occurrences = Some(occurrences);
    b.status.resolved_at = None;
    b.status.healthy_since = None;
    b.status.last_seen_at = Some(Time(b.now));
    b.cond(
        condition::RESOLVED,
        FALSE,
        "Reopened",
        "the trouble recurred after resolution",
    );
    let what = observation
        .symptoms
        .iter()
        .map(|(t, m)| format!("{}: {m}", t.as_str()))
        .collect::<Vec<_>>()
        .join("; ");
    b.timeline(
        TimelineType::Reopened,
        format!(
            "the trouble recurred {} after resolution; reopened (occurrence {occurrences}){}",
            human(since(b.now, resolved_at)),
            if what.is_empty() {
                String::new()
            } else {
                format!(": {what}")
            }
        ),
    );
    b.transitions.push(Transition::Reopened { occurrences });
}

/// Record symptoms not yet on the timeline of this episode (since the last
/// Opened/Reopened entry), and keep `lastSeenAt` fresh.
pub(super) fn symptoms(b: &mut Builder, observation: &Observation) {
    if observation.symptoms.is_empty() || b.status.resolved_at.is_some() {
        return;
    }
    let episode_start = b
        .status
        .timeline
        .iter()
        .rposition(|e| matches!(e.type_, TimelineType::Opened | TimelineType::Reopened))
        .unwrap_or(0);
    for (trigger, message) in &observation.symptoms {
        let prefix = format!("{}: ", trigger.as_str());
        let recorded = b.status.timeline[episode_start..]
            .iter()
            .any(|e| e.type_ == TimelineType::Symptom && e.message.starts_with(&prefix));
        if !recorded {
            b.timeline(TimelineType::Symptom, format!("{prefix}{message}"));
            b.transitions.push(Transition::Symptom {
                trigger: *trigger,
                message: message.clone(),
            });
        }
    }
    let stale = b
        .status
        .last_seen_at
        .as_ref()
        .is_none_or(|t| since(b.now, t.0) >= LAST_SEEN_RESOLUTION);
    if stale {
        b.status.last_seen_at = Some(Time(b.now));
    }
}

/// Keep `firstObservedAt` the earliest sighting, never after the opening.
pub(super) fn first_observed(b: &mut Builder, observed: Option<Timestamp>, opened_at: Timestamp) {
    if let Some(t) = observed {
        let t = truncate_to_seconds(t);
        let earliest = b
            .status
            .first_observed_at
            .as_ref()
            .map_or(t, |f| f.0.min(t));
        b.status.first_observed_at = Some(Time(earliest.min(opened_at)));
    }
}

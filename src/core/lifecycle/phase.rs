//! Phases and the transitions between them: opening, resolving (by a
//! person or by recovery), and the phase the status implies.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::condition;
use super::inputs::IncidentView;
use super::time::{since, truncate_to_seconds};
use super::transition::Transition;
use crate::api::{IncidentSpec, IncidentStatus, Phase, Severity, StepState, TimelineType};
use crate::core::conditions::{FALSE, TRUE};

/// First evaluation: the opening time, the `Opened` entry, the initial conditions.
pub(super) fn open(b: &mut Builder, incident: &IncidentView<'_>) {
    if b.status.opened_at.is_some() {
        return;
    }
    let spec = incident.spec;
    let opened_at = truncate_to_seconds(incident.created_at.unwrap_or(b.now));
    b.status.opened_at = Some(Time(opened_at));
    b.status.occurrences = Some(1);
    b.status.last_seen_at = Some(Time(b.now));
    b.status.phase = Some(Phase::Investigating);
    b.status.severity = Some(spec.severity);
    let target = spec
        .target
        .as_ref()
        .map(|t| format!(" on {}/{}", t.kind.as_str(), t.name))
        .unwrap_or_default();
    b.timeline(
        TimelineType::Opened,
        format!(
            "{} incident opened{target} ({}): {}",
            spec.severity,
            spec.source.as_str(),
            spec.title
        ),
    );
    b.cond(
        condition::ACKNOWLEDGED,
        FALSE,
        "NotAcknowledged",
        "nobody has acknowledged the incident",
    );
    b.cond(
        condition::RESPONSE_OVERDUE,
        FALSE,
        "WithinTarget",
        "the response target has not passed",
    );
    b.cond(
        condition::RESOLUTION_OVERDUE,
        FALSE,
        "WithinTarget",
        "the resolution target has not passed",
    );
    b.cond(condition::RESOLVED, FALSE, "Open", "the incident is open");
    b.transitions.push(Transition::Opened {
        severity: spec.severity,
        source: spec.source,
    });
}

/// `spec.resolution` set by a person resolves an open incident.
pub(super) fn resolve_manually(b: &mut Builder, spec: &IncidentSpec, opened_at: Timestamp) {
    if b.status.resolved_at.is_some() {
        return;
    }
    if let Some(res) = &spec.resolution {
        resolve(
            b,
            Some(res.by.clone()),
            res.summary.clone(),
            opened_at,
            "ManuallyResolved",
        );
    }
}

/// Resolve now: `resolvedAt`, the `Resolved` condition, timeline, transition.
pub(super) fn resolve(
    b: &mut Builder,
    by: Option<String>,
    summary: String,
    opened_at: Timestamp,
    reason: &str,
) {
    b.status.resolved_at = Some(Time(b.now));
    let message = match &by {
        Some(by) => format!("resolved by {by}: {summary}"),
        None => format!("resolved: {summary}"),
    };
    b.cond(condition::RESOLVED, TRUE, reason, message.clone());
    b.timeline(TimelineType::Resolved, message);
    b.transitions.push(Transition::Resolved {
        by,
        summary,
        after: since(b.now, opened_at),
        severity: b.status.severity.unwrap_or(Severity::SEV4),
    });
}

/// Set the phase the status and spec imply; entering `Identified` from
/// `Investigating` goes on the timeline.
pub(super) fn settle_phase(b: &mut Builder, spec: &IncidentSpec, before: Option<Phase>) {
    let phase = phase_of(&b.status, spec);
    if phase == Phase::Identified && before == Some(Phase::Investigating) {
        let root_cause = spec.root_cause.clone();
        b.timeline(
            TimelineType::Identified,
            match &root_cause {
                Some(rc) => format!("root cause identified: {rc}"),
                None => "a mitigation was approved".into(),
            },
        );
        b.transitions.push(Transition::Identified { root_cause });
    }
    b.status.phase = Some(phase);
}

/// The phase the status and spec imply.
fn phase_of(status: &IncidentStatus, spec: &IncidentSpec) -> Phase {
    if status.resolved_at.is_some() {
        return Phase::Resolved;
    }
    if status
        .mitigations
        .iter()
        .any(|m| m.state == StepState::Running)
    {
        return Phase::Mitigating;
    }
    let monitoring = status
        .mitigations
        .iter()
        .rposition(|m| m.state != StepState::Pending && m.state != StepState::AwaitingApproval)
        .is_some_and(|i| status.mitigations[i].state == StepState::Succeeded);
    if monitoring {
        return Phase::Monitoring;
    }
    let approved = spec.mitigations.iter().any(|m| {
        m.approved_by
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
    });
    let progressed = matches!(
        status.phase,
        Some(Phase::Identified | Phase::Mitigating | Phase::Monitoring)
    );
    if spec
        .root_cause
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
        || approved
        || progressed
    {
        return Phase::Identified;
    }
    Phase::Investigating
}

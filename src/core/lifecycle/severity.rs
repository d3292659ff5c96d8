//! The effective severity: the declared one, never below what the impact
//! reached; changes go on the timeline and become transitions.

use super::builder::Builder;
use super::inputs::Observation;
use super::transition::Transition;
use crate::api::{IncidentSpec, Severity, TimelineType};

/// Record the impact and settle the effective severity (the declared one,
/// never below what the impact reached, now or earlier); returns it.
pub(super) fn settle_severity(
    b: &mut Builder,
    spec: &IncidentSpec,
    observation: &Observation,
) -> Severity {
    let impact_severity = observation
        .impact_severity
        .into_iter()
        .chain(b.status.impact.as_ref().and_then(|i| i.severity))
        .reduce(Severity::max_severity);
    if let Some(mut impact) = observation.impact.clone() {
        impact.severity = impact_severity;
        b.status.impact = Some(impact);
    } else if let (Some(sev), Some(impact)) = (impact_severity, b.status.impact.as_mut()) {
        impact.severity = Some(sev);
    }
    let effective = impact_severity.map_or(spec.severity, |s| spec.severity.max_severity(s));
    let previous = b.status.severity.unwrap_or(effective);
    b.status.severity = Some(effective);
    if previous != effective {
        let by_impact = impact_severity == Some(effective) && effective != spec.severity;
        severity_timeline(b, previous, effective, by_impact);
        b.transitions.push(Transition::SeverityChanged {
            from: previous,
            to: effective,
            by_impact,
        });
    }
    effective
}

/// The timeline entry of a severity change. Changes within one second
/// (SEV3 -> SEV2 -> SEV1 as the impact climbs) are one entry with the
/// final severity: the newest entry is replaced when it is a severity
/// change of this same second (and dropped when the severity came back to
/// where that entry started).
fn severity_timeline(b: &mut Builder, previous: Severity, effective: Severity, by_impact: bool) {
    let same_second = b
        .status
        .timeline
        .last()
        .filter(|e| e.type_ == TimelineType::SeverityChanged && e.time.0 == b.now)
        .and_then(|e| severity_change_from(&e.message));
    let from = match same_second {
        Some(from) => {
            b.status.timeline.pop();
            from
        }
        None => previous,
    };
    if from == effective {
        return;
    }
    b.timeline(
        TimelineType::SeverityChanged,
        format!(
            "severity {from} -> {effective}{}",
            if by_impact { " (impact grew)" } else { "" }
        ),
    );
}

/// The `from` of a `severity FROM -> TO` timeline message.
fn severity_change_from(message: &str) -> Option<Severity> {
    let rest = message.strip_prefix("severity ")?;
    let (from, _) = rest.split_once(" -> ")?;
    from.parse().ok()
}

//! Acknowledgement: who took the incident, handovers, withdrawal.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::condition;
use super::time::since;
use super::transition::Transition;
use crate::api::{IncidentSpec, TimelineType};
use crate::core::conditions::{get_condition, is_true, FALSE, TRUE};

/// Follow `spec.acknowledgedBy`: acknowledged, handed over to someone
/// else, or withdrawn.
pub(super) fn acknowledgement(b: &mut Builder, spec: &IncidentSpec, opened_at: Timestamp) {
    match spec.acknowledged_by.as_deref().map(str::trim) {
        Some(by) if !by.is_empty() => {
            let message = format!("acknowledged by {by}");
            let previous = get_condition(&b.status.conditions, condition::ACKNOWLEDGED)
                .map(|c| (c.status.clone(), c.message.clone()));
            if b.status.acknowledged_at.is_none() {
                b.status.acknowledged_at = Some(Time(b.now));
            }
            b.cond(
                condition::ACKNOWLEDGED,
                TRUE,
                "Acknowledged",
                message.clone(),
            );
            let first = previous.as_ref().is_none_or(|(s, _)| s != TRUE);
            let handed_over = previous
                .as_ref()
                .is_some_and(|(s, m)| s == TRUE && *m != message);
            if first || handed_over {
                b.timeline(TimelineType::Acknowledged, message);
                let at = b.status.acknowledged_at.as_ref().map_or(b.now, |t| t.0);
                b.transitions.push(Transition::Acknowledged {
                    by: by.to_string(),
                    after: since(at, opened_at),
                    severity: b.status.severity.unwrap_or(spec.severity),
                });
            }
        }
        _ => {
            if is_true(&b.status.conditions, condition::ACKNOWLEDGED) {
                b.status.acknowledged_at = None;
                b.cond(
                    condition::ACKNOWLEDGED,
                    FALSE,
                    "Withdrawn",
                    "the acknowledgement was withdrawn",
                );
                b.timeline(
                    TimelineType::Acknowledged,
                    "acknowledgement withdrawn".into(),
                );
                b.transitions.push(Transition::AcknowledgementWithdrawn);
            }
        }
    }
}

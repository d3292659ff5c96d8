//! Deadlines: the response and resolution deadlines of the severity, the
//! overdue conditions when they pass, and the escalation walk after the
//! response deadline.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::condition;
use super::inputs::Policy;
use super::time::{add, human};
use super::transition::Transition;
use crate::api::TimelineType;
use crate::core::conditions::{FALSE, TRUE};
use crate::core::escalation;
use crate::core::targets::Targets;

/// Both deadlines run from the opening, by the targets of the severity.
pub(super) fn set_deadlines(b: &mut Builder, targets: Targets, opened_at: Timestamp) {
    b.status.response_deadline = Some(Time(add(opened_at, targets.response)));
    b.status.resolution_deadline = Some(Time(add(opened_at, targets.resolution)));
}

/// `ResponseOverdue` and `ResolutionOverdue`: set once a deadline passes
/// unmet, cleared by acknowledgement or resolution; a deadline still ahead
/// becomes a wake-up.
pub(super) fn overdue(b: &mut Builder, response: Duration, resolution: Duration) {
    let resolved = b.status.resolved_at.is_some();
    let acknowledged = b.status.acknowledged_at.is_some();
    let response_deadline = b.status.response_deadline.as_ref().map(|t| t.0);
    let resolution_deadline = b.status.resolution_deadline.as_ref().map(|t| t.0);

    if let Some(deadline) = response_deadline {
        if resolved {
            b.cond(
                condition::RESPONSE_OVERDUE,
                FALSE,
                "Resolved",
                "the incident is resolved",
            );
        } else if acknowledged {
            b.cond(
                condition::RESPONSE_OVERDUE,
                FALSE,
                "Acknowledged",
                "the incident was acknowledged",
            );
        } else if b.now >= deadline {
            let message = format!(
                "not acknowledged within the {} response target",
                human(response)
            );
            if b.cond(
                condition::RESPONSE_OVERDUE,
                TRUE,
                "ResponseTargetMissed",
                message.clone(),
            ) {
                b.timeline(TimelineType::ResponseOverdue, message);
                b.transitions
                    .push(Transition::ResponseOverdue { target: response });
            }
        } else {
            b.cond(
                condition::RESPONSE_OVERDUE,
                FALSE,
                "WithinTarget",
                "the response target has not passed",
            );
            b.wake_at(deadline);
        }
    }
    if let Some(deadline) = resolution_deadline {
        if resolved {
            b.cond(
                condition::RESOLUTION_OVERDUE,
                FALSE,
                "Resolved",
                "the incident is resolved",
            );
        } else if b.now >= deadline {
            let message = format!(
                "not resolved within the {} resolution target",
                human(resolution)
            );
            if b.cond(
                condition::RESOLUTION_OVERDUE,
                TRUE,
                "ResolutionTargetMissed",
                message.clone(),
            ) {
                b.timeline(TimelineType::ResolutionOverdue, message);
                b.transitions
                    .push(Transition::ResolutionOverdue { target: resolution });
            }
        } else {
            b.cond(
                condition::RESOLUTION_OVERDUE,
                FALSE,
                "WithinTarget",
                "the resolution target has not passed",
            );
            b.wake_at(deadline);
        }
    }
}

/// Walk the escalation list (see [`crate::core::escalation`]): levels reached are
/// recorded in `status.escalation` and the timeline; the next level's time
/// becomes a wake-up. Acknowledging or resolving stops the walk.
pub(super) fn escalate(b: &mut Builder, policy: &Policy) {
    let stopped = b.status.resolved_at.is_some() || b.status.acknowledged_at.is_some();
    let outcome = escalation::evaluate(
        &policy.escalation,
        b.status.response_deadline.as_ref().map(|t| t.0),
        stopped,
        b.status.escalation.as_ref(),
        b.now,
    );
    b.status.escalation = outcome.status;
    if let Some(w) = outcome.wake_at {
        b.wake_at(w);
    }
    for r in outcome.reached {
        b.timeline(
            TimelineType::Escalated,
            format!("escalated to level {} ({})", r.level, r.notify.join(", ")),
        );
        b.transitions.push(Transition::Escalated {
            level: r.level,
            notify: r.notify,
            after: r.after,
        });
    }
}

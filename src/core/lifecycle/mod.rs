//! The Incident lifecycle as a pure function of (spec, status, observation,
//! policy, now). It returns the new status and the transitions that happened;
//! the controller turns transitions into Kubernetes Events, notifications and
//! metrics, and requeues after [`Decision::requeue_after`].
//!
//! ```text
//! Investigating -> Identified (rootCause set, or a mitigation approved)
//!               -> Mitigating (a step is Running)
//!               -> Monitoring (a step succeeded; target must stay healthy for the window)
//!               -> Resolved   (healthy for the whole window, or spec.resolution set)
//! Monitoring + relapse -> step Ineffective, next step (none left: escalate)
//! ```
//!
//! Re-running with the same inputs yields the same status and no
//! transitions (idempotence), so a replayed reconcile never emits an Event
//! or a notification twice.
//!
//! One evaluation, in order (one concern per file): open (`phase`), reopen
//! and symptoms (`episode`), severity (`severity`), deadlines (`deadlines`),
//! target health (`monitoring`), validity (`validity`), acknowledgement
//! (`acknowledgement`), manual resolution (`phase`), the mitigation plan
//! (`steps`, `approvals`, `monitoring`), overdue and escalation
//! (`deadlines`), notification deliveries (`deliveries`), the phase
//! (`phase`). Executors report on steps through [`record_step_outcome`]
//! (`outcome`).

mod acknowledgement;
mod approvals;
mod builder;
pub mod condition;
mod deadlines;
mod deliveries;
mod episode;
mod inputs;
mod monitoring;
mod outcome;
mod phase;
mod severity;
mod steps;
mod time;
mod timeline;
mod transition;
mod validity;

use jiff::Timestamp;

use self::builder::Builder;
use crate::core::validation;

pub use self::builder::Decision;
pub use self::episode::{recurred_at, LAST_SEEN_RESOLUTION};
pub use self::inputs::{IncidentView, Observation, Policy, TargetHealth};
pub use self::outcome::{record_step_outcome, StepOutcome};
pub use self::time::{human, truncate_to_seconds};
pub use self::timeline::{push_timeline, TIMELINE_CAP};
pub use self::transition::{EventType, Transition};

/// Evaluate the lifecycle.
pub fn reconcile(
    incident: IncidentView<'_>,
    observation: &Observation,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let now = truncate_to_seconds(now);
    let spec = incident.spec;
    let status = incident.status.cloned().unwrap_or_default();
    let mut b = Builder::new(status, incident.generation, now);
    b.status.observed_generation = incident.generation;

    phase::open(&mut b, &incident);
    let opened_at = b.status.opened_at.as_ref().map_or(now, |t| t.0);
    episode::reopen(&mut b, spec, observation);
    episode::symptoms(&mut b, observation);

    let severity = severity::settle_severity(&mut b, spec, observation);
    let targets = policy.targets.get(severity);
    deadlines::set_deadlines(&mut b, targets, opened_at);
    episode::first_observed(&mut b, observation.first_observed_at, opened_at);
    monitoring::track_target_health(&mut b, &observation.target);

    let errors = validation::validate_incident(spec);
    validity::validity(&mut b, &errors);
    acknowledgement::acknowledgement(&mut b, spec, opened_at);
    phase::resolve_manually(&mut b, spec, opened_at);
    steps::steps(&mut b, spec, observation, policy, &errors, opened_at);
    deadlines::overdue(&mut b, targets.response, targets.resolution);
    deadlines::escalate(&mut b, policy);
    deliveries::deliveries(&mut b);
    phase::settle_phase(&mut b, spec, incident.status.and_then(|s| s.phase));

    b.finish()
}

#[cfg(test)]
mod tests;

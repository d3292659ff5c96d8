//! The mitigation plan: status entries aligned with the spec, the walk over
//! the steps (monitor the one that succeeded, give the next its turn), a
//! plan exhausted, steps skipped once resolved.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::condition;
use super::inputs::{Observation, Policy, TargetHealth};
use super::transition::Transition;
use super::{approvals, monitoring};
use crate::api::{IncidentSpec, MitigationStatus, StepState, TimelineType};
use crate::core::conditions::{get_condition, FALSE, TRUE};
use crate::core::validation::{self, FieldError};

/// Where the walk over the plan goes after looking at one step.
enum Walk {
    /// This step is done with (final, relapsed, failed validation): look at the next.
    NextStep,
    /// This step holds the plan (running, monitored, awaiting approval, cleared to run).
    Stop,
}

/// The mitigation plan: align status entries with the spec, gate on
/// approval, watch the monitoring window, move on after a relapse.
pub(super) fn steps(
    b: &mut Builder,
    spec: &IncidentSpec,
    observation: &Observation,
    policy: &Policy,
    errors: &[FieldError],
    opened_at: Timestamp,
) {
    align_records(b, spec);
    let severity = b.status.severity.unwrap_or(spec.severity);
    let window = policy.monitoring_window(severity);
    if b.status.resolved_at.is_none() {
        walk_plan(
            b,
            spec,
            &observation.target,
            errors,
            policy,
            window,
            opened_at,
        );
        flag_exhausted(b, spec);
        monitoring::resolve_without_plan(b, spec, &observation.target, window, opened_at);
    }
    skip_unrun_steps(b);
    approvals::awaiting_approval_condition(b, spec);
    refused_condition(b);
}

/// `MitigationRefused`: `True` while some step was refused, naming them.
/// Set once a step was refused.
fn refused_condition(b: &mut Builder) {
    let refused: Vec<String> = b
        .status
        .mitigations
        .iter()
        .filter(|m| m.state == StepState::Refused)
        .map(|m| format!("{:?}: {}", m.name, m.message))
        .collect();
    if refused.is_empty() {
        if get_condition(&b.status.conditions, condition::MITIGATION_REFUSED).is_some() {
            b.cond(
                condition::MITIGATION_REFUSED,
                FALSE,
                "Granted",
                "every step is granted by the governing Runbook",
            );
        }
        return;
    }
    b.cond(
        condition::MITIGATION_REFUSED,
        TRUE,
        "NotGranted",
        format!("refused by the Runbook mandate: {}", refused.join("; ")),
    );
}

/// Step `i` is refused: no governing Runbook grants it. Final; no write.
fn refuse_step(b: &mut Builder, i: usize, message: String) {
    let name = b.status.mitigations[i].name.clone();
    let st = &mut b.status.mitigations[i];
    st.state = StepState::Refused;
    st.message = message.clone();
    st.completed_at = Some(Time(b.now));
    b.timeline(
        TimelineType::MitigationRefused,
        format!("mitigation {name:?} refused: {message}"),
    );
    b.transitions.push(Transition::StepRefused {
        step: name,
        message,
    });
}

/// Status entries follow spec order; a step's record is kept by name.
fn align_records(b: &mut Builder, spec: &IncidentSpec) {
    let mut old = std::mem::take(&mut b.status.mitigations);
    b.status.mitigations = spec
        .mitigations
        .iter()
        .map(|s| {
            old.iter()
                .position(|m| m.name == s.name)
                .map(|i| old.swap_remove(i))
                .unwrap_or_else(|| MitigationStatus {
                    name: s.name.clone(),
                    ..Default::default()
                })
        })
        .collect();
}

/// Walk the steps in order until one holds the plan.
fn walk_plan(
    b: &mut Builder,
    spec: &IncidentSpec,
    target: &TargetHealth,
    errors: &[FieldError],
    policy: &Policy,
    window: Duration,
    opened_at: Timestamp,
) {
    let mut i = 0;
    while i < spec.mitigations.len() {
        let state = b.status.mitigations[i].state;
        let walk = match state {
            StepState::Running => Walk::Stop, // the executor reports back
            StepState::Succeeded => monitor_step(b, spec, i, target, window, opened_at),
            s if s.is_final() => Walk::NextStep,
            // Pending or AwaitingApproval: this step's turn.
            _ => take_turn(b, spec, i, state, errors, policy),
        };
        match walk {
            Walk::NextStep => i += 1,
            Walk::Stop => break,
        }
    }
}

/// Step `i` succeeded: watch the target for the monitoring window (unless a
/// later step already ran). A relapse makes the step Ineffective and moves
/// on; a target healthy for the whole window resolves the incident.
fn monitor_step(
    b: &mut Builder,
    spec: &IncidentSpec,
    i: usize,
    target: &TargetHealth,
    window: Duration,
    opened_at: Timestamp,
) -> Walk {
    let later_step_ran = b.status.mitigations[i + 1..]
        .iter()
        .any(|m| m.state != StepState::Pending && m.state != StepState::AwaitingApproval);
    if later_step_ran {
        return Walk::NextStep;
    }
    let name = spec.mitigations[i].name.clone();
    let completed = b.status.mitigations[i]
        .completed_at
        .as_ref()
        .map_or(b.now, |t| t.0);
    if b.status.mitigated_at.is_none() {
        b.status.mitigated_at = Some(Time(completed));
    }
    match target {
        TargetHealth::Unhealthy(reason) => {
            monitoring::relapse(b, i, name, reason);
            return Walk::NextStep;
        }
        TargetHealth::Healthy => {
            monitoring::recover_after_step(b, &name, completed, window, opened_at);
        }
        // A step that says itself what it could not do (an undo whose
        // pods are not replaced until deleted: OnDelete, a partition, an
        // OrderedReady StatefulSet waiting on a broken pod) gives the next
        // step its turn (DeletePods, the documented remedy, with its own
        // approval) without waiting for a relapse the target's health may
        // not show.
        TargetHealth::Unknown
            if b.status.mitigations[i]
                .after
                .contains_key(crate::core::mitigation::key::LIMITATION) =>
        {
            return Walk::NextStep;
        }
        TargetHealth::Unknown | TargetHealth::Missing => {}
    }
    Walk::Stop
}

/// Step `i` (Pending or AwaitingApproval) has its turn: an invalid step
/// fails and the walk moves on; otherwise the approval gate decides.
fn take_turn(
    b: &mut Builder,
    spec: &IncidentSpec,
    i: usize,
    state: StepState,
    errors: &[FieldError],
    policy: &Policy,
) -> Walk {
    let (refused, trust) = (&policy.refused, &policy.approvals);
    if let Some(why) = refused.get(&spec.mitigations[i].name) {
        refuse_step(b, i, why.clone());
        return Walk::NextStep;
    }
    let step_errs = validation::step_errors(errors, i);
    if !step_errs.is_empty() {
        let message = validation::summarize(&step_errs);
        fail_step(b, i, message);
        return Walk::NextStep;
    }
    approvals::gate(b, &spec.mitigations[i], i, state, trust);
    Walk::Stop
}

/// Every step was tried and none held: `MitigationFailed` with
/// `MitigationsExhausted`, once.
fn flag_exhausted(b: &mut Builder, spec: &IncidentSpec) {
    if !spec.mitigations.is_empty()
        && b.status.mitigations.iter().all(|m| m.state.is_final())
        && !b
            .status
            .mitigations
            .iter()
            .any(|m| m.state == StepState::Succeeded)
        && get_condition(&b.status.conditions, condition::MITIGATION_FAILED)
            .is_none_or(|c| c.reason != "MitigationsExhausted")
    {
        b.cond(
            condition::MITIGATION_FAILED,
            TRUE,
            "MitigationsExhausted",
            "every mitigation step was tried and none held; a person must take over",
        );
        b.timeline(
            TimelineType::Escalated,
            "no mitigation step left; a person must take over".into(),
        );
        b.transitions.push(Transition::MitigationsExhausted);
    }
}

/// Once resolved, steps that never ran will not run.
fn skip_unrun_steps(b: &mut Builder) {
    if b.status.resolved_at.is_none() {
        return;
    }
    for i in 0..b.status.mitigations.len() {
        let st = &b.status.mitigations[i];
        if matches!(st.state, StepState::Pending | StepState::AwaitingApproval) {
            let name = st.name.clone();
            let message = "the incident was resolved before this step ran".to_string();
            let st = &mut b.status.mitigations[i];
            st.state = StepState::Skipped;
            st.message = message.clone();
            b.timeline(
                TimelineType::MitigationSkipped,
                format!("mitigation {name:?} skipped: {message}"),
            );
            b.transitions.push(Transition::StepSkipped {
                step: name,
                message,
            });
        }
    }
}

/// Step `i` failed before it ran (its spec is invalid).
fn fail_step(b: &mut Builder, i: usize, message: String) {
    let name = b.status.mitigations[i].name.clone();
    let st = &mut b.status.mitigations[i];
    st.state = StepState::Failed;
    st.message = message.clone();
    st.completed_at = Some(Time(b.now));
    b.cond(
        condition::MITIGATION_FAILED,
        TRUE,
        "StepFailed",
        format!("mitigation {name:?} failed: {message}"),
    );
    b.timeline(
        TimelineType::MitigationFailed,
        format!("mitigation {name:?} failed: {message}"),
    );
    b.transitions.push(Transition::StepFailed {
        step: name,
        message,
    });
}

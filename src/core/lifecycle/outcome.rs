//! What executors report about a step ([`StepOutcome`]) and how it is
//! recorded in the status.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::condition;
use super::time::{human, truncate_to_seconds};
use super::timeline::push_timeline;
use super::transition::Transition;
use crate::api::{IncidentStatus, Phase, StepState, TimelineType};
use crate::core::conditions::{set_condition, TRUE};

/// What an executor reports about a step (the mitigations issue's executors
/// call this; tests use it to drive the lifecycle).
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Intent recorded before acting: the step is Running.
    Started {
        before: BTreeMap<String, String>,
        intent: BTreeMap<String, String>,
        message: String,
    },
    /// Applied and verified.
    Succeeded {
        after: BTreeMap<String, String>,
        message: String,
    },
    /// Could not be applied.
    Failed { message: String },
    /// Not run (guard not met, dry-run, ...).
    Skipped { message: String },
    /// Dry-run: planned and recorded ("would have"), nothing changed; the
    /// step is Skipped with its `before` and `intent`.
    DryRun {
        before: BTreeMap<String, String>,
        intent: BTreeMap<String, String>,
        message: String,
    },
    /// `revertOnResolve`: the recorded values were restored.
    Reverted { message: String },
    /// `revertOnResolve` decided against restoring (the field no longer
    /// holds our value); the step keeps its state, the reason is recorded.
    NotReverted { message: String },
    /// Another manager changed what the step set (a GitOps self-heal, a
    /// person): the step fails and the incident escalates to a person.
    ExternalChange { message: String },
}

/// Record an executor's report on step `index` and return the transitions
/// it causes. Reporting the same outcome twice changes nothing.
pub fn record_step_outcome(
    status: &mut IncidentStatus,
    index: usize,
    outcome: StepOutcome,
    monitoring_window: Duration,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Transition> {
    let now = truncate_to_seconds(now);
    let Some(step) = status.mitigations.get_mut(index) else {
        return Vec::new();
    };
    let name = step.name.clone();
    let mut transitions = Vec::new();
    let timeline;
    match outcome {
        StepOutcome::Started {
            before,
            intent,
            message,
        } => {
            if step.state == StepState::Running {
                return transitions;
            }
            step.state = StepState::Running;
            step.started_at = Some(Time(now));
            step.before = before;
            step.intent = intent;
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationStarted,
                format!("mitigation {name:?} started: {message}"),
            ));
            transitions.push(Transition::StepStarted {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::Succeeded { after, message } => {
            if step.state == StepState::Succeeded {
                return transitions;
            }
            step.state = StepState::Succeeded;
            step.completed_at = Some(Time(now));
            step.after = after;
            step.message = message.clone();
            if status.mitigated_at.is_none() {
                status.mitigated_at = Some(Time(now));
            }
            timeline = Some((
                TimelineType::MitigationSucceeded,
                format!(
                    "mitigation {name:?} succeeded: {message}; monitoring for {}",
                    human(monitoring_window)
                ),
            ));
            transitions.push(Transition::Monitoring {
                step: name.clone(),
                window: monitoring_window,
            });
        }
        StepOutcome::Failed { message } => {
            if step.state == StepState::Failed {
                return transitions;
            }
            step.state = StepState::Failed;
            step.completed_at = Some(Time(now));
            step.message = message.clone();
            set_condition(
                &mut status.conditions,
                condition::MITIGATION_FAILED,
                TRUE,
                "StepFailed",
                format!("mitigation {name:?} failed: {message}"),
                generation,
                now,
            );
            timeline = Some((
                TimelineType::MitigationFailed,
                format!("mitigation {name:?} failed: {message}"),
            ));
            transitions.push(Transition::StepFailed {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::Skipped { message } => {
            if step.state == StepState::Skipped {
                return transitions;
            }
            step.state = StepState::Skipped;
            step.completed_at = Some(Time(now));
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationSkipped,
                format!("mitigation {name:?} skipped: {message}"),
            ));
            transitions.push(Transition::StepSkipped {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::DryRun {
            before,
            intent,
            message,
        } => {
            if step.state == StepState::Skipped {
                return transitions;
            }
            step.state = StepState::Skipped;
            step.completed_at = Some(Time(now));
            step.before = before;
            step.intent = intent;
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationSkipped,
                format!("mitigation {name:?} skipped: {message}"),
            ));
            transitions.push(Transition::StepSkipped {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::Reverted { message } => {
            if step.state == StepState::Reverted {
                return transitions;
            }
            step.state = StepState::Reverted;
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationReverted,
                format!("mitigation {name:?} reverted: {message}"),
            ));
            transitions.push(Transition::Reverted {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::NotReverted { message } => {
            if step.after.get("revert") == Some(&message) {
                return transitions;
            }
            step.after.insert("revert".into(), message.clone());
            timeline = Some((
                TimelineType::MitigationReverted,
                format!("mitigation {name:?} not reverted: {message}"),
            ));
        }
        StepOutcome::ExternalChange { message } => {
            if step.state == StepState::Failed {
                return transitions;
            }
            step.state = StepState::Failed;
            step.completed_at = Some(Time(now));
            step.message = format!("changed by another manager: {message}");
            set_condition(
                &mut status.conditions,
                condition::MITIGATION_FAILED,
                TRUE,
                "ExternalChange",
                format!("mitigation {name:?} was undone by another manager; a person must decide: {message}"),
                generation,
                now,
            );
            timeline = Some((
                TimelineType::ExternalChange,
                format!("mitigation {name:?} was undone by another manager (not fighting it; a person must decide): {message}"),
            ));
            transitions.push(Transition::ExternalChange {
                step: name.clone(),
                message,
            });
        }
    }
    if let Some((t, m)) = timeline {
        push_timeline(status, t, m, now);
    }

    if matches!(
        status.mitigations.get(index).map(|m| m.state),
        Some(StepState::Running)
    ) {
        status.phase = Some(Phase::Mitigating);
    }
    transitions
}

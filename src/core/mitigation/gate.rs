//! The safety gate of a step: ignored workload, paused Runbook,
//! `when.rolloutWithin`, cooldown, `maxActionsPerHour`, dry-run; and the
//! actions already taken (the history the cooldown and the limit count).

use std::time::Duration;

use jiff::Timestamp;

use super::workload::newest_replica_set;
use super::{key, Target};
use crate::api::{IncidentStatus, MitigationStep, RunbookSpec, StepState, IGNORE_LABEL};

/// An action taken earlier, from the status of any Incident (for the
/// cooldown and the hourly limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub at: Timestamp,
    /// Target Deployment name (same namespace).
    pub workload: String,
    /// The Runbook of the Incident that acted.
    pub runbook: Option<String>,
}

/// The actions recorded in an Incident's status: steps that started (were
/// applied or attempted), not dry-runs.
pub fn actions_of(
    status: &IncidentStatus,
    workload: &str,
    runbook: Option<&str>,
) -> Vec<ActionRecord> {
    status
        .mitigations
        .iter()
        .filter(|m| {
            matches!(
                m.state,
                StepState::Running
                    | StepState::Succeeded
                    | StepState::Failed
                    | StepState::Ineffective
                    | StepState::Reverted
            ) && !m.intent.contains_key(key::DRY_RUN)
        })
        .filter_map(|m| m.started_at.as_ref())
        .map(|t| ActionRecord {
            at: t.0,
            workload: workload.to_string(),
            runbook: runbook.map(str::to_string),
        })
        .collect()
}

/// The safety gate's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Act now.
    Go,
    /// Plan and record what would have been done; change nothing.
    DryRun(String),
    /// Not now; look again at `until` (or at the next resync when `None`).
    Wait {
        until: Option<Timestamp>,
        reason: String,
    },
    /// Never for this step.
    Skip(String),
}

/// Inputs of the gate.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    pub step: &'a MitigationStep,
    /// The Incident's Runbook, if any (and readable).
    pub runbook: Option<(&'a str, &'a RunbookSpec)>,
    /// `kube-incident run --dry-run`.
    pub global_dry_run: bool,
    pub workload: Target<'a>,
    /// Earlier actions in the namespace (every Incident, this one included).
    pub history: &'a [ActionRecord],
    pub now: Timestamp,
}

/// The safety rails, in order: ignored workload, paused Runbook,
/// `when.rolloutWithin`, cooldown, `maxActionsPerHour`, dry-run.
pub fn gate(input: GateInput<'_>) -> Gate {
    let meta = input.workload.meta();
    let kind = input.workload.kind().as_str();
    let name = input.workload.name();
    if meta
        .labels
        .as_ref()
        .and_then(|l| l.get(IGNORE_LABEL))
        .is_some_and(|v| v == "true")
    {
        return Gate::Skip(format!(
            "{kind} {name} is labelled {IGNORE_LABEL}=true; kube-incident never acts on it"
        ));
    }
    if let Some((rb, spec)) = input.runbook {
        if spec.paused {
            return Gate::Wait {
                until: None,
                reason: format!(
                    "Runbook {rb} is paused (spec.paused); no action until it is resumed"
                ),
            };
        }
    }
    if let Some(within) = input
        .step
        .when
        .as_ref()
        .and_then(|w| w.rollout_within.as_ref())
    {
        let Ok(window) = within.parse() else {
            return Gate::Skip(format!("when.rolloutWithin {within:?} is not a duration"));
        };
        match rolled_out_at(input.workload) {
            Some(at) if add(at, window) >= input.now => {}
            Some(at) => {
                return Gate::Skip(format!(
                    "guard when.rolloutWithin {within} not met: the current revision of {name} rolled out at {at}, more than {within} ago"
                ))
            }
            None => {
                return Gate::Skip(format!(
                    "guard when.rolloutWithin {within} not met: no rollout of {name} found"
                ))
            }
        }
    }
    if let Some((rb, spec)) = input.runbook {
        let limits = spec.limits.clone().unwrap_or_default();
        if let Some(cooldown) = limits.cooldown.as_ref().and_then(|c| c.parse().ok()) {
            let last = input
                .history
                .iter()
                .filter(|a| a.workload == name)
                .map(|a| a.at)
                .max();
            if let Some(last) = last {
                let until = add(last, cooldown);
                if until > input.now {
                    return Gate::Wait {
                        until: Some(until),
                        reason: format!(
                            "Runbook {rb} cooldown: the last action on {name} was at {last}; next possible at {until}"
                        ),
                    };
                }
            }
        }
        if let Some(max) = limits.max_actions_per_hour {
            let hour = Duration::from_secs(3600);
            let mut recent: Vec<Timestamp> = input
                .history
                .iter()
                .filter(|a| a.runbook.as_deref() == Some(rb) && add(a.at, hour) > input.now)
                .map(|a| a.at)
                .collect();
            recent.sort();
            if recent.len() >= usize::try_from(max.max(0)).unwrap_or(0) {
                // The oldest action that must leave the window first.
                let until = recent
                    .len()
                    .checked_sub(usize::try_from(max.max(0)).unwrap_or(0))
                    .and_then(|i| recent.get(i))
                    .map(|t| add(*t, hour));
                return Gate::Wait {
                    until,
                    reason: format!(
                        "Runbook {rb} allows {max} actions per hour and {} were taken in the last hour",
                        recent.len()
                    ),
                };
            }
        }
        if spec.dry_run {
            return Gate::DryRun(format!("Runbook {rb} is in dry-run (spec.dryRun)"));
        }
    }
    if input.global_dry_run {
        return Gate::DryRun("the operator runs with --dry-run".into());
    }
    Gate::Go
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// When the workload's current revision rolled out: the creation of a
/// Deployment's newest ReplicaSet, of a StatefulSet's or DaemonSet's newest
/// ControllerRevision (a CronJob has no rollout).
fn rolled_out_at(t: Target<'_>) -> Option<Timestamp> {
    let newest_cr = |uid: Option<&str>, revs| {
        uid.and_then(|u| rollout::newest_revision(u, revs))
            .and_then(|c| c.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    match t {
        Target::Deployment(w) => newest_replica_set(w)
            .and_then(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        Target::StatefulSet(s) => newest_cr(s.object.metadata.uid.as_deref(), s.revisions),
        Target::DaemonSet(d) => newest_cr(d.object.metadata.uid.as_deref(), d.revisions),
        Target::CronJob(_) => None,
    }
}

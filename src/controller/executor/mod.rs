//! The mitigation executor: runs the step the lifecycle cleared
//! (`Transition::StepReady`), drives a `Running` step to `Succeeded`,
//! watches a succeeded step for changes by other managers, and reverts
//! `revertOnResolve` steps once the Incident is resolved.
//!
//! Exactly once: before any workload write, the step's `before` and
//! concrete intent are stored in the Incident status (server-side apply with
//! the Incident's resourceVersion as a precondition, so a reconcile from a
//! stale cache cannot start a step twice). Every workload write is a JSON
//! patch with a precondition: the workload's generation (Deployment,
//! StatefulSet, DaemonSet, CronJob), or for an HPA (which kube-apiserver
//! gives no generation) its resourceVersion; a DeletePods step deletes each
//! recorded pod with uid and resourceVersion preconditions. A
//! `Running` step is only written again when the workload does not hold the
//! intent yet and is unchanged since the intent was recorded (same
//! generation; same HPA spec); otherwise it is verified, or recorded as
//! changed by someone else. A refused write (422, any other 4xx but 409 and
//! 429) fails the step with the server's reason; it is never retried.
//! Decisions are in [`crate::core::mitigation`].
//!
//! Layout:
//! - `error`: [`Error`], what a failed read or intent write reports.
//! - `read`: the fresh reads of the target (a Deployment with its
//!   ReplicaSets; a StatefulSet or DaemonSet with its ControllerRevisions and
//!   pods; a CronJob; HPAs) and the staleness check of the cached Incident.
//! - `write`: the fenced workload write (`send`), the intent record and how
//!   a write's result is taken (`Run::apply`).
//! - `start`: starting a cleared step (gate, plan, intent, write).
//! - `drive`: a `Running` step to its end, and the watch over a succeeded
//!   one for changes by other managers.
//! - `revert`: `revertOnResolve` once the Incident is resolved.

mod drive;
mod error;
mod gitops;
mod read;
mod revert;
mod start;
mod write;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;

use super::context::Context;
use crate::api::{Incident, MitigationStep, Runbook, StepState, TargetKind};
use crate::core::lifecycle::{self, Decision, StepOutcome, Transition};
use crate::core::mitigation::key;

pub use error::Error;
pub use gitops::{release_on_delete, PAUSE_FINALIZER};
pub use read::{prefetch, reads_target, Object, Prefetch};

/// What the executor asks of the reconcile.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Look again after this long (a rollout in progress, a conflict).
    pub requeue: Option<Duration>,
    /// The cached Incident was stale (the intent write met a newer version):
    /// write nothing now and reconcile again from fresh data.
    pub stale: bool,
    /// Evidence was captured in this reconcile, before the workload write
    /// (the reconcile must not collect it again after the write).
    pub evidence_taken: bool,
    /// The Incident's resourceVersion after the executor's own status
    /// writes in this reconcile (the intent, the evidence reference): the
    /// reconcile's status apply is fenced by it instead of the cached one.
    pub resource_version: Option<String>,
    /// The GitOps pause finalizer was added in this reconcile.
    pub finalizer_added: bool,
}

/// How soon to look at a rollout in progress again.
const VERIFY_INTERVAL: Duration = Duration::from_secs(2);
/// How soon to retry after a conflict or a server error.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Message prefix of a step failed by an external change (see lifecycle).
const EXTERNAL_PREFIX: &str = "changed by another manager";
/// Message prefix of a step whose change landed but failed verification.
const APPLIED_PREFIX: &str = "applied, but";
/// Message prefix of a step whose change landed but did not roll out in time.
const DEADLINE_PREFIX: &str = "the change did not roll out";

/// The target of the Incident's steps.
#[derive(Debug, Clone)]
struct Tgt {
    kind: TargetKind,
    name: String,
}

impl Tgt {
    fn key(&self) -> (TargetKind, &str) {
        (self.kind, self.name.as_str())
    }
}

impl std::fmt::Display for Tgt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

/// Whether a step of `action` reads the target's history (a Deployment's
/// ReplicaSets; a StatefulSet's or DaemonSet's ControllerRevisions and pods).
fn needs_history(action: crate::api::MitigationAction) -> bool {
    matches!(
        action,
        crate::api::MitigationAction::RolloutUndo | crate::api::MitigationAction::DeletePods
    )
}

fn is_dry_run(intent: &BTreeMap<String, String>) -> bool {
    intent.contains_key(key::DRY_RUN)
}

struct Run<'a> {
    ctx: &'a Context,
    inc: &'a Incident,
    runbook: Option<&'a Runbook>,
    ns: &'a str,
    decision: &'a mut Decision,
    window: Duration,
    out: Outcome,
    began: std::time::Instant,
    /// This reconcile's reads for starting a step (see [`Prefetch`]).
    prefetch: Option<Prefetch>,
    /// The outcome of the evidence taken before a workload write, for its
    /// Event (published after the write).
    evidence_report: Option<Result<String, crate::controller::artifacts::ArtifactError>>,
}

impl<'a> Run<'a> {
    fn record(&mut self, index: usize, outcome: StepOutcome) {
        let now = (self.ctx.clock)();
        let t = lifecycle::record_step_outcome(
            &mut self.decision.status,
            index,
            outcome,
            self.window,
            self.inc.metadata.generation,
            now,
        );
        self.decision.transitions.extend(t);
    }

    fn requeue(&mut self, d: Duration) {
        self.out.requeue = Some(self.out.requeue.map_or(d, |r| r.min(d)));
    }

    fn set_message(&mut self, index: usize, message: String) {
        if let Some(st) = self.decision.status.mitigations.get_mut(index) {
            st.message = message;
        }
    }

    fn step(&self, index: usize) -> Option<&'a MitigationStep> {
        let inc: &'a Incident = self.inc;
        inc.spec.mitigations.get(index)
    }

    fn incident_name(&self) -> String {
        self.inc.name_any()
    }
}

/// Run the executor on this reconcile's decision: it may add step outcomes
/// and transitions to `decision` (the caller writes the status and
/// publishes). `window` is the monitoring window in force; `prefetch` the
/// reads this reconcile made for it ([`prefetch`]).
pub async fn execute(
    ctx: &Context,
    inc: &Incident,
    runbook: Option<&Runbook>,
    ns: &str,
    decision: &mut Decision,
    window: Duration,
    prefetch: Option<Prefetch>,
) -> Result<Outcome, Error> {
    let Some(target) = inc
        .spec
        .target
        .as_ref()
        .filter(|t| {
            matches!(
                t.kind,
                TargetKind::Deployment
                    | TargetKind::StatefulSet
                    | TargetKind::DaemonSet
                    | TargetKind::CronJob
            )
        })
        .map(|t| Tgt {
            kind: t.kind,
            name: t.name.clone(),
        })
    else {
        return Ok(Outcome::default());
    };
    if inc.spec.mitigations.is_empty() {
        return Ok(Outcome::default());
    }
    let ready = decision.transitions.iter().find_map(|t| match t {
        Transition::StepReady { index, .. } => Some(*index),
        _ => None,
    });
    let running = decision
        .status
        .mitigations
        .iter()
        .position(|m| m.state == StepState::Running);
    let resolved = decision.status.resolved_at.is_some();
    let mut run = Run {
        ctx,
        inc,
        runbook,
        ns,
        decision,
        window,
        out: Outcome::default(),
        began: std::time::Instant::now(),
        prefetch,
        evidence_report: None,
    };
    if let Some(i) = running {
        run.drive(i, &target).await?;
    } else if let Some(i) = ready {
        let started = run.start(i, &target).await;
        // The Event of evidence taken before a write that did not go out.
        run.publish_evidence_report().await;
        started?;
    } else if !resolved {
        // The step under monitoring: the last one that left Pending.
        let monitored = run
            .decision
            .status
            .mitigations
            .iter()
            .rposition(|m| m.state != StepState::Pending && m.state != StepState::AwaitingApproval)
            .filter(|i| run.decision.status.mitigations[*i].state == StepState::Succeeded);
        if let Some(i) = monitored {
            run.check_external(i, &target).await?;
        }
    }
    if run.out.stale {
        return Ok(run.out);
    }
    if run.decision.status.resolved_at.is_some() {
        run.revert(&target).await?;
    }
    // GitOps owners paused by a step get their automation back (after the
    // reverts, so that the owner never sees a half-reverted workload).
    run.gitops_restore().await;
    Ok(run.out)
}

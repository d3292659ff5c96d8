//! A `Running` step driven to its end (the recorded intent applied, then
//! verified), and a succeeded step watched for changes by other managers.

use std::time::Duration;

use tracing::info;

use super::error::Error;
use super::read::{read, Hpas};
use super::{is_dry_run, needs_history, Run, Tgt, VERIFY_INTERVAL};
use crate::api::StepState;
use crate::core::lifecycle::{self, StepOutcome};
use crate::core::mitigation::{self, key, Actor, Plan, Verification};

impl Run<'_> {
    /// A `Running` step: apply the recorded intent if it never reached the
    /// workload, else verify it.
    pub(super) async fn drive(&mut self, index: usize, target: &Tgt) -> Result<(), Error> {
        let Some(step) = self.step(index) else {
            return Ok(());
        };
        let intent = self.decision.status.mitigations[index].intent.clone();
        let Some(read) = read(
            self.ctx,
            self.ns,
            target.key(),
            needs_history(step.action),
            Hpas::of_intent(&intent),
        )
        .await?
        else {
            self.record(
                index,
                StepOutcome::Failed {
                    message: format!("{target} disappeared from namespace {}", self.ns),
                },
            );
            return Ok(());
        };
        let w = read.workload();
        if mitigation::is_applied(step, &intent, w) {
            // Written, but the status that said its owner was paused may
            // have been lost (a crash): say it now.
            self.gitops_applied(index).await;
            match mitigation::verify(step, &intent, w) {
                Verification::Done { after, message } => {
                    self.record(index, StepOutcome::Succeeded { after, message });
                    self.ctx
                        .metrics
                        .mitigation(step.action.as_str(), "succeeded");
                    self.observe_mitigated();
                }
                Verification::Waiting(message) => {
                    if let Some(message) = self.verify_timeout(index, read.progress_deadline()) {
                        self.record(index, StepOutcome::Failed { message });
                        self.ctx.metrics.mitigation(step.action.as_str(), "failed");
                    } else {
                        self.set_message(index, message);
                        self.requeue(VERIFY_INTERVAL);
                    }
                }
                Verification::Failed(message) => {
                    self.record(
                        index,
                        StepOutcome::Failed {
                            message: format!("{} {message}", super::APPLIED_PREFIX),
                        },
                    );
                    self.ctx.metrics.mitigation(step.action.as_str(), "failed");
                }
            }
            return Ok(());
        }
        if !mitigation::unchanged_since_intent(&intent, w) {
            let message = mitigation::external_change(step, &intent, w)
                .unwrap_or_else(|| "the workload changed".into());
            self.record(index, StepOutcome::ExternalChange { message });
            self.ctx
                .metrics
                .mitigation(step.action.as_str(), "external_change");
            return Ok(());
        }
        // The intent never reached the workload (a crash, a failed write):
        // apply it now, from the same state it was planned on.
        let name = self.incident_name();
        let actor = Actor {
            incident: &name,
            step,
        };
        let now = (self.ctx.clock)();
        match mitigation::plan(actor, w, Some(&intent), now) {
            Plan::Act(p) => {
                let same = [
                    key::TO_REVISION,
                    key::REPLICA_SET,
                    key::CONTROLLER_REVISION,
                    key::PODS,
                    key::SUSPEND,
                    key::REPLICAS,
                    key::HPA_MIN_REPLICAS,
                    key::ENV,
                    key::RESTARTED_AT,
                ]
                .iter()
                .all(|k| p.intent.get(*k) == intent.get(*k));
                if !same {
                    self.record(
                        index,
                        StepOutcome::Failed {
                            message: format!(
                                "the plan changed since the intent was recorded (now: {}); not acting on a different plan",
                                p.description
                            ),
                        },
                    );
                    return Ok(());
                }
                if !self.gitops_suspend(index).await {
                    return Ok(());
                }
                info!(incident = %name, step = %step.name, "applying recorded intent: {}", p.description);
                self.apply(index, step, &p.write).await;
            }
            Plan::Noop(message) | Plan::Refuse(message) => {
                self.record(index, StepOutcome::Failed { message });
                self.ctx.metrics.mitigation(step.action.as_str(), "failed");
            }
        }
        Ok(())
    }

    /// A rollout that has not completed within the Deployment's progress
    /// deadline (default 600s) after the step started fails the step.
    fn verify_timeout(&self, index: usize, deadline: i32) -> Option<String> {
        let started = self.decision.status.mitigations[index]
            .started_at
            .as_ref()?
            .0;
        let limit = Duration::from_secs(u64::try_from(deadline).unwrap_or(600));
        let elapsed =
            std::time::Duration::try_from((self.ctx.clock)().duration_since(started)).ok()?;
        (elapsed > limit).then(|| {
            format!(
                "{} within the progress deadline of {}",
                super::DEADLINE_PREFIX,
                lifecycle::human(limit)
            )
        })
    }

    fn observe_mitigated(&self) {
        let s = &self.decision.status;
        if let (Some(opened), Some(sev)) = (s.opened_at.as_ref(), s.severity) {
            let after = std::time::Duration::try_from((self.ctx.clock)().duration_since(opened.0))
                .unwrap_or_default();
            // Only the first success of the incident counts.
            let successes = s
                .mitigations
                .iter()
                .filter(|m| m.state == StepState::Succeeded || m.state == StepState::Ineffective)
                .count();
            if successes == 1 {
                self.ctx.metrics.mitigated(sev, after);
            }
        }
    }

    /// A succeeded step under monitoring: is its change still in place?
    pub(super) async fn check_external(&mut self, index: usize, target: &Tgt) -> Result<(), Error> {
        let Some(step) = self.step(index) else {
            return Ok(());
        };
        let intent = self.decision.status.mitigations[index].intent.clone();
        if intent.is_empty() || is_dry_run(&intent) {
            return Ok(());
        }
        let Some(read) = read(
            self.ctx,
            self.ns,
            target.key(),
            needs_history(step.action),
            Hpas::of_intent(&intent),
        )
        .await?
        else {
            return Ok(());
        };
        if let Some(message) = mitigation::external_change(step, &intent, read.workload()) {
            self.record(index, StepOutcome::ExternalChange { message });
            self.ctx
                .metrics
                .mitigation(step.action.as_str(), "external_change");
        }
        Ok(())
    }
}

//! `revertOnResolve`: once the Incident is resolved, the steps that asked
//! for it are undone, newest first.

use tracing::info;

use super::error::Error;
use super::read::{read, Hpas};
use super::write::{send, Written};
use super::{is_dry_run, needs_history, Run, Tgt, EXTERNAL_PREFIX, RETRY_INTERVAL};
use crate::api::StepState;
use crate::core::lifecycle::StepOutcome;
use crate::core::mitigation::{self, key, Actor, Revert};

impl Run<'_> {
    /// `revertOnResolve` once resolved: newest step first.
    pub(super) async fn revert(&mut self, target: &Tgt) -> Result<(), Error> {
        let n = self.decision.status.mitigations.len();
        for index in (0..n).rev() {
            let Some(step) = self.step(index) else {
                continue;
            };
            let st = &self.decision.status.mitigations[index];
            // A step undone by someone else is looked at too: its revert
            // is declined (with the reason) unless the prior value is back.
            let external = st.state == StepState::Failed && st.message.starts_with(EXTERNAL_PREFIX);
            if !step.revert_on_resolve
                || !(matches!(st.state, StepState::Succeeded | StepState::Ineffective) || external)
                || st.after.contains_key(key::REVERT)
                || st.intent.is_empty()
                || is_dry_run(&st.intent)
            {
                continue;
            }
            let (before, intent, previous_env) = (
                st.before.clone(),
                st.intent.clone(),
                st.previous_env.clone(),
            );
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
                    StepOutcome::NotReverted {
                        message: format!("{target} no longer exists"),
                    },
                );
                continue;
            };
            let name = self.incident_name();
            let actor = Actor {
                incident: &name,
                step,
            };
            match mitigation::plan_revert(actor, &before, &intent, &previous_env, read.workload()) {
                Revert::Act { write, description } => match send(self.ctx, self.ns, &write).await {
                    Written::Ok => {
                        info!(incident = %name, step = %step.name, "{description}");
                        self.ctx
                            .metrics
                            .mitigation(step.action.as_str(), "reverted");
                        self.record(
                            index,
                            StepOutcome::Reverted {
                                message: description,
                            },
                        );
                    }
                    Written::Conflict | Written::Transient(_) => self.requeue(RETRY_INTERVAL),
                    Written::Unprocessable(_) if self.generation_moved(&write).await => {
                        self.requeue(RETRY_INTERVAL)
                    }
                    Written::Unprocessable(message) | Written::Rejected(message) => self.record(
                        index,
                        StepOutcome::NotReverted {
                            message: format!("not reverted: {message}"),
                        },
                    ),
                },
                Revert::AlreadyReverted(message) => {
                    self.record(index, StepOutcome::Reverted { message })
                }
                Revert::Refuse(message) => self.record(index, StepOutcome::NotReverted { message }),
            }
        }
        Ok(())
    }
}

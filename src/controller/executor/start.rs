//! Starting a step the lifecycle cleared: the safety gate, the plan, the
//! intent recorded, then the workload write.

use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tracing::{debug, info};

use super::error::{read_err, Error};
use super::read::{cache_is_current, read, Hpas, Needs};
use super::write::{record_intent, take_evidence};
use super::{Run, Tgt, EXTERNAL_PREFIX};
use crate::api::{Incident, RunbookSpec, StepState, TargetKind};
use crate::core::authority::RunbookId;
use crate::core::lifecycle::StepOutcome;
use crate::core::mitigation::{self, key, Actor, Gate, GateInput, Plan};

impl Run<'_> {
    /// The governing Runbook (`namespace/name`, spec): every policy of the
    /// step (paused, dryRun, limits) is read from it.
    fn runbook(&self) -> Option<(String, RunbookSpec)> {
        let rb = self.runbook?;
        Some((RunbookId::of(rb).to_string(), rb.spec.clone()))
    }

    /// Earlier actions in the namespace (for the cooldown and hourly limit);
    /// the cooldown counts those on a target of the same kind and name.
    async fn history(&self, kind: TargetKind) -> Result<Vec<mitigation::ActionRecord>, Error> {
        let api: Api<Incident> = Api::namespaced(self.ctx.client.clone(), self.ns);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(read_err(format!("incidents in {}", self.ns)))?;
        let me = self.inc.name_any();
        let mut out = Vec::new();
        for i in &list.items {
            let Some(t) = i
                .spec
                .target
                .as_ref()
                .filter(|t| t.kind != TargetKind::Pod && t.kind != TargetKind::Job)
            else {
                continue;
            };
            // Another kind's workload of the same name is another workload
            // (its actions still count towards the Runbook's hourly limit).
            let workload = if t.kind == kind {
                t.name.clone()
            } else {
                format!("{}/{}", t.kind.as_str(), t.name)
            };
            // This incident's own record is the newest we have.
            let status = if i.name_any() == me {
                Some(&self.decision.status)
            } else {
                i.status.as_ref()
            };
            if let Some(s) = status {
                let rb = i
                    .spec
                    .runbook_ref
                    .as_ref()
                    .map(|r| format!("{}/{}", r.namespace_or(self.ns), r.name));
                out.extend(mitigation::actions_of(s, &workload, rb.as_deref()));
            }
        }
        Ok(out)
    }

    /// Start step `index` (the lifecycle cleared it): gate, plan, record
    /// the intent, write.
    pub(super) async fn start(&mut self, index: usize, target: &Tgt) -> Result<(), Error> {
        let Some(step) = self.step(index) else {
            return Ok(());
        };
        let needs = Needs::of(step);
        let runbook = self.runbook();
        // This reconcile's reads when it made them (see `Prefetch`), else
        // the reads and the staleness check, together.
        let prefetched = self.prefetch.as_mut().and_then(|p| p.take_for_start(needs));
        let (read, current) = match prefetched {
            Some((read, current)) => (Ok(read), Ok(current)),
            None => {
                tokio::join!(
                    read(
                        self.ctx,
                        self.ns,
                        target.key(),
                        needs.history,
                        if needs.hpas { Hpas::All } else { Hpas::None },
                    ),
                    cache_is_current(self.ctx, self.inc, self.ns),
                )
            }
        };
        if !current? {
            debug!(incident = %self.inc.name_any(), step = %step.name, "stale incident; not starting");
            self.out.stale = true;
            return Ok(());
        }
        let Some(read) = read? else {
            self.record(
                index,
                StepOutcome::Failed {
                    message: format!(
                        "{target} not found in namespace {} (kube-incident acts only in the Incident's own namespace)",
                        self.ns
                    ),
                },
            );
            self.ctx.metrics.mitigation(step.action.as_str(), "failed");
            return Ok(());
        };
        // Someone undid an earlier step: automatic steps stop, a person decides.
        let held = self
            .decision
            .status
            .mitigations
            .iter()
            .any(|m| m.state == StepState::Failed && m.message.starts_with(EXTERNAL_PREFIX));
        let approved = step
            .approved_by
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        if held && !approved {
            self.record(
                index,
                StepOutcome::Skipped {
                    message: "an earlier step was undone by another manager; kube-incident does not fight it with automatic steps (set approvedBy to run this step anyway)".into(),
                },
            );
            return Ok(());
        }
        let needs_history = runbook.as_ref().is_some_and(|(_, s)| {
            s.limits
                .as_ref()
                .is_some_and(|l| l.cooldown.is_some() || l.max_actions_per_hour.is_some())
        });
        let history = if needs_history {
            self.history(target.kind).await?
        } else {
            Vec::new()
        };
        let now = (self.ctx.clock)();
        let gate = mitigation::gate(GateInput {
            step,
            runbook: runbook.as_ref().map(|(n, s)| (n.as_str(), s)),
            global_dry_run: self.ctx.dry_run,
            workload: read.workload(),
            history: &history,
            now,
        });
        let dry = match gate {
            Gate::Go => None,
            Gate::DryRun(why) => Some(why),
            Gate::Wait { until, reason } => {
                self.set_message(index, format!("waiting: {reason}"));
                let d = until
                    .and_then(|u| std::time::Duration::try_from(u.duration_since(now)).ok())
                    .map_or(self.ctx.resync, |d| d + Duration::from_secs(1));
                self.requeue(d);
                return Ok(());
            }
            Gate::Skip(message) => {
                self.record(index, StepOutcome::Skipped { message });
                self.ctx.metrics.mitigation(step.action.as_str(), "skipped");
                return Ok(());
            }
        };
        let name = self.incident_name();
        let actor = Actor {
            incident: &name,
            step,
        };
        let mut planned = match mitigation::plan(actor, read.workload(), None, now) {
            Plan::Act(p) => p,
            Plan::Noop(message) => {
                self.record(index, StepOutcome::Skipped { message });
                self.ctx.metrics.mitigation(step.action.as_str(), "skipped");
                return Ok(());
            }
            Plan::Refuse(message) => {
                self.record(index, StepOutcome::Failed { message });
                self.ctx.metrics.mitigation(step.action.as_str(), "failed");
                return Ok(());
            }
        };
        // A target applied from Git: the Runbook's GitOps policy decides
        // (and the owner to pause is part of the intent).
        if dry.is_some() {
            self.gitops_note(&read, &mut planned);
        } else if let super::gitops::Prepared::Stop = self
            .gitops_prepare(index, step.action, &read, &mut planned)
            .await
        {
            return Ok(());
        }
        if let Some(why) = dry {
            let mut intent = planned.intent.clone();
            intent.insert(key::DRY_RUN.into(), "true".into());
            self.record(
                index,
                StepOutcome::DryRun {
                    before: planned.before.clone(),
                    intent,
                    message: format!("dry-run ({why}): would have {}", planned.description),
                },
            );
            self.ctx.metrics.mitigation(step.action.as_str(), "dry_run");
            return Ok(());
        }
        self.record(
            index,
            StepOutcome::Started {
                before: planned.before.clone(),
                intent: planned.intent.clone(),
                message: planned.description.clone(),
            },
        );
        if let Some(st) = self.decision.status.mitigations.get_mut(index) {
            st.previous_env = planned.previous_env.clone();
        }
        // The intent is stored before the workload is touched, and so is
        // the evidence of the failing state if the Incident has none yet:
        // both at once. The intent is fenced by the cached Incident's
        // resourceVersion and the evidence reference is set after the
        // evidence ConfigMap is written, so the intent lands first; should
        // the reference ever land first, the intent meets a 409 and nothing
        // is started (the next reconcile starts over, evidence in place).
        let t = std::time::Instant::now();
        debug!(step = %step.name, planned_ms = self.began.elapsed().as_secs_f64() * 1e3, "planned");
        let caps = self.evidence_due().cloned();
        let (intent, evidence) = tokio::join!(
            record_intent(
                self.ctx,
                self.inc,
                self.ns,
                &self.decision.status,
                &step.name,
            ),
            async {
                match &caps {
                    Some(caps) => Some(take_evidence(self.ctx, self.inc, &step.name, caps).await),
                    None => None,
                }
            },
        );
        let evidence_rv = evidence.as_ref().and_then(|e| e.resource_version.clone());
        if let Some(evidence) = evidence {
            self.evidence_taken(evidence);
        }
        let Some(rv) = intent? else {
            debug!(incident = %name, step = %step.name, "stale incident; not starting");
            self.out.stale = true;
            return Ok(());
        };
        // The evidence reference, when set, was set after the intent (the
        // intent's precondition held): its resourceVersion is the newer.
        self.out.resource_version = Some(evidence_rv.unwrap_or(rv));
        info!(incident = %name, namespace = %self.ns, step = %step.name, "{}", planned.description);
        debug!(step = %step.name, intent_ms = t.elapsed().as_secs_f64() * 1e3, "intent recorded");
        // The owner is paused after the intent (which names it) is stored
        // and before the workload write, so that a crash in between is
        // finished from the intent.
        if !self.gitops_suspend(index).await {
            return Ok(());
        }
        let t = std::time::Instant::now();
        self.apply(index, step, &planned.write).await;
        debug!(incident = %name, write_ms = t.elapsed().as_secs_f64() * 1e3, "workload write sent");
        Ok(())
    }
}

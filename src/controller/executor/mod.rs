//! The mitigation executor: runs the step the lifecycle cleared
//! (`Transition::StepReady`), drives a `Running` step to `Succeeded`,
//! watches a succeeded step for changes by other managers, and reverts
//! `revertOnResolve` steps once the Incident is resolved.
//!
//! Exactly once: before any workload write, the step's `before` and
//! concrete intent are stored in the Incident status (server-side apply with
//! the Incident's resourceVersion as a precondition, so a reconcile from a
//! stale cache cannot start a step twice). Every workload write is a JSON
//! patch with a precondition: the Deployment's generation, or for an HPA
//! (which kube-apiserver gives no generation) its resourceVersion. A
//! `Running` step is only written again when the workload does not hold the
//! intent yet and is unchanged since the intent was recorded (same
//! generation; same HPA spec); otherwise it is verified, or recorded as
//! changed by someone else. A refused write (422, any other 4xx but 409 and
//! 429) fails the step with the server's reason; it is never retried.
//! Decisions are in [`crate::core::mitigation`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::context::Context;
use crate::api::{
    Incident, IncidentStatus, MitigationAction, MitigationStep, Runbook, RunbookSpec, StepState,
    TargetKind, FIELD_MANAGER,
};
use crate::core::authority::RunbookId;
use crate::core::lifecycle::{self, Decision, StepOutcome, Transition};
use crate::core::mitigation::{
    self, key, Actor, Gate, GateInput, Plan, Revert, Verification, Workload, Write, WriteTarget,
};
use crate::core::selector;

/// Errors of the executor; each is retried by the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to record the intent of mitigation {step:?} in incident {incident}: {source}")]
    RecordIntent {
        incident: String,
        step: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ExecutorRead",
            Error::RecordIntent { .. } => "RecordIntent",
        }
    }
}

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
}

/// How soon to look at a rollout in progress again.
const VERIFY_INTERVAL: Duration = Duration::from_secs(2);
/// How soon to retry after a conflict or a server error.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Message prefix of a step failed by an external change (see lifecycle).
const EXTERNAL_PREFIX: &str = "changed by another manager";

struct Read {
    deployment: Deployment,
    replica_sets: Vec<ReplicaSet>,
    hpas: Vec<HorizontalPodAutoscaler>,
}

impl Read {
    fn workload(&self) -> Workload<'_> {
        Workload {
            deployment: &self.deployment,
            replica_sets: &self.replica_sets,
            hpas: &self.hpas,
        }
    }
}

fn read_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Read { what, source }
}

/// Which HorizontalPodAutoscalers a read needs.
#[derive(Debug, Clone, Copy)]
enum Hpas<'a> {
    None,
    /// Every HPA of the namespace (planning a Scale: which one manages the
    /// Deployment?).
    All,
    /// The one a recorded intent names.
    Named(&'a str),
}

impl<'a> Hpas<'a> {
    fn of_intent(intent: &'a BTreeMap<String, String>) -> Hpas<'a> {
        intent
            .get(key::HPA)
            .map_or(Hpas::None, |n| Hpas::Named(n.as_str()))
    }
}

/// Read the target Deployment (fresh from the API server, never a cache),
/// its ReplicaSets and the HPAs asked for. `None`: no such Deployment in
/// the Incident's namespace.
async fn read(
    ctx: &Context,
    ns: &str,
    name: &str,
    replica_sets: bool,
    hpas: Hpas<'_>,
) -> Result<Option<Read>, Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let Some(deployment) = deployments
        .get_opt(name)
        .await
        .map_err(read_err(format!("deployment {ns}/{name}")))?
    else {
        return Ok(None);
    };
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let lp = replica_set_list_params(&deployment);
    let replica_sets = if replica_sets {
        rs_api
            .list(&lp)
            .await
            .map_err(read_err(format!("replicasets of {ns}/{name}")))?
            .items
    } else {
        Vec::new()
    };
    let hpa_api = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns);
    let hpas = match hpas {
        Hpas::None => Vec::new(),
        Hpas::All => {
            hpa_api
                .list(&ListParams::default())
                .await
                .map_err(read_err(format!("horizontalpodautoscalers in {ns}")))?
                .items
        }
        Hpas::Named(n) => hpa_api
            .get_opt(n)
            .await
            .map_err(read_err(format!("horizontalpodautoscaler {ns}/{n}")))?
            .into_iter()
            .collect(),
    };
    Ok(Some(Read {
        deployment,
        replica_sets,
        hpas,
    }))
}

/// The list parameters of a Deployment's ReplicaSets: its whole
/// `spec.selector` (matchLabels and matchExpressions). A selector the API
/// server would not have accepted lists the namespace's ReplicaSets; either
/// way the core keeps only those the Deployment controls.
fn replica_set_list_params(deployment: &Deployment) -> ListParams {
    match selector::deployment_selector(deployment) {
        Ok(sel) => ListParams::default().labels_from(&sel),
        Err(e) => {
            debug!(deployment = %deployment.name_any(), error = %e, "listing every ReplicaSet of the namespace");
            ListParams::default()
        }
    }
}

#[cfg(test)]
mod selector_tests;

/// The result of a workload write.
enum Written {
    Ok,
    /// 409: the object changed since it was read; plan again.
    Conflict,
    /// 5xx, 429 or a transport error: retry the same.
    Transient(String),
    /// 422: a generation precondition failed, or the change is invalid.
    Unprocessable(String),
    /// The server refused it (4xx): the step fails with this reason.
    Rejected(String),
}

async fn send(ctx: &Context, ns: &str, write: &Write) -> Written {
    if !ctx.leadership.is_leader() {
        // Deposed since the plan was made: write nothing. Like a conflict,
        // the step is looked at again, by whoever leads then.
        return Written::Conflict;
    }
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    let patch: Result<json_patch::Patch, _> = serde_json::from_value(write.patch.clone());
    let patch = match patch {
        Ok(p) => p,
        Err(e) => return Written::Rejected(format!("cannot encode the patch: {e}")),
    };
    let res = match &write.target {
        WriteTarget::Deployment(name) => Api::<Deployment>::namespaced(ctx.client.clone(), ns)
            .patch(name, &pp, &Patch::<()>::Json(patch))
            .await
            .map(|_| ()),
        WriteTarget::Hpa(name) => {
            Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns)
                .patch(name, &pp, &Patch::<()>::Json(patch))
                .await
                .map(|_| ())
        }
    };
    match res {
        Ok(()) => Written::Ok,
        Err(kube::Error::Api(s)) if s.code == 409 => Written::Conflict,
        Err(kube::Error::Api(s)) if s.code == 422 => Written::Unprocessable(format!(
            "the API server refused the change: {} ({} {})",
            s.message, s.code, s.reason
        )),
        Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {
            Written::Transient(format!("{} ({})", s.message, s.code))
        }
        Err(kube::Error::Api(s)) => Written::Rejected(format!(
            "the API server refused the change: {} ({} {})",
            s.message, s.code, s.reason
        )),
        Err(e) => Written::Transient(e.to_string()),
    }
}

/// Whether the cached Incident is the stored one (same resourceVersion):
/// our previous status write may not have reached the cache yet.
async fn cache_is_current(ctx: &Context, inc: &Incident, ns: &str) -> Result<bool, Error> {
    let name = inc.name_any();
    let api: Api<Incident> = Api::namespaced(ctx.client.clone(), ns);
    let stored = api
        .get_metadata(&name)
        .await
        .map_err(read_err(format!("incident {ns}/{name}")))?;
    Ok(stored.metadata.resource_version == inc.metadata.resource_version)
}

/// Server-side apply of the status carrying the cached Incident's
/// resourceVersion (kube-apiserver enforces it as a precondition).
/// `Ok(None)`: the cache was stale (or this instance no longer leads);
/// else the Incident's new resourceVersion.
async fn record_intent(
    ctx: &Context,
    inc: &Incident,
    ns: &str,
    status: &IncidentStatus,
    step: &str,
) -> Result<Option<String>, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(None);
    }
    super::status::apply_if_unchanged(&ctx.client, inc, status)
        .await
        .map_err(|source| Error::RecordIntent {
            incident: format!("{ns}/{}", inc.name_any()),
            step: step.to_string(),
            source,
        })
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

    /// The governing Runbook (`namespace/name`, spec): every policy of the
    /// step (paused, dryRun, limits) is read from it.
    async fn runbook(&self) -> Option<(String, RunbookSpec)> {
        let rb = self.runbook?;
        Some((RunbookId::of(rb).to_string(), rb.spec.clone()))
    }

    /// Earlier actions in the namespace (for the cooldown and hourly limit).
    async fn history(&self) -> Result<Vec<mitigation::ActionRecord>, Error> {
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
                .filter(|t| t.kind == TargetKind::Deployment)
            else {
                continue;
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
                out.extend(mitigation::actions_of(s, &t.name, rb.as_deref()));
            }
        }
        Ok(out)
    }

    /// Start step `index` (the lifecycle cleared it): gate, plan, record
    /// the intent, write.
    async fn start(&mut self, index: usize, target: &str) -> Result<(), Error> {
        let Some(step) = self.step(index) else {
            return Ok(());
        };
        let needs_rs = step.action == MitigationAction::RolloutUndo
            || step
                .when
                .as_ref()
                .is_some_and(|w| w.rollout_within.is_some());
        // The reads, the Runbook and the staleness check go out together.
        let (read, runbook, current) = tokio::join!(
            read(
                self.ctx,
                self.ns,
                target,
                needs_rs,
                if step.action == MitigationAction::Scale {
                    Hpas::All
                } else {
                    Hpas::None
                },
            ),
            self.runbook(),
            cache_is_current(self.ctx, self.inc, self.ns),
        );
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
                        "Deployment {target} not found in namespace {} (kube-incident acts only in the Incident's own namespace)",
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
            self.history().await?
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
        let planned = match mitigation::plan(actor, read.workload(), None, now) {
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
        // The intent is stored before the workload is touched.
        let t = std::time::Instant::now();
        debug!(step = %step.name, planned_ms = self.began.elapsed().as_secs_f64() * 1e3, "planned");
        let Some(rv) = record_intent(
            self.ctx,
            self.inc,
            self.ns,
            &self.decision.status,
            &step.name,
        )
        .await?
        else {
            debug!(incident = %name, step = %step.name, "stale incident; not starting");
            self.out.stale = true;
            return Ok(());
        };
        self.out.resource_version = Some(rv);
        info!(incident = %name, namespace = %self.ns, step = %step.name, "{}", planned.description);
        debug!(step = %step.name, intent_ms = t.elapsed().as_secs_f64() * 1e3, "intent recorded");
        let t = std::time::Instant::now();
        self.apply(index, step, &planned.write).await;
        debug!(incident = %name, write_ms = t.elapsed().as_secs_f64() * 1e3, "workload write sent");
        Ok(())
    }

    /// Evidence before the incident's first workload write: the failing
    /// state, not the repaired one. Taken unless the Incident already has
    /// evidence (collected at open, before anything was changed); bounded
    /// by the evidence timeout, after which the write goes ahead.
    async fn evidence_before_write(&mut self, step: &MitigationStep) {
        let Some(caps) = self.ctx.evidence.as_ref() else {
            return;
        };
        if self.out.evidence_taken || self.decision.status.evidence_ref.is_some() {
            return;
        }
        let t = std::time::Instant::now();
        let taken = super::evidence::before_first_write(self.ctx, self.inc, &step.name, caps).await;
        if taken.resource_version.is_some() {
            self.out.resource_version = taken.resource_version;
        }
        debug!(step = %step.name, written = taken.written, ms = t.elapsed().as_secs_f64() * 1e3, "evidence before the first workload write");
        // Taken (or given up on within the bound): either way not again now.
        self.out.evidence_taken = true;
    }

    async fn apply(&mut self, index: usize, step: &MitigationStep, write: &Write) {
        self.evidence_before_write(step).await;
        match send(self.ctx, self.ns, write).await {
            Written::Ok => {
                self.ctx.metrics.mitigation(step.action.as_str(), "applied");
                self.requeue(VERIFY_INTERVAL);
            }
            Written::Conflict => {
                debug!(step = %step.name, "workload changed since read; will plan again");
                self.requeue(RETRY_INTERVAL);
            }
            Written::Transient(e) => {
                warn!(step = %step.name, error = %e, "mitigation write failed; will retry");
                self.set_message(index, format!("retrying after a server error: {e}"));
                self.requeue(RETRY_INTERVAL);
            }
            Written::Unprocessable(message) => {
                // Did the generation precondition fail (the spec moved on:
                // the next reconcile sees it and reports the change) or is
                // the change itself invalid? Writes without a generation
                // test (HPAs: fenced by resourceVersion, a 409) can only be
                // invalid: the step fails, it is never retried.
                if self.generation_moved(write).await {
                    self.requeue(RETRY_INTERVAL);
                } else {
                    warn!(step = %step.name, error = %message, "mitigation write refused");
                    self.record(index, StepOutcome::Failed { message });
                    self.ctx.metrics.mitigation(step.action.as_str(), "failed");
                }
            }
            Written::Rejected(message) => {
                warn!(step = %step.name, error = %message, "mitigation write refused");
                self.record(index, StepOutcome::Failed { message });
                self.ctx.metrics.mitigation(step.action.as_str(), "failed");
            }
        }
    }

    /// After a 422: whether the write tested a generation and the object's
    /// generation differs from it now (the precondition failed; the next
    /// reconcile sees the change). A write without a generation test, or an
    /// object that is gone, did not fail on a precondition. A failed read
    /// counts as moved: the next reconcile reads again and decides.
    async fn generation_moved(&self, write: &Write) -> bool {
        let Some(expected) = mitigation::expected_generation(write) else {
            return false;
        };
        let WriteTarget::Deployment(n) = &write.target else {
            return false;
        };
        match Api::<Deployment>::namespaced(self.ctx.client.clone(), self.ns)
            .get_metadata_opt(n)
            .await
        {
            Ok(Some(m)) => m.metadata.generation != Some(expected),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// A `Running` step: apply the recorded intent if it never reached the
    /// workload, else verify it.
    async fn drive(&mut self, index: usize, target: &str) -> Result<(), Error> {
        let Some(step) = self.step(index) else {
            return Ok(());
        };
        let intent = self.decision.status.mitigations[index].intent.clone();
        let Some(read) = read(
            self.ctx,
            self.ns,
            target,
            step.action == MitigationAction::RolloutUndo,
            Hpas::of_intent(&intent),
        )
        .await?
        else {
            self.record(
                index,
                StepOutcome::Failed {
                    message: format!("Deployment {target} disappeared from namespace {}", self.ns),
                },
            );
            return Ok(());
        };
        let w = read.workload();
        if mitigation::is_applied(step, &intent, w) {
            match mitigation::verify(step, &intent, w) {
                Verification::Done { after, message } => {
                    self.record(index, StepOutcome::Succeeded { after, message });
                    self.ctx
                        .metrics
                        .mitigation(step.action.as_str(), "succeeded");
                    self.observe_mitigated();
                }
                Verification::Waiting(message) => {
                    if let Some(message) = self.verify_timeout(index, &read.deployment) {
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
                            message: format!("applied, but {message}"),
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
    fn verify_timeout(&self, index: usize, d: &Deployment) -> Option<String> {
        let started = self.decision.status.mitigations[index]
            .started_at
            .as_ref()?
            .0;
        let deadline = d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        let limit = Duration::from_secs(u64::try_from(deadline).unwrap_or(600));
        let elapsed =
            std::time::Duration::try_from((self.ctx.clock)().duration_since(started)).ok()?;
        (elapsed > limit).then(|| {
            format!(
                "the change did not roll out within the progress deadline of {}",
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
    async fn check_external(&mut self, index: usize, target: &str) -> Result<(), Error> {
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
            target,
            step.action == MitigationAction::RolloutUndo,
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

    /// `revertOnResolve` once resolved: newest step first.
    async fn revert(&mut self, target: &str) -> Result<(), Error> {
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
                target,
                step.action == MitigationAction::RolloutUndo,
                Hpas::of_intent(&intent),
            )
            .await?
            else {
                self.record(
                    index,
                    StepOutcome::NotReverted {
                        message: format!("Deployment {target} no longer exists"),
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

/// Run the executor on this reconcile's decision: it may add step outcomes
/// and transitions to `decision` (the caller writes the status and
/// publishes). `window` is the monitoring window in force.
pub async fn execute(
    ctx: &Context,
    inc: &Incident,
    runbook: Option<&Runbook>,
    ns: &str,
    decision: &mut Decision,
    window: Duration,
) -> Result<Outcome, Error> {
    let Some(target) = inc
        .spec
        .target
        .as_ref()
        .filter(|t| t.kind == TargetKind::Deployment)
        .map(|t| t.name.clone())
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
    };
    if let Some(i) = running {
        run.drive(i, &target).await?;
    } else if let Some(i) = ready {
        run.start(i, &target).await?;
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
    Ok(run.out)
}

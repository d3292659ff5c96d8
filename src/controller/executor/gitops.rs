//! GitOps owners around a step (see docs/gitops.md): before the intent,
//! the Runbook's policy on the target's owner (Suspend, Refuse, Ignore);
//! after the intent and before the workload write, the owner paused; once
//! resolved (or on `spec.resumeGitOps`), the owner given its automation
//! back if it still holds kube-incident's value. Decisions are in
//! [`crate::core::gitops`].

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::read::{Object, Read};
use super::{Run, RETRY_INTERVAL};
use crate::api::{
    GitOpsOwner, GitOpsOwnerKind, GitOpsRestore, MitigationAction, StepState, TimelineType,
    FIELD_MANAGER,
};
use crate::core::conditions::{set_condition, FALSE, TRUE};
use crate::core::gitops::{self, key, Restore, Stance, Suspension};
use crate::core::lifecycle::{self, condition, StepOutcome, Transition};
use crate::core::mitigation::{self, Planned};

/// What the policy on the target's owner lets a step do.
pub(super) enum Prepared {
    /// Go ahead (the owner to pause, if any, is named in the intent and
    /// paused once it is recorded: [`Run::gitops_suspend`]).
    Go,
    /// The step was recorded as failed (Refuse, or the owner cannot be
    /// paused): nothing is written.
    Stop,
}

/// The intent value naming an owner: `Kind/namespace/name`.
fn owner_ref(o: &GitOpsOwner) -> String {
    format!("{}/{}/{}", o.kind.as_str(), o.namespace, o.name)
}

fn parse_owner_ref(s: &str) -> Option<GitOpsOwner> {
    let mut it = s.splitn(3, '/');
    let kind = match it.next()? {
        "Application" => GitOpsOwnerKind::Application,
        "Kustomization" => GitOpsOwnerKind::Kustomization,
        "HelmRelease" => GitOpsOwnerKind::HelmRelease,
        _ => return None,
    };
    Some(GitOpsOwner {
        kind,
        namespace: it.next()?.to_string(),
        name: it.next()?.to_string(),
        via: String::new(),
    })
}

fn api(ctx: &crate::controller::context::Context, o: &GitOpsOwner) -> Api<DynamicObject> {
    let (group, version, plural) = gitops::resource(o.kind);
    let gvk = GroupVersionKind::gvk(group, version, o.kind.as_str());
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(ctx.client.clone(), &o.namespace, &ar)
}

/// The owner object as JSON (`Ok(None)`: not found).
async fn get(
    ctx: &crate::controller::context::Context,
    o: &GitOpsOwner,
) -> Result<Option<Value>, kube::Error> {
    match api(ctx, o).get_opt(&o.name).await? {
        Some(obj) => Ok(Some(serde_json::to_value(obj).unwrap_or(Value::Null))),
        None => Ok(None),
    }
}

async fn patch(
    ctx: &crate::controller::context::Context,
    o: &GitOpsOwner,
    ops: &Value,
) -> Result<(), String> {
    let p: json_patch::Patch =
        serde_json::from_value(ops.clone()).map_err(|e| format!("cannot encode the patch: {e}"))?;
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api(ctx, o)
        .patch(&o.name, &pp, &Patch::<()>::Json(p))
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
            e => e.to_string(),
        })
}

/// Why an owner could not be read, for the step's message.
fn read_failure(o: &GitOpsOwner, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "kube-incident may not read {o} ({}): grant get and patch on {} (chart value gitops.enabled)",
            s.message,
            gitops::resource(o.kind).2
        ),
        kube::Error::Api(s) if s.code == 404 => format!(
            "{o} is not served by this cluster ({}): is {} installed?",
            s.message,
            o.kind.tool()
        ),
        e => format!("reading {o} failed: {e}"),
    }
}

impl Run<'_> {
    /// The GitOps policy of the governing Runbook (its defaults without one).
    fn gitops_policy(&self) -> crate::api::GitOpsPolicy {
        self.runbook
            .and_then(|r| r.spec.git_ops)
            .unwrap_or_default()
    }

    fn refuse(&mut self, index: usize, action: MitigationAction, message: String) -> Prepared {
        self.record(index, StepOutcome::Failed { message });
        self.ctx.metrics.mitigation(action.as_str(), "failed");
        Prepared::Stop
    }

    /// Before the intent of step `index`: the owner of the target, if it
    /// has one, under the Runbook's policy. Fills `planned.before` with the
    /// owner, the field that pauses it and its value, and what differs
    /// from Git; `planned.intent` with the owner to pause.
    pub(super) async fn gitops_prepare(
        &mut self,
        index: usize,
        action: MitigationAction,
        read: &Read,
        planned: &mut Planned,
    ) -> Prepared {
        let kind = match &read.object {
            Object::Deployment(_) => crate::api::TargetKind::Deployment,
            Object::StatefulSet(_) => crate::api::TargetKind::StatefulSet,
            Object::DaemonSet(_) => crate::api::TargetKind::DaemonSet,
            Object::CronJob(_) => crate::api::TargetKind::CronJob,
        };
        let name = read.object.meta().name.clone().unwrap_or_default();
        let w = gitops::Workload {
            kind,
            namespace: self.ns,
            name: &name,
            meta: read.object.meta(),
        };
        let Some(owner) = gitops::discover(w, &self.ctx.argocd_namespace) else {
            return Prepared::Go;
        };
        self.decision.status.git_ops_owner = Some(owner.clone());
        let policy = self.gitops_policy();
        let diff = git_difference(action, read, planned);
        let before = &mut planned.before;
        before.insert(key::OWNER.into(), owner.to_string());
        before.insert(key::POLICY.into(), policy.policy.to_string());
        before.insert(key::DIFF.into(), diff);
        match gitops::stance(policy.policy, &owner, self.ctx.gitops) {
            Stance::Ignore => return Prepared::Go,
            Stance::Refuse(message) => return self.refuse(index, action, message),
            Stance::Suspend => {}
        }
        let obj = match get(self.ctx, &owner).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                let m = format!(
                    "the target's {} names {owner}, which does not exist; not acting on a target whose owner is unknown (fix or remove the label, or set the Runbook's gitOps.policy: Ignore)",
                    owner.via
                );
                return self.refuse(index, action, m);
            }
            Err(e) => {
                let m = format!("{}; not acting", read_failure(&owner, &e));
                return self.refuse(index, action, m);
            }
        };
        if let Err(why) = gitops::confirm(&owner, &obj, w) {
            let m = format!(
                "{why}: its {} may be stale or copied, and kube-incident pauses only an owner that manages the target; not acting",
                owner.via
            );
            return self.refuse(index, action, m);
        }
        match gitops::suspend(&owner, &obj) {
            Suspension::AlreadyOff { field, value } => {
                planned.before.insert(key::FIELD.into(), field.into());
                planned.before.insert(key::VALUE.into(), value);
                Prepared::Go
            }
            Suspension::Patch { field, prior, .. } => {
                planned.before.insert(key::FIELD.into(), field.into());
                planned.before.insert(key::VALUE.into(), prior);
                planned
                    .intent
                    .insert(key::SUSPEND.into(), owner_ref(&owner));
                Prepared::Go
            }
        }
    }

    /// After the intent of step `index` is recorded and before its
    /// workload write: pause the owner its intent names (read fresh; a
    /// paused one is left as it is). `false`: not paused now (the step is
    /// looked at again, or was failed with the reason).
    pub(super) async fn gitops_suspend(&mut self, index: usize) -> bool {
        let Some(owner) = self.decision.status.mitigations[index]
            .intent
            .get(key::SUSPEND)
            .and_then(|s| parse_owner_ref(s))
        else {
            return true;
        };
        let step = self.decision.status.mitigations[index].name.clone();
        let obj = match get(self.ctx, &owner).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                self.record(
                    index,
                    StepOutcome::Failed {
                        message: format!(
                            "{owner} disappeared before it could be paused; not acting"
                        ),
                    },
                );
                return false;
            }
            Err(e) => {
                warn!(step = %step, owner = %owner, error = %e, "reading the GitOps owner failed; will retry");
                self.requeue(RETRY_INTERVAL);
                return false;
            }
        };
        let message = match gitops::suspend(&owner, &obj) {
            Suspension::AlreadyOff { .. } => {
                if lifecycle_is_suspended(&self.decision.status.conditions) {
                    return true;
                }
                format!(
                    "{owner} is paused ({} holds kube-incident's value)",
                    self.decision.status.mitigations[index]
                        .before
                        .get(key::FIELD)
                        .map_or("its field", String::as_str)
                )
            }
            Suspension::Patch {
                patch: ops,
                description,
                ..
            } => {
                if !self.ctx.leadership.is_leader() {
                    self.requeue(RETRY_INTERVAL);
                    return false;
                }
                if let Err(e) = patch(self.ctx, &owner, &ops).await {
                    // A 422 from the generation test (the owner changed
                    // since it was read) or a server error: read again.
                    warn!(step = %step, owner = %owner, error = %e, "pausing the GitOps owner failed; will retry");
                    self.set_message(index, format!("pausing {owner} first: {e}"));
                    self.requeue(RETRY_INTERVAL);
                    return false;
                }
                info!(incident = %self.incident_name(), step = %step, "{description}");
                description
            }
        };
        let message = format!(
            "{message} so that it does not put Git's state back over mitigation {step:?}; Git no longer matches what runs until someone makes it match (see the post-mortem draft), then it is given back {}",
            match self.gitops_policy().restore {
                GitOpsRestore::OnResolve => "on resolve or on spec.resumeGitOps",
                GitOpsRestore::Manual => "on spec.resumeGitOps",
            }
        );
        self.gitops_condition(TRUE, "Suspended", message.clone());
        self.gitops_timeline(TimelineType::GitOpsSuspended, message.clone());
        self.decision
            .transitions
            .push(Transition::GitOpsSuspended { step, message });
        true
    }

    fn gitops_condition(&mut self, status: &str, reason: &str, message: String) {
        let now = lifecycle::truncate_to_seconds((self.ctx.clock)());
        set_condition(
            &mut self.decision.status.conditions,
            condition::GITOPS_SUSPENDED,
            status,
            reason,
            message,
            self.inc.metadata.generation,
            now,
        );
    }

    fn gitops_timeline(&mut self, t: TimelineType, message: String) {
        let now = lifecycle::truncate_to_seconds((self.ctx.clock)());
        lifecycle::push_timeline(&mut self.decision.status, t, message, now);
    }

    /// Give paused owners their automation back: once resolved (Runbook
    /// `gitOps.restore: OnResolve`) or on `spec.resumeGitOps`, newest step
    /// first, each only if it still holds kube-incident's value.
    pub(super) async fn gitops_restore(&mut self) {
        let resolved = self.decision.status.resolved_at.is_some();
        let asked = self.inc.spec.resume_git_ops == Some(true);
        let on_resolve = self.gitops_policy().restore == GitOpsRestore::OnResolve;
        if !(asked || (resolved && on_resolve)) {
            return;
        }
        let n = self.decision.status.mitigations.len();
        for index in (0..n).rev() {
            let st = &self.decision.status.mitigations[index];
            if st.after.contains_key(key::RESTORE)
                || super::is_dry_run(&st.intent)
                || matches!(st.state, StepState::Pending | StepState::AwaitingApproval)
                || st.state == StepState::Running && !resolved
            {
                continue;
            }
            let Some(owner) = st.intent.get(key::SUSPEND).and_then(|s| parse_owner_ref(s)) else {
                continue;
            };
            let prior = st
                .before
                .get(key::VALUE)
                .cloned()
                .unwrap_or_else(|| gitops::ABSENT.to_string());
            let step = st.name.clone();
            let (message, restored) = match get(self.ctx, &owner).await {
                Ok(None) => (
                    format!("{owner} no longer exists; nothing to give back"),
                    false,
                ),
                Err(e) => {
                    warn!(step = %step, owner = %owner, error = %e, "reading the GitOps owner failed; will retry");
                    self.requeue(RETRY_INTERVAL);
                    continue;
                }
                Ok(Some(obj)) => match gitops::restore(&owner, &obj, &prior) {
                    Restore::Decline(why) => (why, false),
                    Restore::Patch {
                        patch: ops,
                        description,
                    } => {
                        if !self.ctx.leadership.is_leader() {
                            return;
                        }
                        if let Err(e) = patch(self.ctx, &owner, &ops).await {
                            warn!(step = %step, owner = %owner, error = %e, "giving the GitOps owner back failed; will retry");
                            self.requeue(RETRY_INTERVAL);
                            continue;
                        }
                        info!(incident = %self.incident_name(), step = %step, "{description}");
                        (description, true)
                    }
                },
            };
            self.decision.status.mitigations[index]
                .after
                .insert(key::RESTORE.into(), message.clone());
            let reason = if restored { "Restored" } else { "NotRestored" };
            self.gitops_condition(FALSE, reason, message.clone());
            self.gitops_timeline(TimelineType::GitOpsRestored, message.clone());
            self.decision.transitions.push(Transition::GitOpsRestored {
                step,
                message,
                restored,
            });
        }
    }
}

fn lifecycle_is_suspended(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> bool {
    crate::core::conditions::is_true(conditions, condition::GITOPS_SUSPENDED)
}

/// What differs between Git (the state the owner applies: the target as
/// it is now) and what the step makes run, for "make Git match".
fn git_difference(action: MitigationAction, read: &Read, planned: &Planned) -> String {
    let lines = match (&read.object, action) {
        (Object::Deployment(d), MitigationAction::RolloutUndo) => {
            let to = planned.intent.get(mitigation::key::REPLICA_SET);
            let rs = read
                .replica_sets
                .iter()
                .find(|r| r.metadata.name.as_ref() == to);
            let running = rollout::hash::template_without_hash(
                rs.and_then(|r| r.spec.as_ref()?.template.as_ref()),
            );
            let git = rollout::hash::template_without_hash(d.spec.as_ref().map(|s| &s.template));
            gitops::diff(
                &json!({"spec": {"template": git}}),
                &json!({"spec": {"template": running}}),
            )
        }
        (_, MitigationAction::Scale) => {
            let (b, i) = (&planned.before, &planned.intent);
            match i.get(mitigation::key::HPA) {
                Some(h) => vec![format!(
                    "HorizontalPodAutoscaler {h} spec.minReplicas: {} (Git) → {} (running)",
                    b.get(mitigation::key::HPA_MIN_REPLICAS)
                        .map_or("?", String::as_str),
                    i.get(mitigation::key::HPA_MIN_REPLICAS)
                        .map_or("?", String::as_str)
                )],
                None => vec![format!(
                    "spec.replicas: {} (Git) → {} (running)",
                    b.get(mitigation::key::REPLICAS).map_or("?", String::as_str),
                    i.get(mitigation::key::REPLICAS).map_or("?", String::as_str)
                )],
            }
        }
        _ => Vec::new(),
    };
    if lines.is_empty() {
        format!("what the step changes: {}", planned.description)
    } else {
        lines.join("\n")
    }
}

//! GitOps owners around a step (see docs/gitops.md): before the intent,
//! the Runbook's policy on the target's owner (Suspend, Refuse, Ignore);
//! after the intent and before the workload write, the owner paused; once
//! resolved (or on `spec.resumeGitOps`), the owner given its automation
//! back if it still holds kube-incident's value. Decisions are in
//! [`crate::core::gitops`].

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch};
use kube::Api;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::read::{Object, Read};
use super::{Run, RETRY_INTERVAL};
use crate::api::{
    GitOpsOwner, GitOpsOwnerKind, MitigationAction, MitigationStatus, StepState, TimelineType,
};
use crate::controller::status::update_params;
use crate::core::conditions::{set_condition, FALSE, TRUE};
use crate::core::gitops::{self, key, Restore, Stance, Suspension};
use crate::core::lifecycle::{self, condition, StepOutcome, Transition};
use crate::core::mitigation::{self, Planned};

/// The finalizer an Incident carries while one of its steps holds a pause:
/// deleting the Incident gives the owner back first.
pub const PAUSE_FINALIZER: &str = "kubeincident.io/gitops-pause";

/// Condition reason while a resolved Incident's owner waits for Git.
const WAITING_FOR_GIT: &str = "WaitingForGit";
/// How often a resolved Incident looks whether Git matches again.
const GIT_POLL: std::time::Duration = std::time::Duration::from_secs(10);

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

/// The owner step `m` paused and has not let go of yet (its intent names
/// one, it recorded no restore, and it is not a dry-run).
fn held_owner(m: &MitigationStatus) -> Option<GitOpsOwner> {
    if m.after.contains_key(key::RESTORE) || super::is_dry_run(&m.intent) {
        return None;
    }
    m.intent.get(key::SUSPEND).and_then(|s| parse_owner_ref(s))
}

/// Whether step `m` holds a pause now (a step still waiting for its turn
/// or its approval holds none).
fn holds_pause(m: &MitigationStatus) -> bool {
    !matches!(m.state, StepState::Pending | StepState::AwaitingApproval) && held_owner(m).is_some()
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

/// A JSON patch (RFC 6902) as kube sends it.
fn json_patch(ops: Value) -> Result<Patch<()>, serde_json::Error> {
    serde_json::from_value::<json_patch::Patch>(ops).map(Patch::Json)
}

/// Why an owner patch did not go through.
enum PatchError {
    /// Read again and decide again (409: the owner changed since it was
    /// read, the resourceVersion precondition; 429, 5xx, transport).
    Retry(String),
    /// The server refused it for good (403, 404, 422: an invalid change).
    Refused(String),
}

async fn patch(
    ctx: &crate::controller::context::Context,
    o: &GitOpsOwner,
    ops: &Value,
) -> Result<(), PatchError> {
    let p = json_patch(ops.clone())
        .map_err(|e| PatchError::Refused(format!("cannot encode the patch: {e}")))?;
    match api(ctx, o).patch(&o.name, &update_params(), &p).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 429 || s.code >= 500 => {
            Err(PatchError::Retry(format!("{} ({})", s.message, s.code)))
        }
        Err(kube::Error::Api(s)) => Err(PatchError::Refused(format!(
            "{} ({} {})",
            s.message, s.code, s.reason
        ))),
        Err(e) => Err(PatchError::Retry(e.to_string())),
    }
}

/// Whether a failed read is worth retrying (else the reason is final).
fn read_retryable(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(s) if s.code == 403 || s.code == 401)
}

/// Why an owner could not be read, for the step's message.
fn read_failure(o: &GitOpsOwner, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "kube-incident may not read {o} ({}): grant get and patch on {} (chart value gitops.enabled)",
            s.message,
            gitops::resource(o.kind).2
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
        let name = read.workload().name();
        let w = gitops::Workload {
            kind: read.workload().kind(),
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
        let runbook = self.runbook.map(|r| {
            (
                r.metadata.namespace.as_deref().unwrap_or(""),
                r.metadata.name.as_deref().unwrap_or(""),
            )
        });
        if let Err(m) = gitops::may_pause(&owner, runbook, self.ctx.operator_namespace.as_deref()) {
            return self.refuse(index, action, m);
        }
        let obj = match get(self.ctx, &owner).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                let m = format!(
                    "the target's {} names {owner}, which does not exist (or {} is not installed); not acting on a target whose owner is unknown (fix or remove the label, or set the Runbook's gitOps.policy: Ignore)",
                    owner.via,
                    owner.kind.tool()
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
        if let Some(parent) = gitops::managed_by_parent(owner.kind, &obj) {
            let m = format!(
                "{owner} is managed by {parent}, which would put its automated sync back and undo the pause; not acting (pause the parent by hand, or set the Runbook's gitOps.policy)"
            );
            return self.refuse(index, action, m);
        }
        if self.inc.spec.resume_git_ops == Some(true) {
            let m = format!(
                "spec.resumeGitOps is true: a person asked for {owner} to have its automation back, so no step pauses it now; not acting (remove spec.resumeGitOps to let this step pause it)"
            );
            return self.refuse(index, action, m);
        }
        let holder = self.holder(index);
        match gitops::suspend(&owner, &obj, &holder) {
            Suspension::AlreadyOff { field, value } => {
                planned.before.insert(key::FIELD.into(), field.into());
                planned.before.insert(key::VALUE.into(), value);
                Prepared::Go
            }
            Suspension::Patch { field, prior, .. }
            | Suspension::Join { field, prior, .. }
            | Suspension::Held { field, prior } => {
                planned.before.insert(key::FIELD.into(), field.into());
                planned.before.insert(key::VALUE.into(), prior);
                planned
                    .intent
                    .insert(key::SUSPEND.into(), owner_ref(&owner));
                planned
                    .intent
                    .insert(key::RESTORE_POLICY.into(), policy.restore.to_string());
                Prepared::Go
            }
        }
    }

    /// The pause holder of step `index`: `<namespace>/<incident>/<step>`.
    fn holder(&self, index: usize) -> String {
        let step = self
            .decision
            .status
            .mitigations
            .get(index)
            .map_or("", |m| m.name.as_str());
        let uid = self.inc.metadata.uid.as_deref().unwrap_or("");
        gitops::holder(self.ns, &self.incident_name(), uid, step)
    }

    /// Dry-run: only who owns the target, for the "would have" record.
    pub(super) fn gitops_note(&self, read: &Read, planned: &mut Planned) {
        let name = read.workload().name();
        let w = gitops::Workload {
            kind: read.workload().kind(),
            namespace: self.ns,
            name: &name,
            meta: read.object.meta(),
        };
        if let Some(owner) = gitops::discover(w, &self.ctx.argocd_namespace) {
            planned.before.insert(key::OWNER.into(), owner.to_string());
            planned
                .before
                .insert(key::POLICY.into(), self.gitops_policy().policy.to_string());
        }
    }

    /// After the intent of step `index` is recorded and before its
    /// workload write: pause the owner its intent names (read fresh;
    /// already paused for this step: nothing to send). `false`: not paused
    /// now (looked at again, or the step failed with the reason).
    pub(super) async fn gitops_suspend(&mut self, index: usize) -> bool {
        let st = &self.decision.status.mitigations[index];
        let Some(owner) = st.intent.get(key::SUSPEND).and_then(|s| parse_owner_ref(s)) else {
            return true;
        };
        let step = st.name.clone();
        let fail = |message: String| StepOutcome::Failed { message };
        let obj = match get(self.ctx, &owner).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                self.record(
                    index,
                    fail(format!(
                        "{owner} disappeared before it could be paused; not acting"
                    )),
                );
                return false;
            }
            Err(e) if read_retryable(&e) => {
                warn!(step = %step, owner = %owner, error = %e, "reading the GitOps owner failed; will retry");
                self.set_message(index, format!("pausing {owner} first: {e}"));
                self.requeue(RETRY_INTERVAL);
                return false;
            }
            Err(e) => {
                let m = format!("{}; not acting", read_failure(&owner, &e));
                self.record(index, fail(m));
                return false;
            }
        };
        let holder = self.holder(index);
        let message = match gitops::suspend(&owner, &obj, &holder) {
            Suspension::Held { field, prior } => {
                format!("{owner} is paused for this step ({field}, was {prior})")
            }
            // Paused meanwhile by someone else: theirs; act, give nothing back.
            Suspension::AlreadyOff { field, value } => {
                info!(step = %step, owner = %owner, "the GitOps owner is already paused ({field}: {value}), not by kube-incident");
                return true;
            }
            Suspension::Patch {
                patch: ops,
                description,
                ..
            }
            | Suspension::Join {
                patch: ops,
                description,
                ..
            } => {
                if !self.ctx.leadership.is_leader() {
                    self.requeue(RETRY_INTERVAL);
                    return false;
                }
                // The finalizer first: an Incident deleted while its step
                // holds the pause gives the owner back before it goes.
                if let Err(e) = self.ensure_finalizer().await {
                    warn!(step = %step, error = %e, "adding the GitOps pause finalizer failed; will retry");
                    self.set_message(index, format!("pausing {owner} first: {e}"));
                    self.requeue(RETRY_INTERVAL);
                    return false;
                }
                match patch(self.ctx, &owner, &ops).await {
                    Ok(()) => {}
                    Err(PatchError::Retry(e)) => {
                        warn!(step = %step, owner = %owner, error = %e, "pausing the GitOps owner failed; will retry");
                        self.set_message(index, format!("pausing {owner} first: {e}"));
                        self.requeue(RETRY_INTERVAL);
                        return false;
                    }
                    Err(PatchError::Refused(e)) => {
                        self.record(
                            index,
                            fail(format!(
                                "the API server refused to pause {owner}: {e}; not acting"
                            )),
                        );
                        return false;
                    }
                }
                info!(incident = %self.incident_name(), step = %step, "{description}");
                description
            }
        };
        // Argo CD: a sync already under way is not stopped by the pause;
        // the workload is written once it is over.
        if gitops::sync_running(owner.kind, &obj) {
            self.set_message(
                index,
                format!("{owner} is paused; waiting for the sync it was running to finish"),
            );
            self.requeue(RETRY_INTERVAL);
            self.gitops_paused(index, &step, message);
            return false;
        }
        self.gitops_paused(index, &step, message);
        true
    }

    /// Add [`PAUSE_FINALIZER`] to the Incident (read fresh: a no-op when
    /// it has it; the add is fenced by that resourceVersion, so it is never
    /// added twice). The status write that follows is fenced by the new
    /// resourceVersion.
    async fn ensure_finalizer(&mut self) -> Result<(), kube::Error> {
        if self.out.finalizer_added {
            return Ok(());
        }
        let api: Api<crate::api::Incident> = Api::namespaced(self.ctx.client.clone(), self.ns);
        let fresh = api.get(&self.incident_name()).await?;
        if has_finalizer(&fresh) {
            self.out.finalizer_added = true;
            return Ok(());
        }
        let add = match &fresh.metadata.finalizers {
            Some(_) => {
                json!({"op": "add", "path": "/metadata/finalizers/-", "value": PAUSE_FINALIZER})
            }
            None => {
                json!({"op": "add", "path": "/metadata/finalizers", "value": [PAUSE_FINALIZER]})
            }
        };
        let ops = json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": fresh.metadata.resource_version},
            add
        ]);
        let p = json_patch(ops).map_err(kube::Error::SerdeError)?;
        let updated = api
            .patch(&self.incident_name(), &update_params(), &p)
            .await?;
        self.out.finalizer_added = true;
        self.out.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// A step found applied: if its owner's pause was never recorded in
    /// the status (a crash after the writes), record it now. Reads the
    /// owner only then; never pauses it again.
    pub(super) async fn gitops_applied(&mut self, index: usize) {
        if self.pause_recorded() {
            return;
        }
        let st = &self.decision.status.mitigations[index];
        let Some(owner) = held_owner(st) else {
            return;
        };
        let step = st.name.clone();
        let Ok(Some(obj)) = get(self.ctx, &owner).await else {
            return;
        };
        if let Suspension::Held { field, prior } =
            gitops::suspend(&owner, &obj, &self.holder(index))
        {
            let m = format!("{owner} is paused for this step ({field}, was {prior})");
            self.gitops_paused(index, &step, m);
        }
    }

    /// Whether the status already says an owner is paused.
    fn pause_recorded(&self) -> bool {
        crate::core::conditions::is_true(
            &self.decision.status.conditions,
            condition::GITOPS_SUSPENDED,
        )
    }

    /// Record that step `index` paused its owner (once: the condition).
    fn gitops_paused(&mut self, index: usize, step: &str, message: String) {
        if self.pause_recorded() {
            return;
        }
        let step = step.to_string();
        let when = match self.decision.status.mitigations[index]
            .intent
            .get(key::RESTORE_POLICY)
            .map(String::as_str)
        {
            Some("Manual") => "on spec.resumeGitOps",
            _ => "on resolve or on spec.resumeGitOps",
        };
        let message = format!(
            "{message}, so that it does not put Git's state back over mitigation {step:?}; Git no longer matches what runs until someone makes it match (see the post-mortem draft); the owner is given back {when}"
        );
        self.gitops_condition(TRUE, "Suspended", message.clone());
        self.gitops_timeline(TimelineType::GitOpsSuspended, message.clone());
        self.decision
            .transitions
            .push(Transition::GitOpsSuspended { step, message });
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

    /// Give paused owners their automation back, newest step first, each
    /// step letting go of its own pause ([`gitops::restore`]):
    /// - once resolved, for steps paused under `restore: OnResolve`
    ///   (recorded in the intent), after every `revertOnResolve` step of
    ///   the Incident has its outcome;
    /// - on `spec.resumeGitOps`, for every step;
    /// - at once for a step that failed on its own (its change did not
    ///   land or did not work: the owner's Git state is no worse); not
    ///   for one undone by another manager (a person decides).
    ///
    /// A `Running` step keeps its pause. Once no step holds one, the
    /// Incident's [`PAUSE_FINALIZER`] goes.
    pub(super) async fn gitops_restore(&mut self) {
        self.gitops_let_go().await;
        let held = self.decision.status.mitigations.iter().any(holds_pause);
        if held || !(self.out.finalizer_added || has_finalizer(self.inc)) {
            return;
        }
        if !self.ctx.leadership.is_leader() {
            return;
        }
        match remove_finalizer(self.ctx, self.ns, &self.incident_name()).await {
            Ok(Some(rv)) => self.out.resource_version = Some(rv),
            Ok(None) => {}
            Err(e) => {
                warn!(error = %e, "removing the GitOps pause finalizer failed; will retry");
                self.requeue(RETRY_INTERVAL);
            }
        }
    }

    /// [`Self::gitops_restore`]'s loop over the steps.
    async fn gitops_let_go(&mut self) {
        let resolved = self.decision.status.resolved_at.is_some();
        let asked = self.inc.spec.resume_git_ops == Some(true);
        let reverts_pending = self
            .inc
            .spec
            .mitigations
            .iter()
            .zip(&self.decision.status.mitigations)
            .any(|(step, st)| {
                step.revert_on_resolve
                    && matches!(st.state, StepState::Succeeded | StepState::Ineffective)
                    && !st.intent.is_empty()
                    && !super::is_dry_run(&st.intent)
                    && !st.after.contains_key(crate::core::mitigation::key::REVERT)
            });
        let Some(t) = self.inc.spec.target.clone() else {
            return;
        };
        let empty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::default();
        let target = gitops::Workload {
            kind: t.kind,
            namespace: self.ns,
            name: &t.name,
            meta: &empty,
        };
        let n = self.decision.status.mitigations.len();
        for index in (0..n).rev() {
            let st = &self.decision.status.mitigations[index];
            let Some(owner) = held_owner(st) else {
                continue;
            };
            // A step that failed on its own, its change not running: the
            // owner's Git state is no worse than what runs. A change that
            // landed but did not roll out ("applied, but", the progress
            // deadline) is running: the pause stays until resolve.
            let landed = [
                super::EXTERNAL_PREFIX,
                super::APPLIED_PREFIX,
                super::DEADLINE_PREFIX,
            ]
            .iter()
            .any(|p| st.message.starts_with(p));
            let failed = st.state == StepState::Failed && !landed;
            let on_resolve =
                st.intent.get(key::RESTORE_POLICY).map(String::as_str) != Some("Manual");
            let due = match st.state {
                StepState::Running | StepState::Pending | StepState::AwaitingApproval => false,
                _ if asked => true,
                _ if failed => true,
                _ => resolved && on_resolve && !reverts_pending,
            };
            if !due {
                continue;
            }
            let step = st.name.clone();
            let holder = self.holder(index);
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
                // On resolve, an Argo CD Application that still reports
                // Git ahead of what runs would sync the bad state back:
                // it stays paused until Git matches (or a person asks).
                Ok(Some(obj))
                    if !asked
                        && !failed
                        && gitops::reports_git_differs(owner.kind, &obj, &target) =>
                {
                    let message = format!(
                        "{owner} reports OutOfSync: Git still differs from what runs, so it stays paused until Git matches (see the post-mortem draft); set spec.resumeGitOps to give it back anyway"
                    );
                    let waiting = crate::core::conditions::get_condition(
                        &self.decision.status.conditions,
                        condition::GITOPS_SUSPENDED,
                    )
                    .is_some_and(|c| c.reason == WAITING_FOR_GIT);
                    if !waiting {
                        self.gitops_condition(TRUE, WAITING_FOR_GIT, message.clone());
                        self.gitops_timeline(TimelineType::GitOpsWaiting, message);
                    }
                    self.requeue(GIT_POLL);
                    continue;
                }
                Ok(Some(obj)) => match gitops::restore(&owner, &obj, &holder) {
                    // This step holds no pause (never paused: refused, or
                    // paused by someone else; or given back already):
                    // noted on the step, nothing to tell.
                    Restore::Done { message, .. } => {
                        self.decision.status.mitigations[index]
                            .after
                            .insert(key::RESTORE.into(), message);
                        continue;
                    }
                    Restore::Patch {
                        patch: ops,
                        description,
                        restored,
                    } => {
                        if !self.ctx.leadership.is_leader() {
                            return;
                        }
                        match patch(self.ctx, &owner, &ops).await {
                            Ok(()) => {
                                info!(incident = %self.incident_name(), step = %step, "{description}");
                                (description, restored)
                            }
                            Err(PatchError::Retry(e)) => {
                                warn!(step = %step, owner = %owner, error = %e, "giving the GitOps owner back failed; will retry");
                                self.requeue(RETRY_INTERVAL);
                                continue;
                            }
                            Err(PatchError::Refused(e)) => (
                                format!("the API server refused to give {owner} back: {e}; restore it by hand"),
                                false,
                            ),
                        }
                    }
                },
            };
            let message = if failed && !resolved && !asked {
                format!("mitigation {step:?} failed, so its pause ends: {message}")
            } else {
                message
            };
            self.decision.status.mitigations[index]
                .after
                .insert(key::RESTORE.into(), message.clone());
            self.gitops_timeline(TimelineType::GitOpsRestored, message.clone());
            self.decision.transitions.push(Transition::GitOpsRestored {
                step,
                message: message.clone(),
                restored,
            });
            // The condition says whether some step still holds a pause.
            if !self.decision.status.mitigations.iter().any(holds_pause) {
                let reason = if restored { "Restored" } else { "NotRestored" };
                self.gitops_condition(FALSE, reason, message);
            }
        }
    }
}

fn has_finalizer(inc: &crate::api::Incident) -> bool {
    inc.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == PAUSE_FINALIZER))
}

/// Remove [`PAUSE_FINALIZER`] from the Incident `ns/name`, read fresh (a
/// no-op without it; fenced by that resourceVersion): the new
/// resourceVersion, or `None` when there was nothing to remove (or the
/// Incident went with it).
async fn remove_finalizer(
    ctx: &crate::controller::context::Context,
    ns: &str,
    name: &str,
) -> Result<Option<String>, kube::Error> {
    let api: Api<crate::api::Incident> = Api::namespaced(ctx.client.clone(), ns);
    let Some(fresh) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let Some(i) = fresh
        .metadata
        .finalizers
        .as_ref()
        .and_then(|f| f.iter().position(|x| x == PAUSE_FINALIZER))
    else {
        return Ok(None);
    };
    let path = format!("/metadata/finalizers/{i}");
    let ops = json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": fresh.metadata.resource_version},
        {"op": "test", "path": path, "value": PAUSE_FINALIZER},
        {"op": "remove", "path": path}
    ]);
    let p = json_patch(ops).map_err(kube::Error::SerdeError)?;
    match api.patch(name, &update_params(), &p).await {
        Ok(updated) => Ok(updated.metadata.resource_version),
        // Deleted once the last finalizer went.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// An Incident being deleted while its steps hold pauses (it carries
/// [`PAUSE_FINALIZER`]): every owner is given back (whatever the restore
/// policy or Git says: nobody could ask for it later), then the finalizer
/// goes. `Ok(true)`: done; `Ok(false)`: look again soon.
pub async fn release_on_delete(
    ctx: &crate::controller::context::Context,
    inc: &crate::api::Incident,
) -> Result<bool, kube::Error> {
    let ns = inc.metadata.namespace.as_deref().unwrap_or_default();
    let name = inc.metadata.name.as_deref().unwrap_or_default();
    let uid = inc.metadata.uid.as_deref().unwrap_or_default();
    let steps = inc
        .status
        .as_ref()
        .map(|s| s.mitigations.as_slice())
        .unwrap_or_default();
    for st in steps {
        let Some(owner) = held_owner(st) else {
            continue;
        };
        let holder = gitops::holder(ns, name, uid, &st.name);
        let obj = match get(ctx, &owner).await {
            Ok(Some(obj)) => obj,
            // Gone, or its kind is not served any more: nothing to give back.
            Ok(None) => continue,
            // Forbidden (the operator runs without the GitOps grant now):
            // waiting would keep the Incident forever; the pause record on
            // the owner says who paused it.
            Err(e) if !read_retryable(&e) => {
                let note = format!("cannot read {owner} to give it back ({}); the Incident is deleted anyway: resume the owner by hand and remove its {} annotation", read_failure(&owner, &e), gitops::PAUSED_ANNOTATION);
                warn!(incident = %name, "{note}");
                deletion_warning(ctx, inc, note).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Restore::Patch {
            patch: ops,
            description,
            ..
        } = gitops::restore(&owner, &obj, &holder)
        {
            if !ctx.leadership.is_leader() {
                return Ok(false);
            }
            match patch(ctx, &owner, &ops).await {
                Ok(()) => {
                    info!(incident = %name, step = %st.name, "Incident deleted: {description}")
                }
                Err(PatchError::Retry(e)) => {
                    warn!(incident = %name, owner = %owner, error = %e, "giving the GitOps owner back failed; will retry");
                    return Ok(false);
                }
                Err(PatchError::Refused(e)) => {
                    let note = format!("the API server refused to give {owner} back ({e}); the Incident is deleted anyway: resume the owner by hand");
                    warn!(incident = %name, "{note}");
                    deletion_warning(ctx, inc, note).await;
                }
            }
        }
    }
    remove_finalizer(ctx, ns, name).await?;
    Ok(true)
}

/// A Warning Event on a deleting Incident: a pause it could not let go.
async fn deletion_warning(
    ctx: &crate::controller::context::Context,
    inc: &crate::api::Incident,
    note: String,
) {
    use kube::Resource;
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "GitOpsNotRestored".into(),
        note: Some(note),
        action: "Delete".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &inc.object_ref(&())).await {
        warn!(error = %e, "failed to publish event");
    }
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

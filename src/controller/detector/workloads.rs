//! The index's StatefulSets, DaemonSets, Jobs and CronJobs: `apply_*`,
//! `delete_*` and `reset_*` per kind, as for Deployments (see
//! [`super::index`]), the Job -> CronJob attribution, the outcomes of each
//! CronJob's newest finished Jobs, and the controller a workload is judged
//! by. Pure: no client, no clock.

use std::collections::HashSet;

use super::index::{key_of, Index, Key, Scope};
use crate::api::TargetKind;
use crate::core::detection::{attribute, Controller};
use crate::core::workload::{
    CronHistory, CronJobLite, CronJobView, DaemonSetLite, DaemonSetView, DeploymentView, JobLite,
    JobView, StatefulSetLite, StatefulSetView, WorkloadKey,
};

/// A workload's controller, copied out of the index for one assessment.
#[derive(Debug, Clone)]
pub(super) enum OwnedController {
    Deployment(DeploymentView),
    StatefulSet(StatefulSetView),
    DaemonSet(DaemonSetView),
    Job(JobView),
    CronJob(CronJobView, CronHistory),
}

impl OwnedController {
    pub(super) fn as_controller(&self) -> Controller<'_> {
        match self {
            OwnedController::Deployment(d) => Controller::Deployment(d),
            OwnedController::StatefulSet(s) => Controller::StatefulSet(s),
            OwnedController::DaemonSet(d) => Controller::DaemonSet(d),
            OwnedController::Job(j) => Controller::Job(j),
            OwnedController::CronJob(c, h) => Controller::CronJob(c, h),
        }
    }
}

/// What a workload is judged by.
pub(super) enum Judge {
    /// Its controller (and its pods).
    Controller(Box<OwnedController>),
    /// A bare pod: itself.
    Pod,
    /// Nothing yet: its controller is not seen yet (or just went; its pods
    /// go with it). Its pods are kept until it is.
    Waiting,
    /// Nothing ever: the workload is ignored, or not of a target kind (a
    /// pod of a ReplicationController or of a custom controller).
    Never,
}

impl Index {
    /// What workload `w` is judged by.
    pub(super) fn judge_of(&self, w: &WorkloadKey) -> Judge {
        if self.ignored(w) {
            return Judge::Never;
        }
        let k = (w.namespace.clone(), w.name.clone());
        let owned = match w.kind.as_str() {
            "Pod" if self.workload_pods.contains_key(w) => return Judge::Pod,
            // Pods whose ReplicaSet is not known yet.
            "ReplicaSet" => return Judge::Waiting,
            kind if TargetKind::parse(kind).is_none() => return Judge::Never,
            "Deployment" => self
                .deployments
                .get(&k)
                .cloned()
                .map(OwnedController::Deployment),
            "StatefulSet" => self
                .statefulsets
                .get(&k)
                .cloned()
                .map(OwnedController::StatefulSet),
            "DaemonSet" => self
                .daemonsets
                .get(&k)
                .cloned()
                .map(OwnedController::DaemonSet),
            // A Job of a CronJob is judged as part of its CronJob.
            "Job" => self
                .jobs
                .get(&k)
                .filter(|j| j.cronjob.is_none())
                .cloned()
                .map(OwnedController::Job),
            "CronJob" => self.cronjobs.get(&k).cloned().map(|c| {
                let h = self.cron_history.get(&k).cloned().unwrap_or_default();
                OwnedController::CronJob(c, h)
            }),
            _ => None,
        };
        owned.map_or(Judge::Waiting, |c| Judge::Controller(Box::new(c)))
    }

    /// Forget what is kept of a workload no policy judges: its pods'
    /// projections and its restarts. Its pods come back with their next
    /// change, or with a relist once a policy may cover it
    /// ([`Index::take_pods_relist`]).
    pub(super) fn prune(&mut self, w: &WorkloadKey) {
        self.ledger.forget_workload(w);
        let Some(names) = self.workload_pods.remove(w) else {
            return;
        };
        // A bare pod comes back with its own next change; a pod of a kind
        // that is never judged never needs to.
        if w.kind != "Pod" && TargetKind::parse(&w.kind).is_some() {
            self.pruned.insert(w.clone());
        }
        for name in names {
            let k = (w.namespace.clone(), name);
            self.ledger.forget_pod(&k.0, &k.1);
            let owner = self.pods.remove(&k).and_then(|(v, _)| v.owner);
            if let Some(o) = owner.filter(|o| o.kind == "ReplicaSet") {
                let rs = (k.0.clone(), o.name);
                if let Some(set) = self.unattributed.get_mut(&rs) {
                    set.remove(&k.1);
                    if set.is_empty() {
                        self.unattributed.remove(&rs);
                    }
                }
            }
        }
    }

    /// Coverage may have grown (a Runbook changed, a workload or a
    /// namespace was relabelled): the pruned workloads are checked again
    /// before the next relist decision.
    pub(super) fn coverage_may_grow(&mut self) {
        if !self.pruned.is_empty() {
            self.recheck_pruned = true;
        }
    }

    /// Whether a policy would judge `w` now (it is not ignored, and a
    /// Runbook or the built-in policy covers it).
    fn covered(&self, w: &WorkloadKey) -> bool {
        !self.ignored(w) && (self.builtin_policy || self.runbook_for(w).is_some())
    }

    /// Whether the pod watches must list again: a workload whose pods were
    /// pruned is covered now. Asked once per batch; a relist clears the
    /// pruned set (what is still not covered is pruned again).
    pub fn take_pods_relist(&mut self) -> bool {
        if !std::mem::take(&mut self.recheck_pruned) {
            return false;
        }
        let grows = self.pruned.iter().any(|w| self.covered(w));
        if grows {
            self.pruned.clear();
        }
        grows
    }

    /// A workload object (Deployment, StatefulSet, DaemonSet) was added or
    /// changed: it is evaluated again, and when it is new or relabelled the
    /// Runbook matches may change (and with them which pods are kept).
    pub(super) fn workload_changed(&mut self, key: WorkloadKey, relabelled: bool) {
        self.dirty.insert(key);
        self.runbooks_dirty |= relabelled;
        if relabelled {
            self.coverage_may_grow();
        }
    }

    /// A workload object is gone: it is evaluated once more (its Incident
    /// sees it missing), it no longer counts for Runbook matches, and the
    /// note that its pods were pruned goes with it.
    pub(super) fn workload_gone(&mut self, key: WorkloadKey) {
        self.pruned.remove(&key);
        self.dirty.insert(key);
        self.runbooks_dirty = true;
    }

    // ---- StatefulSets ----

    pub fn apply_statefulset(&mut self, s: &StatefulSetLite) {
        let view = StatefulSetView::from(s);
        // Matches only change with labels (or existence).
        let relabelled = self
            .statefulsets
            .get(&key_of(s))
            .is_none_or(|old| old.labels != view.labels);
        self.workload_changed(view.key(), relabelled);
        self.statefulsets.insert(key_of(s), view);
    }

    pub fn delete_statefulset(&mut self, ns: &str, name: &str) {
        self.workload_gone(WorkloadKey::new(ns, "StatefulSet", name));
        self.statefulsets
            .remove(&(ns.to_string(), name.to_string()));
    }

    pub fn reset_statefulsets(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.statefulsets, listed) {
            self.delete_statefulset(&ns, &name);
        }
    }

    // ---- DaemonSets ----

    pub fn apply_daemonset(&mut self, d: &DaemonSetLite) {
        let view = DaemonSetView::from(d);
        // Matches only change with labels (or existence).
        let relabelled = self
            .daemonsets
            .get(&key_of(d))
            .is_none_or(|old| old.labels != view.labels);
        self.workload_changed(view.key(), relabelled);
        self.daemonsets.insert(key_of(d), view);
    }

    pub fn delete_daemonset(&mut self, ns: &str, name: &str) {
        self.workload_gone(WorkloadKey::new(ns, "DaemonSet", name));
        self.daemonsets.remove(&(ns.to_string(), name.to_string()));
    }

    pub fn reset_daemonsets(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.daemonsets, listed) {
            self.delete_daemonset(&ns, &name);
        }
    }

    // ---- Jobs ----

    /// A Job was added or changed: its outcome goes into its CronJob's
    /// history once it finishes; its pods move to its CronJob once the
    /// Job shows that CronJob as its controller.
    pub fn apply_job(&mut self, j: &JobLite) {
        let view = JobView::from(j);
        let k = key_of(j);
        self.dirty.insert(view.key());
        if let (Some(cj), Some(outcome)) = (&view.cronjob, view.outcome()) {
            self.cron_history
                .entry((k.0.clone(), cj.clone()))
                .or_default()
                .record(outcome);
        }
        let relabelled = self
            .jobs
            .get(&k)
            .is_none_or(|old| old.labels != view.labels);
        let old = self.jobs.insert(k.clone(), view);
        let now_cronjob = self.jobs.get(&k).and_then(|v| v.cronjob.clone());
        match &old {
            Some(o) if o.cronjob == now_cronjob => {}
            // First seen: its pods seen before it move to its CronJob.
            None => self.reattribute_job(&k, false),
            // Its controller changed (rare): its pods move again.
            Some(o) => self.reattribute_job(&k, o.cronjob.is_some()),
        }
        if now_cronjob.is_none() {
            self.runbooks_dirty |= relabelled;
            if relabelled {
                self.coverage_may_grow();
            }
        } else if old.is_some_and(|o| o.cronjob.is_none()) {
            // It stopped being a workload of its own.
            self.runbooks_dirty = true;
        }
    }

    /// A Job is gone. Its outcome stays in its CronJob's history (the
    /// CronJob controller deletes old Jobs; the streak outlives them).
    pub fn delete_job(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        if let Some(view) = self.jobs.remove(&k) {
            self.dirty.insert(view.key());
            if view.cronjob.is_none() {
                self.runbooks_dirty = true;
            }
        }
        self.pruned.remove(&WorkloadKey::new(ns, "Job", name));
        self.dirty.insert(WorkloadKey::new(ns, "Job", name));
    }

    pub fn reset_jobs(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.jobs, listed) {
            self.delete_job(&ns, &name);
        }
    }

    /// A Job's controller became known (or changed): attribute its pods
    /// again (those seen before the Job sit under the Job's own key).
    fn reattribute_job(&mut self, job: &Key, from_cronjob: bool) {
        let as_job = WorkloadKey::new(&job.0, "Job", &job.1);
        let mut names: Vec<String> = self
            .workload_pods
            .get(&as_job)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        if from_cronjob {
            // Pods attributed to its former CronJob through this Job.
            names.extend(
                self.pods
                    .iter()
                    .filter(|((ns, _), (v, w))| {
                        ns == &job.0
                            && w.kind == "CronJob"
                            && v.owner
                                .as_ref()
                                .is_some_and(|o| o.kind == "Job" && o.name == job.1)
                    })
                    .map(|((_, p), _)| p.clone()),
            );
        }
        for p in names {
            let k = (job.0.clone(), p);
            let Some((view, old)) = self.pods.get(&k).cloned() else {
                continue;
            };
            let new = attribute(&view, |kind, ns, o| self.owner_of(kind, ns, o));
            let new = self.intern(new);
            if new != old {
                self.unlink(&old, &k.1);
                self.workload_pods
                    .entry(new.clone())
                    .or_default()
                    .insert(k.1.clone());
                self.dirty.insert((*new).clone());
                self.pods.insert(k, (view, new));
            }
        }
    }

    // ---- CronJobs ----

    pub fn apply_cronjob(&mut self, c: &CronJobLite) {
        let view = CronJobView::from(c);
        self.dirty.insert(view.key());
        // Matches only change with labels (or existence).
        let relabelled = self
            .cronjobs
            .get(&key_of(c))
            .is_none_or(|old| old.labels != view.labels);
        self.runbooks_dirty |= relabelled;
        if relabelled {
            self.coverage_may_grow();
        }
        self.cronjobs.insert(key_of(c), view);
    }

    /// A CronJob is gone, and the history of its Jobs with it.
    pub fn delete_cronjob(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        self.pruned.remove(&WorkloadKey::new(ns, "CronJob", name));
        self.dirty.insert(WorkloadKey::new(ns, "CronJob", name));
        self.cronjobs.remove(&k);
        self.cron_history.remove(&k);
        self.runbooks_dirty = true;
    }

    /// A relist of `scope` listed exactly the CronJobs `listed`: the
    /// others, and the histories of CronJobs not known, go.
    pub fn reset_cronjobs(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.cronjobs, listed) {
            self.delete_cronjob(&ns, &name);
        }
        let cronjobs = &self.cronjobs;
        self.cron_history
            .retain(|k, _| !scope.covers(&k.0) || cronjobs.contains_key(k));
    }
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;

//! The detector's index: compact projections of what the watches show
//! (never whole Pods), per namespace, and what needs looking at again.
//!
//! Pure: no client, no clock of its own. The watcher ([`super::actor`])
//! turns each watch event into one call here (`apply_*`, `delete_*`, and
//! `reset_*` at the end of a relist: "this scope listed exactly these
//! keys"); [`Index::evaluate`] (in [`super::evaluate`]) turns a workload
//! that needs looking at into a detection and what to write.
//!
//! kube-runtime's reflector is not used for the relist: its `Store` keeps
//! every object whole (the index keeps projections, a few hundred bytes a
//! Pod) and hands out snapshots, not the previous object of a change (the
//! restart ledger counts restarts from the previous view of the same pod).
//! The watcher's `Init`/`InitApply`/`InitDone` events are applied as they
//! come; only the keys of a relist are remembered, to drop the objects it
//! did not list (memory peaks no higher during a relist).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::detections::Detections;
use super::evaluate::InFlight;
use crate::api::{Runbook, TargetKind, IGNORE_LABEL};
use crate::core::detection::{attribute, Baseline, RestartLedger};
use crate::core::selector;
use crate::core::validation::validate_runbook;
use crate::core::workload::PodLite;
use crate::core::workload::WorkloadKey;
use crate::core::workload::{
    CronHistory, CronJobView, DaemonSetView, DeploymentView, JobView, PodView, StatefulSetView,
};
use rollout::annotations::REVISION_ANNOTATION;

/// An object's (namespace, name); the namespace is empty for Namespaces.
pub type Key = (String, String);

/// The key of a Kubernetes object.
pub fn key_of<K: Resource>(o: &K) -> Key {
    meta_key(o.meta())
}

fn meta_key(m: &ObjectMeta) -> Key {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// What one watch covers: a relist of one namespace says nothing about the
/// objects of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (a cluster-wide watch).
    All,
    /// One namespace.
    Namespace(String),
}

impl Scope {
    /// The scope of a watch on `namespace` (`None`: all).
    pub fn of(namespace: Option<&str>) -> Scope {
        match namespace {
            Some(ns) => Scope::Namespace(ns.to_string()),
            None => Scope::All,
        }
    }

    /// Whether this scope lists the objects of namespace `ns`.
    pub fn covers(&self, ns: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Namespace(scope) => scope == ns,
        }
    }

    /// Keys of `map` that this scope covers but a relist did not list.
    pub(super) fn unlisted<V>(&self, map: &HashMap<Key, V>, listed: &HashSet<Key>) -> Vec<Key> {
        map.keys()
            .filter(|k| self.covers(&k.0) && !listed.contains(*k))
            .cloned()
            .collect()
    }
}

/// In-memory state of the detector.
pub struct Index {
    /// The operator's own namespace (where cluster-wide Runbooks live).
    pub(super) operator_namespace: Option<String>,
    /// Apply the built-in policy to workloads no Runbook covers.
    pub(super) builtin_policy: bool,
    /// What is known of each workload, shared with the Incident controller.
    pub(super) detections: Arc<Detections>,
    pub(super) pods: HashMap<Key, (PodView, Arc<WorkloadKey>)>,
    pub(super) workload_pods: HashMap<Arc<WorkloadKey>, BTreeSet<String>>,
    /// Pods whose ReplicaSet's owner is not known yet, by ReplicaSet.
    pub(super) unattributed: HashMap<Key, BTreeSet<String>>,
    pub(super) deployments: HashMap<Key, DeploymentView>,
    /// ReplicaSet -> the Deployment that controls it.
    pub(super) rs_owner: HashMap<Key, String>,
    /// ReplicaSet -> its `deployment.kubernetes.io/revision` (BadRollout:
    /// which pods are the newest rollout's).
    pub(super) rs_revision: HashMap<Key, i64>,
    /// Deployment -> its last revision seen complete and available.
    pub(super) baselines: HashMap<Key, Baseline>,
    pub(super) statefulsets: HashMap<Key, StatefulSetView>,
    pub(super) daemonsets: HashMap<Key, DaemonSetView>,
    /// Jobs; a Job's view names the CronJob that controls it (if any).
    pub(super) jobs: HashMap<Key, JobView>,
    pub(super) cronjobs: HashMap<Key, CronJobView>,
    /// CronJob -> the outcomes of its newest finished Jobs (bounded).
    pub(super) cron_history: HashMap<Key, CronHistory>,
    pub(super) ns_labels: HashMap<String, BTreeMap<String, String>>,
    pub(super) runbooks: HashMap<Key, Runbook>,
    /// Runbooks whose spec passed validation (checked once per change).
    pub(super) valid_runbooks: HashSet<Key>,
    pub(super) ledger: RestartLedger,
    /// Workloads to evaluate again.
    pub(super) dirty: HashSet<WorkloadKey>,
    /// Runbook statuses to compute (and write) again.
    pub(super) runbooks_dirty: bool,
    /// When to evaluate a workload again even without a change.
    pub(super) timers: BTreeSet<(Timestamp, WorkloadKey)>,
    /// Incidents this process created, until the cache shows them.
    pub(super) created: InFlight,
    /// When each Runbook last matched a workload with symptoms.
    pub(super) last_triggered: HashMap<Key, Timestamp>,
    /// Controllers whose pods were pruned (no policy judged them, or they
    /// were ignored) since the last pod relist: one key per workload, gone
    /// with the controller.
    pub(super) pruned: HashSet<WorkloadKey>,
    /// Coverage may have grown since: check `pruned` before the next relist.
    pub(super) recheck_pruned: bool,
}

impl Index {
    pub fn new(
        operator_namespace: Option<String>,
        builtin_policy: bool,
        detections: Arc<Detections>,
    ) -> Index {
        Index {
            operator_namespace,
            builtin_policy,
            detections,
            pods: HashMap::new(),
            workload_pods: HashMap::new(),
            unattributed: HashMap::new(),
            deployments: HashMap::new(),
            rs_owner: HashMap::new(),
            rs_revision: HashMap::new(),
            baselines: HashMap::new(),
            statefulsets: HashMap::new(),
            daemonsets: HashMap::new(),
            jobs: HashMap::new(),
            cronjobs: HashMap::new(),
            cron_history: HashMap::new(),
            ns_labels: HashMap::new(),
            runbooks: HashMap::new(),
            valid_runbooks: HashSet::new(),
            ledger: RestartLedger::default(),
            dirty: HashSet::new(),
            runbooks_dirty: false,
            timers: BTreeSet::new(),
            created: InFlight::default(),
            last_triggered: HashMap::new(),
            pruned: HashSet::new(),
            recheck_pruned: false,
        }
    }

    // ---- Pods ----

    /// A pod was added or changed (`now`: when, for the restart ledger).
    pub fn apply_pod(&mut self, pod: &PodLite, now: Timestamp) {
        let view = PodView::from(pod);
        let k = key_of(pod);
        let workload = attribute(&view, |kind, ns, o| self.owner_of(kind, ns, o));
        let workload = self.intern(workload);
        if workload.kind == "ReplicaSet" {
            if let Some(o) = &view.owner {
                self.unattributed
                    .entry((k.0.clone(), o.name.clone()))
                    .or_default()
                    .insert(k.1.clone());
            }
        }
        let previous = self.pods.remove(&k);
        self.ledger
            .observe(&workload, previous.as_ref().map(|(v, _)| v), &view, now);
        if let Some((_, old)) = &previous {
            if *old != workload {
                let old = old.clone();
                self.unlink(&old, &k.1);
            }
        }
        self.workload_pods
            .entry(workload.clone())
            .or_default()
            .insert(k.1.clone());
        self.dirty.insert((*workload).clone());
        self.pods.insert(k, (view, workload));
    }

    /// A pod is gone: its projection, its place in its workload and its
    /// restarts go with it.
    pub fn delete_pod(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        if let Some((view, w)) = self.pods.remove(&k) {
            self.unlink(&w, &k.1);
            self.ledger.forget_pod(&k.0, &k.1);
            if let Some(o) = view.owner.filter(|o| o.kind == "ReplicaSet") {
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

    /// A relist of `scope` listed exactly the pods `listed`: the others
    /// of that scope are gone.
    pub fn reset_pods(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.pods, listed) {
            self.delete_pod(&ns, &name);
        }
    }

    // ---- Deployments ----

    pub fn apply_deployment(&mut self, d: &Deployment) {
        let view = DeploymentView::from(d);
        // Matches only change with labels (or existence).
        let relabelled = self
            .deployments
            .get(&key_of(d))
            .is_none_or(|old| old.labels != view.labels);
        self.workload_changed(view.key(), relabelled);
        if let Some(b) = Baseline::of(&view) {
            self.baselines.insert(key_of(d), b);
        }
        self.deployments.insert(key_of(d), view);
    }

    pub fn delete_deployment(&mut self, ns: &str, name: &str) {
        self.workload_gone(WorkloadKey::deployment(ns, name));
        let k = (ns.to_string(), name.to_string());
        self.deployments.remove(&k);
        self.baselines.remove(&k);
    }

    /// A relist of `scope` listed exactly the Deployments `listed`.
    pub fn reset_deployments(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.deployments, listed) {
            self.delete_deployment(&ns, &name);
        }
    }

    // ---- ReplicaSets (metadata only) ----

    /// A ReplicaSet was added or changed: the Deployment controlling it
    /// (if any) owns its pods.
    pub fn apply_replica_set(&mut self, meta: &ObjectMeta) {
        let k = meta_key(meta);
        let owner = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            .map(|o| o.name.clone());
        let revision = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .and_then(|r| r.parse::<i64>().ok());
        let revised = match revision {
            Some(r) => self.rs_revision.insert(k.clone(), r) != Some(r),
            None => self.rs_revision.remove(&k).is_some(),
        };
        if let (true, Some(d)) = (revised, owner.as_ref()) {
            // A rollout began (or a ReplicaSet was reused by a rollback).
            self.dirty
                .insert(WorkloadKey::deployment(k.0.clone(), d.clone()));
        }
        let changed = match owner {
            Some(d) => self.rs_owner.insert(k.clone(), d.clone()) != Some(d),
            None => self.rs_owner.remove(&k).is_some(),
        };
        if changed {
            self.reattribute_rs(&k);
        }
    }

    pub fn delete_replica_set(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        self.rs_owner.remove(&k);
        self.rs_revision.remove(&k);
    }

    /// A relist of `scope` listed exactly the ReplicaSets `listed`.
    pub fn reset_replica_sets(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for k in scope.unlisted(&self.rs_owner, listed) {
            self.rs_owner.remove(&k);
        }
        for k in scope.unlisted(&self.rs_revision, listed) {
            self.rs_revision.remove(&k);
        }
    }
}

/// The revision of a pod's ReplicaSet, when known (`rs_revision`: the
/// index's ReplicaSet revisions).
pub(super) fn pod_revision(rs_revision: &HashMap<Key, i64>, pod: &PodView) -> Option<i64> {
    let o = pod.owner.as_ref().filter(|o| o.kind == "ReplicaSet")?;
    rs_revision
        .get(&(pod.namespace.clone(), o.name.clone()))
        .copied()
}

impl Index {
    // ---- Namespaces (metadata only; cluster-wide installs) ----

    /// A Namespace was added or relabelled: its workloads and the Runbook
    /// statuses are looked at again (ignore label, namespaceSelector).
    pub fn apply_namespace(&mut self, meta: &ObjectMeta) {
        let name = meta.name.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        if self.ns_labels.get(&name) != Some(&labels) {
            self.ns_labels.insert(name.clone(), labels);
            self.mark_namespace_dirty(&name);
            self.runbooks_dirty = true;
            self.coverage_may_grow();
        }
    }

    pub fn delete_namespace(&mut self, name: &str) {
        self.ns_labels.remove(name);
    }

    /// A relist listed exactly the Namespaces `listed` (keys with an
    /// empty namespace).
    pub fn reset_namespaces(&mut self, listed: &HashSet<Key>) {
        self.ns_labels
            .retain(|n, _| listed.iter().any(|(_, name)| name == n));
    }

    // ---- Runbooks ----

    /// A Runbook was added or changed. A new spec (or generation) is
    /// validated once and every workload is looked at again; a status-only
    /// change just replaces the object.
    pub fn apply_runbook(&mut self, rb: Runbook) {
        let k = key_of(&rb);
        let changed = self.runbooks.get(&k).is_none_or(|old| {
            old.spec != rb.spec || old.metadata.generation != rb.metadata.generation
        });
        if !changed {
            self.runbooks.insert(k, rb);
            return;
        }
        if validate_runbook(&rb.spec).is_empty() {
            self.valid_runbooks.insert(k.clone());
        } else {
            self.valid_runbooks.remove(&k);
        }
        self.runbooks.insert(k, rb);
        self.runbooks_changed();
    }

    /// A Runbook is gone: the workloads it governed are looked at again.
    pub fn delete_runbook(&mut self, ns: &str, name: &str) {
        let k = (ns.to_string(), name.to_string());
        self.runbooks.remove(&k);
        self.valid_runbooks.remove(&k);
        self.last_triggered.remove(&k);
        self.runbooks_changed();
    }

    /// A relist of `scope` listed exactly the Runbooks `listed`.
    pub fn reset_runbooks(&mut self, scope: &Scope, listed: &HashSet<Key>) {
        for (ns, name) in scope.unlisted(&self.runbooks, listed) {
            self.delete_runbook(&ns, &name);
        }
    }

    fn runbooks_changed(&mut self) {
        self.runbooks_dirty = true;
        self.coverage_may_grow();
        self.mark_all_dirty();
    }

    // ---- What to look at ----

    /// This instance just became the leader: it may owe an action (or a
    /// Runbook status) its predecessor did not take, so everything is
    /// looked at again.
    pub fn became_leader(&mut self) {
        self.mark_all_dirty();
        self.runbooks_dirty = true;
    }

    /// The earliest time a workload must be looked at again.
    pub fn next_timer(&self) -> Option<Timestamp> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The workloads to evaluate now: those changed since the last call and
    /// those whose timer came due by `now`.
    pub fn take_dirty(&mut self, now: Timestamp) -> Vec<WorkloadKey> {
        while let Some((at, w)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.dirty.insert(w);
        }
        self.dirty.drain().collect()
    }

    /// Whether the Runbook statuses must be computed again (and clear it).
    pub fn take_runbooks_dirty(&mut self) -> bool {
        std::mem::take(&mut self.runbooks_dirty)
    }

    fn mark_all_dirty(&mut self) {
        let all: Vec<WorkloadKey> = self.workloads().collect();
        self.dirty.extend(all);
    }

    fn mark_namespace_dirty(&mut self, ns: &str) {
        let keys: Vec<WorkloadKey> = self.workloads().filter(|w| w.namespace == ns).collect();
        self.dirty.extend(keys);
    }

    /// Every workload known: those with pods, and every controller.
    pub(super) fn workloads(&self) -> impl Iterator<Item = WorkloadKey> + '_ {
        self.workload_pods
            .keys()
            .map(|w| (**w).clone())
            .chain(self.controllers())
    }

    /// Every controller that is a workload of its own (Jobs of a CronJob
    /// are part of the CronJob's).
    pub(super) fn controllers(&self) -> impl Iterator<Item = WorkloadKey> + '_ {
        self.deployments
            .values()
            .map(DeploymentView::key)
            .chain(self.statefulsets.values().map(StatefulSetView::key))
            .chain(self.daemonsets.values().map(DaemonSetView::key))
            .chain(
                self.jobs
                    .values()
                    .filter(|j| j.cronjob.is_none())
                    .map(JobView::key),
            )
            .chain(self.cronjobs.values().map(CronJobView::key))
    }

    // ---- Attribution ----

    /// The controller of a ReplicaSet (its Deployment) or of a Job (its
    /// CronJob), when known.
    pub(super) fn owner_of(&self, kind: &str, ns: &str, name: &str) -> Option<String> {
        let k = (ns.to_string(), name.to_string());
        match kind {
            "ReplicaSet" => self.rs_owner.get(&k).cloned(),
            "Job" => self.jobs.get(&k).and_then(|j| j.cronjob.clone()),
            _ => None,
        }
    }

    /// The shared key of a workload (one allocation per workload, not per pod).
    pub(super) fn intern(&mut self, w: WorkloadKey) -> Arc<WorkloadKey> {
        match self.workload_pods.get_key_value(&w) {
            Some((k, _)) => k.clone(),
            None => Arc::new(w),
        }
    }

    pub(super) fn unlink(&mut self, w: &WorkloadKey, pod: &str) {
        if let Some(set) = self.workload_pods.get_mut(w) {
            set.remove(pod);
            if set.is_empty() {
                self.workload_pods.remove(w);
            }
        }
        self.dirty.insert(w.clone());
    }

    /// A ReplicaSet's owner became known: attribute its waiting pods.
    fn reattribute_rs(&mut self, rs: &Key) {
        let Some(pods) = self.unattributed.remove(rs) else {
            return;
        };
        for p in pods {
            let k = (rs.0.clone(), p);
            if let Some((view, old)) = self.pods.get(&k).cloned() {
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
    }

    // ---- Lookups for evaluation ----

    /// Whether the workload (or its namespace) carries the ignore label.
    pub(super) fn ignored(&self, w: &WorkloadKey) -> bool {
        let flagged = |labels: Option<&BTreeMap<String, String>>| {
            labels.is_some_and(|l| l.get(IGNORE_LABEL).is_some_and(|v| v == "true"))
        };
        if flagged(self.ns_labels.get(&w.namespace)) {
            return true;
        }
        flagged(self.labels_of(w))
    }

    /// The labels of a workload's own object (a bare pod's, a controller's).
    fn labels_of(&self, w: &WorkloadKey) -> Option<&BTreeMap<String, String>> {
        let k = (w.namespace.clone(), w.name.clone());
        match w.kind.as_str() {
            "Deployment" => self.deployments.get(&k).map(|d| &d.labels),
            "StatefulSet" => self.statefulsets.get(&k).map(|s| &s.labels),
            "DaemonSet" => self.daemonsets.get(&k).map(|d| &d.labels),
            "Job" => self.jobs.get(&k).map(|j| &j.labels),
            "CronJob" => self.cronjobs.get(&k).map(|c| &c.labels),
            "Pod" => self.pods.get(&k).map(|(p, _)| &p.labels),
            _ => None,
        }
    }

    fn workload_labels(&self, w: &WorkloadKey) -> BTreeMap<String, String> {
        self.labels_of(w).cloned().unwrap_or_default()
    }

    /// The valid Runbook that governs a workload, if any.
    pub(super) fn runbook_for(&self, w: &WorkloadKey) -> Option<&Runbook> {
        let ns_labels = self
            .ns_labels
            .get(&w.namespace)
            .cloned()
            .unwrap_or_default();
        let valid = self
            .runbooks
            .iter()
            .filter(|(k, _)| self.valid_runbooks.contains(*k))
            .map(|(_, rb)| rb);
        let kind = TargetKind::parse(&w.kind)?;
        selector::runbook_for(
            valid,
            &w.namespace,
            kind,
            &ns_labels,
            &self.workload_labels(w),
            self.operator_namespace.as_deref(),
        )
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;

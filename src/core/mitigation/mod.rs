//! Mitigation executors as pure decisions: the safety gate of a step
//! (ignored workload, paused Runbook, `when.rolloutWithin`, cooldown,
//! `maxActionsPerHour`, dry-run), the concrete plan of each action computed
//! from the target (a Deployment with its ReplicaSets and HPAs, a
//! StatefulSet or DaemonSet with its ControllerRevisions and pods, a
//! CronJob) (the JSON patch to send,
//! what was there before, the intent), "is the intent already applied?",
//! "has it rolled out?", and the revert plan of `revertOnResolve`.
//!
//! The controller (`src/controller/executor/`) records `before` and the
//! intent in the Incident status BEFORE it sends the patch this module
//! computes, and sends it with a resourceVersion precondition; after a crash
//! it asks [`is_applied`] before acting again, so an action is applied once.
//!
//! Every patch is a JSON patch (RFC 6902) whose first operation is a
//! precondition. Workload writes (Deployments, StatefulSets, DaemonSets,
//! CronJobs: all carry a generation) test `metadata.generation` against the
//! generation the plan was computed from: kube-apiserver rejects it (422)
//! if the spec changed in between, instead of applying a stale plan.
//! kube-apiserver sets no `metadata.generation` on HorizontalPodAutoscalers,
//! so HPA writes are fenced by the `resourceVersion` they were planned from
//! instead (the first op replaces it with the read value; a newer object
//! is a 409 Conflict), and "unchanged since the intent" compares a digest
//! of the HPA's spec ([`hpa_spec_digest`]).
//!
//! Rollout knowledge (revisions, the pod-template-hash, the rollback target,
//! "rollout complete"; for StatefulSets and DaemonSets their
//! ControllerRevisions) comes from the shared `rollout` crate, so the
//! operator and the emulator agree on it. DeletePods writes no patch: its
//! write is the pod deletes ([`WriteTarget::Pods`]), each with uid and
//! resourceVersion preconditions.
//!
//! - `mod.rs`: the public types (workload, writes, plans, actor);
//! - `gate.rs`: the safety rails and the action history;
//! - `plan.rs`: the plan of each action;
//! - `verify.rs`: applied? unchanged since the intent? rolled out?
//! - `revert.rs`: the revert of `revertOnResolve` steps;
//! - `external.rs`: changes by other managers after a step succeeded;
//! - `sets.rs`: RolloutUndo and DeletePods of StatefulSets and DaemonSets,
//!   and their verification;
//! - `cronjob.rs`: Suspend of a CronJob (plan, verify, revert);
//! - `target.rs`: the target of any kind ([`Target`]);
//! - `workload.rs`, `patch.rs`: reading the target, building the JSON
//!   patch ops.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::Value;

use crate::api::{MitigationStep, RecordedEnvVar};

mod cronjob;
mod external;
mod gate;
mod patch;
mod plan;
mod revert;
mod sets;
mod target;
#[cfg(test)]
mod tests;
mod verify;
mod workload;

pub use external::{external_change, last_update_manager};
pub use gate::{actions_of, gate, ActionRecord, Gate, GateInput};
pub use patch::{expected_generation, hpa_spec_digest, last_action};
pub use plan::{action_applies, kinds_of, not_applicable, plan};
pub use revert::{plan_revert, Revert};
pub use rollout::{POD_TEMPLATE_HASH_LABEL, RESTARTED_AT_ANNOTATION, REVISION_ANNOTATION};
pub use target::{SetWorkload, Target};
pub use verify::{is_applied, rollout_complete, unchanged_since_intent, verify, Verification};
pub use workload::{equal_ignore_hash, hpa_for, owned_replica_sets, rollback_target};

/// Keys of `before`, `after` and `intent`.
pub mod key {
    pub const ACTION: &str = "action";
    pub const REVISION: &str = "revision";
    pub const TO_REVISION: &str = "toRevision";
    pub const REPLICA_SET: &str = "replicaSet";
    pub const POD_TEMPLATE_HASH: &str = "podTemplateHash";
    pub const GENERATION: &str = "generation";
    pub const IMAGES: &str = "images";
    pub const REPLICAS: &str = "replicas";
    pub const HPA: &str = "hpa";
    pub const HPA_MIN_REPLICAS: &str = "hpaMinReplicas";
    /// Written by earlier versions (kube-apiserver sets no generation on
    /// HPAs); read only to finish a step such a version started.
    pub const HPA_GENERATION: &str = "hpaGeneration";
    /// Digest of the HPA's spec when the intent was recorded.
    pub const HPA_SPEC: &str = "hpaSpec";
    pub const ENV: &str = "env";
    pub const RESTARTED_AT: &str = "restartedAt";
    pub const DRY_RUN: &str = "dryRun";
    /// The kind of the target (StatefulSet, DaemonSet, CronJob; absent: Deployment).
    pub const KIND: &str = "kind";
    /// A ControllerRevision name (StatefulSets, DaemonSets).
    pub const CONTROLLER_REVISION: &str = "controllerRevision";
    /// The pods a DeletePods step deletes: `name/uid` comma-separated.
    pub const PODS: &str = "pods";
    /// The update revision (STS) or revision hash (DS) pods are compared with.
    pub const UPDATE_REVISION: &str = "updateRevision";
    /// What an undo cannot change (OnDelete, partition, OrderedReady).
    pub const LIMITATION: &str = "limitation";
    /// `spec.suspend` of a CronJob.
    pub const SUSPEND: &str = "suspend";
    /// Written into `after` once a revert was decided against (so it is not retried).
    pub const REVERT: &str = "revert";
}

/// The value of a recorded field that did not exist.
pub const ABSENT: &str = "<absent>";

/// What the executor reads about the target.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub deployment: &'a Deployment,
    /// ReplicaSets of the namespace (those not owned by the Deployment are ignored).
    pub replica_sets: &'a [ReplicaSet],
    /// HorizontalPodAutoscalers of the namespace.
    pub hpas: &'a [HorizontalPodAutoscaler],
}

/// Which object a write goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTarget {
    Deployment(String),
    Hpa(String),
    StatefulSet(String),
    DaemonSet(String),
    CronJob(String),
    /// Pod deletes (DeletePods), each with uid and resourceVersion
    /// preconditions; the write's `patch` is unused (null).
    Pods(Vec<PodDelete>),
}

/// One pod delete of a DeletePods step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDelete {
    pub name: String,
    /// The uid recorded in the intent: a pod of that name with another uid
    /// (a replacement) is never deleted.
    pub uid: String,
    /// The resourceVersion read just before the delete.
    pub resource_version: String,
}

/// One precise write: a JSON patch of one object (or the pod deletes of a
/// DeletePods step).
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub target: WriteTarget,
    /// RFC 6902 operations, the first setting the resourceVersion precondition.
    pub patch: Value,
}

/// A concrete action: what is there, what we will set, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub before: BTreeMap<String, String>,
    pub intent: BTreeMap<String, String>,
    pub previous_env: Vec<RecordedEnvVar>,
    /// One line for the step message and the timeline ("roll back checkout
    /// from revision 7 to revision 6").
    pub description: String,
    pub write: Write,
}

/// The plan of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Act(Box<Planned>),
    /// The change would do nothing (already in place): skip the step.
    Noop(String),
    /// The action cannot be done; the reason is for the user.
    Refuse(String),
}

/// Who the step acts for: `incident/step`.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub incident: &'a str,
    pub step: &'a MitigationStep,
}

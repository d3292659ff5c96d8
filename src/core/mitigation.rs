//! Mitigation executors as pure decisions: the safety gate of a step
//! (ignored workload, paused Runbook, `when.rolloutWithin`, cooldown,
//! `maxActionsPerHour`, dry-run), the concrete plan of each action computed
//! from the Deployment, its ReplicaSets and HPAs (the JSON patch to send,
//! what was there before, the intent), "is the intent already applied?",
//! "has it rolled out?", and the revert plan of `revertOnResolve`.
//!
//! The controller (`src/controller/executor.rs`) records `before` and the
//! intent in the Incident status BEFORE it sends the patch this module
//! computes, and sends it with a resourceVersion precondition; after a crash
//! it asks [`is_applied`] before acting again, so an action is applied once.
//!
//! Every patch is a JSON patch (RFC 6902) whose first operation is a
//! precondition. Deployment writes test `metadata.generation` against the
//! generation the plan was computed from: kube-apiserver rejects it (422)
//! if the spec changed in between, instead of applying a stale plan.
//! kube-apiserver sets no `metadata.generation` on HorizontalPodAutoscalers,
//! so HPA writes are fenced by the `resourceVersion` they were planned from
//! instead (the first op replaces it with the read value; a newer object
//! is a 409 Conflict), and "unchanged since the intent" compares a digest
//! of the HPA's spec ([`hpa_spec_digest`]).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::EnvVar;
use serde_json::{json, Value};

use crate::api::{
    IncidentStatus, MitigationAction, MitigationStep, RecordedEnvVar, RunbookSpec, StepState,
    IGNORE_LABEL, LAST_ACTION_ANNOTATION,
};

/// `deployment.kubernetes.io/revision`.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The label the deployment controller adds to ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Annotations `kubectl rollout undo` keeps from the Deployment instead of
/// copying them from the ReplicaSet (rollback.go `annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

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
}

/// One precise write: a JSON patch of one object.
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

/// An action taken earlier, from the status of any Incident (for the
/// cooldown and the hourly limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub at: Timestamp,
    /// Target Deployment name (same namespace).
    pub workload: String,
    /// The Runbook of the Incident that acted.
    pub runbook: Option<String>,
}

/// The actions recorded in an Incident's status: steps that started (were
/// applied or attempted), not dry-runs.
pub fn actions_of(
    status: &IncidentStatus,
    workload: &str,
    runbook: Option<&str>,
) -> Vec<ActionRecord> {
    status
        .mitigations
        .iter()
        .filter(|m| {
            matches!(
                m.state,
                StepState::Running
                    | StepState::Succeeded
                    | StepState::Failed
                    | StepState::Ineffective
                    | StepState::Reverted
            ) && !m.intent.contains_key(key::DRY_RUN)
        })
        .filter_map(|m| m.started_at.as_ref())
        .map(|t| ActionRecord {
            at: t.0,
            workload: workload.to_string(),
            runbook: runbook.map(str::to_string),
        })
        .collect()
}

/// The safety gate's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Act now.
    Go,
    /// Plan and record what would have been done; change nothing.
    DryRun(String),
    /// Not now; look again at `until` (or at the next resync when `None`).
    Wait {
        until: Option<Timestamp>,
        reason: String,
    },
    /// Never for this step.
    Skip(String),
}

/// Inputs of the gate.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    pub step: &'a MitigationStep,
    /// The Incident's Runbook, if any (and readable).
    pub runbook: Option<(&'a str, &'a RunbookSpec)>,
    /// `kube-incident run --dry-run`.
    pub global_dry_run: bool,
    pub workload: Workload<'a>,
    /// Earlier actions in the namespace (every Incident, this one included).
    pub history: &'a [ActionRecord],
    pub now: Timestamp,
}

/// The safety rails, in order: ignored workload, paused Runbook,
/// `when.rolloutWithin`, cooldown, `maxActionsPerHour`, dry-run.
pub fn gate(input: GateInput<'_>) -> Gate {
    let d = input.workload.deployment;
    let name = d.metadata.name.clone().unwrap_or_default();
    if d.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(IGNORE_LABEL))
        .is_some_and(|v| v == "true")
    {
        return Gate::Skip(format!(
            "Deployment {name} is labelled {IGNORE_LABEL}=true; kube-incident never acts on it"
        ));
    }
    if let Some((rb, spec)) = input.runbook {
        if spec.paused {
            return Gate::Wait {
                until: None,
                reason: format!(
                    "Runbook {rb} is paused (spec.paused); no action until it is resumed"
                ),
            };
        }
    }
    if let Some(within) = input
        .step
        .when
        .as_ref()
        .and_then(|w| w.rollout_within.as_ref())
    {
        let Ok(window) = within.parse() else {
            return Gate::Skip(format!("when.rolloutWithin {within:?} is not a duration"));
        };
        match rolled_out_at(input.workload) {
            Some(at) if add(at, window) >= input.now => {}
            Some(at) => {
                return Gate::Skip(format!(
                    "guard when.rolloutWithin {within} not met: the current revision of {name} rolled out at {at}, more than {within} ago"
                ))
            }
            None => {
                return Gate::Skip(format!(
                    "guard when.rolloutWithin {within} not met: no rollout of {name} found"
                ))
            }
        }
    }
    if let Some((rb, spec)) = input.runbook {
        let limits = spec.limits.clone().unwrap_or_default();
        if let Some(cooldown) = limits.cooldown.as_ref().and_then(|c| c.parse().ok()) {
            let last = input
                .history
                .iter()
                .filter(|a| a.workload == name)
                .map(|a| a.at)
                .max();
            if let Some(last) = last {
                let until = add(last, cooldown);
                if until > input.now {
                    return Gate::Wait {
                        until: Some(until),
                        reason: format!(
                            "Runbook {rb} cooldown: the last action on {name} was at {last}; next possible at {until}"
                        ),
                    };
                }
            }
        }
        if let Some(max) = limits.max_actions_per_hour {
            let hour = Duration::from_secs(3600);
            let mut recent: Vec<Timestamp> = input
                .history
                .iter()
                .filter(|a| a.runbook.as_deref() == Some(rb) && add(a.at, hour) > input.now)
                .map(|a| a.at)
                .collect();
            recent.sort();
            if recent.len() >= usize::try_from(max.max(0)).unwrap_or(0) {
                // The oldest action that must leave the window first.
                let until = recent
                    .len()
                    .checked_sub(usize::try_from(max.max(0)).unwrap_or(0))
                    .and_then(|i| recent.get(i))
                    .map(|t| add(*t, hour));
                return Gate::Wait {
                    until,
                    reason: format!(
                        "Runbook {rb} allows {max} actions per hour and {} were taken in the last hour",
                        recent.len()
                    ),
                };
            }
        }
        if spec.dry_run {
            return Gate::DryRun(format!("Runbook {rb} is in dry-run (spec.dryRun)"));
        }
    }
    if input.global_dry_run {
        return Gate::DryRun("the operator runs with --dry-run".into());
    }
    Gate::Go
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// When the Deployment's current revision rolled out: the creation of its
/// newest ReplicaSet.
fn rolled_out_at(w: Workload<'_>) -> Option<Timestamp> {
    newest_replica_set(w).and_then(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    annotation(&rs.metadata, REVISION_ANNOTATION)?.parse().ok()
}

/// ReplicaSets the Deployment controls (controller ownerReference with its uid).
pub fn owned_replica_sets<'a>(w: Workload<'a>) -> Vec<&'a ReplicaSet> {
    let uid = w.deployment.metadata.uid.as_deref();
    w.replica_sets
        .iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.controller == Some(true)
                        && r.kind == "Deployment"
                        && Some(r.uid.as_str()) == uid
                })
            })
        })
        .collect()
}

fn newest_replica_set<'a>(w: Workload<'a>) -> Option<&'a ReplicaSet> {
    owned_replica_sets(w)
        .into_iter()
        .filter_map(|rs| revision_of(rs).map(|r| (r, rs)))
        .max_by_key(|(r, _)| *r)
        .map(|(_, rs)| rs)
}

/// The ReplicaSet to roll back to, as kubectl's `deploymentRevision`:
/// `to_revision` 0 is the second-highest revision.
pub fn rollback_target<'a>(w: Workload<'a>, to_revision: i64) -> Result<&'a ReplicaSet, String> {
    let name = w.deployment.metadata.name.clone().unwrap_or_default();
    if to_revision < 0 {
        return Err(format!(
            "unable to find specified revision {to_revision} in history"
        ));
    }
    let mut latest: Option<(i64, &ReplicaSet)> = None;
    let mut previous: Option<(i64, &ReplicaSet)> = None;
    for rs in owned_replica_sets(w) {
        let Some(v) = revision_of(rs) else { continue };
        if to_revision == 0 {
            if latest.is_none_or(|(l, _)| l < v) {
                previous = latest;
                latest = Some((v, rs));
            } else if previous.is_none_or(|(p, _)| p < v) {
                previous = Some((v, rs));
            }
        } else if v == to_revision {
            return Ok(rs);
        }
    }
    if to_revision > 0 {
        return Err(format!(
            "unable to find specified revision {to_revision} in the history of deployment {name}"
        ));
    }
    previous
        .map(|(_, rs)| rs)
        .ok_or_else(|| format!("no rollout history found for deployment {name:?}: there is no previous revision to roll back to"))
}

/// Remove empty maps, empty arrays and nulls (Go's semantic equality treats
/// nil and empty alike).
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A pod template as JSON without the pod-template-hash label.
fn template_without_hash(t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    v
}

/// kubectl's `equalIgnoreHash`.
pub fn equal_ignore_hash(
    a: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
    b: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> bool {
    normalize(&template_without_hash(a)) == normalize(&template_without_hash(b))
}

fn dep_name(d: &Deployment) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

fn generation(d: &Deployment) -> String {
    d.metadata.generation.unwrap_or(0).to_string()
}

fn images(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .map(|c| format!("{}={}", c.name, c.image.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The precondition op: the object's spec generation is still the one the
/// plan was computed from. (Status writes by controllers do not bump the
/// generation, so unlike a resourceVersion precondition this does not fail
/// on every status update of a rolling Deployment.) A failed `test` is a
/// 422 from kube-apiserver.
fn precondition(generation: Option<i64>) -> Value {
    json!({"op": "test", "path": "/metadata/generation", "value": generation.unwrap_or(0)})
}

/// The precondition op of objects without a generation (HPAs): the patched
/// object carries the resourceVersion the plan was computed from, which
/// kube-apiserver enforces as an optimistic-concurrency precondition (409
/// Conflict when the object changed since). A `test` op on the
/// resourceVersion would fail with the same 422 as an invalid change.
fn rv_precondition(resource_version: &str) -> Value {
    json!({"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version})
}

/// A digest of an HPA's spec: what "unchanged since the intent was
/// recorded" compares for HPAs (their status changes all the time, their
/// resourceVersion with it, and they carry no generation).
pub fn hpa_spec_digest(h: &HorizontalPodAutoscaler) -> String {
    use sha2::{Digest, Sha256};
    let spec = h
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .map(|v| normalize(&v))
        .unwrap_or(Value::Null);
    let d = Sha256::digest(spec.to_string().as_bytes());
    hex::encode(&d[..8])
}

/// The generation a write's precondition expects.
pub fn expected_generation(write: &Write) -> Option<i64> {
    write
        .patch
        .get(0)
        .filter(|op| op["op"] == "test" && op["path"] == "/metadata/generation")
        .and_then(|op| op["value"].as_i64())
}

/// JSON pointer escaping of one path segment.
fn esc(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The `kubeincident.io/last-action` value.
pub fn last_action(incident: &str, step: &str, action: MitigationAction) -> String {
    format!("{incident}/{step}: {action}")
}

/// Op setting one annotation on the object (creating the map if absent).
fn annotate(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    base: &str,
    k: &str,
    v: &str,
) -> Value {
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        json!({"op": "add", "path": format!("{base}/annotations/{}", esc(k)), "value": v})
    } else {
        json!({"op": "add", "path": format!("{base}/annotations"), "value": {k: v}})
    }
}

fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// Who the step acts for: `incident/step`.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub incident: &'a str,
    pub step: &'a MitigationStep,
}

/// The HPA whose scaleTargetRef is this Deployment.
pub fn hpa_for<'a>(w: Workload<'a>) -> Option<&'a HorizontalPodAutoscaler> {
    let name = dep_name(w.deployment);
    w.hpas.iter().find(|h| {
        h.spec.as_ref().is_some_and(|s| {
            s.scale_target_ref.kind == "Deployment"
                && s.scale_target_ref.name == name
                && s.scale_target_ref
                    .api_version
                    .as_deref()
                    .is_none_or(|v| v.starts_with("apps/"))
        })
    })
}

/// Plan a step against the workload. `recorded` is the intent already in
/// the status (after a restart): a RolloutRestart re-uses its timestamp so
/// the write is the same one.
pub fn plan(
    actor: Actor<'_>,
    w: Workload<'_>,
    recorded: Option<&BTreeMap<String, String>>,
    now: Timestamp,
) -> Plan {
    match actor.step.action {
        MitigationAction::RolloutUndo => plan_undo(actor, w),
        MitigationAction::Scale => plan_scale(actor, w),
        MitigationAction::SetEnv => plan_set_env(actor, w),
        MitigationAction::RolloutRestart => plan_restart(actor, w, recorded, now),
    }
}

fn plan_undo(actor: Actor<'_>, w: Workload<'_>) -> Plan {
    let d = w.deployment;
    let name = dep_name(d);
    let step = actor.step;
    let rs = match rollback_target(w, step.to_revision) {
        Ok(rs) => rs,
        Err(e) => return Plan::Refuse(e),
    };
    if paused(d) {
        return Plan::Refuse(format!(
            "you cannot roll back a paused deployment; resume it first with 'kubectl rollout resume deployment/{name}' and try again"
        ));
    }
    let target_rev = revision_of(rs).unwrap_or(0);
    let rs_template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let current = d.spec.as_ref().map(|s| &s.template);
    if equal_ignore_hash(rs_template, current) {
        return Plan::Noop(format!(
            "the current template of {name} already matches revision {target_rev}"
        ));
    }
    let mut template = template_without_hash(rs_template);
    if template.is_null() {
        return Plan::Refuse(format!(
            "ReplicaSet {} of revision {target_rev} has no pod template",
            rs.metadata.name.as_deref().unwrap_or("")
        ));
    }
    if let Some(m) = template.as_object_mut() {
        // Drop nulls the typed model may carry.
        m.retain(|_, v| !v.is_null());
    }
    let mut annotations = serde_json::Map::new();
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = annotation(&d.metadata, k) {
            annotations.insert((*k).to_string(), json!(v));
        }
    }
    if let Some(a) = &rs.metadata.annotations {
        for (k, v) in a {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
    }
    annotations.insert(
        LAST_ACTION_ANNOTATION.to_string(),
        json!(last_action(actor.incident, &step.name, step.action)),
    );
    let current_rev = annotation(&d.metadata, REVISION_ANNOTATION)
        .unwrap_or("?")
        .to_string();
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .cloned()
        .unwrap_or_default();
    let mut before = BTreeMap::new();
    before.insert(key::REVISION.into(), current_rev.clone());
    before.insert(key::IMAGES.into(), images(d));
    if let Some(cur) = newest_replica_set(w).and_then(|r| r.metadata.name.clone()) {
        before.insert(key::REPLICA_SET.into(), cur);
    }
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "RolloutUndo".into());
    intent.insert(key::TO_REVISION.into(), target_rev.to_string());
    intent.insert(key::REPLICA_SET.into(), rs_name.clone());
    intent.insert(key::POD_TEMPLATE_HASH.into(), hash);
    intent.insert(key::GENERATION.into(), generation(d));
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description: format!(
            "roll back {name} from revision {current_rev} to revision {target_rev} (ReplicaSet {rs_name})"
        ),
        write: Write {
            target: WriteTarget::Deployment(name),
            patch: json!([
                precondition(d.metadata.generation),
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "replace", "path": "/metadata/annotations", "value": annotations},
            ]),
        },
    }))
}

fn plan_scale(actor: Actor<'_>, w: Workload<'_>) -> Plan {
    let d = w.deployment;
    let name = dep_name(d);
    let step = actor.step;
    let Some(target) = step.replicas else {
        return Plan::Refuse("replicas is required for action Scale".into());
    };
    if let Some(max) = step.max_replicas {
        if target > max {
            return Plan::Refuse(format!(
                "replicas {target} exceeds the guard maxReplicas {max}"
            ));
        }
    }
    let current = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let mark = last_action(actor.incident, &step.name, step.action);
    if let Some(hpa) = hpa_for(w) {
        let hpa_name = hpa.metadata.name.clone().unwrap_or_default();
        let spec = hpa.spec.clone().unwrap_or_default();
        let min = spec.min_replicas;
        let effective_min = min.unwrap_or(1);
        if target > spec.max_replicas {
            return Plan::Refuse(format!(
                "HorizontalPodAutoscaler {hpa_name} manages {name} and caps it at maxReplicas {}; scaling to {target} would be undone (raise the HPA's maxReplicas instead)",
                spec.max_replicas
            ));
        }
        if target <= effective_min {
            return Plan::Refuse(format!(
                "HorizontalPodAutoscaler {hpa_name} manages the replicas of {name} (minReplicas {effective_min}); setting {target} would be undone by the autoscaler, and kube-incident only raises an HPA's minReplicas"
            ));
        }
        let mut before = BTreeMap::new();
        before.insert(key::HPA.into(), hpa_name.clone());
        before.insert(
            key::HPA_MIN_REPLICAS.into(),
            min.map_or(ABSENT.to_string(), |m| m.to_string()),
        );
        before.insert(key::REPLICAS.into(), current.to_string());
        let Some(rv) = hpa.metadata.resource_version.as_deref() else {
            return Plan::Refuse(format!(
                "HorizontalPodAutoscaler {hpa_name} was read without a resourceVersion; not writing it unconditionally"
            ));
        };
        let mut intent = BTreeMap::new();
        intent.insert(key::ACTION.into(), "Scale".into());
        intent.insert(key::HPA.into(), hpa_name.clone());
        intent.insert(key::HPA_MIN_REPLICAS.into(), target.to_string());
        intent.insert(key::HPA_SPEC.into(), hpa_spec_digest(hpa));
        return Plan::Act(Box::new(Planned {
            before,
            intent,
            previous_env: Vec::new(),
            description: format!(
                "raise minReplicas of HorizontalPodAutoscaler {hpa_name} (which manages {name}) from {effective_min} to {target}"
            ),
            write: Write {
                target: WriteTarget::Hpa(hpa_name),
                patch: json!([
                    rv_precondition(rv),
                    {"op": "add", "path": "/spec/minReplicas", "value": target},
                    annotate(&hpa.metadata, "/metadata", LAST_ACTION_ANNOTATION, &mark),
                ]),
            },
        }));
    }
    if current == target {
        return Plan::Noop(format!("{name} already has {target} replicas"));
    }
    let mut before = BTreeMap::new();
    before.insert(key::REPLICAS.into(), current.to_string());
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "Scale".into());
    intent.insert(key::REPLICAS.into(), target.to_string());
    intent.insert(key::GENERATION.into(), generation(d));
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description: format!("scale {name} from {current} to {target} replicas"),
        write: Write {
            target: WriteTarget::Deployment(name),
            patch: json!([
                precondition(d.metadata.generation),
                {"op": "add", "path": "/spec/replicas", "value": target},
                annotate(&d.metadata, "/metadata", LAST_ACTION_ANNOTATION, &mark),
            ]),
        },
    }))
}

/// The containers a SetEnv step changes: (index, name).
fn env_containers(step: &MitigationStep, d: &Deployment) -> Result<Vec<(usize, String)>, String> {
    let containers = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or(&[]);
    match &step.container {
        Some(c) => containers
            .iter()
            .position(|x| &x.name == c)
            .map(|i| vec![(i, c.clone())])
            .ok_or_else(|| {
                format!(
                    "container {c:?} not found in the pod template of {} (containers: {})",
                    dep_name(d),
                    containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        None => Ok(containers
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.name.clone()))
            .collect()),
    }
}

fn container_env(d: &Deployment, i: usize) -> Vec<EnvVar> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.get(i))
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
}

fn env_summary(step: &MitigationStep) -> String {
    step.env
        .iter()
        .map(|e| format!("{}={}", e.name, e.value))
        .collect::<Vec<_>>()
        .join(",")
}

fn plan_set_env(actor: Actor<'_>, w: Workload<'_>) -> Plan {
    let d = w.deployment;
    let name = dep_name(d);
    let step = actor.step;
    let targets = match env_containers(step, d) {
        Ok(t) => t,
        Err(e) => return Plan::Refuse(e),
    };
    let mut previous = Vec::new();
    let mut ops = vec![precondition(d.metadata.generation)];
    let mut changes = false;
    for (i, cname) in &targets {
        let mut env = container_env(d, *i);
        for setting in &step.env {
            match env.iter_mut().find(|e| e.name == setting.name) {
                Some(e) if e.value_from.is_some() => {
                    return Plan::Refuse(format!(
                        "variable {} of container {cname} is set from valueFrom; SetEnv would replace a reference it cannot restore",
                        setting.name
                    ));
                }
                Some(e) => {
                    previous.push(RecordedEnvVar {
                        container: cname.clone(),
                        name: setting.name.clone(),
                        value: Some(e.value.clone().unwrap_or_default()),
                    });
                    if e.value.as_deref().unwrap_or("") != setting.value {
                        changes = true;
                        e.value = Some(setting.value.clone());
                    }
                }
                None => {
                    previous.push(RecordedEnvVar {
                        container: cname.clone(),
                        name: setting.name.clone(),
                        value: None,
                    });
                    changes = true;
                    env.push(EnvVar {
                        name: setting.name.clone(),
                        value: Some(setting.value.clone()),
                        value_from: None,
                    });
                }
            }
        }
        ops.push(json!({"op": "add", "path": format!("/spec/template/spec/containers/{i}/env"), "value": env}));
    }
    if !changes {
        return Plan::Noop(format!("{} already set on {name}", env_summary(step)));
    }
    ops.push(annotate(
        &d.metadata,
        "/metadata",
        LAST_ACTION_ANNOTATION,
        &last_action(actor.incident, &step.name, step.action),
    ));
    let mut before = BTreeMap::new();
    before.insert(
        key::ENV.into(),
        previous
            .iter()
            .map(|p| {
                format!(
                    "{}:{}={}",
                    p.container,
                    p.name,
                    p.value.as_deref().unwrap_or(ABSENT)
                )
            })
            .collect::<Vec<_>>()
            .join(","),
    );
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "SetEnv".into());
    intent.insert(key::ENV.into(), env_summary(step));
    intent.insert(key::GENERATION.into(), generation(d));
    let containers = targets
        .iter()
        .map(|(_, c)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: previous,
        description: format!(
            "set {} on {name} (containers: {containers})",
            env_summary(step)
        ),
        write: Write {
            target: WriteTarget::Deployment(name),
            patch: Value::Array(ops),
        },
    }))
}

fn plan_restart(
    actor: Actor<'_>,
    w: Workload<'_>,
    recorded: Option<&BTreeMap<String, String>>,
    now: Timestamp,
) -> Plan {
    let d = w.deployment;
    let name = dep_name(d);
    let step = actor.step;
    if paused(d) {
        return Plan::Refuse(format!(
            "can't restart paused deployment {name} (run 'kubectl rollout resume deployment/{name}' first)"
        ));
    }
    let at = recorded
        .and_then(|r| r.get(key::RESTARTED_AT).cloned())
        .unwrap_or_else(|| {
            Timestamp::from_second(now.as_second())
                .unwrap_or(now)
                .to_string()
        });
    let template_meta = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.clone())
        .unwrap_or_default();
    let mut before = BTreeMap::new();
    before.insert(
        key::RESTARTED_AT.into(),
        annotation(&template_meta, RESTARTED_AT_ANNOTATION)
            .unwrap_or(ABSENT)
            .to_string(),
    );
    before.insert(
        key::REVISION.into(),
        annotation(&d.metadata, REVISION_ANNOTATION)
            .unwrap_or("?")
            .to_string(),
    );
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "RolloutRestart".into());
    intent.insert(key::RESTARTED_AT.into(), at.clone());
    intent.insert(key::GENERATION.into(), generation(d));
    let template_op = if d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .is_none()
    {
        json!({"op": "add", "path": "/spec/template/metadata", "value": {"annotations": {RESTARTED_AT_ANNOTATION: at}}})
    } else {
        annotate(
            &template_meta,
            "/spec/template/metadata",
            RESTARTED_AT_ANNOTATION,
            &at,
        )
    };
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description: format!("restart the pods of {name} (restartedAt {at})"),
        write: Write {
            target: WriteTarget::Deployment(name),
            patch: json!([
                precondition(d.metadata.generation),
                template_op,
                annotate(
                    &d.metadata,
                    "/metadata",
                    LAST_ACTION_ANNOTATION,
                    &last_action(actor.incident, &step.name, step.action)
                ),
            ]),
        },
    }))
}

/// Whether the recorded intent is in place on the workload now.
pub fn is_applied(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    w: Workload<'_>,
) -> bool {
    let d = w.deployment;
    match step.action {
        MitigationAction::RolloutUndo => {
            let Some(rs_name) = intent.get(key::REPLICA_SET) else {
                return false;
            };
            owned_replica_sets(w)
                .into_iter()
                .find(|rs| rs.metadata.name.as_ref() == Some(rs_name))
                .is_some_and(|rs| {
                    equal_ignore_hash(
                        rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                        d.spec.as_ref().map(|s| &s.template),
                    )
                })
        }
        MitigationAction::Scale => {
            if let Some(hpa_name) = intent.get(key::HPA) {
                let want = intent
                    .get(key::HPA_MIN_REPLICAS)
                    .and_then(|v| v.parse().ok());
                w.hpas
                    .iter()
                    .find(|h| h.metadata.name.as_ref() == Some(hpa_name))
                    .is_some_and(|h| h.spec.as_ref().and_then(|s| s.min_replicas) == want)
            } else {
                let want: Option<i32> = intent.get(key::REPLICAS).and_then(|v| v.parse().ok());
                d.spec.as_ref().and_then(|s| s.replicas) == want
            }
        }
        MitigationAction::SetEnv => {
            let Ok(targets) = env_containers(step, d) else {
                return false;
            };
            targets.iter().all(|(i, _)| {
                let env = container_env(d, *i);
                step.env.iter().all(|s| {
                    env.iter().any(|e| {
                        e.name == s.name
                            && e.value_from.is_none()
                            && e.value.as_deref().unwrap_or("") == s.value
                    })
                })
            })
        }
        MitigationAction::RolloutRestart => {
            let want = intent.get(key::RESTARTED_AT);
            d.spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| annotation(m, RESTARTED_AT_ANNOTATION))
                .map(str::to_string)
                .as_ref()
                == want
        }
    }
}

/// Whether the workload is still as it was when the intent was recorded
/// (so the recorded plan may still be applied).
pub fn unchanged_since_intent(intent: &BTreeMap<String, String>, w: Workload<'_>) -> bool {
    if let Some(hpa_name) = intent.get(key::HPA) {
        return w
            .hpas
            .iter()
            .find(|h| h.metadata.name.as_ref() == Some(hpa_name))
            .is_some_and(|h| match intent.get(key::HPA_SPEC) {
                Some(digest) => hpa_spec_digest(h) == *digest,
                // An intent recorded by an earlier version.
                None => {
                    Some(h.metadata.generation.unwrap_or(0).to_string()).as_ref()
                        == intent.get(key::HPA_GENERATION)
                }
            });
    }
    Some(generation(w.deployment)).as_ref() == intent.get(key::GENERATION)
}

/// Verification of an applied action.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// Rolled out; `after` records what the action set.
    Done {
        after: BTreeMap<String, String>,
        message: String,
    },
    /// Not yet; the text says what we wait for.
    Waiting(String),
    /// It will not roll out.
    Failed(String),
}

/// kubectl's `rollout status` for a Deployment: Ok(true) when complete.
pub fn rollout_complete(d: &Deployment) -> Result<bool, String> {
    let name = dep_name(d);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    if !observed {
        return Ok(false);
    }
    if status.conditions.as_ref().is_some_and(|cs| {
        cs.iter().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
    }) {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    Ok(updated >= replicas
        && status.replicas.unwrap_or(0) <= updated
        && status.available_replicas.unwrap_or(0) >= updated)
}

/// Has the applied action taken effect?
pub fn verify(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    w: Workload<'_>,
) -> Verification {
    let d = w.deployment;
    let name = dep_name(d);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    match step.action {
        MitigationAction::Scale => {
            let mut after = BTreeMap::new();
            if let Some(hpa) = intent.get(key::HPA) {
                let want: i32 = intent
                    .get(key::HPA_MIN_REPLICAS)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                if observed && replicas >= want && status.available_replicas.unwrap_or(0) >= want {
                    after.insert(key::HPA.into(), hpa.clone());
                    after.insert(key::HPA_MIN_REPLICAS.into(), want.to_string());
                    after.insert(key::REPLICAS.into(), replicas.to_string());
                    return Verification::Done {
                        after,
                        message: format!(
                            "HorizontalPodAutoscaler {hpa} keeps at least {want} replicas; {name} has {replicas}"
                        ),
                    };
                }
                return Verification::Waiting(format!(
                    "waiting for HorizontalPodAutoscaler {hpa} to scale {name} to at least {want} (now {replicas})"
                ));
            }
            let want: i32 = intent
                .get(key::REPLICAS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let complete = match rollout_complete(d) {
                Err(e) => return Verification::Failed(e),
                Ok(c) => c,
            };
            if complete && status.replicas.unwrap_or(-1) == want {
                after.insert(key::REPLICAS.into(), want.to_string());
                return Verification::Done {
                    after,
                    message: format!("scaled {name} to {want} replicas"),
                };
            }
            Verification::Waiting(format!(
                "waiting for {name} to have {want} available replicas (now {} of {})",
                status.available_replicas.unwrap_or(0),
                status.replicas.unwrap_or(0)
            ))
        }
        action => {
            match rollout_complete(d) {
                Err(e) => return Verification::Failed(e),
                Ok(false) => {
                    return Verification::Waiting(format!(
                        "waiting for the rollout of {name} to complete ({} of {} updated, {} available)",
                        status.updated_replicas.unwrap_or(0),
                        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                        status.available_replicas.unwrap_or(0)
                    ))
                }
                Ok(true) => {}
            }
            let revision = annotation(&d.metadata, REVISION_ANNOTATION)
                .unwrap_or("?")
                .to_string();
            let mut after = BTreeMap::new();
            after.insert(key::REVISION.into(), revision.clone());
            let message = match action {
                MitigationAction::RolloutUndo => {
                    let rs_name = intent.get(key::REPLICA_SET).cloned().unwrap_or_default();
                    // The new ReplicaSet of the rollout must be the one we rolled back to.
                    let newest = newest_replica_set(w).and_then(|r| r.metadata.name.clone());
                    if newest.as_deref() != Some(rs_name.as_str()) {
                        return Verification::Waiting(format!(
                            "waiting for ReplicaSet {rs_name} to become the current revision of {name}"
                        ));
                    }
                    let to = intent.get(key::TO_REVISION).cloned().unwrap_or_default();
                    after.insert(key::REPLICA_SET.into(), rs_name.clone());
                    after.insert(key::TO_REVISION.into(), to.clone());
                    after.insert(key::IMAGES.into(), images(d));
                    format!(
                        "rolled back {name} to the template of revision {to} (ReplicaSet {rs_name}, now revision {revision}); rollout complete"
                    )
                }
                MitigationAction::SetEnv => {
                    after.insert(
                        key::ENV.into(),
                        intent.get(key::ENV).cloned().unwrap_or_default(),
                    );
                    format!(
                        "set {} on {name}; rollout complete (revision {revision})",
                        intent.get(key::ENV).map(String::as_str).unwrap_or("")
                    )
                }
                _ => {
                    after.insert(
                        key::RESTARTED_AT.into(),
                        intent.get(key::RESTARTED_AT).cloned().unwrap_or_default(),
                    );
                    format!("restarted {name}; rollout complete (revision {revision})")
                }
            };
            Verification::Done { after, message }
        }
    }
}

/// The revert of a Scale or SetEnv step on Resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Revert {
    /// Send this write, then the step is Reverted.
    Act { write: Write, description: String },
    /// Already back to the recorded value (e.g. after a crash): mark Reverted.
    AlreadyReverted(String),
    /// Not reverting; the reason goes on the step and the timeline.
    Refuse(String),
}

/// Plan the restore of the recorded prior values, only where the fields
/// still hold what the step set.
pub fn plan_revert(
    actor: Actor<'_>,
    before: &BTreeMap<String, String>,
    intent: &BTreeMap<String, String>,
    previous_env: &[RecordedEnvVar],
    w: Workload<'_>,
) -> Revert {
    let d = w.deployment;
    let name = dep_name(d);
    let step = actor.step;
    let mark = format!("{}/{}: revert {}", actor.incident, step.name, step.action);
    match step.action {
        MitigationAction::Scale => {
            if let Some(hpa_name) = intent.get(key::HPA) {
                let Some(hpa) = w
                    .hpas
                    .iter()
                    .find(|h| h.metadata.name.as_ref() == Some(hpa_name))
                else {
                    return Revert::Refuse(format!(
                        "HorizontalPodAutoscaler {hpa_name} no longer exists"
                    ));
                };
                let now = hpa.spec.as_ref().and_then(|s| s.min_replicas);
                let ours: Option<i32> = intent
                    .get(key::HPA_MIN_REPLICAS)
                    .and_then(|v| v.parse().ok());
                let prior = before
                    .get(key::HPA_MIN_REPLICAS)
                    .cloned()
                    .unwrap_or_default();
                let prior_val: Option<i32> = prior.parse().ok();
                if now == prior_val {
                    return Revert::AlreadyReverted(format!(
                        "minReplicas of {hpa_name} is already {prior}"
                    ));
                }
                if now != ours {
                    return Revert::Refuse(format!(
                        "not reverted: minReplicas of HorizontalPodAutoscaler {hpa_name} is now {}, no longer the {} this step set (someone changed it since)",
                        now.map_or(ABSENT.to_string(), |v| v.to_string()),
                        intent.get(key::HPA_MIN_REPLICAS).map(String::as_str).unwrap_or("?")
                    ));
                }
                let op = match prior_val {
                    Some(v) => json!({"op": "replace", "path": "/spec/minReplicas", "value": v}),
                    None => json!({"op": "remove", "path": "/spec/minReplicas"}),
                };
                let Some(rv) = hpa.metadata.resource_version.as_deref() else {
                    return Revert::Refuse(format!(
                        "not reverted: HorizontalPodAutoscaler {hpa_name} was read without a resourceVersion"
                    ));
                };
                return Revert::Act {
                    write: Write {
                        target: WriteTarget::Hpa(hpa_name.clone()),
                        patch: json!([
                            rv_precondition(rv),
                            op,
                            annotate(&hpa.metadata, "/metadata", LAST_ACTION_ANNOTATION, &mark),
                        ]),
                    },
                    description: format!(
                        "restored minReplicas of HorizontalPodAutoscaler {hpa_name} to {prior}"
                    ),
                };
            }
            let now = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let ours: Option<i32> = intent.get(key::REPLICAS).and_then(|v| v.parse().ok());
            let Some(prior) = before
                .get(key::REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
            else {
                return Revert::Refuse("not reverted: no prior replica count was recorded".into());
            };
            if now == prior {
                return Revert::AlreadyReverted(format!("{name} already has {prior} replicas"));
            }
            if Some(now) != ours {
                return Revert::Refuse(format!(
                    "not reverted: {name} now has {now} replicas, no longer the {} this step set (someone changed it since)",
                    ours.map_or("?".to_string(), |v| v.to_string())
                ));
            }
            Revert::Act {
                write: Write {
                    target: WriteTarget::Deployment(name.clone()),
                    patch: json!([
                        precondition(d.metadata.generation),
                        {"op": "replace", "path": "/spec/replicas", "value": prior},
                        annotate(&d.metadata, "/metadata", LAST_ACTION_ANNOTATION, &mark),
                    ]),
                },
                description: format!("scaled {name} back from {now} to {prior} replicas"),
            }
        }
        MitigationAction::SetEnv => {
            let targets = match env_containers(step, d) {
                Ok(t) => t,
                Err(e) => return Revert::Refuse(format!("not reverted: {e}")),
            };
            let mut ops = vec![precondition(d.metadata.generation)];
            let mut all_prior = true;
            for (i, cname) in &targets {
                let mut env = container_env(d, *i);
                for rec in previous_env.iter().filter(|r| &r.container == cname) {
                    let ours = step
                        .env
                        .iter()
                        .find(|s| s.name == rec.name)
                        .map(|s| s.value.as_str());
                    let now = env.iter().find(|e| e.name == rec.name);
                    let now_val = now.and_then(|e| {
                        if e.value_from.is_some() {
                            None
                        } else {
                            Some(e.value.clone().unwrap_or_default())
                        }
                    });
                    if now_val == rec.value && !(now.is_some() && rec.value.is_none()) {
                        continue;
                    }
                    all_prior = false;
                    if now_val.as_deref() != ours || now.is_none() {
                        return Revert::Refuse(format!(
                            "not reverted: {} of container {cname} is now {}, no longer the {:?} this step set (someone changed it since)",
                            rec.name,
                            now_val.as_deref().map_or(ABSENT.to_string(), |v| format!("{v:?}")),
                            ours.unwrap_or("")
                        ));
                    }
                    match &rec.value {
                        Some(v) => {
                            if let Some(e) = env.iter_mut().find(|e| e.name == rec.name) {
                                e.value = Some(v.clone());
                            }
                        }
                        None => env.retain(|e| e.name != rec.name),
                    }
                }
                ops.push(json!({"op": "add", "path": format!("/spec/template/spec/containers/{i}/env"), "value": env}));
            }
            if all_prior {
                return Revert::AlreadyReverted(format!(
                    "the variables of {name} already hold their prior values"
                ));
            }
            ops.push(annotate(
                &d.metadata,
                "/metadata",
                LAST_ACTION_ANNOTATION,
                &mark,
            ));
            Revert::Act {
                write: Write {
                    target: WriteTarget::Deployment(name.clone()),
                    patch: Value::Array(ops),
                },
                description: format!(
                    "restored {} on {name}",
                    previous_env
                        .iter()
                        .map(|p| format!(
                            "{}:{}={}",
                            p.container,
                            p.name,
                            p.value.as_deref().unwrap_or(ABSENT)
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            }
        }
        other => Revert::Refuse(format!("{other} cannot be reverted")),
    }
}

/// After a step succeeded: does the workload still hold what it set? `None`
/// when it does; otherwise what changed.
pub fn external_change(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    w: Workload<'_>,
) -> Option<String> {
    if is_applied(step, intent, w) {
        return None;
    }
    let d = w.deployment;
    let name = dep_name(d);
    let field = if step.action == MitigationAction::Scale {
        "f:replicas"
    } else {
        "f:template"
    };
    let who = last_update_manager(d, field).map_or(String::new(), |m| {
        format!(" (last written by field manager {m:?})")
    });
    Some(match step.action {
        MitigationAction::RolloutUndo => format!(
            "the pod template of {name} no longer matches revision {} that this step rolled back to{who}",
            intent.get(key::TO_REVISION).map(String::as_str).unwrap_or("?")
        ),
        MitigationAction::Scale => match intent.get(key::HPA) {
            Some(h) => format!(
                "minReplicas of HorizontalPodAutoscaler {h} is no longer {}",
                intent.get(key::HPA_MIN_REPLICAS).map(String::as_str).unwrap_or("?")
            ),
            None => format!(
                "{name} has {} replicas, no longer the {} this step set{who}",
                d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                intent.get(key::REPLICAS).map(String::as_str).unwrap_or("?")
            ),
        },
        MitigationAction::SetEnv => format!(
            "{} is no longer set on {name}{who}",
            intent.get(key::ENV).map(String::as_str).unwrap_or("")
        ),
        MitigationAction::RolloutRestart => {
            format!("the restartedAt annotation of {name} changed{who}")
        }
    })
}

/// The field manager, other than ours, that most recently wrote a field
/// under `field` (a managedFields key such as `f:template`).
pub fn last_update_manager(d: &Deployment, field: &str) -> Option<String> {
    d.metadata
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|m| m.manager.as_deref() != Some(crate::api::FIELD_MANAGER))
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| serde_json::to_string(&f.0).ok())
                .is_some_and(|f| f.contains(&format!("\"{field}\"")))
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GoDuration;
    use crate::api::{EnvVarSetting, Limits, StepGuard};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn dep(rev: i64, image: &str, extra: Value) -> Deployment {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "d-uid", "generation": 5,
                "resourceVersion": "100",
                "annotations": {REVISION_ANNOTATION: rev.to_string(), "team": "payments"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image,
                        "env": [{"name": "MODE", "value": "fast"}]}, {"name": "sidecar", "image": "proxy"}]}}},
            "status": {"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b.clone()) {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(x) if x.is_object() && v.is_object() => merge(x, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
    }

    fn rs(name: &str, rev: i64, image: &str, created: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
                "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: name.trim_start_matches("web-")},
                "annotations": {REVISION_ANNOTATION: rev.to_string(), "team": "payments",
                    "deployment.kubernetes.io/desired-replicas": "3"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "d-uid", "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: name.trim_start_matches("web-")}},
                    "spec": {"containers": [{"name": "app", "image": image,
                        "env": [{"name": "MODE", "value": "fast"}]}, {"name": "sidecar", "image": "proxy"}]}}}
        }))
        .unwrap()
    }

    fn history() -> Vec<ReplicaSet> {
        vec![
            rs("web-aaa", 1, "web:v1", "2026-01-01T00:00:00Z"),
            rs("web-bbb", 2, "web:v2", "2026-01-01T01:00:00Z"),
            rs("web-ccc", 3, "web:v3", "2026-01-01T02:00:00Z"),
        ]
    }

    fn w<'a>(
        d: &'a Deployment,
        rss: &'a [ReplicaSet],
        hpas: &'a [HorizontalPodAutoscaler],
    ) -> Workload<'a> {
        Workload {
            deployment: d,
            replica_sets: rss,
            hpas,
        }
    }

    fn step(action: MitigationAction) -> MitigationStep {
        MitigationStep::new("s", action)
    }

    fn act(p: Plan) -> Planned {
        match p {
            Plan::Act(p) => *p,
            other => panic!("expected a plan, got {other:?}"),
        }
    }

    fn now() -> Timestamp {
        ts("2026-01-01T02:10:00Z")
    }

    #[test]
    fn undo_finds_previous_revision_like_kubectl() {
        let d = dep(3, "web:v3", json!({}));
        let rss = history();
        let s = step(MitigationAction::RolloutUndo);
        let p = act(plan(
            Actor {
                incident: "inc",
                step: &s,
            },
            w(&d, &rss, &[]),
            None,
            now(),
        ));
        assert_eq!(p.intent[key::TO_REVISION], "2");
        assert_eq!(p.intent[key::REPLICA_SET], "web-bbb");
        assert_eq!(p.intent[key::POD_TEMPLATE_HASH], "bbb");
        assert_eq!(p.intent[key::GENERATION], "5");
        assert_eq!(p.before[key::REVISION], "3");
        let ops = p.write.patch.as_array().unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/generation", "value": 5})
        );
        assert_eq!(ops[1]["path"], "/spec/template");
        // The hash label is removed, the template copied.
        assert_eq!(ops[1]["value"]["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(ops[1]["value"]["spec"]["containers"][0]["image"], "web:v2");
        // Annotations: revision kept from the Deployment, the rest from the RS, plus ours.
        let ann = &ops[2]["value"];
        assert_eq!(ann[REVISION_ANNOTATION], "3");
        assert_eq!(ann["team"], "payments");
        assert!(ann
            .get("deployment.kubernetes.io/desired-replicas")
            .is_none());
        assert_eq!(ann[LAST_ACTION_ANNOTATION], "inc/s: RolloutUndo");

        let mut s = step(MitigationAction::RolloutUndo);
        s.to_revision = 1;
        let p = act(plan(
            Actor {
                incident: "inc",
                step: &s,
            },
            w(&d, &rss, &[]),
            None,
            now(),
        ));
        assert_eq!(p.intent[key::REPLICA_SET], "web-aaa");
        s.to_revision = 9;
        assert!(
            matches!(plan(Actor { incident: "inc", step: &s }, w(&d, &rss, &[]), None, now()),
            Plan::Refuse(m) if m.contains("unable to find specified revision 9"))
        );
    }

    #[test]
    fn undo_refusals_and_noop() {
        let d = dep(1, "web:v1", json!({}));
        let rss = vec![history().remove(0)];
        let s = step(MitigationAction::RolloutUndo);
        assert!(
            matches!(plan(Actor { incident: "i", step: &s }, w(&d, &rss, &[]), None, now()),
            Plan::Refuse(m) if m.contains("no rollout history"))
        );
        let d = dep(3, "web:v3", json!({"spec": {"paused": true}}));
        let rss = history();
        assert!(
            matches!(plan(Actor { incident: "i", step: &s }, w(&d, &rss, &[]), None, now()),
            Plan::Refuse(m) if m.contains("paused"))
        );
        // ReplicaSets of another Deployment (other uid) are not history.
        let d = dep(3, "web:v3", json!({"metadata": {"uid": "other"}}));
        assert!(matches!(
            plan(
                Actor {
                    incident: "i",
                    step: &s
                },
                w(&d, &rss, &[]),
                None,
                now()
            ),
            Plan::Refuse(_)
        ));
        // The template already matches the previous revision.
        let d = dep(3, "web:v2", json!({}));
        assert!(matches!(
            plan(
                Actor {
                    incident: "i",
                    step: &s
                },
                w(&d, &rss, &[]),
                None,
                now()
            ),
            Plan::Noop(_)
        ));
    }

    #[test]
    fn undo_applied_and_verified_after_revision_reuse() {
        let rss = history();
        let s = step(MitigationAction::RolloutUndo);
        let d = dep(3, "web:v3", json!({}));
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &rss, &[]),
            None,
            now(),
        ));
        assert!(!is_applied(&s, &p.intent, w(&d, &rss, &[])));
        assert!(unchanged_since_intent(&p.intent, w(&d, &rss, &[])));
        // After the patch: template of v2, generation 6, not yet observed.
        let d = dep(3, "web:v2", json!({"metadata": {"generation": 6}}));
        assert!(is_applied(&s, &p.intent, w(&d, &rss, &[])));
        assert!(!unchanged_since_intent(&p.intent, w(&d, &rss, &[])));
        assert!(matches!(
            verify(&s, &p.intent, w(&d, &rss, &[])),
            Verification::Waiting(_)
        ));
        // The controller re-used web-bbb as revision 4 and finished the rollout.
        let d = dep(
            4,
            "web:v2",
            json!({"metadata": {"generation": 6}, "status": {"observedGeneration": 6}}),
        );
        let mut rss = history();
        rss[1] = rs("web-bbb", 4, "web:v2", "2026-01-01T01:00:00Z");
        match verify(&s, &p.intent, w(&d, &rss, &[])) {
            Verification::Done { after, message } => {
                assert_eq!(after[key::REVISION], "4");
                assert!(message.contains("template of revision 2"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A progress deadline fails the verification.
        let d = dep(
            4,
            "web:v2",
            json!({"metadata": {"generation": 6}, "status": {"observedGeneration": 6,
            "availableReplicas": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}),
        );
        assert!(matches!(
            verify(&s, &p.intent, w(&d, &rss, &[])),
            Verification::Failed(_)
        ));
        // Someone re-applied v3: an external change.
        let d = dep(5, "web:v3", json!({"metadata": {"generation": 7}}));
        assert!(external_change(&s, &p.intent, w(&d, &rss, &[])).is_some());
    }

    fn hpa(min: Option<i32>, max: i32) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "web-hpa", "generation": 2, "resourceVersion": "7"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": min, "maxReplicas": max}
        }))
        .unwrap()
    }

    #[test]
    fn scale_bounds_hpa_and_revert() {
        let d = dep(3, "web:v3", json!({}));
        let mut s = step(MitigationAction::Scale);
        s.replicas = Some(6);
        s.max_replicas = Some(5);
        assert!(
            matches!(plan(Actor { incident: "i", step: &s }, w(&d, &[], &[]), None, now()),
            Plan::Refuse(m) if m.contains("maxReplicas 5"))
        );
        s.max_replicas = None;
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &[]),
            None,
            now(),
        ));
        assert_eq!(p.before[key::REPLICAS], "3");
        assert_eq!(
            p.write.patch[1],
            json!({"op": "add", "path": "/spec/replicas", "value": 6})
        );
        assert_eq!(p.write.target, WriteTarget::Deployment("web".into()));
        // Revert only while the field holds our value.
        let scaled = dep(3, "web:v3", json!({"spec": {"replicas": 6}}));
        assert!(matches!(
            plan_revert(
                Actor {
                    incident: "i",
                    step: &s
                },
                &p.before,
                &p.intent,
                &[],
                w(&scaled, &[], &[])
            ),
            Revert::Act { .. }
        ));
        let changed = dep(3, "web:v3", json!({"spec": {"replicas": 8}}));
        assert!(
            matches!(plan_revert(Actor { incident: "i", step: &s }, &p.before, &p.intent, &[], w(&changed, &[], &[])),
            Revert::Refuse(m) if m.contains("now has 8 replicas"))
        );
        assert!(matches!(
            plan_revert(
                Actor {
                    incident: "i",
                    step: &s
                },
                &p.before,
                &p.intent,
                &[],
                w(&d, &[], &[])
            ),
            Revert::AlreadyReverted(_)
        ));

        // Under an HPA: raise minReplicas, or refuse.
        let hpas = [hpa(None, 10)];
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &hpas),
            None,
            now(),
        ));
        assert_eq!(p.write.target, WriteTarget::Hpa("web-hpa".into()));
        assert_eq!(p.before[key::HPA_MIN_REPLICAS], ABSENT);
        assert_eq!(
            p.write.patch[1],
            json!({"op": "add", "path": "/spec/minReplicas", "value": 6})
        );
        let raised = [hpa(Some(6), 10)];
        assert!(is_applied(&s, &p.intent, w(&d, &[], &raised)));
        match plan_revert(
            Actor {
                incident: "i",
                step: &s,
            },
            &p.before,
            &p.intent,
            &[],
            w(&d, &[], &raised),
        ) {
            Revert::Act { write, .. } => assert_eq!(
                write.patch[1],
                json!({"op": "remove", "path": "/spec/minReplicas"})
            ),
            other => panic!("{other:?}"),
        }
        let capped = [hpa(Some(2), 4)];
        assert!(
            matches!(plan(Actor { incident: "i", step: &s }, w(&d, &[], &capped), None, now()),
            Plan::Refuse(m) if m.contains("maxReplicas 4"))
        );
        s.replicas = Some(2);
        assert!(matches!(
            plan(
                Actor {
                    incident: "i",
                    step: &s
                },
                w(&d, &[], &capped),
                None,
                now()
            ),
            Plan::Refuse(_)
        ));
    }

    #[test]
    fn hpa_writes_are_fenced_by_resource_version_not_generation() {
        // kube-apiserver sets no metadata.generation on HPAs.
        let no_generation = |min: Option<i32>, rv: &str, current: i32| -> HorizontalPodAutoscaler {
            serde_json::from_value(json!({
                "metadata": {"name": "web-hpa", "resourceVersion": rv},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": min, "maxReplicas": 10},
                "status": {"currentReplicas": current, "desiredReplicas": current}
            }))
            .unwrap()
        };
        let d = dep(3, "web:v3", json!({}));
        let mut s = step(MitigationAction::Scale);
        s.replicas = Some(6);
        let hpas = [no_generation(Some(2), "41", 3)];
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &hpas),
            None,
            now(),
        ));
        assert_eq!(
            p.write.patch[0],
            json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "41"}),
            "the HPA write carries the resourceVersion it was planned from"
        );
        assert!(
            !p.write.patch.to_string().contains("/metadata/generation"),
            "no generation test on an object without a generation: {}",
            p.write.patch
        );
        assert_eq!(expected_generation(&p.write), None);
        assert!(!p.intent.contains_key(key::HPA_GENERATION));
        // The autoscaler's status writes move the resourceVersion, not the spec:
        // the recorded plan still applies (re-planned from the fresh read).
        let status_moved = [no_generation(Some(2), "57", 4)];
        assert!(unchanged_since_intent(&p.intent, w(&d, &[], &status_moved)));
        let again = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &status_moved),
            None,
            now(),
        ));
        assert_eq!(again.intent, p.intent);
        assert_eq!(again.write.patch[0]["value"], "57");
        // Someone changed the spec: not the state the intent was planned on.
        let spec_moved = [no_generation(Some(4), "60", 4)];
        assert!(!unchanged_since_intent(&p.intent, w(&d, &[], &spec_moved)));
        // The revert is fenced the same way.
        let raised = [no_generation(Some(6), "70", 6)];
        match plan_revert(
            Actor {
                incident: "i",
                step: &s,
            },
            &p.before,
            &p.intent,
            &[],
            w(&d, &[], &raised),
        ) {
            Revert::Act { write, .. } => {
                assert_eq!(
                    write.patch[0],
                    json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "70"})
                );
                assert_eq!(
                    write.patch[1],
                    json!({"op": "replace", "path": "/spec/minReplicas", "value": 2})
                );
            }
            other => panic!("{other:?}"),
        }
        // A Deployment write keeps its generation test.
        s.replicas = Some(5);
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &[]),
            None,
            now(),
        ));
        assert_eq!(expected_generation(&p.write), Some(5));
    }

    #[test]
    fn set_env_records_prior_values_and_reverts_exactly() {
        let d = dep(3, "web:v3", json!({}));
        let mut s = step(MitigationAction::SetEnv);
        s.env = vec![
            EnvVarSetting {
                name: "MODE".into(),
                value: "safe".into(),
            },
            EnvVarSetting {
                name: "NEW".into(),
                value: "false".into(),
            },
        ];
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &[]),
            None,
            now(),
        ));
        // Every container by default.
        assert_eq!(p.previous_env.len(), 4);
        assert_eq!(
            p.previous_env[0],
            RecordedEnvVar {
                container: "app".into(),
                name: "MODE".into(),
                value: Some("fast".into())
            }
        );
        assert_eq!(p.previous_env[1].value, None);
        assert_eq!(
            p.write.patch[1]["path"],
            "/spec/template/spec/containers/0/env"
        );
        assert_eq!(
            p.write.patch[1]["value"],
            json!([{"name": "MODE", "value": "safe"}, {"name": "NEW", "value": "false"}])
        );
        assert_eq!(
            p.write.patch[2]["value"],
            json!([{"name": "MODE", "value": "safe"}, {"name": "NEW", "value": "false"}])
        );

        // One container only.
        s.container = Some("app".into());
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &[]),
            None,
            now(),
        ));
        assert_eq!(p.previous_env.len(), 2);
        let applied = dep(
            3,
            "web:v3",
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "web:v3", "env": [{"name": "MODE", "value": "safe"}, {"name": "NEW", "value": "false"}]},
            {"name": "sidecar", "image": "proxy"}]}}}}),
        );
        assert!(is_applied(&s, &p.intent, w(&applied, &[], &[])));
        match plan_revert(
            Actor {
                incident: "i",
                step: &s,
            },
            &p.before,
            &p.intent,
            &p.previous_env,
            w(&applied, &[], &[]),
        ) {
            Revert::Act { write, .. } => assert_eq!(
                write.patch[1]["value"],
                json!([{"name": "MODE", "value": "fast"}])
            ),
            other => panic!("{other:?}"),
        }
        let changed = dep(
            3,
            "web:v3",
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "web:v3", "env": [{"name": "MODE", "value": "manual"}, {"name": "NEW", "value": "false"}]},
            {"name": "sidecar", "image": "proxy"}]}}}}),
        );
        assert!(
            matches!(plan_revert(Actor { incident: "i", step: &s }, &p.before, &p.intent, &p.previous_env, w(&changed, &[], &[])),
            Revert::Refuse(m) if m.contains("MODE"))
        );
        assert!(matches!(
            plan_revert(
                Actor {
                    incident: "i",
                    step: &s
                },
                &p.before,
                &p.intent,
                &p.previous_env,
                w(&d, &[], &[])
            ),
            Revert::AlreadyReverted(_)
        ));
        // valueFrom cannot be restored exactly: refuse.
        let from = dep(
            3,
            "web:v3",
            json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "web:v3", "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]}]}}}}),
        );
        assert!(
            matches!(plan(Actor { incident: "i", step: &s }, w(&from, &[], &[]), None, now()),
            Plan::Refuse(m) if m.contains("valueFrom"))
        );
    }

    #[test]
    fn restart_reuses_recorded_timestamp() {
        let d = dep(3, "web:v3", json!({}));
        let s = step(MitigationAction::RolloutRestart);
        let p = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &[]),
            None,
            now(),
        ));
        assert_eq!(p.intent[key::RESTARTED_AT], "2026-01-01T02:10:00Z");
        assert_eq!(
            p.write.patch[1]["path"],
            "/spec/template/metadata/annotations"
        );
        let later = act(plan(
            Actor {
                incident: "i",
                step: &s,
            },
            w(&d, &[], &[]),
            Some(&p.intent),
            ts("2026-01-01T03:00:00Z"),
        ));
        assert_eq!(later.write, p.write, "a replay sends the same write");
        let paused = dep(3, "web:v3", json!({"spec": {"paused": true}}));
        assert!(
            matches!(plan(Actor { incident: "i", step: &s }, w(&paused, &[], &[]), None, now()),
            Plan::Refuse(m) if m.contains("paused"))
        );
    }

    fn runbook(limits: Value, extra: Value) -> RunbookSpec {
        let mut v = json!({"selector": {}, "limits": limits});
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn gate_rails_in_order() {
        let d = dep(3, "web:v3", json!({}));
        let rss = history();
        let s = step(MitigationAction::RolloutUndo);
        let none = runbook(json!({}), json!({}));
        let g = |s: &MitigationStep,
                 rb: Option<(&str, &RunbookSpec)>,
                 dry: bool,
                 hist: &[ActionRecord],
                 d: &Deployment| {
            gate(GateInput {
                step: s,
                runbook: rb,
                global_dry_run: dry,
                workload: w(d, &rss, &[]),
                history: hist,
                now: now(),
            })
        };
        assert_eq!(g(&s, Some(("rb", &none)), false, &[], &d), Gate::Go);
        assert!(matches!(g(&s, None, true, &[], &d), Gate::DryRun(_)));
        let dry = runbook(json!({}), json!({"dryRun": true}));
        assert!(
            matches!(g(&s, Some(("rb", &dry)), false, &[], &d), Gate::DryRun(m) if m.contains("spec.dryRun"))
        );
        let paused = runbook(json!({}), json!({"paused": true}));
        assert!(matches!(
            g(&s, Some(("rb", &paused)), false, &[], &d),
            Gate::Wait { until: None, .. }
        ));
        let ignored = dep(
            3,
            "web:v3",
            json!({"metadata": {"labels": {IGNORE_LABEL: "true"}}}),
        );
        assert!(matches!(g(&s, None, false, &[], &ignored), Gate::Skip(_)));

        // rolloutWithin: revision 3 rolled out at 02:00, now is 02:10.
        let mut guarded = s.clone();
        guarded.when = Some(StepGuard {
            rollout_within: Some(GoDuration::new("30m")),
        });
        assert_eq!(g(&guarded, None, false, &[], &d), Gate::Go);
        guarded.when = Some(StepGuard {
            rollout_within: Some(GoDuration::new("5m")),
        });
        assert!(
            matches!(g(&guarded, None, false, &[], &d), Gate::Skip(m) if m.contains("rolloutWithin 5m"))
        );

        // Cooldown per workload, then the hourly limit per Runbook.
        let limited = RunbookSpec {
            limits: Some(Limits {
                cooldown: Some(GoDuration::new("10m")),
                max_actions_per_hour: Some(2),
            }),
            ..none.clone()
        };
        let rec = |at: &str, workload: &str| ActionRecord {
            at: ts(at),
            workload: workload.into(),
            runbook: Some("rb".into()),
        };
        match g(
            &s,
            Some(("rb", &limited)),
            false,
            &[rec("2026-01-01T02:05:00Z", "web")],
            &d,
        ) {
            Gate::Wait { until, reason } => {
                assert_eq!(until, Some(ts("2026-01-01T02:15:00Z")));
                assert!(reason.contains("cooldown"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            g(
                &s,
                Some(("rb", &limited)),
                false,
                &[rec("2026-01-01T01:55:00Z", "web")],
                &d
            ),
            Gate::Go
        );
        let busy = [
            rec("2026-01-01T01:20:00Z", "api"),
            rec("2026-01-01T01:40:00Z", "db"),
        ];
        match g(&s, Some(("rb", &limited)), false, &busy, &d) {
            Gate::Wait { until, reason } => {
                assert_eq!(until, Some(ts("2026-01-01T02:20:00Z")));
                assert!(reason.contains("2 actions per hour"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn actions_of_counts_started_steps_not_dry_runs() {
        let status: IncidentStatus = serde_json::from_value(json!({"mitigations": [
            {"name": "a", "state": "Succeeded", "startedAt": "2026-01-01T00:00:00Z"},
            {"name": "b", "state": "Skipped", "startedAt": "2026-01-01T00:01:00Z", "intent": {"dryRun": "true"}},
            {"name": "c", "state": "Pending"},
            {"name": "d", "state": "Failed", "startedAt": "2026-01-01T00:02:00Z"}
        ]}))
        .unwrap();
        let a = actions_of(&status, "web", Some("rb"));
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].at, ts("2026-01-01T00:02:00Z"));
    }

    #[test]
    fn executor_outcomes_in_the_lifecycle_are_idempotent() {
        use crate::core::lifecycle::{record_step_outcome, StepOutcome, Transition};
        let mut status: IncidentStatus = serde_json::from_value(json!({"mitigations": [
            {"name": "a", "state": "Succeeded", "intent": {"replicas": "4"}},
            {"name": "b", "state": "Pending"}
        ]}))
        .unwrap();
        let w = Duration::from_secs(60);
        let t = now();
        let out = record_step_outcome(
            &mut status,
            0,
            StepOutcome::ExternalChange {
                message: "replicas is 2".into(),
            },
            w,
            Some(1),
            t,
        );
        assert!(matches!(&out[..], [Transition::ExternalChange { .. }]));
        assert_eq!(status.mitigations[0].state, StepState::Failed);
        assert!(status.mitigations[0]
            .message
            .starts_with("changed by another manager"));
        assert!(status
            .conditions
            .iter()
            .any(|c| c.type_ == "MitigationFailed" && c.reason == "ExternalChange"));
        assert!(record_step_outcome(
            &mut status,
            0,
            StepOutcome::ExternalChange {
                message: "replicas is 2".into()
            },
            w,
            Some(1),
            t
        )
        .is_empty());

        let out = record_step_outcome(
            &mut status,
            0,
            StepOutcome::NotReverted {
                message: "someone changed it".into(),
            },
            w,
            Some(1),
            t,
        );
        assert!(out.is_empty());
        assert_eq!(
            status.mitigations[0].after[key::REVERT],
            "someone changed it"
        );
        let n = status.timeline.len();
        record_step_outcome(
            &mut status,
            0,
            StepOutcome::NotReverted {
                message: "someone changed it".into(),
            },
            w,
            Some(1),
            t,
        );
        assert_eq!(status.timeline.len(), n, "recorded once");

        let mut intent = BTreeMap::new();
        intent.insert(key::DRY_RUN.to_string(), "true".to_string());
        let out = record_step_outcome(
            &mut status,
            1,
            StepOutcome::DryRun {
                before: BTreeMap::new(),
                intent,
                message: "would have".into(),
            },
            w,
            Some(1),
            t,
        );
        assert!(matches!(&out[..], [Transition::StepSkipped { .. }]));
        assert_eq!(status.mitigations[1].state, StepState::Skipped);
        assert!(
            actions_of(&status, "web", None).is_empty(),
            "dry-runs are not actions"
        );

        status.mitigations[1].state = StepState::Succeeded;
        let out = record_step_outcome(
            &mut status,
            1,
            StepOutcome::Reverted {
                message: "scaled back".into(),
            },
            w,
            Some(1),
            t,
        );
        assert!(matches!(&out[..], [Transition::Reverted { .. }]));
        assert!(record_step_outcome(
            &mut status,
            1,
            StepOutcome::Reverted {
                message: "scaled back".into()
            },
            w,
            Some(1),
            t
        )
        .is_empty());
    }
}

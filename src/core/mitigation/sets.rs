//! StatefulSets and DaemonSets: RolloutUndo from their ControllerRevisions
//! as `kubectl rollout undo sts/x` / `ds/x` does it (kubectl's
//! `statefulSetRollbacker` / `daemonSetRollbacker`), DeletePods (the
//! documented remedy when the controller will not replace pods itself), and
//! their verification.
//!
//! The undo writes the revision's pod template (its `data` without
//! `"$patch"`) with the generation precondition. What it cannot change is
//! said in the step's description and recorded as the intent's
//! `limitation`: under `OnDelete` no pod is replaced until it is deleted;
//! under a `partition` pods with a lower ordinal are not updated; under
//! `OrderedReady` a pod that is not Ready blocks the controller forever
//! (the Kubernetes docs' "forced rollback"). Such an undo is verified once
//! the template is written and observed; the remedy is a separate,
//! separately granted DeletePods step.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rollout::{CONTROLLER_REVISION_HASH_LABEL, POD_TEMPLATE_GENERATION_LABEL};
use serde_json::{json, Value};

use super::patch::{annotate, last_action, precondition};
use super::plan::kind_intent;
use super::target::{
    generation_of, label, pod_controlled_by, pod_ready, template_images, write_target, SetWorkload,
    Target,
};
use super::verify::Verification;
use super::{key, Actor, Plan, Planned, PodDelete, Write, WriteTarget};
use crate::api::{TargetKind, LAST_ACTION_ANNOTATION};

/// What an undo of this workload will not do by itself.
struct Limitation {
    /// `OnDelete`, `Partition` or `OrderedReady`.
    kind: &'static str,
    /// Plain words for the step message.
    text: String,
}

/// The kind-neutral parts of a StatefulSet or DaemonSet undo.
struct UndoInput<'a> {
    kind: TargetKind,
    meta: &'a ObjectMeta,
    template: Option<&'a PodTemplateSpec>,
    revisions: &'a [ControllerRevision],
}

pub(super) fn plan_sts_undo(actor: Actor<'_>, s: SetWorkload<'_, StatefulSet>) -> Plan {
    let input = UndoInput {
        kind: TargetKind::StatefulSet,
        meta: &s.object.metadata,
        template: s.object.spec.as_ref().map(|x| &x.template),
        revisions: s.revisions,
    };
    plan_undo(actor, input, |target| {
        sts_limitation(s, target.metadata.name.as_deref().unwrap_or(""))
    })
}

pub(super) fn plan_ds_undo(actor: Actor<'_>, d: SetWorkload<'_, DaemonSet>) -> Plan {
    let input = UndoInput {
        kind: TargetKind::DaemonSet,
        meta: &d.object.metadata,
        template: d.object.spec.as_ref().map(|x| &x.template),
        revisions: d.revisions,
    };
    let name = d.object.metadata.name.clone().unwrap_or_default();
    plan_undo(actor, input, |target| {
        ds_limitation(d, &rollout::revision_hash(target, &name))
    })
}

fn plan_undo(
    actor: Actor<'_>,
    u: UndoInput<'_>,
    limitation: impl FnOnce(&ControllerRevision) -> Option<Limitation>,
) -> Plan {
    let step = actor.step;
    let name = u.meta.name.clone().unwrap_or_default();
    let what = format!("{} {name}", u.kind.as_str());
    let Some(uid) = u.meta.uid.as_deref() else {
        return Plan::Refuse(format!("{what} was read without a uid"));
    };
    let target = match rollout::revision_rollback_target(
        u.kind.as_str(),
        &name,
        uid,
        u.revisions,
        step.to_revision,
    ) {
        Ok(t) => t,
        Err(e) => return Plan::Refuse(e.to_string()),
    };
    let target_name = target.metadata.name.clone().unwrap_or_default();
    if rollout::template_matches_revision(target, u.template) {
        return Plan::Noop(format!(
            "skipped rollback (current template already matches revision {}): {what}",
            target.revision
        ));
    }
    let template = match rollout::revision_template(target) {
        Ok(t) => t,
        Err(e) => return Plan::Refuse(e.to_string()),
    };
    let newest = rollout::newest_revision(uid, u.revisions);
    let mut before = BTreeMap::new();
    before.insert(
        key::REVISION.into(),
        newest.map_or("?".into(), |c| c.revision.to_string()),
    );
    if let Some(n) = newest.and_then(|c| c.metadata.name.clone()) {
        before.insert(key::CONTROLLER_REVISION.into(), n);
    }
    before.insert(key::IMAGES.into(), template_images(u.template));
    before.insert(key::GENERATION.into(), generation_of(u.meta));
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "RolloutUndo".into());
    kind_intent(&mut intent, u.kind);
    intent.insert(key::TO_REVISION.into(), target.revision.to_string());
    intent.insert(key::CONTROLLER_REVISION.into(), target_name.clone());
    intent.insert(key::IMAGES.into(), value_images(&template));
    intent.insert(key::GENERATION.into(), generation_of(u.meta));
    let mut description = format!(
        "roll back {what} from revision {} to revision {} (ControllerRevision {target_name})",
        before.get(key::REVISION).map_or("?", String::as_str),
        target.revision
    );
    if let Some(l) = limitation(target) {
        intent.insert(key::LIMITATION.into(), l.kind.into());
        description = format!("{description}; {}", l.text);
    }
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description,
        write: Write {
            target: write_target(u.kind, name),
            patch: json!([
                precondition(u.meta.generation),
                {"op": "replace", "path": "/spec/template", "value": template},
                annotate(u.meta, "/metadata", LAST_ACTION_ANNOTATION,
                    &last_action(actor.incident, &step.name, step.action)),
            ]),
        },
    }))
}

/// `name=image` of each container of a template held as JSON.
fn value_images(t: &Value) -> String {
    t["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    format!(
                        "{}={}",
                        c["name"].as_str().unwrap_or(""),
                        c["image"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The pods the object controls, by name.
fn owned_pods<'a>(meta: &ObjectMeta, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let mut out: Vec<&Pod> = pods
        .iter()
        .filter(|p| pod_controlled_by(p, meta.uid.as_deref()))
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

fn pod_name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("")
}

/// The ordinal of a StatefulSet pod (`<set>-<ordinal>`).
fn ordinal(set: &str, p: &Pod) -> Option<i32> {
    pod_name(p)
        .strip_prefix(set)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|o| o.parse().ok())
}

fn names(pods: &[&Pod]) -> String {
    pods.iter()
        .map(|p| pod_name(p))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sts_limitation(s: SetWorkload<'_, StatefulSet>, target_rev: &str) -> Option<Limitation> {
    let set = s.object;
    let off: Vec<&Pod> = owned_pods(&set.metadata, s.pods)
        .into_iter()
        .filter(|p| label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL) != Some(target_rev))
        .collect();
    if rollout::on_delete(set) {
        return Some(Limitation {
            kind: "OnDelete",
            text: format!(
                "updateStrategy OnDelete: the StatefulSet controller does not replace pods, so this change sets the template only; pods not on it ({}) keep running until deleted (the separately approved step DeletePods deletes them)",
                if off.is_empty() { "none now".into() } else { names(&off) }
            ),
        });
    }
    let partition = rollout::partition(set);
    if partition > 0 {
        return Some(Limitation {
            kind: "Partition",
            text: format!(
                "partition {partition}: the StatefulSet controller updates only pods with an ordinal of {partition} or more; pods below it keep their revision (lower the partition to roll them), and the undo is verified once the template is observed"
            ),
        });
    }
    let ordered = set
        .spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        .is_none_or(|p| p == "OrderedReady");
    let broken: Vec<&Pod> = off.into_iter().filter(|p| !pod_ready(p)).collect();
    if ordered && !broken.is_empty() {
        return Some(Limitation {
            kind: "OrderedReady",
            text: format!(
                "podManagementPolicy OrderedReady and pod(s) {} not Ready and not on the template being written: the StatefulSet controller waits for them to become Ready before it replaces any pod, so this change sets the template but cannot replace them (forced rollback: delete them with the separately approved step DeletePods)",
                names(&broken)
            ),
        });
    }
    None
}

fn ds_on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

fn ds_limitation(d: SetWorkload<'_, DaemonSet>, target_hash: &str) -> Option<Limitation> {
    if !ds_on_delete(d.object) {
        return None;
    }
    let off: Vec<&Pod> = owned_pods(&d.object.metadata, d.pods)
        .into_iter()
        .filter(|p| label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL) != Some(target_hash))
        .collect();
    Some(Limitation {
        kind: "OnDelete",
        text: format!(
            "updateStrategy OnDelete: the DaemonSet controller does not replace pods, so this change sets the template only; pods not on it ({}) keep running until deleted (the separately approved step DeletePods deletes them)",
            if off.is_empty() { "none now".into() } else { names(&off) }
        ),
    })
}

/// A SetEnv or RolloutRestart of a StatefulSet or DaemonSet changes the
/// template too: what its controller will not roll out by itself is said
/// and recorded as for an undo (the pods it would have to replace first:
/// any that is not Ready, under OrderedReady).
pub(super) fn with_template_limitation(plan: Plan, t: Target<'_>) -> Plan {
    let Plan::Act(mut p) = plan else {
        return plan;
    };
    let limitation = match t {
        Target::StatefulSet(s) => {
            // No pod is on the new template yet: every pod is "off" it.
            sts_limitation(s, "")
        }
        Target::DaemonSet(d) => ds_limitation(d, ""),
        _ => None,
    };
    if let Some(l) = limitation {
        p.intent.insert(key::LIMITATION.into(), l.kind.into());
        p.description = format!("{}; {}", p.description, l.text);
    }
    Plan::Act(p)
}

/// The (name, uid) pairs an intent's `pods` records.
pub(super) fn recorded_pods(intent: &BTreeMap<String, String>) -> Vec<(String, String)> {
    intent
        .get(key::PODS)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.split_once('/'))
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Recorded pods that still exist with their recorded uid.
fn remaining<'a>(intent: &BTreeMap<String, String>, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let rec = recorded_pods(intent);
    pods.iter()
        .filter(|p| {
            rec.iter().any(|(n, u)| {
                p.metadata.name.as_deref() == Some(n) && p.metadata.uid.as_deref() == Some(u)
            })
        })
        .collect()
}

pub(super) fn plan_sts_delete_pods(
    s: SetWorkload<'_, StatefulSet>,
    recorded: Option<&BTreeMap<String, String>>,
) -> Plan {
    let set = s.object;
    let name = set.metadata.name.clone().unwrap_or_default();
    let st = set.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or(0) < set.metadata.generation.unwrap_or(0) {
        return Plan::Refuse(format!(
            "the StatefulSet controller has not observed generation {} of {name} yet; its update revision is not known",
            set.metadata.generation.unwrap_or(0)
        ));
    }
    let Some(update) = st.update_revision.clone() else {
        return Plan::Refuse(format!("StatefulSet {name} has no status.updateRevision"));
    };
    let partition = rollout::partition(set);
    let candidates: Vec<&Pod> = owned_pods(&set.metadata, s.pods)
        .into_iter()
        .filter(|p| label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL) != Some(update.as_str()))
        .filter(|p| ordinal(&name, p).unwrap_or(i32::MAX) >= partition)
        .collect();
    plan_delete(
        TargetKind::StatefulSet,
        &set.metadata,
        &update,
        candidates,
        recorded,
        s.pods,
    )
}

/// The revision hash DaemonSet pods of the current template carry: that of
/// the newest ControllerRevision.
fn ds_update_hash(d: SetWorkload<'_, DaemonSet>) -> Option<String> {
    let name = d.object.metadata.name.clone().unwrap_or_default();
    let uid = d.object.metadata.uid.as_deref()?;
    rollout::newest_revision(uid, d.revisions)
        .filter(|cr| {
            rollout::template_matches_revision(cr, d.object.spec.as_ref().map(|s| &s.template))
        })
        .map(|cr| rollout::revision_hash(cr, &name))
}

/// Whether a DaemonSet pod is on the update revision: its
/// `controller-revision-hash`, else its `pod-template-generation`.
fn ds_pod_updated(d: &DaemonSet, hash: &str, p: &Pod) -> bool {
    match label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL) {
        Some(h) => h == hash,
        None => {
            label(&p.metadata, POD_TEMPLATE_GENERATION_LABEL)
                == Some(generation_of(&d.metadata).as_str())
        }
    }
}

pub(super) fn plan_ds_delete_pods(
    d: SetWorkload<'_, DaemonSet>,
    recorded: Option<&BTreeMap<String, String>>,
) -> Plan {
    let ds = d.object;
    let name = ds.metadata.name.clone().unwrap_or_default();
    let st = ds.status.clone().unwrap_or_default();
    if st.observed_generation.unwrap_or(0) < ds.metadata.generation.unwrap_or(0) {
        return Plan::Refuse(format!(
            "the DaemonSet controller has not observed generation {} of {name} yet; its update revision is not known",
            ds.metadata.generation.unwrap_or(0)
        ));
    }
    let Some(hash) = ds_update_hash(d) else {
        return Plan::Refuse(format!(
            "no ControllerRevision of DaemonSet {name} holds its current template yet"
        ));
    };
    let candidates: Vec<&Pod> = owned_pods(&ds.metadata, d.pods)
        .into_iter()
        .filter(|p| !ds_pod_updated(ds, &hash, p))
        .collect();
    plan_delete(
        TargetKind::DaemonSet,
        &ds.metadata,
        &hash,
        candidates,
        recorded,
        d.pods,
    )
}

fn plan_delete(
    kind: TargetKind,
    meta: &ObjectMeta,
    update: &str,
    candidates: Vec<&Pod>,
    recorded: Option<&BTreeMap<String, String>>,
    pods: &[Pod],
) -> Plan {
    let what = format!("{} {}", kind.as_str(), meta.name.as_deref().unwrap_or(""));
    // After a restart: only the pods recorded, never new ones.
    let (targets, intent) = match recorded.filter(|r| r.contains_key(key::PODS)) {
        Some(r) => (remaining(r, pods), r.clone()),
        None => {
            let targets: Vec<&Pod> = candidates
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let mut intent = BTreeMap::new();
            intent.insert(key::ACTION.into(), "DeletePods".into());
            kind_intent(&mut intent, kind);
            intent.insert(key::UPDATE_REVISION.into(), update.to_string());
            intent.insert(key::GENERATION.into(), generation_of(meta));
            intent.insert(
                key::PODS.into(),
                targets
                    .iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            pod_name(p),
                            p.metadata.uid.as_deref().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            );
            (targets, intent)
        }
    };
    if targets.is_empty() {
        return Plan::Noop(format!(
            "every pod of {what} is on the update revision {update}; nothing to delete"
        ));
    }
    let mut deletes = Vec::new();
    for p in &targets {
        let (Some(uid), Some(rv)) = (p.metadata.uid.clone(), p.metadata.resource_version.clone())
        else {
            return Plan::Refuse(format!(
                "pod {} was read without a uid or resourceVersion; not deleting it unconditionally",
                pod_name(p)
            ));
        };
        deletes.push(PodDelete {
            name: pod_name(p).to_string(),
            uid,
            resource_version: rv,
        });
    }
    let mut before = BTreeMap::new();
    before.insert(
        key::PODS.into(),
        targets
            .iter()
            .map(|p| {
                format!(
                    "{}={}{}",
                    pod_name(p),
                    label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL).unwrap_or("?"),
                    if pod_ready(p) { "" } else { " (not ready)" }
                )
            })
            .collect::<Vec<_>>()
            .join(","),
    );
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description: format!(
            "delete pod(s) {} of {what}, not on the update revision {update}, so that its controller recreates them from the current template",
            names(&targets)
        ),
        write: Write {
            target: WriteTarget::Pods(deletes),
            patch: Value::Null,
        },
    }))
}

/// Every pod a DeletePods step recorded is gone or replaced (another uid).
pub(super) fn pods_deleted(intent: &BTreeMap<String, String>, pods: &[Pod]) -> bool {
    remaining(intent, pods).is_empty()
}

/// The undo's template is on the object (compared with the revision rolled back to).
pub(super) fn undo_applied(
    intent: &BTreeMap<String, String>,
    revisions: &[ControllerRevision],
    template: Option<&PodTemplateSpec>,
) -> bool {
    let Some(cr) = intent.get(key::CONTROLLER_REVISION) else {
        return false;
    };
    revisions
        .iter()
        .find(|r| r.metadata.name.as_ref() == Some(cr))
        .is_some_and(|r| rollout::template_matches_revision(r, template))
}

fn done(after: BTreeMap<String, String>, message: String) -> Verification {
    Verification::Done { after, message }
}

/// Has the StatefulSet rolled out what the step applied?
pub(super) fn verify_sts(
    action: crate::api::MitigationAction,
    intent: &BTreeMap<String, String>,
    s: SetWorkload<'_, StatefulSet>,
) -> Verification {
    let set = s.object;
    let name = set.metadata.name.clone().unwrap_or_default();
    let st = set.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0) >= set.metadata.generation.unwrap_or(0);
    let mut after = BTreeMap::new();
    after.insert(key::GENERATION.into(), generation_of(&set.metadata));
    if action == crate::api::MitigationAction::RolloutUndo {
        let want = intent
            .get(key::CONTROLLER_REVISION)
            .cloned()
            .unwrap_or_default();
        if !observed || st.update_revision.as_deref() != Some(want.as_str()) {
            return Verification::Waiting(format!(
                "waiting for the StatefulSet controller to take the restored template of {name} (updateRevision {}, want {want})",
                st.update_revision.as_deref().unwrap_or("?")
            ));
        }
        after.insert(key::CONTROLLER_REVISION.into(), want.clone());
        after.insert(
            key::IMAGES.into(),
            template_images(set.spec.as_ref().map(|x| &x.template)),
        );
        let to = intent.get(key::TO_REVISION).cloned().unwrap_or_default();
        if let Some(l) = intent.get(key::LIMITATION) {
            after.insert(key::LIMITATION.into(), l.clone());
            let off: Vec<&Pod> = owned_pods(&set.metadata, s.pods)
                .into_iter()
                .filter(|p| {
                    label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL) != Some(want.as_str())
                })
                .collect();
            return done(after, format!(
                "restored the template of revision {to} (ControllerRevision {want}) on StatefulSet {name} and the controller observed it; {} ({l}): pods not on it are not replaced until deleted{}",
                limitation_words(l),
                if off.is_empty() { String::new() } else { format!(" (now: {}; step DeletePods deletes them)", names(&off)) }
            ));
        }
        let status = rollout::statefulset_status(set);
        if !status.complete {
            return Verification::Waiting(status.message);
        }
        return done(after, format!(
            "rolled back StatefulSet {name} to the template of revision {to} (ControllerRevision {want}); {}",
            status.message
        ));
    }
    if let Some(l) = intent.get(key::LIMITATION) {
        if !observed {
            return Verification::Waiting(format!(
                "waiting for the StatefulSet controller to observe generation {} of {name}",
                set.metadata.generation.unwrap_or(0)
            ));
        }
        after.insert(key::LIMITATION.into(), l.clone());
        after_of(intent, &mut after);
        return done(after, format!(
            "{} on StatefulSet {name} and the controller observed it; {} ({l}): pods not on the new template are not replaced until deleted (step DeletePods deletes them)",
            action_words(action, intent),
            limitation_words(l)
        ));
    }
    if action == crate::api::MitigationAction::DeletePods && !pods_deleted(intent, s.pods) {
        return Verification::Waiting(format!("waiting for the deleted pods of {name} to go"));
    }
    let status = rollout::statefulset_status(set);
    if !status.complete {
        return Verification::Waiting(status.message);
    }
    if action == crate::api::MitigationAction::Scale {
        let want: i32 = intent
            .get(key::HPA_MIN_REPLICAS)
            .or(intent.get(key::REPLICAS))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let replicas = set.spec.as_ref().and_then(|x| x.replicas).unwrap_or(1);
        if st.ready_replicas.unwrap_or(0) < want
            || (intent.get(key::HPA).is_none() && replicas != want)
        {
            return Verification::Waiting(format!(
                "waiting for StatefulSet {name} to have {want} ready replicas (now {})",
                st.ready_replicas.unwrap_or(0)
            ));
        }
        after.insert(key::REPLICAS.into(), replicas.to_string());
    }
    after_of(intent, &mut after);
    done(
        after,
        format!(
            "{} on StatefulSet {name}; {}",
            action_words(action, intent),
            status.message
        ),
    )
}

/// Has the DaemonSet rolled out what the step applied?
pub(super) fn verify_ds(
    action: crate::api::MitigationAction,
    intent: &BTreeMap<String, String>,
    d: SetWorkload<'_, DaemonSet>,
) -> Verification {
    let ds = d.object;
    let name = ds.metadata.name.clone().unwrap_or_default();
    let st = ds.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
    let mut after = BTreeMap::new();
    after.insert(key::GENERATION.into(), generation_of(&ds.metadata));
    if action == crate::api::MitigationAction::RolloutUndo {
        let want = intent
            .get(key::CONTROLLER_REVISION)
            .cloned()
            .unwrap_or_default();
        let newest = ds
            .metadata
            .uid
            .as_deref()
            .and_then(|u| rollout::newest_revision(u, d.revisions))
            .and_then(|c| c.metadata.name.clone());
        if !observed || newest.as_deref() != Some(want.as_str()) {
            return Verification::Waiting(format!(
                "waiting for the DaemonSet controller to take the restored template of {name} (newest ControllerRevision {}, want {want})",
                newest.as_deref().unwrap_or("?")
            ));
        }
        after.insert(key::CONTROLLER_REVISION.into(), want.clone());
        after.insert(
            key::IMAGES.into(),
            template_images(ds.spec.as_ref().map(|x| &x.template)),
        );
        let to = intent.get(key::TO_REVISION).cloned().unwrap_or_default();
        if let Some(l) = intent.get(key::LIMITATION) {
            after.insert(key::LIMITATION.into(), l.clone());
            return done(after, format!(
                "restored the template of revision {to} (ControllerRevision {want}) on DaemonSet {name} and the controller observed it; {} ({l}): pods not on it are not replaced until deleted (step DeletePods deletes them)",
                limitation_words(l)
            ));
        }
        let status = rollout::daemonset_status(ds);
        if !status.complete {
            return Verification::Waiting(status.message);
        }
        return done(after, format!(
            "rolled back DaemonSet {name} to the template of revision {to} (ControllerRevision {want}); {}",
            status.message
        ));
    }
    if let Some(l) = intent.get(key::LIMITATION) {
        if !observed {
            return Verification::Waiting(format!(
                "waiting for the DaemonSet controller to observe generation {} of {name}",
                ds.metadata.generation.unwrap_or(0)
            ));
        }
        after.insert(key::LIMITATION.into(), l.clone());
        after_of(intent, &mut after);
        return done(after, format!(
            "{} on DaemonSet {name} and the controller observed it; {} ({l}): pods not on the new template are not replaced until deleted (step DeletePods deletes them)",
            action_words(action, intent),
            limitation_words(l)
        ));
    }
    if action == crate::api::MitigationAction::DeletePods && !pods_deleted(intent, d.pods) {
        return Verification::Waiting(format!("waiting for the deleted pods of {name} to go"));
    }
    let status = rollout::daemonset_status(ds);
    if !status.complete {
        return Verification::Waiting(status.message);
    }
    after_of(intent, &mut after);
    done(
        after,
        format!(
            "{} on DaemonSet {name}; {}",
            action_words(action, intent),
            status.message
        ),
    )
}

fn limitation_words(l: &str) -> &'static str {
    match l {
        "OnDelete" => "its updateStrategy is OnDelete",
        "Partition" => "its rolling update is partitioned",
        _ => "it is OrderedReady and waits for a pod that is not Ready (forced rollback)",
    }
}

fn after_of(intent: &BTreeMap<String, String>, after: &mut BTreeMap<String, String>) {
    for k in [key::ENV, key::RESTARTED_AT, key::PODS] {
        if let Some(v) = intent.get(k) {
            after.insert(k.into(), v.clone());
        }
    }
}

fn action_words(action: crate::api::MitigationAction, intent: &BTreeMap<String, String>) -> String {
    use crate::api::MitigationAction as A;
    match action {
        A::SetEnv => format!("set {}", intent.get(key::ENV).map_or("", String::as_str)),
        A::RolloutRestart => "restarted the pods".into(),
        A::Scale => "scaled".into(),
        A::DeletePods => format!(
            "deleted pod(s) {} and they were replaced",
            recorded_pods(intent)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

//! The plan of each action, computed from the target (of any kind): the
//! JSON patch to send, what was there before, the intent. RolloutUndo of a
//! Deployment is here; of StatefulSets and DaemonSets, and DeletePods, in
//! `sets.rs`; Suspend in `cronjob.rs`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::EnvVar;
use rollout::{POD_TEMPLATE_HASH_LABEL, RESTARTED_AT_ANNOTATION, REVISION_ANNOTATION};
use serde_json::{json, Value};

use super::patch::{annotate, hpa_spec_digest, last_action, precondition, rv_precondition};
use super::target::{generation_of, Target, View};
use super::workload::{
    annotation, container_env, dep_name, env_containers, env_summary, equal_ignore_hash,
    hpa_targeting, images, newest_replica_set, paused, revision_of, rollback_target,
};
use super::{cronjob, sets};
use super::{key, Actor, Plan, Planned, Workload, Write, WriteTarget, ABSENT};
use crate::api::{MitigationAction, RecordedEnvVar, TargetKind, LAST_ACTION_ANNOTATION};

/// Plan a step against the workload. `recorded` is the intent already in
/// the status (after a restart): a RolloutRestart re-uses its timestamp so
/// the write is the same one.
pub fn plan<'a>(
    actor: Actor<'_>,
    target: impl Into<Target<'a>>,
    recorded: Option<&BTreeMap<String, String>>,
    now: Timestamp,
) -> Plan {
    let t = target.into();
    let action = actor.step.action;
    if !action_applies(action, t.kind()) {
        return Plan::Refuse(not_applicable(action, t.kind()));
    }
    match (action, t) {
        (MitigationAction::RolloutUndo, Target::Deployment(w)) => plan_undo(actor, w),
        (MitigationAction::RolloutUndo, Target::StatefulSet(s)) => sets::plan_sts_undo(actor, s),
        (MitigationAction::RolloutUndo, Target::DaemonSet(d)) => sets::plan_ds_undo(actor, d),
        (MitigationAction::DeletePods, Target::StatefulSet(s)) => {
            sets::plan_sts_delete_pods(s, recorded)
        }
        (MitigationAction::DeletePods, Target::DaemonSet(d)) => {
            sets::plan_ds_delete_pods(d, recorded)
        }
        (MitigationAction::Suspend, Target::CronJob(c)) => cronjob::plan_suspend(actor, c),
        (MitigationAction::RolloutRestart, Target::Deployment(w)) if paused(w.deployment) => {
            let name = dep_name(w.deployment);
            Plan::Refuse(format!(
                "can't restart paused deployment {name} (run 'kubectl rollout resume deployment/{name}' first)"
            ))
        }
        (action, t) => match (action, t.view()) {
            (MitigationAction::Scale, Some(v)) => plan_scale(actor, &v),
            (MitigationAction::SetEnv, Some(v)) => {
                sets::with_template_limitation(plan_set_env(actor, &v), t)
            }
            (MitigationAction::RolloutRestart, Some(v)) => {
                sets::with_template_limitation(plan_restart(actor, &v, recorded, now), t)
            }
            (action, _) => Plan::Refuse(not_applicable(action, t.kind())),
        },
    }
}

/// Whether `action` acts on a target of `kind`: RolloutUndo, RolloutRestart
/// and SetEnv on Deployments, StatefulSets and DaemonSets; Scale on
/// Deployments and StatefulSets; Suspend on CronJobs; DeletePods on
/// StatefulSets and DaemonSets.
pub fn action_applies(action: MitigationAction, kind: TargetKind) -> bool {
    use TargetKind as K;
    match action {
        MitigationAction::RolloutUndo
        | MitigationAction::RolloutRestart
        | MitigationAction::SetEnv => {
            matches!(kind, K::Deployment | K::StatefulSet | K::DaemonSet)
        }
        MitigationAction::Scale => matches!(kind, K::Deployment | K::StatefulSet),
        MitigationAction::Suspend => kind == K::CronJob,
        MitigationAction::DeletePods => matches!(kind, K::StatefulSet | K::DaemonSet),
    }
}

/// The kinds `action` acts on, for messages ("Deployment, StatefulSet or DaemonSet").
pub fn kinds_of(action: MitigationAction) -> String {
    let kinds: Vec<&str> = TargetKind::ALL
        .iter()
        .filter(|k| action_applies(action, **k))
        .map(|k| k.as_str())
        .collect();
    match kinds.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    }
}

/// Why `action` cannot act on a `kind`.
pub fn not_applicable(action: MitigationAction, kind: TargetKind) -> String {
    format!(
        "{action} acts on a {}, not on a {}",
        kinds_of(action),
        kind.as_str()
    )
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
    let mut template = rollout::hash::template_without_hash(rs_template);
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
    let mut annotations: serde_json::Map<String, Value> =
        rollout::rollback_annotations(&d.metadata, &rs.metadata)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
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
    intent.insert(key::GENERATION.into(), generation_of(&d.metadata));
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

fn plan_scale(actor: Actor<'_>, v: &View<'_>) -> Plan {
    let name = v.name();
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
    let current = v.replicas.unwrap_or(1);
    let mark = last_action(actor.incident, &step.name, step.action);
    if let Some(hpa) = hpa_targeting(v.hpas, v.kind, &name) {
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
        kind_intent(&mut intent, v.kind);
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
    intent.insert(key::GENERATION.into(), generation_of(v.meta));
    kind_intent(&mut intent, v.kind);
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description: format!("scale {name} from {current} to {target} replicas"),
        write: Write {
            target: v.write_target(),
            patch: json!([
                precondition(v.meta.generation),
                {"op": "add", "path": "/spec/replicas", "value": target},
                annotate(v.meta, "/metadata", LAST_ACTION_ANNOTATION, &mark),
            ]),
        },
    }))
}

fn plan_set_env(actor: Actor<'_>, v: &View<'_>) -> Plan {
    let name = v.name();
    let step = actor.step;
    let targets = match env_containers(step, v) {
        Ok(t) => t,
        Err(e) => return Plan::Refuse(e),
    };
    let mut previous = Vec::new();
    let mut ops = vec![precondition(v.meta.generation)];
    let mut changes = false;
    for (i, cname) in &targets {
        let mut env = container_env(v, *i);
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
        v.meta,
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
    intent.insert(key::GENERATION.into(), generation_of(v.meta));
    kind_intent(&mut intent, v.kind);
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
            target: v.write_target(),
            patch: Value::Array(ops),
        },
    }))
}

fn plan_restart(
    actor: Actor<'_>,
    v: &View<'_>,
    recorded: Option<&BTreeMap<String, String>>,
    now: Timestamp,
) -> Plan {
    let name = v.name();
    let step = actor.step;
    let at = recorded
        .and_then(|r| r.get(key::RESTARTED_AT).cloned())
        .unwrap_or_else(|| {
            Timestamp::from_second(now.as_second())
                .unwrap_or(now)
                .to_string()
        });
    let template_meta = v
        .template
        .and_then(|t| t.metadata.clone())
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
        annotation(v.meta, REVISION_ANNOTATION)
            .map(str::to_string)
            .unwrap_or_else(|| format!("generation {}", generation_of(v.meta))),
    );
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "RolloutRestart".into());
    intent.insert(key::RESTARTED_AT.into(), at.clone());
    intent.insert(key::GENERATION.into(), generation_of(v.meta));
    kind_intent(&mut intent, v.kind);
    let template_op = if v.template.and_then(|t| t.metadata.as_ref()).is_none() {
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
            target: v.write_target(),
            patch: json!([
                precondition(v.meta.generation),
                template_op,
                annotate(
                    v.meta,
                    "/metadata",
                    LAST_ACTION_ANNOTATION,
                    &last_action(actor.incident, &step.name, step.action)
                ),
            ]),
        },
    }))
}

/// Records the target's kind in an intent (Deployments: none, as before).
pub(super) fn kind_intent(intent: &mut BTreeMap<String, String>, kind: TargetKind) {
    if kind != TargetKind::Deployment {
        intent.insert(key::KIND.into(), kind.as_str().to_string());
    }
}

//! The revert of a Scale, SetEnv or Suspend step (`revertOnResolve`):
//! restore the recorded prior values, only where the fields still hold what
//! the step set.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::patch::{annotate, precondition, rv_precondition};
use super::target::Target;
use super::workload::{container_env, env_containers};
use super::{cronjob, key, Actor, Write, WriteTarget, ABSENT};
use crate::api::{MitigationAction, RecordedEnvVar, LAST_ACTION_ANNOTATION};

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
pub fn plan_revert<'a>(
    actor: Actor<'_>,
    before: &BTreeMap<String, String>,
    intent: &BTreeMap<String, String>,
    previous_env: &[RecordedEnvVar],
    target: impl Into<Target<'a>>,
) -> Revert {
    let t = target.into();
    let step = actor.step;
    if let (MitigationAction::Suspend, Target::CronJob(c)) = (step.action, t) {
        return cronjob::plan_resume(actor, before, c);
    }
    let Some(v) = t.view() else {
        return Revert::Refuse(format!(
            "{} of a {} cannot be reverted",
            step.action,
            t.kind().as_str()
        ));
    };
    let name = v.name();
    let mark = format!("{}/{}: revert {}", actor.incident, step.name, step.action);
    match step.action {
        MitigationAction::Scale => {
            if let Some(hpa_name) = intent.get(key::HPA) {
                let Some(hpa) = v
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
            let now = v.replicas.unwrap_or(1);
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
                    target: v.write_target(),
                    patch: json!([
                        precondition(v.meta.generation),
                        {"op": "replace", "path": "/spec/replicas", "value": prior},
                        annotate(v.meta, "/metadata", LAST_ACTION_ANNOTATION, &mark),
                    ]),
                },
                description: format!("scaled {name} back from {now} to {prior} replicas"),
            }
        }
        MitigationAction::SetEnv => {
            let targets = match env_containers(step, &v) {
                Ok(t) => t,
                Err(e) => return Revert::Refuse(format!("not reverted: {e}")),
            };
            let mut ops = vec![precondition(v.meta.generation)];
            let mut all_prior = true;
            for (i, cname) in &targets {
                let mut env = container_env(&v, *i);
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
            ops.push(annotate(v.meta, "/metadata", LAST_ACTION_ANNOTATION, &mark));
            Revert::Act {
                write: Write {
                    target: v.write_target(),
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

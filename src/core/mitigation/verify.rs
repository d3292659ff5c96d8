//! After the write: is the intent in place, is the workload unchanged since
//! the intent was recorded, and has the action rolled out? (StatefulSets
//! and DaemonSets are verified in `sets.rs`, CronJobs in `cronjob.rs`.)

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use rollout::{RolloutStatus, RESTARTED_AT_ANNOTATION, REVISION_ANNOTATION};

use super::patch::hpa_spec_digest;
use super::target::{generation_of, Target, View};
use super::workload::{
    annotation, container_env, dep_name, env_containers, equal_ignore_hash, images,
    newest_replica_set, owned_replica_sets,
};
use super::{cronjob, key, sets, Workload};
use crate::api::{MitigationAction, MitigationStep};

/// Whether the recorded intent is in place on the workload now.
pub fn is_applied<'a>(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    target: impl Into<Target<'a>>,
) -> bool {
    let t = target.into();
    match (step.action, t) {
        (MitigationAction::RolloutUndo, Target::Deployment(w)) => {
            let d = w.deployment;
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
        (MitigationAction::RolloutUndo, Target::StatefulSet(s)) => sets::undo_applied(
            intent,
            s.revisions,
            s.object.spec.as_ref().map(|x| &x.template),
        ),
        (MitigationAction::RolloutUndo, Target::DaemonSet(d)) => sets::undo_applied(
            intent,
            d.revisions,
            d.object.spec.as_ref().map(|x| &x.template),
        ),
        (MitigationAction::DeletePods, Target::StatefulSet(s)) => {
            sets::pods_deleted(intent, s.pods)
        }
        (MitigationAction::DeletePods, Target::DaemonSet(d)) => sets::pods_deleted(intent, d.pods),
        (MitigationAction::Suspend, Target::CronJob(c)) => cronjob::is_suspended(c),
        (action, t) => t
            .view()
            .is_some_and(|v| view_applied(action, step, intent, &v)),
    }
}

/// [`is_applied`] of Scale, SetEnv and RolloutRestart, on any kind.
fn view_applied(
    action: MitigationAction,
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    v: &View<'_>,
) -> bool {
    match action {
        MitigationAction::Scale => {
            if let Some(hpa_name) = intent.get(key::HPA) {
                let want = intent
                    .get(key::HPA_MIN_REPLICAS)
                    .and_then(|v| v.parse().ok());
                v.hpas
                    .iter()
                    .find(|h| h.metadata.name.as_ref() == Some(hpa_name))
                    .is_some_and(|h| h.spec.as_ref().and_then(|s| s.min_replicas) == want)
            } else {
                let want: Option<i32> = intent.get(key::REPLICAS).and_then(|v| v.parse().ok());
                v.replicas.is_some() && v.replicas == want
            }
        }
        MitigationAction::SetEnv => {
            let Ok(targets) = env_containers(step, v) else {
                return false;
            };
            targets.iter().all(|(i, _)| {
                let env = container_env(v, *i);
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
            v.template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| annotation(m, RESTARTED_AT_ANNOTATION))
                .map(str::to_string)
                .as_ref()
                == want
        }
        _ => false,
    }
}

/// Whether the workload is still as it was when the intent was recorded
/// (so the recorded plan may still be applied).
pub fn unchanged_since_intent<'a>(
    intent: &BTreeMap<String, String>,
    target: impl Into<Target<'a>>,
) -> bool {
    let t = target.into();
    if let Some(hpa_name) = intent.get(key::HPA) {
        let hpas = t.view().map_or(&[][..], |v| v.hpas);
        return hpas
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
    Some(generation_of(t.meta())).as_ref() == intent.get(key::GENERATION)
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

/// `kubectl rollout status` for a Deployment ([`rollout::rollout_status`]):
/// Ok(true) when complete, an error when the progress deadline is exceeded.
pub fn rollout_complete(d: &Deployment) -> Result<bool, String> {
    match rollout::rollout_status(d) {
        failed @ RolloutStatus::DeadlineExceeded { .. } => Err(failed.describe(&dep_name(d))),
        other => Ok(other.is_complete()),
    }
}

/// Has the applied action taken effect?
pub fn verify<'a>(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    target: impl Into<Target<'a>>,
) -> Verification {
    match target.into() {
        Target::Deployment(w) => verify_deployment(step, intent, w),
        Target::StatefulSet(s) => sets::verify_sts(step.action, intent, s),
        Target::DaemonSet(d) => sets::verify_ds(step.action, intent, d),
        Target::CronJob(c) => cronjob::verify_suspend(c),
    }
}

fn verify_deployment(
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

//! Reading the target: its ReplicaSets (the rollout history), the HPA that
//! manages it, its containers and environment.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::target::View;
use super::Workload;
use crate::api::{MitigationStep, TargetKind};

pub(super) fn annotation<'a>(meta: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

/// The revision of a ReplicaSet (`deploymentutil.Revision`: 0 without the
/// annotation), `None` when the annotation is not a number.
pub(super) fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    rollout::revision(&rs.metadata).ok()
}

/// ReplicaSets the Deployment controls (controller ownerReference with its uid).
pub fn owned_replica_sets<'a>(w: Workload<'a>) -> Vec<&'a ReplicaSet> {
    w.replica_sets
        .iter()
        .filter(|rs| rollout::controlled_by(rs, w.deployment))
        .collect()
}

/// The owned ReplicaSet of the highest revision: the current one.
pub(super) fn newest_replica_set<'a>(w: Workload<'a>) -> Option<&'a ReplicaSet> {
    owned_replica_sets(w)
        .into_iter()
        .filter_map(|rs| revision_of(rs).map(|r| (r, rs)))
        .max_by_key(|(r, _)| *r)
        .map(|(_, rs)| rs)
}

/// The ReplicaSet to roll back to, as `kubectl rollout undo --to-revision`
/// picks it ([`rollout::rollback_target`]): `to_revision` 0 is the
/// second-highest revision.
pub fn rollback_target<'a>(w: Workload<'a>, to_revision: i64) -> Result<&'a ReplicaSet, String> {
    rollout::rollback_target(w.deployment, w.replica_sets, to_revision).map_err(|e| e.to_string())
}

/// kubectl's `equalIgnoreHash` ([`rollout::templates_equal_ignore_hash`]).
pub fn equal_ignore_hash(a: Option<&PodTemplateSpec>, b: Option<&PodTemplateSpec>) -> bool {
    rollout::templates_equal_ignore_hash(a, b)
}

pub(super) fn dep_name(d: &Deployment) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

pub(super) fn images(d: &Deployment) -> String {
    super::target::template_images(d.spec.as_ref().map(|s| &s.template))
}

pub(super) fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// The HPA whose scaleTargetRef is this Deployment.
pub fn hpa_for<'a>(w: Workload<'a>) -> Option<&'a HorizontalPodAutoscaler> {
    hpa_targeting(w.hpas, TargetKind::Deployment, &dep_name(w.deployment))
}

/// The HPA whose scaleTargetRef is the `kind` (an `apps/v1` kind) `name`.
pub(super) fn hpa_targeting<'a>(
    hpas: &'a [HorizontalPodAutoscaler],
    kind: TargetKind,
    name: &str,
) -> Option<&'a HorizontalPodAutoscaler> {
    hpas.iter().find(|h| {
        h.spec.as_ref().is_some_and(|s| {
            s.scale_target_ref.kind == kind.as_str()
                && s.scale_target_ref.name == name
                && s.scale_target_ref
                    .api_version
                    .as_deref()
                    .is_none_or(|v| v.starts_with("apps/"))
        })
    })
}

/// The containers a SetEnv step changes: (index, name).
pub(super) fn env_containers(
    step: &MitigationStep,
    v: &View<'_>,
) -> Result<Vec<(usize, String)>, String> {
    let containers = v
        .template
        .and_then(|t| t.spec.as_ref())
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
                    v.name(),
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

pub(super) fn container_env(v: &View<'_>, i: usize) -> Vec<EnvVar> {
    v.template
        .and_then(|t| t.spec.as_ref())
        .and_then(|p| p.containers.get(i))
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
}

pub(super) fn env_summary(step: &MitigationStep) -> String {
    step.env
        .iter()
        .map(|e| format!("{}={}", e.name, e.value))
        .collect::<Vec<_>>()
        .join(",")
}

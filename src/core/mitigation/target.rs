//! The target of a step, of any kind the executors act on: a Deployment
//! (with its ReplicaSets and HPAs), a StatefulSet or DaemonSet (with its
//! ControllerRevisions, pods and HPAs) or a CronJob; and a kind-neutral
//! view of what SetEnv, RolloutRestart and Scale need (metadata, pod
//! template, replicas, where the write goes).

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Workload, WriteTarget};
use crate::api::TargetKind;

/// A StatefulSet or DaemonSet with what its steps need.
#[derive(Debug)]
pub struct SetWorkload<'a, T> {
    pub object: &'a T,
    /// ControllerRevisions of the namespace (those the object does not
    /// control are ignored).
    pub revisions: &'a [ControllerRevision],
    /// Pods of the namespace (those the object does not control are ignored).
    pub pods: &'a [Pod],
    /// HorizontalPodAutoscalers of the namespace (StatefulSets only).
    pub hpas: &'a [HorizontalPodAutoscaler],
}

impl<T> Clone for SetWorkload<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SetWorkload<'_, T> {}

/// What the executor reads about the target, per kind.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Deployment(Workload<'a>),
    StatefulSet(SetWorkload<'a, StatefulSet>),
    DaemonSet(SetWorkload<'a, DaemonSet>),
    CronJob(&'a CronJob),
}

impl<'a> From<Workload<'a>> for Target<'a> {
    fn from(w: Workload<'a>) -> Self {
        Target::Deployment(w)
    }
}

/// The kind-neutral parts of a workload with a pod template.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    pub(super) kind: TargetKind,
    pub(super) meta: &'a ObjectMeta,
    pub(super) template: Option<&'a PodTemplateSpec>,
    /// `spec.replicas` (Deployments and StatefulSets; default 1).
    pub(super) replicas: Option<i32>,
    pub(super) hpas: &'a [HorizontalPodAutoscaler],
}

impl<'a> Target<'a> {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Deployment(_) => TargetKind::Deployment,
            Target::StatefulSet(_) => TargetKind::StatefulSet,
            Target::DaemonSet(_) => TargetKind::DaemonSet,
            Target::CronJob(_) => TargetKind::CronJob,
        }
    }

    pub fn meta(&self) -> &'a ObjectMeta {
        match self {
            Target::Deployment(w) => &w.deployment.metadata,
            Target::StatefulSet(s) => &s.object.metadata,
            Target::DaemonSet(d) => &d.object.metadata,
            Target::CronJob(c) => &c.metadata,
        }
    }

    pub fn name(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }

    /// The view of a workload with a pod template (not a CronJob).
    pub(super) fn view(&self) -> Option<View<'a>> {
        let kind = self.kind();
        let meta = self.meta();
        Some(match self {
            Target::Deployment(w) => {
                let spec = w.deployment.spec.as_ref();
                View {
                    kind,
                    meta,
                    template: spec.map(|s| &s.template),
                    replicas: Some(spec.and_then(|s| s.replicas).unwrap_or(1)),
                    hpas: w.hpas,
                }
            }
            Target::StatefulSet(s) => {
                let spec = s.object.spec.as_ref();
                View {
                    kind,
                    meta,
                    template: spec.map(|s| &s.template),
                    replicas: Some(spec.and_then(|s| s.replicas).unwrap_or(1)),
                    hpas: s.hpas,
                }
            }
            Target::DaemonSet(d) => View {
                kind,
                meta,
                template: d.object.spec.as_ref().map(|s| &s.template),
                replicas: None,
                hpas: &[],
            },
            Target::CronJob(_) => return None,
        })
    }
}

impl View<'_> {
    pub(super) fn name(&self) -> String {
        self.meta.name.clone().unwrap_or_default()
    }

    pub(super) fn write_target(&self) -> WriteTarget {
        write_target(self.kind, self.name())
    }
}

/// Where a write of the workload itself goes.
pub(super) fn write_target(kind: TargetKind, name: String) -> WriteTarget {
    match kind {
        TargetKind::StatefulSet => WriteTarget::StatefulSet(name),
        TargetKind::DaemonSet => WriteTarget::DaemonSet(name),
        TargetKind::CronJob => WriteTarget::CronJob(name),
        _ => WriteTarget::Deployment(name),
    }
}

pub(super) fn generation_of(meta: &ObjectMeta) -> String {
    meta.generation.unwrap_or(0).to_string()
}

/// `name=image` of each container of a pod template.
pub(super) fn template_images(t: Option<&PodTemplateSpec>) -> String {
    t.and_then(|t| t.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .map(|c| format!("{}={}", c.name, c.image.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Whether the pod's controller reference has this uid.
pub(super) fn pod_controlled_by(p: &Pod, uid: Option<&str>) -> bool {
    let Some(uid) = uid else {
        return false;
    };
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| r.uid == uid)
}

/// The pod's `Ready` condition is `True`.
pub(super) fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub(super) fn label<'a>(meta: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(k).map(String::as_str)
}

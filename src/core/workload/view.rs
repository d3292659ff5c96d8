//! Compact projections of Pods and Deployments: only what detection needs
//! (identity, owner, phase, conditions, per-container waiting reason,
//! restart count, readiness, last termination). A full Pod costs tens of KB
//! in memory; a `PodView` a few hundred bytes. Pods are decoded straight
//! into a lean wire type ([`super::PodLite`], in `wire.rs`) and converted to
//! a `PodView`; Deployments are converted here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;

use super::key::WorkloadKey;

/// A condition's state and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondView {
    pub status: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub since: Option<Timestamp>,
}

/// A container's termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub reason: Option<String>,
    pub exit_code: i32,
    pub finished_at: Option<Timestamp>,
}

/// What a container is to its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerRole {
    /// An app container (`spec.containers`).
    #[default]
    App,
    /// An init container: runs to completion before the app containers.
    Init,
    /// A native sidecar: an init container with `restartPolicy: Always`,
    /// running beside the app containers.
    Sidecar,
}

impl ContainerRole {
    /// How messages name a container of this role: `container app`,
    /// `init container migrate`, `sidecar proxy`.
    pub fn describe(self, name: &str) -> String {
        match self {
            ContainerRole::App => format!("container {name}"),
            ContainerRole::Init => format!("init container {name}"),
            ContainerRole::Sidecar => format!("sidecar {name}"),
        }
    }
}

/// What detection needs of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub role: ContainerRole,
    pub ready: bool,
    pub restart_count: i32,
    /// Waiting reason and message (`CrashLoopBackOff`, `ImagePullBackOff`, ...).
    pub waiting: Option<(String, Option<String>)>,
    /// Running since.
    pub running_since: Option<Timestamp>,
    /// Terminated right now.
    pub terminated: Option<Termination>,
    /// The previous termination.
    pub last_termination: Option<Termination>,
}

/// The controller of a Pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerView {
    pub kind: String,
    pub name: String,
}

/// What detection needs of one Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<OwnerView>,
    pub phase: String,
    pub created: Option<Timestamp>,
    pub deleting: bool,
    pub scheduled: Option<CondView>,
    pub ready: Option<CondView>,
    /// `status.reason`: why the pod is in its phase (`Evicted`, ...).
    pub reason: Option<String>,
    /// Init containers and sidecars first (in order), then app containers.
    pub containers: Vec<ContainerView>,
}

impl PodView {
    /// Whether the pod counts as a replica of its workload: not being
    /// deleted, not Succeeded (a finished run), not evicted (the kubelet
    /// left it Failed, a replacement runs elsewhere).
    pub fn counts(&self) -> bool {
        !self.deleting && self.phase != "Succeeded" && !self.evicted()
    }

    /// Evicted by the kubelet (phase Failed, reason Evicted).
    pub fn evicted(&self) -> bool {
        self.phase == "Failed" && self.reason.as_deref() == Some("Evicted")
    }
}

/// What detection needs of one Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub desired: i32,
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub paused: bool,
    pub available_cond: Option<CondView>,
    pub progressing_cond: Option<CondView>,
    /// `deployment.kubernetes.io/revision`.
    pub revision: Option<String>,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// The pod template's containers: (name, image).
    pub images: Vec<(String, String)>,
    /// `kubernetes.io/change-cause`, capped like messages.
    pub change_cause: Option<String>,
}

impl DeploymentView {
    /// The workload key of this Deployment.
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey::deployment(self.namespace.clone(), self.name.clone())
    }
}

impl From<&Deployment> for DeploymentView {
    fn from(d: &Deployment) -> Self {
        let spec = d.spec.as_ref();
        let status = d.status.clone().unwrap_or_default();
        let find = |t: &str| {
            status
                .conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == t))
                .map(|c| CondView {
                    status: c.status == "True",
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    since: c.last_transition_time.as_ref().map(|t| t.0),
                })
        };
        DeploymentView {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            labels: d.metadata.labels.clone().unwrap_or_default(),
            generation: d.metadata.generation,
            observed_generation: status.observed_generation,
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            paused: spec.and_then(|s| s.paused).unwrap_or(false),
            available_cond: find("Available"),
            progressing_cond: find("Progressing"),
            revision: d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned()),
            min_ready_seconds: spec.and_then(|s| s.min_ready_seconds).unwrap_or(0),
            images: spec
                .and_then(|s| s.template.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
            change_cause: d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/change-cause").cloned())
                .and_then(|c| super::wire::cap(Some(c))),
        }
    }
}

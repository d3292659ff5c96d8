//! The shared state of the Incident controller and its helpers (the
//! mitigation executor, evidence, post-mortems, notifications): one module
//! that they all import, so that none of them imports another for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::api::ListParams;
use kube::runtime::events::Recorder;
use kube::Client;

use super::detector::Detections;
use super::Clock;
use crate::admission::PolicyState;
use crate::core::authority::ApprovalTrust;
use crate::core::evidence::Caps;
use crate::core::targets::SeverityTargets;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// Shared state of the Incident controller.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub targets: SeverityTargets,
    pub clock: Clock,
    /// How often an open incident with a target is looked at even without a
    /// change (target health of Pods, which are not watched).
    pub resync: Duration,
    /// What the detector knows of workloads (None when detection is off).
    pub detections: Option<Arc<Detections>>,
    /// Only the leader writes.
    pub leadership: Leadership,
    /// `--dry-run`: mitigations are planned and recorded, never applied.
    pub dry_run: bool,
    /// Sends notifications for transitions (None: notifications off).
    pub notifier: Option<Arc<Notifier>>,
    /// Evidence caps (None: evidence collection off).
    pub evidence: Option<Caps>,
    /// The operator's namespace: cluster-wide Runbooks live there.
    pub operator_namespace: Option<String>,
    /// Cluster-wide mode: Namespaces (their labels) may be read. In
    /// namespaced mode they are unknown, as for the detector.
    pub read_namespaces: bool,
    /// Whether the admission policy that makes the API server check
    /// `approvedBy` is installed and current, kept up to date.
    pub approvals: tokio::sync::watch::Receiver<PolicyState>,
    /// `--accept-unverified-approvals`.
    pub accept_unverified_approvals: bool,
    /// The ReplicaSet selectors of the Deployments the executor read.
    pub selectors: Selectors,
    /// `--gitops`: GitOps owners (Argo CD Applications, Flux
    /// Kustomizations and HelmReleases) may be read and paused.
    pub gitops: bool,
    /// `--argocd-namespace`: where Argo CD Applications named by a bare
    /// application name live.
    pub argocd_namespace: String,
}

/// The label selector each Deployment the executor read lists its
/// ReplicaSets with, so that the next start lists them in parallel with
/// reading the Deployment (a Deployment's `spec.selector` is immutable; a
/// recreated one with another selector is detected after its read, and
/// listed again). Only a hint: it never decides what is written.
#[derive(Debug, Default)]
pub struct Selectors(Mutex<HashMap<(String, String), Option<String>>>);

/// More Deployments than this and the hints start over.
const SELECTORS_MAX: usize = 10_000;

impl Selectors {
    /// Remember the ReplicaSet list parameters of Deployment `ns/name`.
    pub fn remember(&self, ns: &str, name: &str, lp: ListParams) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SELECTORS_MAX {
            map.clear();
        }
        map.insert((ns.to_string(), name.to_string()), lp.label_selector);
    }

    /// The list parameters remembered for Deployment `ns/name`.
    pub fn recall(&self, ns: &str, name: &str) -> Option<ListParams> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(ns.to_string(), name.to_string()))
            .map(|label_selector| ListParams {
                label_selector: label_selector.clone(),
                ..ListParams::default()
            })
    }
}

impl Context {
    /// Whether `approvedBy` values are verified, as the lifecycle needs it.
    pub fn approval_trust(&self) -> ApprovalTrust {
        match &*self.approvals.borrow() {
            PolicyState::Installed => ApprovalTrust::Verified,
            other => ApprovalTrust::Unverified {
                why: other.to_string(),
                accept: self.accept_unverified_approvals,
            },
        }
    }
}

//! The detector: watches Pods, Deployments, ReplicaSets, StatefulSets,
//! DaemonSets, Jobs, CronJobs, Namespaces and Runbooks, keeps compact
//! projections (never whole Pods), assesses each changed workload with the pure detection core, opens Incidents with
//! deterministic names (exactly once, whatever races), reopens recurring
//! ones, feeds observations to the Incident controller, and writes Runbook
//! status (`Ready`, `matchedWorkloads`, `lastTriggeredAt`).
//!
//! Split as an index and an actor (the way linkerd's policy controller
//! indexes its resources):
//! - [`index`]: the projections per namespace, the restart ledger, and what
//!   to look at again; `apply`/`delete`/`reset` per kind. Pure.
//! - [`evaluate`]: a workload's assessment becomes a [`Detection`] and a
//!   decision of what to write; [`runbook_status`]: Runbook statuses. Pure.
//! - [`actor`]: the watches, leadership, timers and the writes.

pub mod actor;
pub mod detections;
pub mod evaluate;
pub mod index;
pub mod runbook_status;
pub mod workloads;

use std::sync::Arc;

use kube::ResourceExt;

pub use actor::Detector;
pub use detections::{Detection, Detections};

use super::Clock;
use crate::api::Incident;
use crate::core::workload::WorkloadKey;

/// Label on detector-opened Incidents: the episode number of the workload.
pub const EPISODE_LABEL: &str = "kubeincident.io/episode";

/// The workload an Incident targets.
pub fn workload_of(inc: &Incident) -> Option<WorkloadKey> {
    let t = inc.spec.target.as_ref()?;
    Some(WorkloadKey {
        namespace: inc.namespace()?,
        kind: t.kind.as_str().to_string(),
        name: t.name.clone(),
    })
}

/// The episode number of a detector-opened Incident (0 without the label).
pub fn episode(inc: &Incident) -> u32 {
    inc.labels()
        .get(EPISODE_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The Incidents of a namespace (from the Incident controller's caches).
pub type IncidentLookup = Arc<dyn Fn(&str) -> Vec<Arc<Incident>> + Send + Sync>;

/// Detector settings.
#[derive(Clone)]
pub struct DetectorConfig {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// The operator's own namespace (where cluster-wide Runbooks live).
    pub operator_namespace: Option<String>,
    /// Apply the built-in policy to workloads no Runbook covers.
    pub builtin_policy: bool,
    pub clock: Clock,
    /// Only the leader opens incidents and writes Runbook status.
    pub leadership: crate::leader::Leadership,
}

/// Errors of the detector's writes (logged, counted, retried on the next event).
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("creating incident {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reopening incident {name}: {source}")]
    Reopen {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of runbook {name}: {source}")]
    RunbookStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
}

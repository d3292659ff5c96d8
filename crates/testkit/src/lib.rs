//! The test kit of kube-incident: one [`Cluster`] whose back end is either
//! the project's emulated API server or a real Kubernetes control plane,
//! with CRD install, the operator's least-privilege RBAC, write counts,
//! `eventually`, and fixtures whose pods behave the same on both back ends;
//! [`gitops`]: the Argo CD and Flux CRDs and simulated GitOps controllers.
//!
//! The back end is chosen once per test process from the environment:
//!
//! | variable | back end |
//! |---|---|
//! | (nothing) or `KUBE_INCIDENT_BACKEND=emulator` | a fresh emulated API server per test |
//! | `KUBE_INCIDENT_BACKEND=real` | the control plane in `../shared/k8s` (started with `cluster.sh up` and `sim` when it is not running); tests skip with one line where that folder is absent |
//! | `KUBE_INCIDENT_E2E=1` | the cluster of the current kubeconfig (kind in GitHub Actions) |
//!
//! On a real back end the operator runs in-process as the user
//! `kube-incident-operator` (or `KUBE_INCIDENT_OPERATOR_KUBECONFIG`), bound
//! only to the RBAC that `kube_incident::rbac` lists (the chart's, proven
//! equal by `tests/rbac.rs`), and workload writes are counted from the API
//! server's audit log, never from the operator's own word.

#![forbid(unsafe_code)]

mod backend;
mod cluster;
pub mod fixtures;
pub mod gitops;
mod grants;
pub mod incidents;
mod operator;
mod wait;
pub mod workloads;

pub use backend::{Backend, BackendKind, RealEnv};
pub use cluster::{admin_client, install_crds, Cluster, Write};
pub use grants::{grant, CreateGranted, GRANTS_RUNBOOK};
pub use operator::RunningOperator;
pub use wait::{eventually, wait_for};

/// Log with `RUST_LOG` to the test's output (once per process).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

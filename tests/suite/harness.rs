//! The operator suite's harness is the project's test kit: the same tests
//! run on the emulated API server (default) and on a real control plane
//! (`KUBE_INCIDENT_BACKEND=real`, or `KUBE_INCIDENT_E2E=1`); see
//! docs/testing.md.

pub use testkit::{wait_for, Backend, Cluster, RunningOperator};

/// True on a real back end.
pub fn e2e() -> bool {
    !Backend::is_emulator()
}

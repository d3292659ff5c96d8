//! Integration tests of the emulated API server through the real kube-rs
//! client (and the real kubectl). See `harness` for running them on a real
//! cluster with `KUBE_INCIDENT_E2E=1`.

mod crds;
mod crud;
mod explore;
mod faults;
mod gc;
mod harness;
mod kubectl;
mod lists;
mod logs;
mod patching;
mod perf;
mod simulation;
mod util;
mod watch;

//! Integration tests of the emulated API server through the real kube-rs
//! client (and the real kubectl). See `harness` for running them on a real
//! cluster with `KUBE_INCIDENT_E2E=1`.

mod harness;
mod explore;
mod crud;
mod lists;
mod util;
mod watch;
mod gc;
mod crds;
mod patching;
mod faults;
mod logs;

//! Integration tests of the operator against the emulated API server (or a
//! real cluster with `KUBE_INCIDENT_E2E=1`): real HTTP, the real kube-rs
//! client, watchers and controller.

mod defects;
mod detection;
mod harness;
mod leader;
mod lifecycle;
mod mitigations;
mod response;

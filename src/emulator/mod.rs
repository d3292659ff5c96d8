//! The emulated Kubernetes cluster: an in-process API server on loopback
//! (real HTTP + JSON, so kube-rs clients, watchers and `kubectl` work against
//! it) plus a kwok-like workload simulation.
//!
//! Used three ways: integration tests of the real operator code,
//! `kube-incident demo`, and the scale benchmarks.

pub mod logs;
pub mod patch;
pub mod sim;

//! kube-incident: a Kubernetes operator that acts as the first responder of a
//! production cluster.
//!
//! Architecture (see `docs/architecture.md`):
//! - [`api`]: the `Incident` and `Runbook` custom resources (the contract).
//! - [`core`]: pure decision logic (lifecycle, severity targets, validation);
//!   no client, unit-tested with an injected clock.
//! - [`controller`]: Kubernetes I/O: reconcilers that gather state, call the
//!   pure core and write the result with server-side apply.
//! - [`emulator`]: the in-process emulated API server and workload simulation.
//! - [`cli`]: the `kubectl-incident` plugin.

pub mod alertmanager;
pub mod api;
pub mod cli;
pub mod controller;
pub mod core;
pub mod demo;
pub mod emulator;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod operator;
pub mod rbac;

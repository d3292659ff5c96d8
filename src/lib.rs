//! kube-incident: a Kubernetes operator that acts as the first responder of a
//! production cluster.
//!
//! Architecture (see `docs/architecture.md`):
//! - [`api`]: the `Incident` and `Runbook` custom resources (the contract).
//! - [`core`]: pure decision logic (lifecycle, severity targets, validation);
//!   no client, unit-tested with an injected clock.
//! - [`controller`]: Kubernetes I/O: reconcilers that gather state, call the
//!   pure core and write the result with server-side apply.
//! - [`cli`]: the `kubectl-incident` plugin.
//!
//! The emulated API server lives in its own crate (`crates/emulator`): a
//! dev-dependency of the tests and, behind the `demo` feature, of
//! `kube-incident demo` only. The shipped operator does not contain it.

#![forbid(unsafe_code)]
// Today's discipline, kept by the compiler: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admission;
pub mod alertmanager;
pub mod api;
pub mod cli;
pub mod controller;
pub mod core;
#[cfg(feature = "demo")]
pub mod demo;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod operator;
pub mod rbac;

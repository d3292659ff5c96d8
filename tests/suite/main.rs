//! The integration suite of kube-incident, one test binary: the operator
//! scenarios (detection, lifecycle, mitigations, response, leader,
//! fencing) and the `kubectl incident` plugin run on the emulated API server
//! by default and unchanged on a real control plane (`KUBE_INCIDENT_BACKEND=real`, or
//! `KUBE_INCIDENT_E2E=1`); see docs/testing.md. Also here: the CRD drift and
//! schema tests, the RBAC proof and the chart tests.

mod admission;
mod authority;
mod chart;
mod cli;
mod crds;
mod defects;
mod detection;
mod fencing;
mod gitops;
mod gitops_kit;
mod harness;
mod kinds_detection;
mod kinds_loop;
mod kinds_mitigation;
mod leader;
mod lifecycle;
mod mitigations;
mod rbac;
mod render;
mod response;
mod rollouts;

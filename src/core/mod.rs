//! Pure decision logic: no client, no I/O, an injected clock. Everything here
//! is unit-tested; the controllers gather state, call these functions and
//! apply the result.

pub mod authority;
pub mod conditions;
pub mod detection;
pub mod escalation;
pub mod evidence;
pub mod gitops;
pub mod health;
pub mod lifecycle;
pub mod mitigation;
pub mod postmortem;
pub mod selector;
pub mod targets;
pub mod validation;
pub mod workload;

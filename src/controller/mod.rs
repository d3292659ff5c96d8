//! Kubernetes I/O: reconcilers gather state, call the pure core, write the
//! result with server-side apply (field manager `kube-incident`) and publish
//! Events.

pub mod artifacts;
pub mod authority;
pub mod context;
pub mod detector;
pub mod evidence;
pub mod executor;
pub mod incident;
pub mod postmortem;
pub mod status;

use std::sync::Arc;

use jiff::Timestamp;

/// The clock, injected so tests can control time.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Timestamp::now)
}

//! State shared by the HTTP handlers of the API server and its watches.

use std::sync::Arc;
use std::time::Duration;

use super::faults::FaultInjector;
use super::logs::PodLogs;
use super::store::Store;

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    /// Fault injection.
    pub faults: FaultInjector,
    /// Container logs.
    pub logs: PodLogs,
    /// Interval between watch bookmarks.
    pub bookmark_interval: Duration,
}

//! Leadership: only the leader acts and writes; followers keep their caches
//! warm. This module holds the shared flag the controllers check before
//! every write. (Lease-based election: see the packaging work.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cheap handle on "am I the leader right now".
#[derive(Debug, Clone)]
pub struct Leadership {
    leading: Arc<AtomicBool>,
}

impl Leadership {
    /// A single instance: always the leader.
    pub fn always() -> Self {
        Leadership {
            leading: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Starts as a follower until [`Leadership::set`] says otherwise.
    pub fn follower() -> Self {
        Leadership {
            leading: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether this instance may act and write now.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Record a change of leadership.
    pub fn set(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }
}

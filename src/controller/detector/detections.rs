//! What the detector currently knows of each workload, shared with the
//! Incident controller (which observes targets through it).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use jiff::Timestamp;

use crate::core::detection::Assessment;
use crate::core::workload::WorkloadKey;

/// What the detector currently knows of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub assessment: Assessment,
    /// The trouble recurred after the latest Incident was resolved, within
    /// the reopen window.
    pub recurrence: Option<Timestamp>,
}

/// Shared detections, keyed by workload.
#[derive(Debug, Default)]
pub struct Detections {
    inner: RwLock<HashMap<WorkloadKey, Arc<Detection>>>,
}

impl Detections {
    pub fn get(&self, key: &WorkloadKey) -> Option<Arc<Detection>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// How many workloads have a detection.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no workload has a detection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Store (`Some`) or forget (`None`) the detection of `key`; whether
    /// that changed anything.
    pub(super) fn set(&self, key: WorkloadKey, d: Option<Detection>) -> bool {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        match d {
            Some(d) => {
                let changed = map.get(&key).is_none_or(|old| **old != d);
                map.insert(key, Arc::new(d));
                changed
            }
            None => map.remove(&key).is_some(),
        }
    }
}

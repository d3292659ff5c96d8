//! The status under construction during one evaluation (the status, the
//! transitions so far, the earliest wake-up) and the [`Decision`] it becomes.

use std::time::Duration;

use jiff::Timestamp;

use super::time::since;
use super::timeline::push_timeline;
use super::transition::Transition;
use crate::api::{IncidentStatus, TimelineType};
use crate::core::conditions::set_condition;

/// The outcome of one lifecycle evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: IncidentStatus,
    pub transitions: Vec<Transition>,
    /// When to look again (the next deadline or window end), if any.
    pub requeue_after: Option<Duration>,
}

/// The status under construction: every concern of an evaluation writes
/// through it (conditions, timeline, transitions, wake-ups).
pub(super) struct Builder {
    pub(super) status: IncidentStatus,
    pub(super) transitions: Vec<Transition>,
    pub(super) now: Timestamp,
    pub(super) generation: Option<i64>,
    pub(super) wake: Option<Timestamp>,
}

impl Builder {
    pub(super) fn new(status: IncidentStatus, generation: Option<i64>, now: Timestamp) -> Self {
        Builder {
            status,
            transitions: Vec::new(),
            now,
            generation,
            wake: None,
        }
    }

    pub(super) fn timeline(&mut self, type_: TimelineType, message: String) {
        push_timeline(&mut self.status, type_, message, self.now);
    }

    /// Set a condition; `true` when it changed.
    pub(super) fn cond(
        &mut self,
        type_: &str,
        status: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> bool {
        set_condition(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            message,
            self.generation,
            self.now,
        )
    }

    /// Look again at `t` (the earliest of all requested wake-ups wins).
    pub(super) fn wake_at(&mut self, t: Timestamp) {
        if t > self.now {
            self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
        }
    }

    pub(super) fn finish(self) -> Decision {
        let requeue_after = self.wake.map(|w| since(w, self.now));
        Decision {
            status: self.status,
            transitions: self.transitions,
            requeue_after,
        }
    }
}

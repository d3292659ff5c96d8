//! `metav1.Condition` bookkeeping: transition times change only when the
//! status changes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition status values.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";

/// Set (or add) a condition. `lastTransitionTime` is kept when `status` is
/// unchanged; reason, message and observedGeneration are updated in place.
/// Returns `true` when the status changed (a transition).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let message = message.into();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        let transitioned = c.status != status;
        if transitioned {
            c.last_transition_time = Time(now);
        }
        c.status = status.to_string();
        c.reason = reason.to_string();
        c.message = message;
        c.observed_generation = observed_generation;
        transitioned
    } else {
        conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation,
            last_transition_time: Time(now),
        });
        true
    }
}

/// The condition of that type, if any.
pub fn get_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `true` when the condition exists with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get_condition(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_without_status_change() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let mut c = Vec::new();
        assert!(set_condition(
            &mut c,
            "Ready",
            FALSE,
            "A",
            "m1",
            Some(1),
            t0
        ));
        assert!(!set_condition(
            &mut c,
            "Ready",
            FALSE,
            "B",
            "m2",
            Some(2),
            t1
        ));
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].reason, "B");
        assert_eq!(c[0].observed_generation, Some(2));
        assert!(set_condition(&mut c, "Ready", TRUE, "C", "m3", Some(2), t1));
        assert_eq!(c[0].last_transition_time, Time(t1));
        assert!(is_true(&c, "Ready"));
        assert!(!is_true(&c, "Other"));
    }
}

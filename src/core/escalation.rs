//! Escalation: once the response deadline is missed, walk the Runbook's
//! escalation list on its timers. Level `k` (1-based) is reached at
//! `responseDeadline + escalation[k-1].after`. Acknowledging (or resolving)
//! stops the walk: the level reached stays recorded, `nextAt` is cleared.
//!
//! Pure: no client, injected clock.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{EscalationLevel, EscalationStatus};

/// One level of the escalation list, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// Time after the response deadline.
    pub after: Duration,
    /// Sink names to notify.
    pub notify: Vec<String>,
}

/// Parse the Runbook's escalation list. Levels whose `after` does not parse
/// are dropped (the Runbook's Ready condition already names the field), and
/// the list is ordered by `after` so levels are reached in time order.
pub fn levels(spec: &[EscalationLevel]) -> Vec<Level> {
    let mut out: Vec<Level> = spec
        .iter()
        .filter_map(|l| {
            l.after.parse().ok().map(|after| Level {
                after,
                notify: l.notify.clone(),
            })
        })
        .collect();
    out.sort_by_key(|l| l.after);
    out
}

/// A level reached in this evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// 1-based level number.
    pub level: i32,
    pub notify: Vec<String>,
    /// How long after the response deadline it was reached.
    pub after: Duration,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The new `status.escalation` (None when there is nothing to record).
    pub status: Option<EscalationStatus>,
    /// Levels newly reached, in order.
    pub reached: Vec<Reached>,
    /// When to look again.
    pub wake_at: Option<Timestamp>,
}

/// Evaluate escalation.
///
/// - `response_deadline`: `status.responseDeadline`.
/// - `stopped`: the incident is acknowledged or resolved.
/// - `current`: the stored `status.escalation`.
pub fn evaluate(
    levels: &[Level],
    response_deadline: Option<Timestamp>,
    stopped: bool,
    current: Option<&EscalationStatus>,
    now: Timestamp,
) -> Outcome {
    let reached_before = current.map_or(0, |c| c.level.max(0)) as usize;
    let Some(deadline) = response_deadline else {
        return Outcome {
            status: current.cloned(),
            reached: Vec::new(),
            wake_at: None,
        };
    };
    if stopped {
        // Keep the record of what was reached, stop the timer.
        let status = current.map(|c| EscalationStatus {
            level: c.level,
            next_at: None,
        });
        return Outcome {
            status,
            reached: Vec::new(),
            wake_at: None,
        };
    }
    if levels.is_empty() {
        return Outcome {
            status: current.cloned(),
            reached: Vec::new(),
            wake_at: None,
        };
    }
    let at = |l: &Level| deadline.checked_add(l.after).unwrap_or(Timestamp::MAX);
    let mut reached = Vec::new();
    let mut level = reached_before.min(levels.len());
    while level < levels.len() && now >= at(&levels[level]) {
        let l = &levels[level];
        level += 1;
        reached.push(Reached {
            level: level as i32,
            notify: l.notify.clone(),
            after: l.after,
        });
    }
    let next = levels.get(level).map(at);
    let status = EscalationStatus {
        level: level as i32,
        next_at: next.map(Time),
    };
    Outcome {
        status: Some(status),
        reached,
        wake_at: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GoDuration;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn list() -> Vec<Level> {
        levels(&[
            EscalationLevel {
                after: GoDuration::new("30m"),
                notify: vec!["manager".into()],
            },
            EscalationLevel {
                after: GoDuration::new("10m"),
                notify: vec!["secondary".into()],
            },
            EscalationLevel {
                after: GoDuration::new("bogus"),
                notify: vec!["never".into()],
            },
        ])
    }

    #[test]
    fn levels_are_sorted_and_invalid_dropped() {
        let l = list();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].notify, vec!["secondary".to_string()]);
        assert_eq!(l[1].after, Duration::from_secs(1800));
    }

    #[test]
    fn before_the_deadline_waits_for_the_first_level() {
        let o = evaluate(&list(), Some(t(0)), false, None, t(-60));
        assert!(o.reached.is_empty());
        assert_eq!(o.wake_at, Some(t(600)));
        assert_eq!(o.status.unwrap().level, 0);
    }

    #[test]
    fn walks_levels_on_their_timers() {
        let levels = list();
        let o = evaluate(&levels, Some(t(0)), false, None, t(600));
        assert_eq!(o.reached.len(), 1);
        assert_eq!(o.reached[0].level, 1);
        assert_eq!(o.reached[0].notify, vec!["secondary".to_string()]);
        let s = o.status.unwrap();
        assert_eq!(s.level, 1);
        assert_eq!(s.next_at, Some(Time(t(1800))));
        // Re-evaluating at the same time reaches nothing new (idempotent).
        let again = evaluate(&levels, Some(t(0)), false, Some(&s), t(600));
        assert!(again.reached.is_empty());
        assert_eq!(again.status.as_ref(), Some(&s));
        // Later: level 2, then nothing left.
        let o2 = evaluate(&levels, Some(t(0)), false, Some(&s), t(1801));
        assert_eq!(o2.reached.len(), 1);
        assert_eq!(o2.reached[0].level, 2);
        assert_eq!(o2.status.as_ref().unwrap().next_at, None);
        assert_eq!(o2.wake_at, None);
    }

    #[test]
    fn a_late_look_reaches_every_passed_level_at_once() {
        let o = evaluate(&list(), Some(t(0)), false, None, t(7200));
        assert_eq!(
            o.reached.iter().map(|r| r.level).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn acknowledging_stops_the_walk_and_keeps_the_level() {
        let s = EscalationStatus {
            level: 1,
            next_at: Some(Time(t(1800))),
        };
        let o = evaluate(&list(), Some(t(0)), true, Some(&s), t(4000));
        assert!(o.reached.is_empty());
        assert_eq!(
            o.status,
            Some(EscalationStatus {
                level: 1,
                next_at: None
            })
        );
        assert_eq!(o.wake_at, None);
    }

    /// Through the lifecycle: a missed response deadline walks the levels
    /// on the clock; acknowledging stops the walk.
    #[test]
    fn lifecycle_escalates_on_the_clock_and_stops_on_ack() {
        use crate::api::IncidentSpec;
        use crate::core::lifecycle::{reconcile, IncidentView, Observation, Policy, Transition};
        let spec: IncidentSpec =
            serde_json::from_value(serde_json::json!({"title": "down", "severity": "SEV1"}))
                .unwrap();
        let policy = Policy {
            escalation: list(),
            ..Default::default()
        };
        fn view<'a>(
            spec: &'a IncidentSpec,
            status: Option<&'a crate::api::IncidentStatus>,
        ) -> IncidentView<'a> {
            IncidentView {
                spec,
                generation: Some(1),
                created_at: Some(t(0)),
                status,
            }
        }
        let obs = Observation::default();
        let d0 = reconcile(view(&spec, None), &obs, &policy, t(0));
        // SEV1: response target 5m; level 1 at +10m after it.
        assert_eq!(d0.status.escalation.as_ref().unwrap().level, 0);
        assert_eq!(d0.requeue_after, Some(Duration::from_secs(300)));
        let d1 = reconcile(view(&spec, Some(&d0.status)), &obs, &policy, t(300));
        assert!(d1
            .transitions
            .iter()
            .any(|t| matches!(t, Transition::ResponseOverdue { .. })));
        assert_eq!(d1.requeue_after, Some(Duration::from_secs(600)));
        let d2 = reconcile(view(&spec, Some(&d1.status)), &obs, &policy, t(900));
        assert!(d2.transitions.contains(&Transition::Escalated {
            level: 1,
            notify: vec!["secondary".into()],
            after: Duration::from_secs(600),
        }));
        assert_eq!(d2.status.escalation.as_ref().unwrap().level, 1);
        // Replaying the same look emits nothing again.
        let again = reconcile(view(&spec, Some(&d2.status)), &obs, &policy, t(900));
        assert!(again.transitions.is_empty(), "{:?}", again.transitions);
        // Acknowledged: the walk stops before level 2.
        let mut acked = spec.clone();
        acked.acknowledged_by = Some("alice".into());
        let d3 = reconcile(view(&acked, Some(&d2.status)), &obs, &policy, t(4000));
        assert!(!d3
            .transitions
            .iter()
            .any(|t| matches!(t, Transition::Escalated { .. })));
        assert_eq!(
            d3.status.escalation,
            Some(EscalationStatus {
                level: 1,
                next_at: None
            })
        );
    }

    #[test]
    fn no_levels_no_status() {
        let o = evaluate(&[], Some(t(0)), false, None, t(4000));
        assert_eq!(o.status, None);
        assert!(o.reached.is_empty());
    }
}

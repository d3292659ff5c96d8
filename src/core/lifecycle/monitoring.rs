//! Monitoring the target: since when it is healthy, a relapse after a
//! mitigation, and recovery once it stayed healthy for the whole window.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::inputs::TargetHealth;
use super::phase::resolve;
use super::time::{add, human};
use super::transition::Transition;
use crate::api::{IncidentSource, IncidentSpec, StepState, TimelineType};

/// Target health drives the monitoring window: `healthySince` is set when
/// the target becomes healthy and cleared when it is not.
pub(super) fn track_target_health(b: &mut Builder, target: &TargetHealth) {
    match target {
        TargetHealth::Healthy => {
            if b.status.healthy_since.is_none() {
                b.status.healthy_since = Some(Time(b.now));
            }
        }
        TargetHealth::Unhealthy(_) | TargetHealth::Missing => b.status.healthy_since = None,
        TargetHealth::Unknown => {}
    }
}

/// The target relapsed while step `i` was monitored: the step was
/// Ineffective.
pub(super) fn relapse(b: &mut Builder, i: usize, name: String, reason: &str) {
    let step = &mut b.status.mitigations[i];
    step.state = StepState::Ineffective;
    step.message = format!("target relapsed during monitoring: {reason}");
    b.timeline(
        TimelineType::Relapse,
        format!("target relapsed after mitigation {name:?}: {reason}"),
    );
    b.transitions.push(Transition::Relapse {
        step: name,
        reason: reason.to_string(),
    });
}

/// The target is healthy after mitigation `name` completed at `completed`:
/// resolve once it stayed healthy for the window, else look again then.
pub(super) fn recover_after_step(
    b: &mut Builder,
    name: &str,
    completed: Timestamp,
    window: Duration,
    opened_at: Timestamp,
) {
    let healthy_since = b.status.healthy_since.as_ref().map_or(b.now, |t| t.0);
    recover_after(
        b,
        healthy_since.max(completed),
        window,
        format!(
            "target healthy for {} after mitigation {name:?}",
            human(window)
        ),
        opened_at,
    );
}

/// A detector-opened incident without a plan resolves by itself once the
/// target stays healthy for the monitoring window.
pub(super) fn resolve_without_plan(
    b: &mut Builder,
    spec: &IncidentSpec,
    target: &TargetHealth,
    window: Duration,
    opened_at: Timestamp,
) {
    if b.status.resolved_at.is_some()
        || spec.source != IncidentSource::Detector
        || !spec.mitigations.is_empty()
    {
        return;
    }
    if let (TargetHealth::Healthy, Some(healthy_since)) =
        (target, b.status.healthy_since.as_ref().map(|t| t.0))
    {
        recover_after(
            b,
            healthy_since,
            window,
            format!("target healthy for {}", human(window)),
            opened_at,
        );
    }
}

/// Resolve as `Recovered` once `window` has passed since `from`; until
/// then, wake up when it ends.
fn recover_after(
    b: &mut Builder,
    from: Timestamp,
    window: Duration,
    summary: String,
    opened_at: Timestamp,
) {
    let end = add(from, window);
    if b.now >= end {
        resolve(b, None, summary, opened_at, "Recovered");
    } else {
        b.wake_at(end);
    }
}

//! Pure deployment-controller logic, transcribed from kube-controller-manager's
//! `pkg/controller/deployment/` (`sync.go`, `rolling.go`, `progress.go`,
//! `util/deployment_util.go`): rollout math (maxSurge/maxUnavailable,
//! new/old ReplicaSet scaling, proportional scaling), revision bookkeeping,
//! status and conditions. No I/O; the async controller in `deployment.rs`
//! applies the results through the API.
//!
//! What the operator needs too (annotation names, revisions, the
//! pod-template-hash, template comparison, condition names) lives in the
//! shared `rollout` crate and is re-exported here.
//!
//! - this module: spec accessors, fenceposts, revisions, the new ReplicaSet;
//! - [`annotations`]: the annotations the controller writes on ReplicaSets;
//! - [`scaling`]: scaling of new and old ReplicaSets, cleanup;
//! - [`status`]: status, conditions, progress deadline, pause.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use ::rollout::annotations::{
    ANNOTATIONS_TO_SKIP, CHANGE_CAUSE_ANNOTATION, DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};
pub use ::rollout::conditions::{
    get_condition, COND_AVAILABLE, COND_PROGRESSING, COND_REPLICA_FAILURE, FOUND_NEW_RS_REASON,
    MIN_AVAILABLE_REASON, MIN_UNAVAILABLE_REASON, NEW_RS_AVAILABLE_REASON, NEW_RS_REASON,
    PAUSED_REASON, RESUMED_REASON, RS_UPDATED_REASON, TIMED_OUT_REASON,
};
pub use ::rollout::history::by_creation;

mod annotations;
mod scaling;
mod status;
#[cfg(test)]
mod tests;

pub use annotations::{
    copy_deployment_annotations, set_new_rs_annotations, set_replicas_annotations,
};
pub use scaling::{
    cleanup_plan, is_saturated, is_scaling_event, new_rs_new_replicas, reconcile_old_plan,
    scale_plan,
};
pub use status::{
    calculate_status, deployment_complete, deployment_progressing, deployment_timed_out,
    new_condition, paused_conditions, remove_condition, requeue_stuck_after, rollout_status,
    set_condition,
};

/// `maxRevHistoryLengthInChars` default of the controller.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Errors of the rollout math.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    /// An int-or-percent field is neither an integer nor `N%`.
    #[error("invalid value for IntOrString: invalid type: string is not a percentage: {0:?}")]
    InvalidIntOrPercent(String),
}

/// The current time at the API's precision (RFC 3339 seconds, like `metav1.Time`).
pub fn now_secs() -> Timestamp {
    trunc_secs(Timestamp::now())
}

/// Truncates to whole seconds.
pub fn trunc_secs(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Divides a simulated duration by the time scale.
pub fn scale_duration(d: Duration, time_scale: f64) -> Duration {
    let s = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    Duration::from_secs_f64(d.as_secs_f64() / s)
}

/// `spec.replicas` with the API default of 1.
pub fn desired_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets `spec.replicas` of a ReplicaSet.
pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// Whether the strategy is RollingUpdate (the default) rather than Recreate.
pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        != Some("Recreate")
}

/// `spec.progressDeadlineSeconds` (API default 600); `None` when disabled
/// (`math.MaxInt32`).
pub fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    let v = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    (v != i32::MAX).then_some(v)
}

/// `spec.minReadySeconds` (default 0).
pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `spec.revisionHistoryLimit` (API default 10).
pub fn revision_history_limit(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
}

/// `spec.paused`.
pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// `intstrutil.GetScaledValueFromIntOrPercent`: percentages round up when
/// `round_up` (maxSurge) and down otherwise (maxUnavailable).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, RolloutError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            if let Some(p) = s.strip_suffix('%') {
                let pct: i64 = p
                    .parse()
                    .map_err(|_| RolloutError::InvalidIntOrPercent(s.clone()))?;
                let prod = pct * i64::from(total);
                let v = if round_up {
                    (prod + 99).div_euclid(100)
                } else {
                    prod.div_euclid(100)
                };
                Ok(v as i32)
            } else {
                s.parse()
                    .map_err(|_| RolloutError::InvalidIntOrPercent(s.clone()))
            }
        }
    }
}

/// `deploymentutil.ResolveFenceposts`: (surge, unavailable); both zero is
/// turned into unavailable = 1 so a rollout can always progress.
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> Result<(i32, i32), RolloutError> {
    let surge = scaled_value(max_surge, desired, true)?;
    let mut unavailable = scaled_value(max_unavailable, desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let def = || IntOrString::String("25%".to_string());
    (
        ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(def),
        ru.and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(def),
    )
}

/// `deploymentutil.MaxSurge` (0 for Recreate; invalid values count as 0).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, desired_replicas(d)).map_or(0, |(s, _)| s)
}

/// `deploymentutil.MaxUnavailable` (0 for Recreate or zero replicas, capped at replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = desired_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    let unavailable = resolve_fenceposts(&s, &u, replicas).map_or(0, |(_, u)| u);
    unavailable.min(replicas)
}

/// The revision number of a ReplicaSet (0 when absent or invalid).
pub fn revision(rs: &ReplicaSet) -> i64 {
    ::rollout::revision(&rs.metadata).unwrap_or(0)
}

/// `deploymentutil.MaxRevision`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    ::rollout::max_revision(rss.into_iter().map(|rs| &rs.metadata))
}

/// The deployment's pod template as JSON.
pub fn deployment_template(d: &Deployment) -> serde_json::Value {
    ::rollout::hash::template_value(d.spec.as_ref().map(|s| &s.template))
}

/// A ReplicaSet's pod template as JSON.
pub fn rs_template(rs: &ReplicaSet) -> serde_json::Value {
    ::rollout::hash::template_value(rs.spec.as_ref().and_then(|s| s.template.as_ref()))
}

/// `deploymentutil.FindNewReplicaSet`: the oldest ReplicaSet whose template
/// equals the deployment's ignoring the hash label (index into `rss`).
pub fn find_new_rs(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    ::rollout::find_new_replica_set(d, rss)
}

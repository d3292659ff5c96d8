//! Deployment status and conditions (`sync.go` `calculateStatus`,
//! `progress.go`): availability, progress, the progress deadline and pause.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    desired_replicas, get_condition, is_paused, max_unavailable, progress_deadline_seconds,
    rs_available, rs_ready, rs_replicas, rs_status_replicas, scale_duration, COND_AVAILABLE,
    COND_PROGRESSING, COND_REPLICA_FAILURE, MIN_AVAILABLE_REASON, MIN_UNAVAILABLE_REASON,
    NEW_RS_AVAILABLE_REASON, PAUSED_REASON, RESUMED_REASON, RS_UPDATED_REASON, TIMED_OUT_REASON,
};

/// `deploymentutil.NewDeploymentCondition` (both times = now).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// `deploymentutil.SetDeploymentCondition`: no-op when status and reason are
/// unchanged; keeps lastTransitionTime when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

/// `deploymentutil.RemoveDeploymentCondition`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// `sync.go` `calculateStatus` (new ReplicaSet at `new_idx`).
pub fn calculate_status(
    d: &Deployment,
    rss: &[ReplicaSet],
    new_idx: Option<usize>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = rss.iter().map(rs_available).sum();
    let total: i32 = rss.iter().map(rs_replicas).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(rss.iter().map(rs_status_replicas).sum()),
        updated_replicas: Some(new_idx.map_or(0, |i| rs_status_replicas(&rss[i]))),
        ready_replicas: Some(rss.iter().map(rs_ready).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= desired_replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                COND_AVAILABLE,
                "True",
                MIN_AVAILABLE_REASON,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                COND_AVAILABLE,
                "False",
                MIN_UNAVAILABLE_REASON,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

/// `deploymentutil.DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let desired = desired_replicas(d);
    s.updated_replicas.unwrap_or(0) == desired
        && s.replicas.unwrap_or(0) == desired
        && s.available_replicas.unwrap_or(0) == desired
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `deploymentutil.DeploymentProgressing`: the new status shows progress
/// compared with the deployment's current status.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// `deploymentutil.DeploymentTimedOut` with the deadline divided by `time_scale`.
pub fn deployment_timed_out(
    d: &Deployment,
    s: &DeploymentStatus,
    now: Timestamp,
    time_scale: f64,
) -> bool {
    let Some(pds) = progress_deadline_seconds(d) else {
        return false;
    };
    let Some(cond) = get_condition(s, COND_PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let Some(from) = cond.last_update_time.as_ref() else {
        return false;
    };
    let delta = scale_duration(Duration::from_secs(pds.max(0) as u64), time_scale);
    match from
        .0
        .checked_add(jiff::SignedDuration::try_from(delta).unwrap_or_default())
    {
        Ok(deadline) => deadline < now,
        Err(_) => false,
    }
}

/// `progress.go` `syncRolloutStatus` status computation: the status to write
/// (may equal the current one, then nothing is written).
pub fn rollout_status(
    d: &Deployment,
    rss: &[ReplicaSet],
    new_idx: Option<usize>,
    now: Timestamp,
    time_scale: f64,
) -> DeploymentStatus {
    let mut new_status = calculate_status(d, rss, new_idx, now);
    let has_deadline = progress_deadline_seconds(d).is_some();
    if !has_deadline {
        remove_condition(&mut new_status, COND_PROGRESSING);
    }
    let cur = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, COND_PROGRESSING))
        .cloned();
    let complete_already = new_status.replicas == new_status.updated_replicas
        && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE_REASON);
    let new_name = new_idx
        .and_then(|i| rss[i].metadata.name.clone())
        .unwrap_or_default();
    if has_deadline && !complete_already {
        if deployment_complete(d, &new_status) {
            let msg = if new_idx.is_some() {
                format!("ReplicaSet \"{new_name}\" has successfully progressed.")
            } else {
                "Deployment has successfully progressed.".to_string()
            };
            set_condition(
                &mut new_status,
                new_condition(COND_PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, msg, now),
            );
        } else if deployment_progressing(d, &new_status) {
            let msg = if new_idx.is_some() {
                format!("ReplicaSet \"{new_name}\" is progressing.")
            } else {
                "Deployment is progressing.".to_string()
            };
            let mut cond = new_condition(COND_PROGRESSING, "True", RS_UPDATED_REASON, msg, now);
            if let Some(c) = &cur {
                if c.status == "True" {
                    cond.last_transition_time = c.last_transition_time.clone();
                }
                remove_condition(&mut new_status, COND_PROGRESSING);
            }
            set_condition(&mut new_status, cond);
        } else if deployment_timed_out(d, &new_status, now, time_scale) {
            let msg = if new_idx.is_some() {
                format!("ReplicaSet \"{new_name}\" has timed out progressing.")
            } else {
                "Deployment has timed out progressing.".to_string()
            };
            set_condition(
                &mut new_status,
                new_condition(COND_PROGRESSING, "False", TIMED_OUT_REASON, msg, now),
            );
        }
    }
    remove_condition(&mut new_status, COND_REPLICA_FAILURE);
    new_status
}

/// `requeueStuckDeployment`: when to look again for a progress-deadline
/// timeout (scaled), if the status did not change.
pub fn requeue_stuck_after(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
    time_scale: f64,
) -> Option<Duration> {
    let pds = progress_deadline_seconds(d)?;
    let cur = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, COND_PROGRESSING))?;
    if deployment_complete(d, new_status) || cur.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let from = cur.last_update_time.as_ref()?.0;
    let delta = scale_duration(Duration::from_secs(pds.max(0) as u64), time_scale);
    let deadline = from
        .checked_add(jiff::SignedDuration::try_from(delta).ok()?)
        .ok()?;
    let after = deadline.duration_since(now);
    let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
    // The real controller adds a second; conditions have 1s precision.
    Some(after + Duration::from_millis(1000))
}

/// `checkPausedConditions`: the status with the Progressing condition set to
/// DeploymentPaused / DeploymentResumed, or `None` when nothing changes.
pub fn paused_conditions(d: &Deployment, now: Timestamp) -> Option<DeploymentStatus> {
    progress_deadline_seconds(d)?;
    let mut status = d.status.clone().unwrap_or_default();
    let cond = get_condition(&status, COND_PROGRESSING);
    if cond.and_then(|c| c.reason.as_deref()) == Some(TIMED_OUT_REASON) {
        return None;
    }
    let paused_exists = cond.and_then(|c| c.reason.as_deref()) == Some(PAUSED_REASON);
    if is_paused(d) && !paused_exists {
        set_condition(
            &mut status,
            new_condition(
                COND_PROGRESSING,
                "Unknown",
                PAUSED_REASON,
                "Deployment is paused".into(),
                now,
            ),
        );
        Some(status)
    } else if !is_paused(d) && paused_exists {
        set_condition(
            &mut status,
            new_condition(
                COND_PROGRESSING,
                "Unknown",
                RESUMED_REASON,
                "Deployment is resumed".into(),
                now,
            ),
        );
        Some(status)
    } else {
        None
    }
}

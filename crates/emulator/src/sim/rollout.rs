//! Pure deployment-controller logic, transcribed from kube-controller-manager's
//! `pkg/controller/deployment/` (`sync.go`, `rolling.go`, `progress.go`,
//! `util/deployment_util.go`): revision bookkeeping, rollout math
//! (maxSurge/maxUnavailable, new/old ReplicaSet scaling, proportional
//! scaling), status and conditions. No I/O; the async controller in
//! `deployment.rs` applies the results through the API.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `deployment.kubernetes.io/revision`.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// `deployment.kubernetes.io/revision-history`.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `deployment.kubernetes.io/desired-replicas`.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `deployment.kubernetes.io/max-replicas`.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// `kubernetes.io/change-cause` (copied to ReplicaSets like any other annotation).
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// Annotations the deployment controller never copies to its ReplicaSets.
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];
/// `maxRevHistoryLengthInChars` default of the controller.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Condition type `Available`.
pub const COND_AVAILABLE: &str = "Available";
/// Condition type `Progressing`.
pub const COND_PROGRESSING: &str = "Progressing";
/// Condition type `ReplicaFailure`.
pub const COND_REPLICA_FAILURE: &str = "ReplicaFailure";
/// Reason `NewReplicaSetCreated`.
pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
/// Reason `FoundNewReplicaSet`.
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
/// Reason `ReplicaSetUpdated`.
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
/// Reason `NewReplicaSetAvailable`.
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
/// Reason `ProgressDeadlineExceeded`.
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
/// Reason `DeploymentPaused`.
pub const PAUSED_REASON: &str = "DeploymentPaused";
/// Reason `DeploymentResumed`.
pub const RESUMED_REASON: &str = "DeploymentResumed";
/// Reason `MinimumReplicasAvailable`.
pub const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
/// Reason `MinimumReplicasUnavailable`.
pub const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";

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
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `deploymentutil.MaxRevision`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

fn creation(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `controller.ReplicaSetsByCreationTimestamp` order (ties by name).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    creation(a)
        .cmp(&creation(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn template_value(t: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

/// The deployment's pod template as JSON.
pub fn deployment_template(d: &Deployment) -> serde_json::Value {
    d.spec
        .as_ref()
        .map(|s| template_value(&s.template))
        .unwrap_or(serde_json::Value::Null)
}

/// A ReplicaSet's pod template as JSON.
pub fn rs_template(rs: &ReplicaSet) -> serde_json::Value {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(template_value)
        .unwrap_or(serde_json::Value::Null)
}

/// `deploymentutil.FindNewReplicaSet`: the oldest ReplicaSet whose template
/// equals the deployment's ignoring the hash label (index into `rss`).
pub fn find_new_rs(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let dt = deployment_template(d);
    let mut idx: Vec<usize> = (0..rss.len()).collect();
    idx.sort_by(|a, b| by_creation(&rss[*a], &rss[*b]));
    idx.into_iter()
        .find(|i| super::hash::equal_ignore_hash(&rs_template(&rss[*i]), &dt))
}

/// `SetReplicasAnnotations`: returns whether anything changed.
pub fn set_replicas_annotations(
    annotations: &mut BTreeMap<String, String>,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = false;
    for (k, v) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let v = v.to_string();
        if annotations.get(k) != Some(&v) {
            annotations.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// `copyDeploymentAnnotationsToReplicaSet`.
pub fn copy_deployment_annotations(
    d: &Deployment,
    rs_annotations: &mut BTreeMap<String, String>,
) -> bool {
    let mut changed = false;
    if let Some(da) = d.metadata.annotations.as_ref() {
        for (k, v) in da {
            if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) || rs_annotations.get(k) == Some(v) {
                continue;
            }
            rs_annotations.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    changed
}

/// `deploymentutil.SetNewReplicaSetAnnotations`: copies the deployment's
/// annotations, bumps the revision (appending the old one to
/// `revision-history` when a ReplicaSet is re-used) and, for a new
/// ReplicaSet, sets desired/max replicas. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs_annotations: &mut BTreeMap<String, String>,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs_annotations);
    let old_revision = rs_annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => v,
            Err(_) => return false,
        },
    };
    if old_revision_int < new_revision {
        rs_annotations.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old_revision.filter(|_| old_revision_int < new_revision) {
        let history = rs_annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            rs_annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), old);
        } else {
            let mut parts: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > MAX_REV_HISTORY_LENGTH_IN_CHARS && start < parts.len() {
                total -= parts[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REV_HISTORY_LENGTH_IN_CHARS {
                parts = parts.split_off(start);
                parts.push(&old);
                rs_annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), parts.join(","));
            }
        }
    }
    if !exists {
        let replicas = desired_replicas(d);
        if set_replicas_annotations(rs_annotations, replicas, replicas + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

/// `deploymentutil.NewRSNewReplicas`: how big the new ReplicaSet may be now.
pub fn new_rs_new_replicas(d: &Deployment, rss: &[ReplicaSet], new_idx: usize) -> i32 {
    let desired = desired_replicas(d);
    let new_replicas = rs_replicas(&rss[new_idx]);
    if !is_rolling_update(d) {
        return desired;
    }
    let current: i32 = rss.iter().map(rs_replicas).sum();
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return new_replicas;
    }
    let scale_up = (max_total - current).min(desired - new_replicas);
    new_replicas + scale_up
}

/// `rolling.go` `reconcileOldReplicaSets` (cleanupUnhealthyReplicas then
/// scaleDownOldReplicaSetsForRollingUpdate): target sizes for old ReplicaSets,
/// as (index, new size), in the order the real controller scales them.
pub fn reconcile_old_plan(d: &Deployment, rss: &[ReplicaSet], new_idx: usize) -> Vec<(usize, i32)> {
    let mut sizes: Vec<i32> = rss.iter().map(rs_replicas).collect();
    let mut old: Vec<usize> = (0..rss.len())
        .filter(|i| *i != new_idx && sizes[*i] > 0)
        .collect();
    let old_pods: i32 = old.iter().map(|i| sizes[*i]).sum();
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods: i32 = sizes.iter().sum();
    let desired = desired_replicas(d);
    let min_available = desired - max_unavailable(d);
    let new_unavailable = sizes[new_idx] - rs_available(&rss[new_idx]);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    old.sort_by(|a, b| by_creation(&rss[*a], &rss[*b]));
    let mut plan = Vec::new();
    // cleanupUnhealthyReplicas
    let mut total = 0;
    for &i in &old {
        if total >= max_scaled_down {
            break;
        }
        let avail = rs_available(&rss[i]);
        if sizes[i] == 0 || sizes[i] == avail {
            continue;
        }
        let down = (max_scaled_down - total).min(sizes[i] - avail);
        sizes[i] -= down;
        total += down;
        plan.push((i, sizes[i]));
    }
    // scaleDownOldReplicaSetsForRollingUpdate
    let available: i32 = rss.iter().map(rs_available).sum();
    if available > min_available {
        let to_scale = available - min_available;
        let mut done = 0;
        for &i in &old {
            if done >= to_scale {
                break;
            }
            if sizes[i] == 0 {
                continue;
            }
            let down = sizes[i].min(to_scale - done);
            sizes[i] -= down;
            done += down;
            plan.push((i, sizes[i]));
        }
    }
    plan
}

fn is_active(rs: &ReplicaSet) -> bool {
    rs_replicas(rs) > 0
}

/// `deploymentutil.IsSaturated`.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let desired = desired_replicas(d);
    let ann = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESIRED_REPLICAS_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok());
    ann == Some(desired) && rs_replicas(rs) == desired && rs_available(rs) == desired
}

/// `isScalingEvent`: an active ReplicaSet's desired-replicas annotation
/// differs from `spec.replicas`.
pub fn is_scaling_event(d: &Deployment, rss: &[ReplicaSet]) -> bool {
    let desired = desired_replicas(d);
    rss.iter().filter(|rs| is_active(rs)).any(|rs| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_REPLICAS_ANNOTATION))
            .and_then(|v| v.parse::<i32>().ok())
            .is_some_and(|v| v != desired)
    })
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let desired = desired_replicas(d);
    if desired == 0 {
        return -rs_replicas(rs);
    }
    let max_replicas = desired + max_surge(d);
    let mut before = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MAX_REPLICAS_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    if before == 0 {
        before = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        if before == 0 {
            return 0;
        }
    }
    let base = rs_replicas(rs);
    let new_size = f64::from(base) * f64::from(max_replicas) / f64::from(before);
    new_size.round() as i32 - base
}

fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// `sync.go` `scale`: (index, new size) for every ReplicaSet the real
/// controller passes to `scaleReplicaSet` (which also refreshes the
/// desired/max annotations even when the size is unchanged).
pub fn scale_plan(d: &Deployment, rss: &[ReplicaSet], new_idx: Option<usize>) -> Vec<(usize, i32)> {
    let desired = desired_replicas(d);
    // FindActiveOrLatest
    let mut old: Vec<usize> = (0..rss.len()).filter(|i| Some(*i) != new_idx).collect();
    old.sort_by(|a, b| by_creation(&rss[*b], &rss[*a]));
    let mut all: Vec<usize> = old.clone();
    all.extend(new_idx);
    let active: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| is_active(&rss[*i]))
        .collect();
    let active_or_latest = match active.len() {
        0 => new_idx.or_else(|| old.first().copied()),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(i) = active_or_latest {
        if rs_replicas(&rss[i]) == desired {
            return Vec::new();
        }
        return vec![(i, desired)];
    }
    if let Some(n) = new_idx.filter(|n| is_saturated(d, &rss[*n])) {
        return active
            .into_iter()
            .filter(|i| *i != n)
            .map(|i| (i, 0))
            .collect();
    }
    if !is_rolling_update(d) {
        return Vec::new();
    }
    let mut active = active;
    let total: i32 = active.iter().map(|i| rs_replicas(&rss[*i])).sum();
    let allowed = if desired > 0 {
        desired + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total;
    if to_add > 0 {
        // ReplicaSetsBySizeNewer
        active.sort_by(|a, b| {
            rs_replicas(&rss[*b])
                .cmp(&rs_replicas(&rss[*a]))
                .then_with(|| by_creation(&rss[*b], &rss[*a]))
        });
    } else if to_add < 0 {
        // ReplicaSetsBySizeOlder
        active.sort_by(|a, b| {
            rs_replicas(&rss[*b])
                .cmp(&rs_replicas(&rss[*a]))
                .then_with(|| by_creation(&rss[*a], &rss[*b]))
        });
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
    for &i in &active {
        if to_add != 0 {
            let p = proportion(&rss[i], d, to_add, added);
            sizes.push(rs_replicas(&rss[i]) + p);
            added += p;
        } else {
            sizes.push(rs_replicas(&rss[i]));
        }
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
    }
    active.into_iter().zip(sizes).collect()
}

/// `cleanupDeployment`: names of old ReplicaSets to delete beyond
/// `revisionHistoryLimit` (oldest revisions first, only fully scaled-down ones).
pub fn cleanup_plan(d: &Deployment, old: &[ReplicaSet]) -> Vec<String> {
    let limit = revision_history_limit(d);
    let mut cleanable: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let diff = cleanable.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return Vec::new();
    }
    // ReplicaSetsByRevision: by revision, ties by creation.
    cleanable.sort_by(|a, b| {
        revision(a)
            .cmp(&revision(b))
            .then_with(|| by_creation(a, b))
    });
    cleanable
        .into_iter()
        .take(diff as usize)
        .filter(|rs| {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            rs_status_replicas(rs) == 0
                && rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= observed
        })
        .filter_map(|rs| rs.metadata.name.clone())
        .collect()
}

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

/// `deploymentutil.GetDeploymentCondition`.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).expect("deployment")
    }

    fn rs(
        name: &str,
        created: &str,
        replicas: i32,
        available: i32,
        ann: serde_json::Value,
    ) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": ann},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
        }))
        .expect("rs")
    }

    fn d_with(replicas: i32, surge: serde_json::Value, unavail: serde_json::Value) -> Deployment {
        dep(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}}
        }))
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let p = |s: &str| IntOrString::String(s.to_string());
        assert_eq!(resolve_fenceposts(&p("25%"), &p("25%"), 10), Ok((3, 2)));
        assert_eq!(resolve_fenceposts(&p("25%"), &p("25%"), 1), Ok((1, 0)));
        assert_eq!(
            resolve_fenceposts(&IntOrString::Int(0), &IntOrString::Int(0), 5),
            Ok((0, 1))
        );
        assert_eq!(resolve_fenceposts(&p("0%"), &p("10%"), 5), Ok((0, 1)));
        assert_eq!(
            resolve_fenceposts(&p("50%"), &IntOrString::Int(2), 3),
            Ok((2, 2))
        );
        assert!(resolve_fenceposts(&p("abc"), &p("1"), 3).is_err());
        // Defaults: 25%/25% of 4 -> 1/1; Recreate -> 0; unavailable capped at replicas.
        let d = dep(json!({"metadata":{},"spec":{"replicas":4,"selector":{},"template":{}}}));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 1));
        let r = dep(
            json!({"metadata":{},"spec":{"replicas":4,"selector":{},"template":{},"strategy":{"type":"Recreate"}}}),
        );
        assert_eq!((max_surge(&r), max_unavailable(&r)), (0, 0));
        assert_eq!(max_unavailable(&d_with(2, json!(0), json!(5))), 2);
    }

    #[test]
    fn revision_reuse_appends_history() {
        let d = dep(
            json!({"metadata":{"annotations":{"kubernetes.io/change-cause":"undo","deployment.kubernetes.io/revision":"2"}},"spec":{"replicas":3,"selector":{},"template":{}}}),
        );
        // Re-used RS of revision 1 becomes revision 3 with history "1".
        let mut ann: BTreeMap<String, String> =
            [(REVISION_ANNOTATION.to_string(), "1".to_string())].into();
        assert!(set_new_rs_annotations(&d, &mut ann, 3, true));
        assert_eq!(ann.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
        assert_eq!(
            ann.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
            Some("1")
        );
        assert_eq!(
            ann.get(CHANGE_CAUSE_ANNOTATION).map(String::as_str),
            Some("undo")
        );
        assert!(
            !ann.contains_key(DESIRED_REPLICAS_ANNOTATION),
            "existing RS: no replicas annotations here"
        );
        // Again re-used later as 5: history "1,3".
        assert!(set_new_rs_annotations(&d, &mut ann, 5, true));
        assert_eq!(
            ann.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
            Some("1,3")
        );
        // Same revision: nothing changes.
        assert!(!set_new_rs_annotations(&d, &mut ann, 5, true));
        // New RS: revision and desired/max replicas (3 + ceil(25% of 3) = 4).
        let mut fresh = BTreeMap::new();
        assert!(set_new_rs_annotations(&d, &mut fresh, 1, false));
        assert_eq!(
            fresh.get(REVISION_ANNOTATION).map(String::as_str),
            Some("1")
        );
        assert!(!fresh.contains_key(REVISION_HISTORY_ANNOTATION));
        assert_eq!(
            fresh.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
            Some("3")
        );
        assert_eq!(
            fresh.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
            Some("4")
        );
    }

    #[test]
    fn find_new_rs_picks_oldest_matching_and_max_revision() {
        let d = dep(
            json!({"metadata":{},"spec":{"selector":{},"template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"v1"}]}}}}),
        );
        let mk = |name: &str, created: &str, image: &str, rev: &str| -> ReplicaSet {
            serde_json::from_value(json!({"metadata":{"name":name,"creationTimestamp":created,"annotations":{REVISION_ANNOTATION:rev}},
                "spec":{"selector":{},"template":{"metadata":{"labels":{"app":"a","pod-template-hash":name}},"spec":{"containers":[{"name":"c","image":image}]}}}})).expect("rs")
        };
        let rss = vec![
            mk("b", "2024-01-01T00:00:02Z", "v2", "2"),
            mk("a", "2024-01-01T00:00:01Z", "v1", "1"),
            mk("c", "2024-01-01T00:00:03Z", "v1", "x"),
        ];
        assert_eq!(find_new_rs(&d, &rss), Some(1));
        assert_eq!(max_revision(&rss), 2);
        assert_eq!(revision(&rss[2]), 0);
    }

    #[test]
    fn new_rs_scale_up_respects_surge() {
        let d = d_with(4, json!(1), json!(0));
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 0, 0, json!({})),
        ];
        assert_eq!(new_rs_new_replicas(&d, &rss, 1), 1);
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 3, 3, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 2, 1, json!({})),
        ];
        assert_eq!(
            new_rs_new_replicas(&d, &rss, 1),
            2,
            "already at max total 5"
        );
        let d = d_with(10, json!("30%"), json!(0));
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 10, 10, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 0, 0, json!({})),
        ];
        assert_eq!(new_rs_new_replicas(&d, &rss, 1), 3);
        let r = dep(
            json!({"metadata":{},"spec":{"replicas":4,"selector":{},"template":{},"strategy":{"type":"Recreate"}}}),
        );
        assert_eq!(new_rs_new_replicas(&r, &rss, 1), 4);
    }

    #[test]
    fn old_rs_scale_down_respects_unavailable() {
        // 4 replicas, maxUnavailable 1: old 4 available, new 1 not available yet.
        let d = d_with(4, json!(1), json!(1));
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 1, 0, json!({})),
        ];
        // all=5, minAvailable=3, newUnavailable=1 -> maxScaledDown=1; available 4 > 3 -> scale old to 3.
        assert_eq!(reconcile_old_plan(&d, &rss, 1), vec![(0, 3)]);
        // New pod available: all=5, newUnavailable 0 -> maxScaledDown 2; available=5, minAvail 3 -> down 2.
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 1, 1, json!({})),
        ];
        assert_eq!(reconcile_old_plan(&d, &rss, 1), vec![(0, 2)]);
        // Unhealthy old replicas are cleaned first.
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 4, 2, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 1, 1, json!({})),
        ];
        // all=5, minAvail 3, newUnavail 0 -> maxScaledDown 2: cleanup 2 unhealthy -> 2; available 3 == minAvail -> stop.
        assert_eq!(reconcile_old_plan(&d, &rss, 1), vec![(0, 2)]);
        // maxUnavailable 0 and nothing new available: no scale down.
        let d0 = d_with(4, json!(1), json!(0));
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
            rs("new", "2024-01-01T00:01:00Z", 1, 0, json!({})),
        ];
        assert!(reconcile_old_plan(&d0, &rss, 1).is_empty());
    }

    #[test]
    fn proportional_scaling_during_rollout() {
        // Real controller example: 10 replicas mid-rollout (old 8, new 5, maxSurge 3), scaled to 15.
        let d = d_with(15, json!(3), json!(2));
        let ann = json!({MAX_REPLICAS_ANNOTATION: "13", DESIRED_REPLICAS_ANNOTATION: "10"});
        let rss = vec![
            rs("old", "2024-01-01T00:00:00Z", 8, 8, ann.clone()),
            rs("new", "2024-01-01T00:01:00Z", 5, 0, ann),
        ];
        let plan = scale_plan(&d, &rss, Some(1));
        let total: i32 = plan.iter().map(|(_, s)| s).sum();
        assert_eq!(total, 18, "15 + maxSurge 3");
        let sizes: BTreeMap<usize, i32> = plan.into_iter().collect();
        assert_eq!(sizes.get(&0), Some(&11)); // 8*18/13 = 11.07 -> 11
        assert_eq!(sizes.get(&1), Some(&7)); // 5*18/13 = 6.9 -> 7
                                             // Only one active RS: it simply gets spec.replicas.
        let rss = vec![rs("new", "2024-01-01T00:01:00Z", 10, 10, json!({}))];
        assert_eq!(scale_plan(&d, &rss, Some(0)), vec![(0, 15)]);
        assert!(is_scaling_event(
            &d,
            &[rs(
                "x",
                "2024-01-01T00:00:00Z",
                3,
                3,
                json!({DESIRED_REPLICAS_ANNOTATION: "10"})
            )]
        ));
    }

    #[test]
    fn cleanup_keeps_history_limit() {
        let d = dep(
            json!({"metadata":{},"spec":{"revisionHistoryLimit":1,"selector":{},"template":{}}}),
        );
        let old = vec![
            rs(
                "r2",
                "2024-01-01T00:00:02Z",
                0,
                0,
                json!({REVISION_ANNOTATION: "2"}),
            ),
            rs(
                "r1",
                "2024-01-01T00:00:01Z",
                0,
                0,
                json!({REVISION_ANNOTATION: "1"}),
            ),
            rs(
                "r3",
                "2024-01-01T00:00:03Z",
                1,
                1,
                json!({REVISION_ANNOTATION: "3"}),
            ),
        ];
        assert_eq!(
            cleanup_plan(&d, &old),
            vec!["r1".to_string(), "r2".to_string()]
        );
    }

    #[test]
    fn conditions_and_progress_deadline() {
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().expect("ts");
        let t1: Timestamp = "2024-01-01T00:00:05Z".parse().expect("ts");
        let mut d = dep(
            json!({"metadata":{"generation":1},"spec":{"replicas":2,"progressDeadlineSeconds":100,"selector":{},"template":{}}}),
        );
        let rss = vec![rs("new", "2024-01-01T00:00:00Z", 2, 0, json!({}))];
        let s = rollout_status(&d, &rss, Some(0), t0, 1.0);
        let avail = get_condition(&s, COND_AVAILABLE).expect("available");
        assert_eq!(
            (avail.status.as_str(), avail.reason.as_deref()),
            ("False", Some(MIN_UNAVAILABLE_REASON))
        );
        let prog = get_condition(&s, COND_PROGRESSING).expect("progressing");
        assert_eq!(prog.reason.as_deref(), Some(RS_UPDATED_REASON));
        d.status = Some(s);
        // No progress, deadline 100s scaled by 20 -> 5s: not yet at t1 (== deadline), yes after.
        let s2 = rollout_status(&d, &rss, Some(0), t1, 20.0);
        assert_eq!(
            get_condition(&s2, COND_PROGRESSING).and_then(|c| c.reason.as_deref()),
            Some(RS_UPDATED_REASON)
        );
        assert!(requeue_stuck_after(&d, &s2, t1, 20.0).is_some());
        let t2: Timestamp = "2024-01-01T00:00:06Z".parse().expect("ts");
        let s3 = rollout_status(&d, &rss, Some(0), t2, 20.0);
        let c = get_condition(&s3, COND_PROGRESSING).expect("progressing");
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(TIMED_OUT_REASON))
        );
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"new\" has timed out progressing.")
        );
        // Completes: NewReplicaSetAvailable, transition time of Available changes, Progressing's stays.
        let done = vec![rs("new", "2024-01-01T00:00:00Z", 2, 2, json!({}))];
        let s4 = rollout_status(&d, &done, Some(0), t2, 20.0);
        let c = get_condition(&s4, COND_PROGRESSING).expect("progressing");
        assert_eq!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE_REASON));
        assert_eq!(c.last_transition_time.as_ref().map(|t| t.0), Some(t0));
        let a = get_condition(&s4, COND_AVAILABLE).expect("available");
        assert_eq!(
            (
                a.status.as_str(),
                a.last_transition_time.as_ref().map(|t| t.0)
            ),
            ("True", Some(t2))
        );
    }

    #[test]
    fn paused_condition() {
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().expect("ts");
        let d = dep(json!({"metadata":{},"spec":{"paused":true,"selector":{},"template":{}}}));
        let s = paused_conditions(&d, now).expect("paused");
        let c = get_condition(&s, COND_PROGRESSING).expect("cond");
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("Unknown", Some(PAUSED_REASON))
        );
        let mut d2 = d.clone();
        d2.status = Some(s);
        assert!(paused_conditions(&d2, now).is_none());
        d2.spec.as_mut().expect("spec").paused = Some(false);
        let s = paused_conditions(&d2, now).expect("resumed");
        assert_eq!(
            get_condition(&s, COND_PROGRESSING).and_then(|c| c.reason.as_deref()),
            Some(RESUMED_REASON)
        );
    }
}

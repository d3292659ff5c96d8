//! Rollout math of the deployment controller (`rolling.go`, `sync.go`):
//! how far the new ReplicaSet may grow, how far old ones shrink,
//! proportional scaling and the cleanup of old revisions.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::{
    by_creation, desired_replicas, is_rolling_update, max_surge, max_unavailable, revision,
    revision_history_limit, rs_available, rs_replicas, rs_status_replicas,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION,
};

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

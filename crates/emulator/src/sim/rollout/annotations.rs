//! The annotations the deployment controller writes on its ReplicaSets
//! (`deployment_util.go`): revision bookkeeping and desired/max replicas.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;

use super::{
    desired_replicas, max_surge, ANNOTATIONS_TO_SKIP, DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION, MAX_REV_HISTORY_LENGTH_IN_CHARS, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
};

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

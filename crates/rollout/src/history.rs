//! The ReplicaSets of a Deployment (its rollout history) and the target of
//! `kubectl rollout undo` (kubectl's `rollback.go`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::annotations::{revision, ANNOTATIONS_TO_SKIP};
use crate::hash::templates_equal_ignore_hash;

/// Why there is nothing to roll back to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// `--to-revision` names a revision the history does not hold (or is negative).
    #[error(
        "unable to find specified revision {revision} in the history of deployment {deployment}"
    )]
    RevisionNotFound { deployment: String, revision: i64 },
    /// No revision older than the current one.
    #[error("no rollout history found for deployment {deployment:?}: there is no previous revision to roll back to")]
    NoHistory { deployment: String },
}

/// `metav1.IsControlledBy`: the ReplicaSet's controller reference points at
/// the Deployment (by uid).
pub fn controlled_by(rs: &ReplicaSet, deployment: &Deployment) -> bool {
    let Some(uid) = deployment.metadata.uid.as_deref() else {
        return false;
    };
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| r.uid == uid)
}

/// `controller.ReplicaSetsByCreationTimestamp` order (ties by name).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `deploymentutil.FindNewReplicaSet`: the oldest of `replica_sets` whose
/// template equals the Deployment's ignoring the hash label (its index).
pub fn find_new_replica_set(deployment: &Deployment, replica_sets: &[ReplicaSet]) -> Option<usize> {
    let current = deployment.spec.as_ref().map(|s| &s.template);
    let mut order: Vec<usize> = (0..replica_sets.len()).collect();
    order.sort_by(|a, b| by_creation(&replica_sets[*a], &replica_sets[*b]));
    order.into_iter().find(|i| {
        let rs_template = replica_sets[*i]
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref());
        templates_equal_ignore_hash(rs_template, current)
    })
}

/// The ReplicaSet `kubectl rollout undo --to-revision=N` rolls back to
/// (kubectl's `deploymentRevision`), among the ReplicaSets the Deployment
/// controls: revision N, or for N = 0 the second-highest revision. A
/// ReplicaSet without a revision annotation counts as revision 0; one whose
/// annotation is not a number is skipped. A negative N is never found.
pub fn rollback_target<'a>(
    deployment: &Deployment,
    replica_sets: &'a [ReplicaSet],
    to_revision: i64,
) -> Result<&'a ReplicaSet, RollbackError> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let not_found = || RollbackError::RevisionNotFound {
        deployment: name.clone(),
        revision: to_revision,
    };
    if to_revision < 0 {
        return Err(not_found());
    }
    let mut latest: Option<(i64, &ReplicaSet)> = None;
    let mut previous: Option<(i64, &ReplicaSet)> = None;
    for rs in replica_sets
        .iter()
        .filter(|rs| controlled_by(rs, deployment))
    {
        let Ok(v) = revision(&rs.metadata) else {
            continue;
        };
        if to_revision == 0 {
            if latest.is_none_or(|(l, _)| l < v) {
                previous = latest;
                latest = Some((v, rs));
            } else if previous.is_none_or(|(p, _)| p < v) {
                previous = Some((v, rs));
            }
        } else if v == to_revision {
            return Ok(rs);
        }
    }
    if to_revision > 0 {
        return Err(not_found());
    }
    previous
        .map(|(_, rs)| rs)
        .ok_or(RollbackError::NoHistory { deployment: name })
}

/// The annotations `kubectl rollout undo` gives the Deployment: its own
/// values of [`ANNOTATIONS_TO_SKIP`], every other annotation from the
/// ReplicaSet rolled back to.
pub fn rollback_annotations(
    deployment: &ObjectMeta,
    target: &ObjectMeta,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(a) = &deployment.annotations {
        for k in ANNOTATIONS_TO_SKIP {
            if let Some(v) = a.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
    }
    if let Some(a) = &target.annotations {
        for (k, v) in a {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{DESIRED_REPLICAS_ANNOTATION, REVISION_ANNOTATION};
    use serde_json::{json, Value};

    fn dep(uid: &str, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": uid,
                "annotations": {REVISION_ANNOTATION: "3", "team": "payments"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}
        }))
        .unwrap()
    }

    fn rs(
        name: &str,
        revision: Option<&str>,
        image: &str,
        created: &str,
        owner: &str,
    ) -> ReplicaSet {
        let mut annotations = json!({"team": "blue", DESIRED_REPLICAS_ANNOTATION: "3"});
        if let Some(r) = revision {
            annotations[REVISION_ANNOTATION] = Value::from(r);
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": owner, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}
        }))
        .unwrap()
    }

    fn history() -> Vec<ReplicaSet> {
        vec![
            rs("web-b", Some("2"), "v2", "2026-01-01T01:00:00Z", "d"),
            rs("web-c", Some("3"), "v3", "2026-01-01T02:00:00Z", "d"),
            rs("web-a", Some("1"), "v1", "2026-01-01T00:00:00Z", "d"),
        ]
    }

    fn name(rs: &ReplicaSet) -> &str {
        rs.metadata.name.as_deref().unwrap_or("")
    }

    #[test]
    fn undo_targets_the_second_highest_revision_or_the_named_one() {
        let d = dep("d", "v3");
        let rss = history();
        assert_eq!(name(rollback_target(&d, &rss, 0).unwrap()), "web-b");
        assert_eq!(name(rollback_target(&d, &rss, 1).unwrap()), "web-a");
        assert_eq!(name(rollback_target(&d, &rss, 3).unwrap()), "web-c");
        let e = rollback_target(&d, &rss, 9).unwrap_err();
        assert_eq!(
            e,
            RollbackError::RevisionNotFound {
                deployment: "web".into(),
                revision: 9
            }
        );
        assert!(e
            .to_string()
            .contains("unable to find specified revision 9"));
        assert!(matches!(
            rollback_target(&d, &rss, -1),
            Err(RollbackError::RevisionNotFound { revision: -1, .. })
        ));
        let only = vec![history().remove(0)];
        let e = rollback_target(&d, &only, 0).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("no rollout history found for deployment \"web\""));
    }

    #[test]
    fn undo_history_is_the_controlled_replica_sets_with_kubectl_revisions() {
        // Another Deployment's ReplicaSets are not history.
        let other = dep("someone-else", "v3");
        assert!(matches!(
            rollback_target(&other, &history(), 0),
            Err(RollbackError::NoHistory { .. })
        ));
        // No revision annotation is revision 0 (deploymentutil.Revision); an
        // unparsable one is skipped.
        let d = dep("d", "v3");
        let rss = vec![
            rs("web-c", Some("3"), "v3", "2026-01-01T02:00:00Z", "d"),
            rs("web-x", Some("x"), "vx", "2026-01-01T01:30:00Z", "d"),
            rs("web-0", None, "v0", "2026-01-01T00:00:00Z", "d"),
        ];
        assert_eq!(name(rollback_target(&d, &rss, 0).unwrap()), "web-0");
        // A non-controller owner reference does not make it ours.
        let mut loose = rs("web-b", Some("2"), "v2", "2026-01-01T01:00:00Z", "d");
        if let Some(refs) = loose.metadata.owner_references.as_mut() {
            refs[0].controller = None;
        }
        assert!(!controlled_by(&loose, &d));
        assert!(controlled_by(&rss[0], &d));
    }

    #[test]
    fn new_replica_set_is_the_oldest_with_the_current_template() {
        let d = dep("d", "v2");
        let mut rss = history();
        assert_eq!(find_new_replica_set(&d, &rss), Some(0));
        // A younger duplicate of the template does not win.
        rss.push(rs("web-z", Some("4"), "v2", "2026-01-01T03:00:00Z", "d"));
        assert_eq!(find_new_replica_set(&d, &rss), Some(0));
        assert_eq!(find_new_replica_set(&dep("d", "v9"), &rss), None);
    }

    #[test]
    fn undo_annotations_keep_the_deployment_ones() {
        let d = dep("d", "v3");
        let target = &history()[0];
        let a = rollback_annotations(&d.metadata, &target.metadata);
        assert_eq!(a[REVISION_ANNOTATION], "3", "the Deployment's revision");
        assert_eq!(a["team"], "blue", "the rest from the ReplicaSet");
        assert!(!a.contains_key(DESIRED_REPLICAS_ANNOTATION));
    }
}

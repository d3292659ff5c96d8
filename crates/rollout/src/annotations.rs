//! The annotations and the label the deployment controller and kubectl put
//! on Deployments, ReplicaSets and pod templates, and revision numbers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `deployment.kubernetes.io/revision`: the rollout sequence number of a
/// ReplicaSet (and, copied by the controller, of its Deployment).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// `deployment.kubernetes.io/revision-history`: earlier revisions of a
/// re-used ReplicaSet.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `deployment.kubernetes.io/desired-replicas`.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `deployment.kubernetes.io/max-replicas`.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// `kubernetes.io/change-cause` (copied to ReplicaSets like any other annotation).
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// `kubectl.kubernetes.io/last-applied-configuration`.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// `deprecated.deployment.rollback.to` (`apps.DeprecatedRollbackTo`).
pub const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The label the deployment controller adds to ReplicaSets, their selector
/// and their pods (`apps/v1.DefaultDeploymentUniqueLabelKey`).
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Annotations that belong to the Deployment, not to a revision: the
/// deployment controller never copies them to its ReplicaSets
/// (`annotationsToSkip` in `deployment_util.go`) and `kubectl rollout undo`
/// keeps the Deployment's own instead of the ReplicaSet's (the same
/// `annotationsToSkip` in kubectl's `rollback.go`).
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    LAST_APPLIED_CONFIG_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
];

/// A revision annotation that is not an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {REVISION_ANNOTATION} {value:?}: {source}")]
pub struct RevisionError {
    pub value: String,
    #[source]
    pub source: std::num::ParseIntError,
}

/// `deploymentutil.Revision`: the revision of an object; 0 when it has no
/// revision annotation, an error when the annotation is not a number.
pub fn revision(meta: &ObjectMeta) -> Result<i64, RevisionError> {
    match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
    {
        None => Ok(0),
        Some(v) => v.parse().map_err(|source| RevisionError {
            value: v.clone(),
            source,
        }),
    }
}

/// `deploymentutil.MaxRevision`: the highest revision; objects whose
/// revision does not parse are skipped (0 when there is none).
pub fn max_revision<'a>(metas: impl IntoIterator<Item = &'a ObjectMeta>) -> i64 {
    metas
        .into_iter()
        .filter_map(|m| revision(m).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(revision: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            annotations: revision
                .map(|r| [(REVISION_ANNOTATION.to_string(), r.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn revision_like_deploymentutil() {
        assert_eq!(revision(&meta(Some("7"))), Ok(7));
        assert_eq!(revision(&meta(None)), Ok(0), "absent is revision 0");
        let err = revision(&meta(Some("x"))).unwrap_err();
        assert_eq!(err.value, "x");
        assert!(err.to_string().contains(REVISION_ANNOTATION), "{err}");
    }

    #[test]
    fn max_revision_skips_unparsable() {
        let metas = [
            meta(Some("2")),
            meta(Some("x")),
            meta(Some("5")),
            meta(None),
        ];
        assert_eq!(max_revision(&metas), 5);
        assert_eq!(max_revision(&[meta(Some("x"))]), 0);
        assert_eq!(max_revision(&[]), 0);
    }

    #[test]
    fn skipped_annotations_are_the_deployment_ones() {
        assert!(ANNOTATIONS_TO_SKIP.contains(&REVISION_ANNOTATION));
        assert!(!ANNOTATIONS_TO_SKIP.contains(&CHANGE_CAUSE_ANNOTATION));
        assert!(!ANNOTATIONS_TO_SKIP.contains(&RESTARTED_AT_ANNOTATION));
    }
}

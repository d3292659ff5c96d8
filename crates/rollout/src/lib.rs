//! Rollout knowledge of Deployments, StatefulSets and DaemonSets, in one place for the operator
//! (`kube-incident`'s core) and the emulator's deployment controller.
//!
//! Pure functions over k8s-openapi types, no client:
//! - [`annotations`]: the `deployment.kubernetes.io/*` annotations, the
//!   `pod-template-hash` label and `restartedAt`; revision numbers
//!   (`deploymentutil.Revision`, `MaxRevision`).
//! - [`conditions`]: Deployment condition types and reasons
//!   (`deploymentutil`), `GetDeploymentCondition`.
//! - [`hash`]: `controller.ComputeHash` and `EqualIgnoreHash`.
//! - [`history`]: the ReplicaSets of a Deployment (`IsControlledBy`,
//!   `FindNewReplicaSet`) and `kubectl rollout undo`'s target and annotations.
//! - [`status`]: "rollout complete" as `kubectl rollout status` decides it.
//! - [`revisions`]: StatefulSet and DaemonSet history (ControllerRevisions),
//!   `kubectl rollout undo sts/x` / `ds/x`'s target, and their rollout status.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod annotations;
pub mod conditions;
pub mod hash;
pub mod history;
pub mod revisions;
pub mod status;

pub use annotations::{
    max_revision, revision, RevisionError, ANNOTATIONS_TO_SKIP, CHANGE_CAUSE_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, LAST_APPLIED_CONFIG_ANNOTATION, MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL, RESTARTED_AT_ANNOTATION, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION, ROLLBACK_TO_ANNOTATION,
};
pub use conditions::{get_condition, progress_deadline_exceeded};
pub use hash::{compute_hash, equal_ignore_hash, templates_equal_ignore_hash};
pub use history::{
    by_creation, controlled_by, find_new_replica_set, rollback_annotations, rollback_target,
    RollbackError,
};
pub use revisions::{
    daemonset_status, newest_revision, on_delete, owned_revisions, partition,
    revision_controlled_by, revision_hash, revision_rollback_target, revision_template,
    statefulset_status, template_matches_revision, RevisionRollbackError, SetRolloutStatus,
    CONTROLLER_REVISION_HASH_LABEL, POD_TEMPLATE_GENERATION_LABEL,
};
pub use status::{rollout_status, RolloutStatus};

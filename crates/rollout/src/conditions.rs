//! Deployment condition types and reasons (`deploymentutil`), and reading them.

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

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
/// Reason `ProgressDeadlineExceeded` (`deploymentutil.TimedOutReason`).
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
/// Reason `DeploymentPaused`.
pub const PAUSED_REASON: &str = "DeploymentPaused";
/// Reason `DeploymentResumed`.
pub const RESUMED_REASON: &str = "DeploymentResumed";
/// Reason `MinimumReplicasAvailable`.
pub const MIN_AVAILABLE_REASON: &str = "MinimumReplicasAvailable";
/// Reason `MinimumReplicasUnavailable`.
pub const MIN_UNAVAILABLE_REASON: &str = "MinimumReplicasUnavailable";

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

/// The Progressing condition when its reason is `ProgressDeadlineExceeded`,
/// the test of `kubectl rollout status` (the reason alone decides; the
/// controller always sets it with status `False`).
pub fn progress_deadline_exceeded(status: &DeploymentStatus) -> Option<&DeploymentCondition> {
    get_condition(status, COND_PROGRESSING)
        .filter(|c| c.reason.as_deref() == Some(TIMED_OUT_REASON))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(conditions: serde_json::Value) -> DeploymentStatus {
        serde_json::from_value(json!({ "conditions": conditions })).unwrap()
    }

    #[test]
    fn deadline_is_the_progressing_reason() {
        let s = status(json!([
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "m"}
        ]));
        assert_eq!(
            progress_deadline_exceeded(&s).and_then(|c| c.message.as_deref()),
            Some("m")
        );
        assert_eq!(
            get_condition(&s, COND_AVAILABLE).map(|c| c.status.as_str()),
            Some("True")
        );
        let ok = status(json!([
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        ]));
        assert!(progress_deadline_exceeded(&ok).is_none());
        // The reason on another condition type is not a deadline.
        let other = status(json!([
            {"type": "ReplicaFailure", "status": "True", "reason": "ProgressDeadlineExceeded"}
        ]));
        assert!(progress_deadline_exceeded(&other).is_none());
        assert!(progress_deadline_exceeded(&DeploymentStatus::default()).is_none());
    }
}

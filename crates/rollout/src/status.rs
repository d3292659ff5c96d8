//! "Rollout complete", as `kubectl rollout status` decides it for a
//! Deployment (kubectl's `DeploymentStatusViewer`).

use k8s_openapi::api::apps::v1::Deployment;

use crate::conditions::progress_deadline_exceeded;

/// Where the rollout of a Deployment stands, in `kubectl rollout status`'s
/// order of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    /// `metadata.generation` is ahead of `status.observedGeneration`: the
    /// controller has not seen the latest spec (nothing else is trusted).
    SpecNotObserved,
    /// The Progressing condition's reason is `ProgressDeadlineExceeded`.
    DeadlineExceeded { message: Option<String> },
    /// `status.updatedReplicas < spec.replicas`.
    UpdatingReplicas { updated: i32, desired: i32 },
    /// `status.replicas > status.updatedReplicas`: old replicas remain.
    TerminatingOldReplicas { old: i32 },
    /// `status.availableReplicas < status.updatedReplicas`.
    WaitingForAvailable { available: i32, updated: i32 },
    /// Successfully rolled out.
    Complete,
}

impl RolloutStatus {
    /// Whether the rollout is complete.
    pub fn is_complete(&self) -> bool {
        *self == RolloutStatus::Complete
    }

    /// kubectl's message for a Deployment called `name`.
    pub fn describe(&self, name: &str) -> String {
        match self {
            RolloutStatus::SpecNotObserved => {
                "Waiting for deployment spec update to be observed...".to_string()
            }
            RolloutStatus::DeadlineExceeded { .. } => {
                format!("deployment {name:?} exceeded its progress deadline")
            }
            RolloutStatus::UpdatingReplicas { updated, desired } => format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
            RolloutStatus::TerminatingOldReplicas { old } => format!(
                "Waiting for deployment {name:?} rollout to finish: {old} old replicas are pending termination..."
            ),
            RolloutStatus::WaitingForAvailable { available, updated } => format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            RolloutStatus::Complete => format!("deployment {name:?} successfully rolled out"),
        }
    }
}

/// `kubectl rollout status` for a Deployment (without `--revision`).
pub fn rollout_status(d: &Deployment) -> RolloutStatus {
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::SpecNotObserved;
    }
    if let Some(c) = progress_deadline_exceeded(&status) {
        return RolloutStatus::DeadlineExceeded {
            message: c.message.clone(),
        };
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    // kubectl skips this check when spec.replicas is unset (the API server
    // defaults it to 1, so a served Deployment always has it).
    if let Some(desired) = d.spec.as_ref().and_then(|s| s.replicas) {
        if updated < desired {
            return RolloutStatus::UpdatingReplicas { updated, desired };
        }
    }
    if replicas > updated {
        return RolloutStatus::TerminatingOldReplicas {
            old: replicas - updated,
        };
    }
    if available < updated {
        return RolloutStatus::WaitingForAvailable { available, updated };
    }
    RolloutStatus::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(generation: i64, replicas: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn checks_in_kubectl_order() {
        let s = |v| rollout_status(&v);
        // Not observed: even a deadline condition is stale.
        let stale = dep(
            4,
            3,
            json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(s(stale.clone()), RolloutStatus::SpecNotObserved);
        assert_eq!(
            RolloutStatus::SpecNotObserved.describe("web"),
            "Waiting for deployment spec update to be observed..."
        );
        let mut timed_out = stale;
        timed_out.metadata.generation = Some(3);
        assert_eq!(
            s(timed_out),
            RolloutStatus::DeadlineExceeded { message: None }
        );
        assert_eq!(
            s(dep(
                2,
                4,
                json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 2, "availableReplicas": 3})
            )),
            RolloutStatus::UpdatingReplicas {
                updated: 2,
                desired: 4
            }
        );
        let old = s(dep(
            2,
            4,
            json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 4, "availableReplicas": 4}),
        ));
        assert_eq!(old, RolloutStatus::TerminatingOldReplicas { old: 1 });
        assert_eq!(
            old.describe("web"),
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        assert_eq!(
            s(dep(
                2,
                4,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3})
            )),
            RolloutStatus::WaitingForAvailable {
                available: 3,
                updated: 4
            }
        );
        let done = s(dep(
            2,
            4,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}),
        ));
        assert!(done.is_complete());
        assert_eq!(
            done.describe("web"),
            "deployment \"web\" successfully rolled out"
        );
    }

    #[test]
    fn a_scale_down_in_progress_is_complete_once_old_replicas_are_gone() {
        // kubectl compares with the updated count, not spec.replicas.
        let d = dep(
            3,
            2,
            json!({"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}),
        );
        assert!(rollout_status(&d).is_complete());
        let zero = dep(1, 0, json!({"observedGeneration": 1}));
        assert!(rollout_status(&zero).is_complete());
    }
}

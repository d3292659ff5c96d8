//! Health of an Incident's target, computed from the workload object alone.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use rollout::conditions::TIMED_OUT_REASON;
use rollout::RolloutStatus;

use super::lifecycle::TargetHealth;
use crate::api::Impact;

mod kinds;

pub use kinds::{
    controlled_by_cronjob, cronjob_health, daemonset_health, job_health, job_of_cronjob,
    statefulset_health,
};

/// Health and impact of a Deployment, on top of "rollout complete" as
/// `kubectl rollout status` decides it ([`rollout::rollout_status`]):
///
/// - Healthy: the rollout is complete (the controller observed the latest
///   spec, every desired replica is updated, no old replica is left and
///   the updated ones are available), or it is scaled to zero with no pod.
/// - Unhealthy: the rollout exceeded its progress deadline, or the rollout
///   is complete but replicas are unavailable (or none is available).
/// - Unknown: a rollout is in progress (a normal rolling update briefly
///   dips below the desired count; that is not a relapse), or the latest
///   spec is not observed yet (the conditions describe an older one).
pub fn deployment_health(d: &Deployment) -> (TargetHealth, Impact) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let impact = Impact {
        desired_replicas: Some(desired),
        ready_replicas: Some(ready),
        unhealthy_pods: Some((total.max(desired) - available).max(0)),
        reasons: Vec::new(),
        severity: None,
    };
    let health = match rollout::rollout_status(d) {
        RolloutStatus::DeadlineExceeded { message } => TargetHealth::Unhealthy(format!(
            "{TIMED_OUT_REASON}: {}",
            message.as_deref().unwrap_or("the rollout made no progress")
        )),
        _ if desired == 0 => {
            if total == 0 {
                TargetHealth::Healthy
            } else {
                TargetHealth::Unknown
            }
        }
        RolloutStatus::SpecNotObserved => TargetHealth::Unknown,
        // spec.replicas is always set on a served Deployment; without it
        // kubectl does not compare the counts with the default of 1.
        RolloutStatus::Complete if available >= desired => TargetHealth::Healthy,
        _ if available == 0 => TargetHealth::Unhealthy(format!("0/{desired} replicas available")),
        _ if updated >= desired && total <= desired => {
            TargetHealth::Unhealthy(format!("{available}/{desired} replicas available"))
        }
        _ => TargetHealth::Unknown,
    };
    (health, impact)
}

/// Health of a bare Pod: Ready, or why not.
pub fn pod_health(p: &Pod) -> (TargetHealth, Impact) {
    let status = p.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let mut reasons: Vec<String> = Vec::new();
    for cs in status.container_statuses.iter().flatten() {
        let waiting = cs
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone());
        let terminated = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.clone());
        for r in [waiting, terminated].into_iter().flatten() {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
    }
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    let health = if ready || phase == "Succeeded" {
        TargetHealth::Healthy
    } else if reasons.is_empty() {
        TargetHealth::Unhealthy(format!("pod is {phase} and not ready"))
    } else {
        TargetHealth::Unhealthy(format!("pod not ready: {}", reasons.join(", ")))
    };
    let impact = Impact {
        desired_replicas: Some(1),
        ready_replicas: Some(i32::from(ready)),
        unhealthy_pods: Some(i32::from(!ready)),
        reasons: if ready { Vec::new() } else { reasons },
        severity: None,
    };
    (health, impact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn healthy_deployment() {
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
        }));
        let (h, i) = deployment_health(&d);
        assert_eq!(h, TargetHealth::Healthy);
        assert_eq!(i.unhealthy_pods, Some(0));
    }

    #[test]
    fn unavailable_after_rollout() {
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 4, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "readyReplicas": 1, "availableReplicas": 1}
        }));
        let (h, i) = deployment_health(&d);
        assert_eq!(h, TargetHealth::Unhealthy("1/4 replicas available".into()));
        assert_eq!(
            (i.desired_replicas, i.ready_replicas, i.unhealthy_pods),
            (Some(4), Some(1), Some(3))
        );
    }

    #[test]
    fn rollout_in_progress_is_not_a_verdict() {
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 4, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 5, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3}
        }));
        assert_eq!(deployment_health(&d).0, TargetHealth::Unknown);
        let stale = deploy(json!({
            "metadata": {"name": "web", "generation": 4},
            "spec": {"replicas": 4, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4}
        }));
        assert_eq!(deployment_health(&stale).0, TargetHealth::Unknown);
    }

    #[test]
    fn progress_deadline_exceeded() {
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
              "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                              "message": "ReplicaSet \"web-abc\" has timed out progressing."}]}
        }));
        assert!(
            matches!(deployment_health(&d).0, TargetHealth::Unhealthy(m) if m.starts_with("ProgressDeadlineExceeded"))
        );
    }

    #[test]
    fn a_stale_deadline_is_not_a_verdict_until_the_spec_is_observed() {
        // A rollback bumped the generation; the deadline condition is the old spec's.
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2,
              "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}
        }));
        assert_eq!(deployment_health(&d).0, TargetHealth::Unknown);
    }

    #[test]
    fn healthy_is_rollout_complete_as_kubectl_says() {
        // One definition: Healthy exactly when `kubectl rollout status`
        // (the executor's verification) says complete, for these states.
        let states = [
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
            json!({"observedGeneration": 2, "replicas": 5, "updatedReplicas": 5, "readyReplicas": 5, "availableReplicas": 5}),
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 4, "availableReplicas": 4}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3}),
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        ];
        for status in states {
            let d = deploy(json!({
                "metadata": {"name": "web", "generation": 2},
                "spec": {"replicas": 3, "selector": {}, "template": {}},
                "status": status
            }));
            let healthy = deployment_health(&d).0 == TargetHealth::Healthy;
            let complete = crate::core::mitigation::rollout_complete(&d) == Ok(true);
            assert_eq!(healthy, complete, "{status}");
        }
        // A scale-down whose old replicas are gone is complete (kubectl
        // compares with the updated count): healthy.
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 5, "updatedReplicas": 5, "readyReplicas": 5, "availableReplicas": 5}
        }));
        assert_eq!(deployment_health(&d).0, TargetHealth::Healthy);
    }

    #[test]
    fn scaled_to_zero_is_healthy() {
        let d = deploy(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 0, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1}
        }));
        assert_eq!(deployment_health(&d).0, TargetHealth::Healthy);
    }

    #[test]
    fn pod_reasons() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running",
              "conditions": [{"type": "Ready", "status": "False"}],
              "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
        }))
        .unwrap();
        let (h, i) = pod_health(&p);
        assert_eq!(
            h,
            TargetHealth::Unhealthy("pod not ready: CrashLoopBackOff, OOMKilled".into())
        );
        assert_eq!(i.reasons, vec!["CrashLoopBackOff", "OOMKilled"]);
        let ok: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        assert_eq!(pod_health(&ok).0, TargetHealth::Healthy);
    }
}

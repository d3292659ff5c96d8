//! Health of StatefulSets, DaemonSets, Jobs and CronJobs, from the
//! workload object alone (and, for a CronJob, its Jobs), for Incidents
//! whose target the detector does not watch (hand-declared ones, or a
//! detector that is off). Same rules as [`super::deployment_health`]:
//! Healthy once rolled out and all available; Unhealthy when the rollout
//! is done (or nothing is available) and replicas are missing; Unknown
//! while a rollout is in progress or the spec is not observed yet.

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::Impact;
use crate::core::lifecycle::TargetHealth;

fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    match (generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

fn impact(desired: Option<i32>, ready: Option<i32>, unhealthy: i32) -> Impact {
    Impact {
        desired_replicas: desired,
        ready_replicas: ready,
        unhealthy_pods: Some(unhealthy.max(0)),
        reasons: Vec::new(),
        severity: None,
    }
}

/// A StatefulSet: rolled out (every replica on the update revision, or
/// up to its partition) and every desired replica available.
pub fn statefulset_health(s: &StatefulSet) -> (TargetHealth, Impact) {
    let spec = s.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let st = s.status.clone().unwrap_or_default();
    let ready = st.ready_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(ready);
    let updated = st.updated_replicas.unwrap_or(0);
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);
    let rolled_out = on_delete
        || (updated >= (desired - partition).max(0)
            && (partition > 0
                || st.update_revision.is_none()
                || st.update_revision == st.current_revision));
    let imp = impact(Some(desired), Some(ready), desired - available);
    let health = if desired == 0 {
        if st.replicas == 0 {
            TargetHealth::Healthy
        } else {
            TargetHealth::Unknown
        }
    } else if !observed(s.metadata.generation, st.observed_generation) {
        TargetHealth::Unknown
    } else if rolled_out && available >= desired {
        TargetHealth::Healthy
    } else if available == 0 || rolled_out {
        TargetHealth::Unhealthy(format!("{available}/{desired} replicas available"))
    } else {
        TargetHealth::Unknown
    };
    (health, imp)
}

/// A DaemonSet: a pod on every node it wants, all updated and available.
pub fn daemonset_health(d: &DaemonSet) -> (TargetHealth, Impact) {
    let st = d.status.clone().unwrap_or_default();
    let desired = st.desired_number_scheduled;
    let available = st.number_available.unwrap_or(0);
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let on_delete = d
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("OnDelete");
    let rolled_out = on_delete || updated >= desired;
    let imp = impact(Some(desired), Some(st.number_ready), desired - available);
    let health = if !observed(d.metadata.generation, st.observed_generation) {
        TargetHealth::Unknown
    } else if desired == 0 || (rolled_out && available >= desired) {
        TargetHealth::Healthy
    } else if available == 0 || rolled_out {
        TargetHealth::Unhealthy(format!("{available}/{desired} pods available"))
    } else {
        TargetHealth::Unknown
    };
    (health, imp)
}

/// A finished Job: `Ok(when)` Complete, `Err((why, when))` Failed.
type Finished = Result<Option<Time>, (String, Option<Time>)>;

/// How a Job finished; `None` while it runs (or is suspended).
fn job_outcome(j: &Job) -> Option<Finished> {
    let conds = j.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    let is = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True");
    if let Some(c) = is("Failed") {
        let why = match (&c.reason, &c.message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "Failed".into(),
        };
        return Some(Err((why, c.last_transition_time.clone())));
    }
    is("Complete").map(|c| {
        Ok(j.status
            .as_ref()
            .and_then(|s| s.completion_time.clone())
            .or(c.last_transition_time.clone()))
    })
}

/// A Job: Healthy once Complete, Unhealthy once Failed (with its reason),
/// Unknown while it runs.
pub fn job_health(j: &Job) -> (TargetHealth, Impact) {
    let st = j.status.clone().unwrap_or_default();
    let active = st.active.unwrap_or(0);
    let imp = impact(None, Some(active), st.failed.unwrap_or(0).min(1));
    let health = match job_outcome(j) {
        Some(Ok(_)) => TargetHealth::Healthy,
        Some(Err((why, _))) => TargetHealth::Unhealthy(format!("job failed: {why}")),
        None => TargetHealth::Unknown,
    };
    (health, imp)
}

/// A CronJob, by the outcome of its newest finished Job (`jobs`: the Jobs
/// it controls): Healthy when it completed, Unhealthy when it failed,
/// Unknown before any finished. Suspended is not unhealthy: it is Healthy
/// unless its newest finished Job failed.
pub fn cronjob_health(c: &CronJob, jobs: &[Job]) -> (TargetHealth, Impact) {
    let newest = jobs
        .iter()
        .filter_map(|j| {
            let o = job_outcome(j)?;
            let at = match &o {
                Ok(t) => t.clone(),
                Err((_, t)) => t.clone(),
            }
            .or(j.metadata.creation_timestamp.clone());
            Some((
                at.map(|t| t.0),
                j.metadata.name.clone().unwrap_or_default(),
                o,
            ))
        })
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let suspended = c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    let failed = matches!(newest, Some((_, _, Err(_))));
    let imp = impact(None, None, i32::from(failed));
    let health = match newest {
        Some((_, name, Err((why, _)))) => {
            TargetHealth::Unhealthy(format!("its newest finished job {name} failed: {why}"))
        }
        Some((_, _, Ok(_))) => TargetHealth::Healthy,
        None if suspended => TargetHealth::Healthy,
        None => TargetHealth::Unknown,
    };
    (health, imp)
}

/// Whether `job` is controlled by the CronJob `cronjob`.
pub fn job_of_cronjob(job: &Job, cronjob: &str) -> bool {
    controlled_by_cronjob(&job.metadata, cronjob)
}

/// Whether the object with metadata `meta` is controlled by the CronJob
/// `cronjob`.
pub fn controlled_by_cronjob(meta: &ObjectMeta, cronjob: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "CronJob" && o.name == cronjob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(v: serde_json::Value) -> StatefulSet {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn statefulset_rules() {
        let s = |status: serde_json::Value, strategy: serde_json::Value| {
            sts(json!({"metadata": {"name": "db", "generation": 2},
                "spec": {"replicas": 3, "selector": {}, "serviceName": "db", "template": {},
                    "updateStrategy": strategy},
                "status": status}))
        };
        let done = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
            "availableReplicas": 3, "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"});
        assert_eq!(
            statefulset_health(&s(done, json!({}))).0,
            TargetHealth::Healthy
        );
        let rolling = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2,
            "availableReplicas": 2, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"});
        assert_eq!(
            statefulset_health(&s(rolling.clone(), json!({}))).0,
            TargetHealth::Unknown,
            "a rollout in progress"
        );
        // A partition holds the rest back on purpose.
        assert_eq!(
            statefulset_health(&s(
                rolling,
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
            ))
            .0,
            TargetHealth::Unhealthy("2/3 replicas available".into())
        );
        let broken = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 1,
            "availableReplicas": 1, "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"});
        let (h, i) = statefulset_health(&s(broken, json!({})));
        assert_eq!(h, TargetHealth::Unhealthy("1/3 replicas available".into()));
        assert_eq!((i.desired_replicas, i.unhealthy_pods), (Some(3), Some(2)));
        let stale = json!({"observedGeneration": 1, "replicas": 3, "availableReplicas": 3,
            "updatedReplicas": 3});
        assert_eq!(
            statefulset_health(&s(stale, json!({}))).0,
            TargetHealth::Unknown
        );
    }

    #[test]
    fn daemonset_rules() {
        let d = |status: serde_json::Value| -> DaemonSet {
            serde_json::from_value(json!({"metadata": {"name": "agent", "generation": 1},
                "spec": {"selector": {}, "template": {}}, "status": status}))
            .unwrap()
        };
        let base = |avail: i32, updated: i32| {
            json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "numberMisscheduled": 0, "numberReady": avail, "numberAvailable": avail,
                "updatedNumberScheduled": updated})
        };
        assert_eq!(daemonset_health(&d(base(3, 3))).0, TargetHealth::Healthy);
        assert_eq!(daemonset_health(&d(base(2, 1))).0, TargetHealth::Unknown);
        assert_eq!(
            daemonset_health(&d(base(2, 3))).0,
            TargetHealth::Unhealthy("2/3 pods available".into())
        );
        assert_eq!(
            daemonset_health(&d(base(0, 1))).0,
            TargetHealth::Unhealthy("0/3 pods available".into())
        );
    }

    fn job(name: &str, cond: Option<(&str, &str)>, at: &str) -> Job {
        let conditions = match cond {
            Some((t, reason)) => json!([{"type": t, "status": "True", "reason": reason,
                "message": "m", "lastTransitionTime": at}]),
            None => json!([]),
        };
        serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": at,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                "uid": "u", "controller": true}]},
            "spec": {"template": {}}, "status": {"conditions": conditions, "active": 0}}))
        .unwrap()
    }

    #[test]
    fn job_rules() {
        let at = "2026-11-22T03:00:00Z";
        assert_eq!(
            job_health(&job("a", Some(("Complete", "CompletionsReached")), at)).0,
            TargetHealth::Healthy
        );
        assert_eq!(
            job_health(&job("a", Some(("Failed", "BackoffLimitExceeded")), at)).0,
            TargetHealth::Unhealthy("job failed: BackoffLimitExceeded: m".into())
        );
        assert_eq!(job_health(&job("a", None, at)).0, TargetHealth::Unknown);
    }

    #[test]
    fn cronjob_rules() {
        let cj = |suspend: bool| -> CronJob {
            serde_json::from_value(json!({"metadata": {"name": "nightly"},
                "spec": {"schedule": "0 0 * * *", "suspend": suspend, "jobTemplate": {}}}))
            .unwrap()
        };
        let ok = job(
            "n-1",
            Some(("Complete", "CompletionsReached")),
            "2026-11-22T01:00:00Z",
        );
        let failed = job(
            "n-2",
            Some(("Failed", "BackoffLimitExceeded")),
            "2026-11-22T02:00:00Z",
        );
        let running = job("n-3", None, "2026-11-22T03:00:00Z");
        assert!(job_of_cronjob(&ok, "nightly") && !job_of_cronjob(&ok, "weekly"));
        assert_eq!(
            cronjob_health(&cj(false), &[ok.clone(), failed.clone(), running.clone()]).0,
            TargetHealth::Unhealthy(
                "its newest finished job n-2 failed: BackoffLimitExceeded: m".into()
            )
        );
        let later_ok = job(
            "n-4",
            Some(("Complete", "CompletionsReached")),
            "2026-11-22T04:00:00Z",
        );
        assert_eq!(
            cronjob_health(&cj(false), &[failed, later_ok]).0,
            TargetHealth::Healthy
        );
        assert_eq!(
            cronjob_health(&cj(false), std::slice::from_ref(&running)).0,
            TargetHealth::Unknown
        );
        assert_eq!(
            cronjob_health(&cj(true), &[running]).0,
            TargetHealth::Healthy,
            "suspended is not unhealthy"
        );
    }
}

//! Unit tests of the index for StatefulSets, DaemonSets, Jobs and
//! CronJobs: watch deltas in (apply, delete, relist), attribution (Job ->
//! CronJob, owners seen late), CronJob histories, Incidents of each target
//! kind, Runbook `targetKinds` and `matchedWorkloads`, and the memory
//! bound (what is kept of workloads no policy judges). No client.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::super::detections::Detections;
use super::super::evaluate::{Verdict, Write};
use super::super::index::{Index, Key, Scope};
use crate::api::{Incident, Runbook, TargetKind};
use crate::core::workload::{
    CronJobLite, DaemonSetLite, JobLite, PodLite, StatefulSetLite, WorkloadKey,
};

fn t(s: i64) -> Timestamp {
    let base: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    base.checked_add(SignedDuration::from_secs(s)).unwrap()
}

fn ts(s: i64) -> String {
    t(s).to_string()
}

fn k(ns: &str, n: &str) -> Key {
    (ns.to_string(), n.to_string())
}

fn w(kind: &str, name: &str) -> WorkloadKey {
    WorkloadKey::new("shop", kind, name)
}

fn index(builtin: bool) -> Index {
    Index::new(Some("ops".into()), builtin, Arc::new(Detections::default()))
}

/// A pod of controller (`kind`, `owner`), crash-looping after `restarts`
/// restarts (`None`: running and ready).
fn pod(name: &str, kind: &str, owner: &str, restarts: Option<i32>) -> PodLite {
    let (state, ready) = match restarts {
        Some(_) => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}),
            "False",
        ),
        None => (json!({"running": {"startedAt": ts(-3600)}}), "True"),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": ts(-3600),
            "ownerReferences": [{"apiVersion": "v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": ts(-1800)}],
            "containerStatuses": [{"name": "app", "ready": restarts.is_none(),
                "restartCount": restarts.unwrap_or(0), "state": state,
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": ts(-10)}}}]}
    }))
    .unwrap()
}

fn statefulset(name: &str, ready: i32) -> StatefulSetLite {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "generation": 1, "labels": {"app": name}},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": ready,
            "availableReplicas": ready, "updatedReplicas": 2,
            "currentRevision": "r1", "updateRevision": "r1"}
    }))
    .unwrap()
}

fn daemonset(name: &str, labels: Value) -> DaemonSetLite {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "generation": 1, "labels": labels},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 2,
            "numberAvailable": 2, "numberUnavailable": 1, "updatedNumberScheduled": 3}
    }))
    .unwrap()
}

/// Job `name` (of CronJob `cronjob`, if any), failed at `failed_at` or running.
fn job(name: &str, cronjob: Option<&str>, failed_at: Option<i64>) -> JobLite {
    let owners = match cronjob {
        Some(c) => {
            json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": c, "uid": "c", "controller": true}])
        }
        None => json!([]),
    };
    let status = match failed_at {
        Some(at) => json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
            "lastTransitionTime": ts(at)}]}),
        None => json!({"active": 1}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": ts(-600),
            "labels": {"app": name}, "ownerReferences": owners},
        "status": status
    }))
    .unwrap()
}

fn cronjob(name: &str) -> CronJobLite {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
        "spec": {"schedule": "0 0 * * *"}
    }))
    .unwrap()
}

fn runbook(name: &str, spec: Value) -> Runbook {
    serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": name, "namespace": "shop", "generation": 1},
        "spec": spec
    }))
    .unwrap()
}

fn evaluate_all(ix: &mut Index, now: Timestamp) -> Vec<(WorkloadKey, Verdict)> {
    let mut out: Vec<(WorkloadKey, Verdict)> = ix
        .take_dirty(now)
        .into_iter()
        .map(|wk| {
            let v = ix.evaluate(wk.clone(), |_| Vec::<Arc<Incident>>::new(), true, now);
            (wk, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn opened(verdicts: &[(WorkloadKey, Verdict)]) -> Vec<Incident> {
    verdicts
        .iter()
        .filter_map(|(_, v)| match &v.write {
            Write::Create { incident, .. } => Some((**incident).clone()),
            _ => None,
        })
        .collect()
}

fn targets(incidents: &[Incident]) -> Vec<(TargetKind, String)> {
    incidents
        .iter()
        .map(|i| {
            let t = i.spec.target.as_ref().unwrap();
            (t.kind, t.name.clone())
        })
        .collect()
}

#[test]
fn incidents_target_the_statefulset_the_daemonset_and_the_job() {
    let mut ix = index(true);
    ix.apply_statefulset(&statefulset("db", 1));
    ix.apply_pod(&pod("db-0", "StatefulSet", "db", None), t(0));
    ix.apply_pod(&pod("db-1", "StatefulSet", "db", Some(5)), t(0));
    ix.apply_daemonset(&daemonset("agent", json!({"app": "agent"})));
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(4)), t(0));
    ix.apply_job(&job("report", None, Some(-30)));
    let got = opened(&evaluate_all(&mut ix, t(1)));
    assert_eq!(
        targets(&got),
        vec![
            (TargetKind::DaemonSet, "agent".into()),
            (TargetKind::Job, "report".into()),
            (TargetKind::StatefulSet, "db".into()),
        ]
    );
    let db = got
        .iter()
        .find(|i| i.spec.target.as_ref().unwrap().name == "db")
        .unwrap();
    assert!(
        db.spec
            .title
            .starts_with("db: CrashLoopBackOff (1 of 2 pods)"),
        "{}",
        db.spec.title
    );
    let d = ix.detections.get(&w("StatefulSet", "db")).unwrap();
    assert_eq!(d.assessment.impact.desired_replicas, Some(2));
}

#[test]
fn a_pod_of_a_job_seen_before_its_job_moves_to_the_cronjob_once_the_job_is_seen() {
    let mut ix = index(true);
    ix.apply_cronjob(&cronjob("nightly"));
    ix.apply_pod(&pod("nightly-1-x", "Job", "nightly-1", Some(4)), t(0));
    // The Job is not known yet: the pod waits under the Job's key.
    assert_eq!(ix.pods[&k("shop", "nightly-1-x")].1.kind, "Job");
    assert!(opened(&evaluate_all(&mut ix, t(1))).is_empty());
    assert!(
        ix.pods.contains_key(&k("shop", "nightly-1-x")),
        "kept while waiting"
    );
    ix.apply_job(&job("nightly-1", Some("nightly"), None));
    assert_eq!(
        *ix.pods[&k("shop", "nightly-1-x")].1,
        w("CronJob", "nightly")
    );
    assert!(!ix.workload_pods.contains_key(&w("Job", "nightly-1")));
    let got = opened(&evaluate_all(&mut ix, t(2)));
    assert_eq!(targets(&got), vec![(TargetKind::CronJob, "nightly".into())]);
    // Later pods of a known Job go to the CronJob at once.
    ix.apply_pod(&pod("nightly-1-y", "Job", "nightly-1", None), t(3));
    assert_eq!(
        *ix.pods[&k("shop", "nightly-1-y")].1,
        w("CronJob", "nightly")
    );
    // The Job loses its CronJob (orphaned): its pods are its own again.
    ix.apply_job(&job("nightly-1", None, None));
    assert_eq!(*ix.pods[&k("shop", "nightly-1-x")].1, w("Job", "nightly-1"));
    assert_eq!(*ix.pods[&k("shop", "nightly-1-y")].1, w("Job", "nightly-1"));
}

#[test]
fn a_cronjob_opens_one_incident_after_two_failed_jobs_and_remembers_deleted_ones() {
    let mut ix = index(true);
    ix.apply_cronjob(&cronjob("nightly"));
    ix.apply_job(&job("nightly-1", Some("nightly"), Some(-300)));
    assert!(
        opened(&evaluate_all(&mut ix, t(0))).is_empty(),
        "one failure"
    );
    // The CronJob controller deletes the older failed Job (history limit 1).
    ix.delete_job("shop", "nightly-1");
    ix.apply_job(&job("nightly-2", Some("nightly"), Some(-60)));
    let got = opened(&evaluate_all(&mut ix, t(0)));
    assert_eq!(targets(&got), vec![(TargetKind::CronJob, "nightly".into())]);
    assert!(got[0].spec.title.contains("JobFailed (2 Jobs in a row)"));
    // A relist of the Jobs records nothing twice.
    ix.apply_job(&job("nightly-2", Some("nightly"), Some(-60)));
    assert_eq!(ix.cron_history[&k("shop", "nightly")].outcomes().len(), 2);
    // Jobs of a CronJob are not workloads of their own.
    assert!(ix.controllers().all(|c| c.kind != "Job"));
    // The CronJob goes: its history too.
    ix.delete_cronjob("shop", "nightly");
    assert!(ix.cron_history.is_empty());
}

#[test]
fn relists_drop_what_they_did_not_list_for_every_kind() {
    let mut ix = index(true);
    ix.apply_statefulset(&statefulset("db", 2));
    ix.apply_daemonset(&daemonset("agent", json!({})));
    ix.apply_job(&job("report", None, None));
    ix.apply_cronjob(&cronjob("nightly"));
    ix.apply_cronjob(&cronjob("weekly"));
    ix.apply_job(&job("weekly-1", Some("weekly"), Some(-5)));
    ix.apply_job(&job("orphan-1", Some("gone"), Some(-5)));
    let shop = Scope::Namespace("shop".into());
    let none = HashSet::new();
    ix.reset_statefulsets(&shop, &none);
    ix.reset_daemonsets(&shop, &none);
    ix.reset_jobs(&shop, &[k("shop", "weekly-1")].into_iter().collect());
    ix.reset_cronjobs(&shop, &[k("shop", "weekly")].into_iter().collect());
    assert!(ix.statefulsets.is_empty() && ix.daemonsets.is_empty());
    assert_eq!(
        ix.jobs.keys().cloned().collect::<Vec<_>>(),
        vec![k("shop", "weekly-1")]
    );
    assert_eq!(
        ix.cronjobs.keys().cloned().collect::<Vec<_>>(),
        vec![k("shop", "weekly")]
    );
    // Histories of CronJobs that are not known go with the relist.
    assert_eq!(
        ix.cron_history.keys().cloned().collect::<Vec<_>>(),
        vec![k("shop", "weekly")]
    );
    let dirty = ix.take_dirty(t(0));
    for gone in [
        w("StatefulSet", "db"),
        w("DaemonSet", "agent"),
        w("Job", "report"),
    ] {
        assert!(dirty.contains(&gone), "{gone:?} looked at again");
    }
}

#[test]
fn runbooks_select_by_target_kind_and_count_every_kind() {
    let mut ix = index(false);
    ix.apply_daemonset(&daemonset("agent", json!({"tier": "node"})));
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(4)), t(0));
    // A Runbook without targetKinds covers Deployments and Pods only.
    ix.apply_runbook(runbook(
        "legacy",
        json!({"selector": {"matchLabels": {"tier": "node"}}}),
    ));
    assert!(opened(&evaluate_all(&mut ix, t(1))).is_empty());
    ix.apply_runbook(runbook(
        "nodes",
        json!({"selector": {"matchLabels": {"tier": "node"}}, "targetKinds": ["DaemonSet", "StatefulSet"]}),
    ));
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(5)), t(2));
    let got = opened(&evaluate_all(&mut ix, t(2)));
    assert_eq!(targets(&got), vec![(TargetKind::DaemonSet, "agent".into())]);
    assert_eq!(
        got[0].spec.runbook_ref.as_ref().map(|r| r.name.as_str()),
        Some("nodes")
    );
    let statuses = ix.runbook_statuses(t(2));
    let matched = |name: &str| {
        statuses
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.status.matched_workloads)
    };
    assert_eq!(matched("nodes"), Some(1));
    assert_eq!(matched("legacy"), Some(0));
}

#[test]
fn pods_of_workloads_no_policy_judges_are_not_kept() {
    let mut ix = index(false);
    ix.apply_daemonset(&daemonset("agent", json!({"tier": "node"})));
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(4)), t(0));
    // Restarts between two views: ~288 a day for a crash-looping pod.
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(9)), t(5));
    assert_eq!(ix.ledger.records(), 1);
    evaluate_all(&mut ix, t(6));
    assert!(ix.pods.is_empty(), "no projection of an uncovered pod");
    assert!(ix.workload_pods.is_empty());
    assert_eq!((ix.ledger.pods(), ix.ledger.records()), (0, 0));
    // The next change of the pod brings it back, and it goes again.
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(10)), t(7));
    assert_eq!(
        ix.ledger.records(),
        0,
        "no previous view: no restart recorded"
    );
    evaluate_all(&mut ix, t(8));
    assert!(ix.pods.is_empty());
    assert!(!ix.take_pods_relist(), "nothing may cover it yet");
    // A Runbook that may cover it: the pods are listed again.
    ix.apply_runbook(runbook(
        "nodes",
        json!({"selector": {}, "targetKinds": ["DaemonSet"]}),
    ));
    assert!(ix.take_pods_relist());
    assert!(!ix.take_pods_relist(), "asked once");
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(10)), t(9));
    evaluate_all(&mut ix, t(9));
    assert!(ix.pods.contains_key(&k("shop", "agent-x")), "covered: kept");
    // Its Runbook is deleted: pruned again, restarts and all.
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(12)), t(10));
    assert_eq!(ix.ledger.records(), 1);
    ix.delete_runbook("shop", "nodes");
    evaluate_all(&mut ix, t(11));
    assert!(ix.pods.is_empty());
    assert_eq!((ix.ledger.pods(), ix.ledger.records()), (0, 0));
}

#[test]
fn pods_of_ignored_workloads_and_of_unknown_controllers_are_not_kept() {
    let mut ix = index(true);
    ix.apply_daemonset(&daemonset(
        "agent",
        json!({"kubeincident.io/ignore": "true"}),
    ));
    ix.apply_pod(&pod("agent-x", "DaemonSet", "agent", Some(4)), t(0));
    ix.apply_pod(
        &pod("legacy-x", "ReplicationController", "legacy", Some(4)),
        t(0),
    );
    // A pod whose StatefulSet is not seen yet is kept until it is.
    ix.apply_pod(&pod("db-0", "StatefulSet", "db", Some(4)), t(0));
    assert!(opened(&evaluate_all(&mut ix, t(1))).is_empty());
    let kept: Vec<Key> = ix.pods.keys().cloned().collect();
    assert_eq!(kept, vec![k("shop", "db-0")]);
    // Un-ignored: the pods are listed again.
    ix.apply_daemonset(&daemonset("agent", json!({})));
    assert!(ix.take_pods_relist());
    assert!(ix.pruned.is_empty());
}

#[test]
fn pods_that_are_never_judged_cause_no_relists() {
    let mut ix = index(true);
    ix.apply_pod(
        &pod("legacy-x", "ReplicationController", "legacy", Some(4)),
        t(0),
    );
    ix.apply_daemonset(&daemonset(
        "quiet",
        json!({"kubeincident.io/ignore": "true"}),
    ));
    ix.apply_pod(&pod("quiet-x", "DaemonSet", "quiet", Some(4)), t(0));
    evaluate_all(&mut ix, t(1));
    assert!(ix.pods.is_empty());
    assert_eq!(
        ix.pruned.len(),
        1,
        "only the ignored DaemonSet may come back"
    );
    // New workloads, new Runbooks: none covers what was pruned.
    ix.apply_statefulset(&statefulset("db", 2));
    ix.apply_job(&job("report", None, None));
    ix.apply_runbook(runbook(
        "db",
        json!({"selector": {}, "targetKinds": ["StatefulSet"]}),
    ));
    assert!(!ix.take_pods_relist());
    // The ignored DaemonSet is deleted: nothing left to come back.
    ix.delete_daemonset("shop", "quiet");
    assert!(ix.pruned.is_empty());
}

//! Unit tests of detection for every workload kind: init containers and
//! native sidecars, pods that do not count (Evicted, Succeeded, Failed
//! pods of Jobs), StatefulSet/DaemonSet rollouts, Jobs, CronJob failure
//! streaks, attribution and the restart ledger's bound. Views are decoded
//! from API JSON (as the watches decode them); the clock is injected.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::*;
use crate::core::workload::{
    ContainerRole, CronJobLite, DaemonSetLite, JobLite, JobOutcome, PodLite, StatefulSetLite,
};

fn t(s: i64) -> Timestamp {
    let base: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    base.checked_add(jiff::SignedDuration::from_secs(s))
        .unwrap()
}

fn ts(s: i64) -> String {
    t(s).to_string()
}

fn key(kind: &str, name: &str) -> WorkloadKey {
    WorkloadKey::new("shop", kind, name)
}

/// A pod owned by (`kind`, `owner`) from its status JSON (and init containers).
fn pod_of(name: &str, owner: (&str, &str), init: Value, status: Value) -> PodView {
    let lite: PodLite = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": ts(-600),
            "ownerReferences": [{"apiVersion": "v1", "kind": owner.0, "name": owner.1,
                "uid": "u", "controller": true}]},
        "spec": {"initContainers": init, "containers": [{"name": "app", "image": "x"}]},
        "status": status
    }))
    .unwrap();
    PodView::from(&lite)
}

fn running(name: &str, owner: (&str, &str)) -> PodView {
    pod_of(
        name,
        owner,
        json!([]),
        json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts(-500)}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": ts(-500)}}}]}),
    )
}

fn crashing(name: &str, owner: (&str, &str), restarts: i32) -> PodView {
    pod_of(
        name,
        owner,
        json!([]),
        json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts(-300)}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": ts(-30)}}}]}),
    )
}

fn run(
    w: &WorkloadKey,
    c: Option<Controller<'_>>,
    pods: &[PodView],
    policy: &DetectionPolicy,
    now: i64,
) -> Assessment {
    let refs: Vec<&PodView> = pods.iter().collect();
    assess_workload(w, c, &refs, policy, &mut RestartLedger::default(), t(now))
}

fn triggers(a: &Assessment) -> Vec<TriggerType> {
    a.symptoms.iter().map(|s| s.trigger).collect()
}

fn deploy(desired: i32, available: i32) -> DeploymentView {
    DeploymentView {
        namespace: "shop".into(),
        name: "web".into(),
        desired,
        replicas: desired,
        updated: desired,
        ready: available,
        available,
        ..Default::default()
    }
}

// ---- Init containers and sidecars ----

/// A pod held Pending by a crash-looping init container, as the kubelet
/// shows it: `Init:CrashLoopBackOff`, Initialized=False, the app container
/// waiting `PodInitializing`.
fn init_crash(name: &str) -> PodView {
    pod_of(
        name,
        ("ReplicaSet", "web-7f"),
        json!([{"name": "migrate", "image": "x:crash"}]),
        json!({"phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "False"},
                {"type": "Ready", "status": "False", "lastTransitionTime": ts(-300)}],
            "initContainerStatuses": [{"name": "migrate", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=migrate pod=web-7f-a_shop(123)"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": ts(-20)}}}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    )
}

#[test]
fn a_crash_looping_init_container_is_a_crash_loop_of_the_workload() {
    let p = init_crash("web-7f-a");
    assert_eq!(p.containers[0].role, ContainerRole::Init);
    assert_eq!(p.containers[1].role, ContainerRole::App);
    let w = key("Deployment", "web");
    let d = deploy(1, 0);
    let a = run(
        &w,
        Some(Controller::Deployment(&d)),
        &[p],
        &DetectionPolicy::default(),
        0,
    );
    assert!(
        triggers(&a).contains(&TriggerType::CrashLoopBackOff),
        "{a:#?}"
    );
    let s = &a.symptoms[0];
    assert!(
        s.message.contains("init container migrate: back-off 1m20s"),
        "{}",
        s.message
    );
    assert!(
        !s.message.contains("pod="),
        "no pod identity: {}",
        s.message
    );
    // PodInitializing is no trouble of its own.
    assert_eq!(a.impact.reasons, vec!["CrashLoopBackOff".to_string()]);
    assert!(!triggers(&a).contains(&TriggerType::NotReady));
}

#[test]
fn waiting_for_init_containers_is_not_trouble() {
    let p = pod_of(
        "web-7f-a",
        ("Pod", "x"),
        json!([{"name": "migrate", "image": "x"}]),
        json!({"phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts(-10)}],
            "initContainerStatuses": [{"name": "migrate", "ready": false, "restartCount": 0,
                "state": {"running": {"startedAt": ts(-10)}}}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    let a = run(&key("Pod", "x"), None, &[p], &DetectionPolicy::default(), 0);
    assert!(a.symptoms.is_empty() && a.pending.is_empty(), "{a:#?}");
    assert!(a.impact.reasons.is_empty());
}

#[test]
fn a_native_sidecar_is_named_as_such_and_its_pull_failure_is_a_trigger() {
    let p = pod_of(
        "web-7f-a",
        ("ReplicaSet", "web-7f"),
        json!([{"name": "proxy", "image": "x:nopull", "restartPolicy": "Always"}]),
        json!({"phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts(-120)}],
            "initContainerStatuses": [{"name": "proxy", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    );
    assert_eq!(p.containers[0].role, ContainerRole::Sidecar);
    let d = deploy(1, 0);
    let a = run(
        &key("Deployment", "web"),
        Some(Controller::Deployment(&d)),
        &[p],
        &DetectionPolicy::default(),
        0,
    );
    let s = a
        .symptoms
        .iter()
        .find(|s| s.trigger == TriggerType::ImagePullBackOff)
        .expect("ImagePullBackOff past its 60s grace");
    assert!(
        s.message.contains("sidecar proxy: Back-off pulling image"),
        "{}",
        s.message
    );
}

#[test]
fn restarts_of_init_containers_and_sidecars_count_for_a_restart_storm() {
    let w = key("Deployment", "web");
    let sidecar = |restarts: i32| {
        pod_of(
            "web-7f-a",
            ("ReplicaSet", "web-7f"),
            json!([{"name": "proxy", "image": "x", "restartPolicy": "Always"}]),
            json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts(-500)}],
                "initContainerStatuses": [{"name": "proxy", "ready": true, "restartCount": restarts,
                    "state": {"running": {"startedAt": ts(-5)}}}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                    "state": {"running": {"startedAt": ts(-500)}}}]}),
        )
    };
    let mut ledger = RestartLedger::default();
    ledger.observe(&w, None, &sidecar(0), t(0));
    ledger.observe(&w, Some(&sidecar(0)), &sidecar(6), t(10));
    let p = sidecar(6);
    let d = deploy(1, 1);
    let a = assess_workload(
        &w,
        Some(Controller::Deployment(&d)),
        &[&p],
        &DetectionPolicy::default(),
        &mut ledger,
        t(20),
    );
    assert_eq!(triggers(&a), vec![TriggerType::RestartStorm]);
}

// ---- Pods that do not count ----

#[test]
fn evicted_and_succeeded_pods_are_neither_judged_nor_counted() {
    let owner = ("ReplicaSet", "web-7f");
    let mut evicted = crashing("web-7f-old", owner, 9);
    evicted.phase = "Failed".into();
    evicted.reason = Some("Evicted".into());
    assert!(evicted.evicted() && !evicted.counts());
    let mut done = crashing("web-7f-done", owner, 9);
    done.phase = "Succeeded".into();
    let pods = [
        evicted,
        done,
        crashing("web-7f-a", owner, 5),
        running("web-7f-b", owner),
    ];
    let d = deploy(2, 1);
    let a = run(
        &key("Deployment", "web"),
        Some(Controller::Deployment(&d)),
        &pods,
        &DetectionPolicy::default(),
        0,
    );
    let s = &a.symptoms[0];
    assert_eq!(s.trigger, TriggerType::CrashLoopBackOff);
    // 1 of the 2 pods that count, not of 4.
    assert_eq!(s.headline, "CrashLoopBackOff (1 of 2 pods)");
    assert!(!s.message.contains("web-7f-old"));
}

#[test]
fn failed_pods_of_a_job_are_judged_through_the_job() {
    let owner = ("Job", "report");
    let mut failed = crashing("report-a", owner, 0);
    failed.phase = "Failed".into();
    failed.containers[0].waiting = None;
    failed.containers[0].terminated = Some(crate::core::workload::Termination {
        reason: Some("OOMKilled".into()),
        exit_code: 137,
        finished_at: Some(t(-10)),
    });
    let j = job_view(json!({"active": 1}), None);
    let a = run(
        &key("Job", "report"),
        Some(Controller::Job(&j)),
        &[failed],
        &DetectionPolicy::default(),
        0,
    );
    assert!(a.symptoms.is_empty(), "{a:#?}");
}

// ---- StatefulSets ----

fn sts(status: Value, strategy: Value) -> StatefulSetView {
    let lite: StatefulSetLite = serde_json::from_value(json!({
        "metadata": {"name": "db", "namespace": "shop", "generation": 2, "labels": {"app": "db"}},
        "spec": {"replicas": 3, "updateStrategy": strategy,
            "template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}},
        "status": status
    }))
    .unwrap();
    StatefulSetView::from(&lite)
}

fn stuck_sts_status() -> Value {
    json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
        "updatedReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-2"})
}

fn rolling_policy() -> DetectionPolicy {
    let mut p = DetectionPolicy::default();
    p.triggers.retain(|t| t.type_ == TriggerType::RolloutStuck);
    p
}

#[test]
fn a_statefulset_update_stuck_past_its_grace_is_rollout_stuck() {
    let s = sts(stuck_sts_status(), json!({"type": "RollingUpdate"}));
    assert_eq!((s.desired, s.available, s.updated), (3, 2, 1));
    let owner = ("StatefulSet", "db");
    let pods = [
        running("db-0", owner),
        running("db-1", owner),
        crashing("db-2", owner, 2),
    ];
    let w = key("StatefulSet", "db");
    // The pod stopped being Ready at -300; the grace is 5 minutes.
    let a = run(
        &w,
        Some(Controller::StatefulSet(&s)),
        &pods,
        &rolling_policy(),
        -1,
    );
    assert!(a.symptoms.is_empty(), "{a:#?}");
    assert_eq!(a.wake_at(), Some(t(0)));
    let a = run(
        &w,
        Some(Controller::StatefulSet(&s)),
        &pods,
        &rolling_policy(),
        0,
    );
    assert_eq!(triggers(&a), vec![TriggerType::RolloutStuck]);
    assert!(
        a.symptoms[0].message.contains("revision db-2"),
        "{:?}",
        a.symptoms
    );
    assert_eq!(a.impact.desired_replicas, Some(3));
    assert!(!a.healthy);
    // Severity from the unavailable ratio: 1 of 3.
    assert_eq!(a.impact_severity, Some(crate::api::Severity::SEV3));
}

#[test]
fn a_statefulset_update_is_not_stuck_when_partitioned_on_delete_unobserved_or_available() {
    let owner = ("StatefulSet", "db");
    let pods = [crashing("db-2", owner, 2)];
    let w = key("StatefulSet", "db");
    let policy = rolling_policy();
    let on_delete = sts(stuck_sts_status(), json!({"type": "OnDelete"}));
    let mut unobserved_status = stuck_sts_status();
    unobserved_status["observedGeneration"] = json!(1);
    let unobserved = sts(unobserved_status, json!({}));
    let mut available_status = stuck_sts_status();
    available_status["availableReplicas"] = json!(3);
    let available = sts(available_status, json!({}));
    let mut partitioned_status = stuck_sts_status();
    partitioned_status["updatedReplicas"] = json!(1);
    let partitioned = sts(
        partitioned_status,
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
    );
    for s in [on_delete, unobserved, available, partitioned] {
        let a = run(&w, Some(Controller::StatefulSet(&s)), &pods, &policy, 600);
        assert!(a.symptoms.is_empty(), "{s:?}: {a:#?}");
    }
}

#[test]
fn a_rolled_out_statefulset_is_healthy() {
    let s = sts(
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "updatedReplicas": 3, "currentRevision": "db-2", "updateRevision": "db-2"}),
        json!({}),
    );
    let owner = ("StatefulSet", "db");
    let pods = [
        running("db-0", owner),
        running("db-1", owner),
        running("db-2", owner),
    ];
    let a = run(
        &key("StatefulSet", "db"),
        Some(Controller::StatefulSet(&s)),
        &pods,
        &DetectionPolicy::default(),
        0,
    );
    assert!(a.healthy, "{a:#?}");
}

// ---- DaemonSets ----

fn ds(status: Value) -> DaemonSetView {
    let lite: DaemonSetLite = serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "shop", "generation": 3},
        "spec": {"template": {"spec": {"containers": []}}},
        "status": status
    }))
    .unwrap();
    DaemonSetView::from(&lite)
}

#[test]
fn a_daemonset_that_does_not_finish_rolling_out_is_rollout_stuck_and_unavailable() {
    let d = ds(json!({"observedGeneration": 3, "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3, "numberReady": 2, "numberAvailable": 2,
        "numberUnavailable": 1, "updatedNumberScheduled": 1}));
    assert_eq!(
        (d.desired, d.available, d.unavailable, d.updated),
        (3, 2, 1, 1)
    );
    let owner = ("DaemonSet", "agent");
    let pods = [
        running("agent-a", owner),
        running("agent-b", owner),
        crashing("agent-c", owner, 1),
    ];
    let w = key("DaemonSet", "agent");
    let mut policy = DetectionPolicy::default();
    policy.triggers.retain(|t| {
        matches!(
            t.type_,
            TriggerType::RolloutStuck | TriggerType::Unavailable
        )
    });
    for t in &mut policy.triggers {
        t.min_unavailable_ratio = 0.3;
    }
    let a = run(&w, Some(Controller::DaemonSet(&d)), &pods, &policy, 30);
    assert_eq!(
        triggers(&a),
        vec![TriggerType::Unavailable, TriggerType::RolloutStuck],
        "{a:#?}"
    );
    assert_eq!(a.impact.desired_replicas, Some(3));
    assert_eq!(a.impact.unhealthy_pods, Some(1));
    // All available again: nothing, healthy once every pod is updated.
    let d = ds(
        json!({"observedGeneration": 3, "desiredNumberScheduled": 3, "numberReady": 3,
        "numberAvailable": 3, "updatedNumberScheduled": 3}),
    );
    let pods = [running("agent-a", owner)];
    let a = run(&w, Some(Controller::DaemonSet(&d)), &pods, &policy, 30);
    assert!(a.healthy, "{a:#?}");
}

// ---- Jobs ----

fn job_view(status: Value, cronjob: Option<&str>) -> JobView {
    let owners = match cronjob {
        Some(c) => {
            json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": c, "uid": "c", "controller": true}])
        }
        None => json!([]),
    };
    let lite: JobLite = serde_json::from_value(json!({
        "metadata": {"name": "report", "namespace": "shop", "creationTimestamp": ts(-900),
            "labels": {"app": "report"}, "ownerReferences": owners},
        "spec": {"backoffLimit": 1, "template": {"spec": {"containers": []}}},
        "status": status
    }))
    .unwrap();
    JobView::from(&lite)
}

fn failed_job_status(at: i64, reason: &str) -> Value {
    json!({"failed": 2, "conditions": [
        {"type": "FailureTarget", "status": "True", "lastTransitionTime": ts(at)},
        {"type": "Failed", "status": "True", "reason": reason,
         "message": "Job has reached the specified backoff limit", "lastTransitionTime": ts(at)}]})
}

#[test]
fn a_failed_job_is_job_failed_with_its_reason_within_the_window() {
    let j = job_view(failed_job_status(-60, "BackoffLimitExceeded"), None);
    let w = key("Job", "report");
    let a = run(
        &w,
        Some(Controller::Job(&j)),
        &[],
        &DetectionPolicy::default(),
        0,
    );
    assert_eq!(triggers(&a), vec![TriggerType::JobFailed]);
    let s = &a.symptoms[0];
    assert_eq!(s.headline, "JobFailed (BackoffLimitExceeded)");
    assert!(
        s.message
            .contains("BackoffLimitExceeded: Job has reached the specified backoff limit"),
        "{}",
        s.message
    );
    assert_eq!(s.since, t(-60));
    assert!(!a.healthy);
    let j = job_view(failed_job_status(-60, "DeadlineExceeded"), None);
    let a = run(
        &w,
        Some(Controller::Job(&j)),
        &[],
        &DetectionPolicy::default(),
        0,
    );
    assert_eq!(a.symptoms[0].headline, "JobFailed (DeadlineExceeded)");
    // Last week's failure is history, not an incident.
    let a = run(
        &w,
        Some(Controller::Job(&j)),
        &[],
        &DetectionPolicy::default(),
        7 * 86400,
    );
    assert!(a.symptoms.is_empty());
}

#[test]
fn a_complete_or_running_job_is_not_failed() {
    let w = key("Job", "report");
    let done = job_view(
        json!({"succeeded": 1, "completionTime": ts(-5), "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": ts(-5)}]}),
        None,
    );
    let a = run(
        &w,
        Some(Controller::Job(&done)),
        &[],
        &DetectionPolicy::default(),
        0,
    );
    assert!(a.healthy, "{a:#?}");
    let active = job_view(json!({"active": 1}), None);
    let pods = [running("report-a", ("Job", "report"))];
    let a = run(
        &w,
        Some(Controller::Job(&active)),
        &pods,
        &DetectionPolicy::default(),
        0,
    );
    assert!(a.healthy, "{a:#?}");
}

// ---- CronJobs ----

fn outcome(job: &str, failed: bool, at: i64) -> JobOutcome {
    JobOutcome {
        job: job.into(),
        failed,
        at: Some(t(at)),
        detail: if failed {
            "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        } else {
            "Complete".into()
        },
    }
}

fn cron(suspend: bool) -> CronJobView {
    let lite: CronJobLite = serde_json::from_value(json!({
        "metadata": {"name": "nightly", "namespace": "shop", "labels": {"app": "nightly"}},
        "spec": {"schedule": "0 0 * * *", "suspend": suspend, "jobTemplate": {"spec": {}}},
        "status": {"lastScheduleTime": ts(-60)}
    }))
    .unwrap();
    CronJobView::from(&lite)
}

#[test]
fn a_cronjob_fires_once_its_newest_min_failures_jobs_all_failed() {
    let c = cron(false);
    let w = key("CronJob", "nightly");
    let policy = DetectionPolicy::default();
    let mut h = CronHistory::default();
    h.record(outcome("nightly-1", false, -300));
    h.record(outcome("nightly-2", true, -200));
    let a = run(&w, Some(Controller::CronJob(&c, &h)), &[], &policy, 0);
    assert!(a.symptoms.is_empty(), "one failure is not a streak: {a:#?}");
    assert!(!a.healthy, "but the newest Job failed");
    h.record(outcome("nightly-3", true, -100));
    let a = run(&w, Some(Controller::CronJob(&c, &h)), &[], &policy, 0);
    assert_eq!(triggers(&a), vec![TriggerType::JobFailed]);
    let s = &a.symptoms[0];
    assert_eq!(s.headline, "JobFailed (2 Jobs in a row)");
    assert_eq!(s.since, t(-100), "a streak from its second failure");
    assert!(
        s.message.contains("nightly-3 (BackoffLimitExceeded"),
        "{}",
        s.message
    );
    assert!(s.message.contains("nightly-2"), "{}", s.message);
    // minFailures 3 wants one more.
    let mut strict = policy.clone();
    for t in &mut strict.triggers {
        t.min_failures = 3;
    }
    let a = run(&w, Some(Controller::CronJob(&c, &h)), &[], &strict, 0);
    assert!(a.symptoms.is_empty());
    // Suspended: no incident.
    let a = run(
        &w,
        Some(Controller::CronJob(&cron(true), &h)),
        &[],
        &policy,
        0,
    );
    assert!(a.symptoms.is_empty());
    // A success ends the streak.
    h.record(outcome("nightly-4", false, -50));
    let a = run(&w, Some(Controller::CronJob(&c, &h)), &[], &policy, 0);
    assert!(a.symptoms.is_empty());
    assert!(a.healthy);
}

#[test]
fn the_history_of_a_cronjob_is_ordered_deduplicated_and_bounded() {
    let mut h = CronHistory::default();
    for i in 0..25 {
        h.record(outcome(&format!("j-{i:02}"), i % 2 == 0, i));
    }
    assert_eq!(h.outcomes().len(), CronHistory::CAP);
    assert_eq!(h.outcomes()[0].job, "j-15");
    // The same Job seen again (a relist) replaces its entry.
    h.record(outcome("j-24", true, 24));
    assert_eq!(h.outcomes().len(), CronHistory::CAP);
    // Out of order: kept by finish time.
    h.record(outcome("late", false, 20));
    let jobs: Vec<&str> = h.outcomes().iter().map(|o| o.job.as_str()).collect();
    assert_eq!(jobs.last(), Some(&"j-24"));
    assert!(jobs.contains(&"late"));
    assert_eq!(h.failure_streak().len(), 1);
}

#[test]
fn a_job_of_a_cronjob_reports_its_outcome_and_belongs_to_the_cronjob() {
    let j = job_view(
        failed_job_status(-10, "BackoffLimitExceeded"),
        Some("nightly"),
    );
    assert_eq!(j.key(), key("CronJob", "nightly"));
    // Only the ignore label is kept on a CronJob's Job.
    assert!(j.labels.is_empty());
    let o = j.outcome().expect("finished");
    assert!(o.failed);
    assert_eq!(o.at, Some(t(-10)));
    assert!(job_view(json!({"active": 1}), None).outcome().is_none());
}

// ---- Attribution ----

#[test]
fn pods_are_attributed_to_every_kind_of_controller() {
    let owner_of = |kind: &str, _: &str, name: &str| match (kind, name) {
        ("ReplicaSet", "web-7f") => Some("web".to_string()),
        ("Job", "nightly-123") => Some("nightly".to_string()),
        _ => None,
    };
    let cases = [
        (("ReplicaSet", "web-7f"), ("Deployment", "web")),
        (("ReplicaSet", "orphan-1"), ("ReplicaSet", "orphan-1")),
        (("StatefulSet", "db"), ("StatefulSet", "db")),
        (("DaemonSet", "agent"), ("DaemonSet", "agent")),
        (("Job", "report"), ("Job", "report")),
        (("Job", "nightly-123"), ("CronJob", "nightly")),
    ];
    for (owner, (kind, name)) in cases {
        let p = running("p", owner);
        assert_eq!(attribute(&p, owner_of), key(kind, name), "{owner:?}");
    }
}

// ---- The restart ledger ----

#[test]
fn the_ledger_forgets_a_workload_and_its_pods() {
    let w = key("DaemonSet", "agent");
    let other = key("Deployment", "web");
    let owner = ("DaemonSet", "agent");
    let mut ledger = RestartLedger::default();
    ledger.observe(
        &w,
        Some(&crashing("a", owner, 1)),
        &crashing("a", owner, 3),
        t(0),
    );
    ledger.observe(
        &other,
        Some(&crashing("b", owner, 1)),
        &crashing("b", owner, 2),
        t(0),
    );
    assert_eq!((ledger.pods(), ledger.records()), (2, 2));
    ledger.forget_workload(&w);
    assert_eq!((ledger.pods(), ledger.records()), (1, 1));
    assert_eq!(
        ledger.restarts_within(&w, std::time::Duration::from_secs(600), t(1)),
        (0, None)
    );
    ledger.forget_pod("shop", "b");
    assert_eq!((ledger.pods(), ledger.records()), (0, 0));
}

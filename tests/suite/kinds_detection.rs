//! Detection of every workload kind end to end: StatefulSets and
//! DaemonSets rolled out to a crashing image, a crash-looping init
//! container, a failing Job, a CronJob whose Jobs keep failing. Each opens
//! one Incident targeting the workload itself. These need the workload
//! controllers: they run on the real control plane (`../shared/k8s`) and
//! say that they are skipped on the emulator.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_incident::api::{Incident, IncidentSource, TargetKind};
use serde_json::json;

use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::fixtures::deployment;
use testkit::incidents::create_runbook;
use testkit::workloads::{
    cronjob, daemonset, daemonset_ready, job, job_from_cronjob, set_template_behavior, statefulset,
    statefulset_ready,
};

/// Crash back-offs start at 10 s; a rollout stuck on one is detected
/// within a couple of minutes.
const WAIT: Duration = Duration::from_secs(150);

async fn incidents(client: &Client, ns: &str) -> Vec<Incident> {
    Api::<Incident>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The Incident about (`kind`, `name`) whose timeline has an entry
/// starting with `symptom`, within `WAIT`.
async fn wait_target_incident(
    client: &Client,
    ns: &str,
    kind: TargetKind,
    name: &str,
    symptom: &str,
) -> Incident {
    let found = wait_for(WAIT, || async {
        incidents(client, ns).await.into_iter().find(|i| {
            i.spec
                .target
                .as_ref()
                .is_some_and(|t| t.kind == kind && t.name == name)
                && i.status
                    .as_ref()
                    .is_some_and(|s| s.timeline.iter().any(|e| e.message.starts_with(symptom)))
        })
    })
    .await;
    match found {
        Some(i) => {
            assert_eq!(i.spec.source, IncidentSource::Detector);
            i
        }
        None => panic!(
            "no incident about {kind} {name} with a {symptom:?} entry within {WAIT:?}: {:#?}",
            incidents(client, ns).await
        ),
    }
}

/// The Incident's evidence: the logs of its workload's pods (named
/// `pod_prefix...`) and its Events, nothing left ungathered.
async fn assert_evidence(client: &Client, ns: &str, inc: &Incident, pod_prefix: &str) {
    let name = inc.metadata.name.clone().unwrap_or_default();
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let cm_name = wait_for(WAIT, || async {
        api.get(&name)
            .await
            .ok()?
            .status?
            .evidence_ref
            .map(|r| r.name)
    })
    .await
    .unwrap_or_else(|| panic!("incident {name} has evidence within {WAIT:?}"));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&cm_name)
        .await
        .unwrap();
    let data = cm.data.unwrap_or_default();
    let summary = data.get("summary.txt").cloned().unwrap_or_default();
    assert!(!summary.contains("not gathered"), "{summary}");
    assert!(
        data.keys()
            .any(|k| k.starts_with(&format!("logs.{pod_prefix}"))),
        "logs of the pods of {pod_prefix}: {:?}\n{summary}",
        data.keys().collect::<Vec<_>>()
    );
    assert!(data.contains_key("events.txt"));
}

/// One Incident per workload: only `name` of `kind` (no other target).
async fn assert_only_target(client: &Client, ns: &str, kind: TargetKind, name: &str) {
    for i in incidents(client, ns).await {
        let t = i.spec.target.as_ref().expect("target");
        assert_eq!(
            (t.kind, t.name.as_str()),
            (kind, name),
            "one incident per workload, about the workload: {i:#?}"
        );
    }
}

#[tokio::test]
async fn a_statefulset_rolled_out_to_a_crashing_image_is_detected() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers("a_statefulset_rolled_out_to_a_crashing_image_is_detected")
    {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("sts").await;
    create_runbook(
        c,
        &ns,
        "stateful",
        json!({"selector": {"matchLabels": {"app": "db"}}, "targetKinds": ["StatefulSet"],
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 1},
                         {"type": "RolloutStuck", "for": "20s"}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    Api::<StatefulSet>::namespaced(c.clone(), &ns)
        .create(
            &PostParams::default(),
            &statefulset("db", 2, "healthy", "OrderedReady"),
        )
        .await
        .unwrap();
    statefulset_ready(c, &ns, "db", 2, WAIT).await;
    assert!(
        incidents(c, &ns).await.is_empty(),
        "a healthy statefulset opens nothing"
    );
    set_template_behavior(
        c,
        &ns,
        "StatefulSet",
        "db",
        "crashloop",
        "registry.example/db:v2",
    )
    .await;
    let inc = wait_target_incident(c, &ns, TargetKind::StatefulSet, "db", "CrashLoopBackOff").await;
    assert!(inc.spec.runbook_ref.is_some(), "the Runbook governs it");
    wait_target_incident(c, &ns, TargetKind::StatefulSet, "db", "RolloutStuck").await;
    assert_only_target(c, &ns, TargetKind::StatefulSet, "db").await;
    assert_evidence(c, &ns, &inc, "db-").await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_daemonset_rolled_out_to_a_crashing_image_is_detected() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers("a_daemonset_rolled_out_to_a_crashing_image_is_detected") {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("ds").await;
    create_runbook(
        c,
        &ns,
        "agents",
        json!({"selector": {"matchLabels": {"app": "agent"}}, "targetKinds": ["DaemonSet"],
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 1},
                         {"type": "RolloutStuck", "for": "20s"}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    Api::<DaemonSet>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &daemonset("agent", "healthy"))
        .await
        .unwrap();
    daemonset_ready(c, &ns, "agent", WAIT).await;
    assert!(
        incidents(c, &ns).await.is_empty(),
        "a healthy daemonset opens nothing"
    );
    set_template_behavior(
        c,
        &ns,
        "DaemonSet",
        "agent",
        "crashloop",
        "registry.example/agent:v2",
    )
    .await;
    wait_target_incident(c, &ns, TargetKind::DaemonSet, "agent", "CrashLoopBackOff").await;
    wait_target_incident(c, &ns, TargetKind::DaemonSet, "agent", "RolloutStuck").await;
    assert_only_target(c, &ns, TargetKind::DaemonSet, "agent").await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_crash_looping_init_container_is_detected() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers("a_crash_looping_init_container_is_detected") {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("init").await;
    create_runbook(
        c,
        &ns,
        "web",
        json!({"selector": {"matchLabels": {"app": "web"}},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 1}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let mut d = serde_json::to_value(deployment("web", 2, "healthy")).unwrap();
    d["spec"]["template"]["spec"]["initContainers"] = json!([
        {"name": "migrate", "image": "registry.example/migrate:crash-v1"}
    ]);
    let d: Deployment = serde_json::from_value(d).unwrap();
    Api::<Deployment>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let inc = wait_target_incident(c, &ns, TargetKind::Deployment, "web", "CrashLoopBackOff").await;
    let s = inc.status.as_ref().unwrap();
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message.contains("init container migrate")),
        "the symptom names the init container: {:#?}",
        s.timeline
    );
    assert_only_target(c, &ns, TargetKind::Deployment, "web").await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_crash_looping_native_sidecar_is_detected() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers("a_crash_looping_native_sidecar_is_detected") {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("sidecar").await;
    create_runbook(
        c,
        &ns,
        "api",
        json!({"selector": {"matchLabels": {"app": "api"}},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 1}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let mut d = serde_json::to_value(deployment("api", 1, "healthy")).unwrap();
    d["spec"]["template"]["spec"]["initContainers"] = json!([
        {"name": "proxy", "image": "registry.example/proxy:crash-v1", "restartPolicy": "Always"}
    ]);
    let d: Deployment = serde_json::from_value(d).unwrap();
    Api::<Deployment>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let inc = wait_target_incident(c, &ns, TargetKind::Deployment, "api", "CrashLoopBackOff").await;
    let s = inc.status.as_ref().unwrap();
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message.contains("sidecar proxy")),
        "the symptom names the sidecar: {:#?}",
        s.timeline
    );
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_job_is_detected() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers("a_failing_job_is_detected") {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("job").await;
    create_runbook(
        c,
        &ns,
        "batch",
        json!({"selector": {"matchLabels": {"app": "report"}}, "targetKinds": ["Job"],
            "triggers": [{"type": "JobFailed"}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    Api::<Job>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &job("report", "crashloop", 1))
        .await
        .unwrap();
    let inc = wait_target_incident(c, &ns, TargetKind::Job, "report", "JobFailed").await;
    let s = inc.status.as_ref().unwrap();
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message.contains("BackoffLimitExceeded")),
        "the symptom says why: {:#?}",
        s.timeline
    );
    assert_only_target(c, &ns, TargetKind::Job, "report").await;
    assert_evidence(c, &ns, &inc, "report-").await;
    op.stop().await.unwrap();
}

/// The Job `name` once its `Failed` condition is True.
async fn job_failed(client: &Client, ns: &str, name: &str) {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let failed = wait_for(WAIT, || async {
        let j = api.get(name).await.ok()?;
        j.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True")
            .then_some(())
    })
    .await;
    assert!(failed.is_some(), "job {name} fails within {WAIT:?}");
}

#[tokio::test]
async fn a_cronjob_whose_jobs_keep_failing_is_detected_after_min_failures() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers(
        "a_cronjob_whose_jobs_keep_failing_is_detected_after_min_failures",
    ) {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("cron").await;
    create_runbook(
        c,
        &ns,
        "nightly",
        json!({"selector": {"matchLabels": {"app": "nightly"}}, "targetKinds": ["CronJob"],
            "triggers": [{"type": "JobFailed", "minFailures": 2}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    // Never scheduled by itself during the test: Jobs are launched by hand.
    Api::<CronJob>::namespaced(c.clone(), &ns)
        .create(
            &PostParams::default(),
            &cronjob("nightly", "0 0 1 1 *", "crashloop"),
        )
        .await
        .unwrap();
    job_from_cronjob(c, &ns, "nightly", "nightly-manual-1").await;
    job_failed(c, &ns, "nightly-manual-1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        incidents(c, &ns).await.is_empty(),
        "one failed Job of a CronJob is not a streak yet"
    );
    job_from_cronjob(c, &ns, "nightly", "nightly-manual-2").await;
    let inc = wait_target_incident(c, &ns, TargetKind::CronJob, "nightly", "JobFailed").await;
    let s = inc.status.as_ref().unwrap();
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message.contains("nightly-manual-2")
                && e.message.contains("nightly-manual-1")),
        "the symptom names the failed Jobs: {:#?}",
        s.timeline
    );
    // The Jobs' pods belong to the CronJob's one Incident.
    assert_only_target(c, &ns, TargetKind::CronJob, "nightly").await;
    assert_evidence(c, &ns, &inc, "nightly-manual-").await;
    op.stop().await.unwrap();
}

/// Mark Job `name` Failed as the Job controller would (the emulator runs
/// no controller: its status is written here).
async fn fail_job(client: &Client, ns: &str, name: &str, reason: &str) {
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {"failed": 1, "startTime": now, "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": reason, "lastTransitionTime": now},
        {"type": "Failed", "status": "True", "reason": reason,
         "message": "Job has reached the specified backoff limit", "lastTransitionTime": now}]}});
    Api::<Job>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("fail job {name}: {e}"));
}

/// The watches of the new kinds work on the emulator too (which stores
/// Jobs and CronJobs without a controller): a Job whose status says it
/// failed, and a CronJob whose two Jobs did, each open their Incident.
#[tokio::test]
async fn job_and_cronjob_statuses_are_watched_on_the_emulator() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if cluster
        .emulator_only("job_and_cronjob_statuses_are_watched_on_the_emulator")
        .is_none()
    {
        return;
    }
    let c = &cluster.client;
    let ns = cluster.namespace("batch").await;
    create_runbook(
        c,
        &ns,
        "batch",
        json!({"selector": {}, "targetKinds": ["Job", "CronJob"],
            "triggers": [{"type": "JobFailed"}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    Api::<Job>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &job("report", "crashloop", 0))
        .await
        .unwrap();
    fail_job(c, &ns, "report", "DeadlineExceeded").await;
    let inc = wait_target_incident(c, &ns, TargetKind::Job, "report", "JobFailed").await;
    assert!(
        inc.spec.title.contains("JobFailed (DeadlineExceeded)"),
        "{}",
        inc.spec.title
    );

    Api::<CronJob>::namespaced(c.clone(), &ns)
        .create(
            &PostParams::default(),
            &cronjob("nightly", "0 0 1 1 *", "crashloop"),
        )
        .await
        .unwrap();
    job_from_cronjob(c, &ns, "nightly", "nightly-1").await;
    fail_job(c, &ns, "nightly-1", "BackoffLimitExceeded").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !incidents(c, &ns).await.iter().any(|i| i
            .spec
            .target
            .as_ref()
            .is_some_and(|t| t.kind == TargetKind::CronJob)),
        "one failed Job is not a streak"
    );
    job_from_cronjob(c, &ns, "nightly", "nightly-2").await;
    fail_job(c, &ns, "nightly-2", "BackoffLimitExceeded").await;
    wait_target_incident(c, &ns, TargetKind::CronJob, "nightly", "JobFailed").await;
    op.stop().await.unwrap();
}

/// Without the built-in policy, nothing is kept of a workload no Runbook
/// covers; a Runbook created later still sees its pods at once (the pod
/// watches list again), even a pod that never changes again (Running,
/// never Ready). Both back ends.
#[tokio::test]
async fn a_runbook_created_later_sees_the_pods_that_were_not_kept() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let c = &cluster.client;
    let ns = cluster.namespace("late").await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--builtin-policy", "false"],
    )
    .await;
    Api::<Deployment>::namespaced(c.clone(), &ns)
        .create(&PostParams::default(), &deployment("late", 1, "unready"))
        .await
        .unwrap();
    // The pod is Running and never Ready, and then nothing changes.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(c.clone(), &ns);
    let running = wait_for(WAIT, || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    assert!(running.is_some(), "the pod runs within {WAIT:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(incidents(c, &ns).await.is_empty(), "no policy: no incident");
    create_runbook(
        c,
        &ns,
        "late",
        json!({"selector": {"matchLabels": {"app": "late"}},
            "triggers": [{"type": "NotReady", "for": "1s"}]}),
    )
    .await;
    wait_target_incident(c, &ns, TargetKind::Deployment, "late", "NotReady").await;
    op.stop().await.unwrap();
}

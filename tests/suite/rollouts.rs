//! BadRollout end to end: a Deployment that was healthy is rolled out to a
//! broken revision (crash on start, an image that cannot be pulled, a
//! missing ConfigMap); the operator opens the Incident from the rollout
//! itself, without waiting for CrashLoopBackOff's restart count or the
//! other triggers' `for:` windows, and the Runbook's Automatic RolloutUndo
//! puts the good revision back with exactly one Deployment write (counted
//! from the API server's audit log on the real back end). A rollout whose
//! pods crash once and then run, and a healthy rollout while pods churn,
//! open nothing. No timing is asserted: the speed is measured by
//! `examples/rollout_bench.rs` (docs/benchmarks.md "Rollouts").

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use kube_incident::api::{Incident, IncidentSource, StepState};
use serde_json::json;

use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::fixtures::{available, healthy_deployment, revision, set_behavior};
use testkit::incidents::{create_runbook, step_state, wait_status};

const WAIT: Duration = Duration::from_secs(120);

/// A Runbook for the Deployments labelled `app` in `apps`, whose only step
/// is an Automatic RolloutUndo: BadRollout is on by default. The triggers
/// are the defaults, so CrashLoopBackOff would wait for 3 restarts.
fn undo_runbook(apps: &[&str]) -> serde_json::Value {
    json!({
        "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": apps}]},
        "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}],
        "monitoring": {"window": "5s"}
    })
}

async fn incidents(client: &Client, ns: &str) -> Vec<Incident> {
    Api::<Incident>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

/// The detector's Incident about Deployment `name`, once it exists.
async fn detected(client: &Client, ns: &str, name: &str) -> Incident {
    wait_for(WAIT, || async {
        incidents(client, ns).await.into_iter().find(|i| {
            i.spec.source == IncidentSource::Detector
                && i.spec.target.as_ref().is_some_and(|t| t.name == name)
        })
    })
    .await
    .unwrap_or_else(|| panic!("the detector opens an Incident about {ns}/{name}"))
}

fn image(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

/// Roll `name` (healthy, 4 replicas) out as `behavior`; the Incident must
/// come from BadRollout, attributed to the rollout, and the Automatic
/// RolloutUndo must bring v1 back.
async fn undone_at_once(cluster: &Cluster, client: &Client, ns: &str, name: &str, behavior: &str) {
    let good = image(&available(client, ns, name, 4, WAIT).await);
    set_behavior(
        client,
        ns,
        name,
        behavior,
        &format!("registry.example/{name}:v2"),
    )
    .await;
    let inc = detected(client, ns, name).await;
    // The emulator's crashing container has no readiness probe and is
    // reported Ready for the 3 s it runs, so its rollout can complete
    // before the pods crash: BadRollout then treats revision 2 as seen
    // complete and RestartStorm opens the Incident (the kubelet stand-in's
    // crash-on-start pods are never Ready). There only the undo is checked.
    let real = !cluster.is_emulator();
    if real {
        assert!(
            inc.spec.title.contains("BadRollout (revision 2"),
            "{behavior}: opened by BadRollout, not a slower trigger: {}",
            inc.spec.title
        );
    }
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let s = wait_status(&api, &inc.name_any(), WAIT, "rollback", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    assert!(
        !real
            || s.timeline.iter().any(|e| e.message.contains(&format!(
                "rollout to revision 2 (app: registry.example/{name}:v1 →"
            ))),
        "{behavior}: the symptom names the rollout and its image change: {:#?}",
        s.timeline
    );
    let after = available(client, ns, name, 4, WAIT).await;
    assert_eq!(image(&after), good, "{behavior}: back on the good revision");
    assert_eq!(
        revision(&after),
        3,
        "{behavior}: the undo is one new revision"
    );
}

#[tokio::test]
async fn a_crash_on_start_rollout_is_undone_at_once_with_one_write() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("rollout-crash").await;
    create_runbook(&client, &ns, "web", undo_runbook(&["web"])).await;
    healthy_deployment(&client, &ns, "web", 4, WAIT).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    undone_at_once(&cluster, &client, &ns, "web", "crashloop").await;
    // One Incident, one Deployment write (the undo), from the audit log.
    assert_eq!(incidents(&client, &ns).await.len(), 1);
    cluster.assert_writes(&ns, "deployments", 1);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn image_pull_and_config_error_rollouts_are_undone_at_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("rollout-pull").await;
    create_runbook(&client, &ns, "apps", undo_runbook(&["pull", "config"])).await;
    healthy_deployment(&client, &ns, "pull", 4, WAIT).await;
    healthy_deployment(&client, &ns, "config", 4, WAIT).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    tokio::join!(
        undone_at_once(&cluster, &client, &ns, "pull", "imagepull"),
        undone_at_once(&cluster, &client, &ns, "config", "config-error"),
    );
    assert_eq!(incidents(&client, &ns).await.len(), 2);
    cluster.assert_writes(&ns, "deployments", 2);
    op.stop().await.unwrap();
}

/// Wait until `name` is rolled out at `rev` (every replica updated and
/// available), then give the operator a moment to have seen it.
async fn rolled_out(client: &Client, ns: &str, name: &str, rev: i64) {
    let d = available(client, ns, name, 4, WAIT).await;
    assert_eq!(revision(&d), rev);
    tokio::time::sleep(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_rollout_whose_pods_crash_once_opens_nothing() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("rollout-flaky").await;
    create_runbook(&client, &ns, "web", undo_runbook(&["web"])).await;
    healthy_deployment(&client, &ns, "web", 4, WAIT).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    // Every new pod crashes once, then runs (the kubelet stand-in waits out
    // a 10 s back-off first; the emulator restarts at once, as a real
    // kubelet does the first time).
    set_behavior(&client, &ns, "web", "flaky", "registry.example/web:v2").await;
    rolled_out(&client, &ns, "web", 2).await;
    let opened = incidents(&client, &ns).await;
    assert!(
        opened.is_empty(),
        "a crash-once rollout is not a bad rollout: {opened:#?}"
    );
    cluster.assert_writes(&ns, "deployments", 0);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_healthy_rollout_while_pods_churn_opens_nothing() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("rollout-churn").await;
    create_runbook(&client, &ns, "web", undo_runbook(&["web"])).await;
    healthy_deployment(&client, &ns, "web", 4, WAIT).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    // Churn: pods deleted while the rollout runs (replaced by the
    // ReplicaSet controller), on both revisions.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let churn = async {
        for _ in 0..6 {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                if let Some(p) = list.items.first() {
                    let _ = pods.delete(&p.name_any(), &DeleteParams::default()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    };
    let rollout = async {
        set_behavior(&client, &ns, "web", "healthy", "registry.example/web:v2").await;
    };
    tokio::join!(churn, rollout);
    rolled_out(&client, &ns, "web", 2).await;
    // A slow starter within its grace is not a bad rollout either.
    set_behavior(&client, &ns, "web", "slow", "registry.example/web:v3").await;
    let settled = wait_for(WAIT, || async {
        let d = available(&client, &ns, "web", 4, WAIT).await;
        (revision(&d) == 3).then_some(d)
    })
    .await;
    assert!(settled.is_some(), "the slow rollout completes");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let opened = incidents(&client, &ns).await;
    assert!(
        opened.is_empty(),
        "healthy and slow rollouts open nothing: {opened:#?}"
    );
    cluster.assert_writes(&ns, "deployments", 0);
    op.stop().await.unwrap();
}

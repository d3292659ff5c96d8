//! The whole loop on StatefulSets and DaemonSets (real back end: their
//! controllers run in kube-controller-manager): a rollout with a crash
//! image is detected by the operator on its own, and an Automatic
//! RolloutUndo granted by the governing Runbook puts the good
//! ControllerRevision back with exactly one workload write, counted from
//! the API server's audit log where its policy records the kind, else by
//! the server's own generation (see `Cluster::assert_one_spec_write`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kube_incident::api::{Incident, IncidentSource, Phase, StepState, TargetKind};
use serde_json::json;

use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::incidents::{create_runbook, step_state, wait_status};
use testkit::workloads::{
    daemonset, daemonset_ready, generation, set_template_behavior, statefulset, statefulset_ready,
};

const WAIT: Duration = Duration::from_secs(120);

/// A Runbook for `kind` workloads labelled `app: <app>`: crash loops count
/// from the first restart, and the rollout is undone at once.
fn undo_runbook(kind: &str, app: &str) -> serde_json::Value {
    json!({
        "selector": {"matchLabels": {"app": app}},
        "targetKinds": [kind],
        "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 1}],
        "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}],
        "monitoring": {"window": "5s"}
    })
}

/// The detector's Incident about `kind`/`name`, once it exists.
async fn detected(client: &Client, ns: &str, kind: TargetKind, name: &str) -> Incident {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    wait_for(WAIT, || async {
        api.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|i| {
                i.spec.source == IncidentSource::Detector
                    && i.spec
                        .target
                        .as_ref()
                        .is_some_and(|t| t.kind == kind && t.name == name)
            })
    })
    .await
    .unwrap_or_else(|| panic!("the detector opens an Incident about {kind} {ns}/{name}"))
}

/// The rollback step succeeds and the Incident resolves after monitoring.
async fn rolled_back_and_resolved(client: &Client, ns: &str, inc: &Incident) {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let s = wait_status(&api, &inc.name_any(), WAIT, "resolution", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Succeeded), "{s:#?}");
}

#[tokio::test]
async fn a_bad_statefulset_rollout_is_detected_and_rolled_back_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster
        .has_workload_controllers("a_bad_statefulset_rollout_is_detected_and_rolled_back_once")
    {
        return;
    }
    let client = cluster.client.clone();
    let ns = cluster.namespace("sts-loop").await;
    create_runbook(&client, &ns, "db", undo_runbook("StatefulSet", "db")).await;
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &statefulset("db", 3, "healthy", "Parallel"),
        )
        .await
        .unwrap();
    let good = statefulset_ready(&client, &ns, "db", 3, WAIT).await;
    let good_revision = good.status.and_then(|s| s.update_revision).unwrap();
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    set_template_behavior(
        &client,
        &ns,
        "StatefulSet",
        "db",
        "crashloop",
        "registry.example/db:v2",
    )
    .await;
    let gen_bad = generation::<StatefulSet>(&client, &ns, "db").await;
    let inc = detected(&client, &ns, TargetKind::StatefulSet, "db").await;
    rolled_back_and_resolved(&client, &ns, &inc).await;
    let after = statefulset_ready(&client, &ns, "db", 3, WAIT).await;
    assert_eq!(
        after.status.clone().and_then(|s| s.update_revision),
        Some(good_revision),
        "back on the good ControllerRevision"
    );
    let gen_after = after.metadata.generation.unwrap_or(0);
    cluster.assert_one_spec_write(&ns, "statefulsets", gen_bad, gen_after);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_daemonset_rollout_is_detected_and_rolled_back_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if !cluster.has_workload_controllers("a_bad_daemonset_rollout_is_detected_and_rolled_back_once")
    {
        return;
    }
    let client = cluster.client.clone();
    let ns = cluster.namespace("ds-loop").await;
    create_runbook(&client, &ns, "agent", undo_runbook("DaemonSet", "agent")).await;
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &daemonset("agent", "healthy"))
        .await
        .unwrap();
    let good = daemonset_ready(&client, &ns, "agent", WAIT).await;
    let good_images = images(&good);
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    set_template_behavior(
        &client,
        &ns,
        "DaemonSet",
        "agent",
        "crashloop",
        "registry.example/agent:v2",
    )
    .await;
    let gen_bad = generation::<DaemonSet>(&client, &ns, "agent").await;
    let inc = detected(&client, &ns, TargetKind::DaemonSet, "agent").await;
    rolled_back_and_resolved(&client, &ns, &inc).await;
    let after = daemonset_ready(&client, &ns, "agent", WAIT).await;
    assert_eq!(images(&after), good_images, "back on the good template");
    let gen_after = after.metadata.generation.unwrap_or(0);
    cluster.assert_one_spec_write(&ns, "daemonsets", gen_bad, gen_after);
    op.stop().await.unwrap();
}

fn images(d: &DaemonSet) -> Vec<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

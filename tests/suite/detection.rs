//! Detection end to end: simulated workloads break, the operator opens
//! exactly one Incident per workload, attributes, dedups, resolves, reopens.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use kube_incident::api::{Incident, IncidentSource, Phase, Runbook, Severity, TargetKind};
use serde_json::json;

use crate::harness::{wait_for, Cluster, RunningOperator};

const WAIT: Duration = Duration::from_secs(60);

use testkit::fixtures::healthy_deployment;
pub use testkit::fixtures::{deployment, set_behavior};
use testkit::incidents::create_runbook;

async fn incidents(client: &Client, ns: &str) -> Vec<Incident> {
    Api::<Incident>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

async fn wait_incidents(
    client: &Client,
    ns: &str,
    what: &str,
    pred: impl Fn(&[Incident]) -> bool,
) -> Vec<Incident> {
    match wait_for(WAIT, || async {
        let list = incidents(client, ns).await;
        pred(&list).then_some(list)
    })
    .await
    {
        Some(l) => l,
        None => panic!(
            "timed out waiting for {what}: {:#?}",
            incidents(client, ns).await
        ),
    }
}

#[tokio::test]
async fn crashloop_opens_one_incident_with_honest_mttd() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("detect").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    healthy_deployment(&cluster.client, &ns, "checkout", 4, WAIT).await;
    assert!(
        incidents(&cluster.client, &ns).await.is_empty(),
        "a healthy deployment opens nothing"
    );

    set_behavior(
        &cluster.client,
        &ns,
        "checkout",
        "crashloop",
        "registry.example/checkout:v2",
    )
    .await;
    let list = wait_incidents(&cluster.client, &ns, "one incident", |l| {
        l.len() == 1 && l[0].status.as_ref().is_some_and(|s| s.opened_at.is_some())
    })
    .await;
    let name = list[0].metadata.name.clone().unwrap();
    // The first symptom may be the restart storm; the crash loop follows.
    let list = wait_incidents(&cluster.client, &ns, "the CrashLoopBackOff symptom", |l| {
        l[0].status.as_ref().is_some_and(|s| {
            s.timeline
                .iter()
                .any(|e| e.message.starts_with("CrashLoopBackOff: "))
        })
    })
    .await;
    let inc = &list[0];
    assert_eq!(inc.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(inc.spec.source, IncidentSource::Detector);
    let target = inc.spec.target.as_ref().unwrap();
    assert_eq!(
        (target.kind, target.name.as_str()),
        (TargetKind::Deployment, "checkout")
    );
    assert!(inc
        .metadata
        .labels
        .as_ref()
        .unwrap()
        .contains_key("kubeincident.io/fingerprint"));
    let s = inc.status.as_ref().unwrap();
    let first = s.first_observed_at.as_ref().expect("firstObservedAt").0;
    assert!(
        first <= s.opened_at.as_ref().unwrap().0,
        "trouble was visible before the incident opened"
    );

    // Still exactly one after the episode goes on for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(incidents(&cluster.client, &ns).await.len(), 1);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn many_failing_pods_one_incident_many_deployments_many_incidents() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("burst").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("big", 40, "crashloop"))
        .await
        .unwrap();
    for i in 0..8 {
        api.create(
            &PostParams::default(),
            &deployment(&format!("svc-{i}"), 2, "imagepull"),
        )
        .await
        .unwrap();
    }
    // ImagePullBackOff has a 1m grace by default; the crashloop fires first.
    let list = wait_incidents(&cluster.client, &ns, "the crashloop incident", |l| {
        l.iter()
            .any(|i| i.spec.target.as_ref().is_some_and(|t| t.name == "big"))
    })
    .await;
    let big: Vec<_> = list
        .iter()
        .filter(|i| i.spec.target.as_ref().unwrap().name == "big")
        .collect();
    assert_eq!(
        big.len(),
        1,
        "40 failing pods of one Deployment yield one Incident"
    );
    op.stop().await.unwrap();
}

#[tokio::test]
async fn restart_and_second_replica_never_duplicate() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("dedup").await;
    // Two replicas at once (no leader election here: the deterministic name must hold).
    let a = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let b = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("web", 3, "oom"))
        .await
        .unwrap();
    wait_incidents(&cluster.client, &ns, "an incident", |l| !l.is_empty()).await;
    a.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Restart mid-episode.
    let c = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = incidents(&cluster.client, &ns).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    b.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test]
async fn ignore_label_and_paused_runbook() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("ignore").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let mut ignored = deployment("ignored", 2, "crashloop");
    ignored
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("kubeincident.io/ignore".into(), "true".into());
    api.create(&PostParams::default(), &ignored).await.unwrap();
    create_runbook(
        &cluster.client,
        &ns,
        "quiet",
        json!({"selector": {"matchLabels": {"app": "quiet"}}, "paused": true}),
    )
    .await;
    api.create(&PostParams::default(), &deployment("quiet", 2, "crashloop"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &deployment("loud", 2, "crashloop"))
        .await
        .unwrap();
    let list = wait_incidents(&cluster.client, &ns, "the loud incident", |l| !l.is_empty()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list2 = incidents(&cluster.client, &ns).await;
    let names: Vec<_> = list2
        .iter()
        .map(|i| i.spec.target.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(names, vec!["loud".to_string()], "{list:#?}");
    // The paused Runbook reports Ready with reason Paused and counts its workload.
    let rb = wait_for(WAIT, || async {
        let rb = Api::<Runbook>::namespaced(cluster.client.clone(), &ns)
            .get("quiet")
            .await
            .ok()?;
        let s = rb.status.clone()?;
        (s.matched_workloads == Some(1)).then_some(s)
    })
    .await
    .expect("runbook status");
    assert!(rb
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Paused"));
    op.stop().await.unwrap();
}

#[tokio::test]
async fn recovers_resolves_and_reopens_within_the_window() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("reopen").await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--monitoring-window", "SEV1=2s,SEV2=2s,SEV3=2s,SEV4=2s"],
    )
    .await;
    healthy_deployment(&cluster.client, &ns, "api", 2, WAIT).await;
    set_behavior(
        &cluster.client,
        &ns,
        "api",
        "crashloop",
        "registry.example/api:v2",
    )
    .await;
    let list = wait_incidents(&cluster.client, &ns, "an incident", |l| l.len() == 1).await;
    let name = list[0].metadata.name.clone().unwrap();
    // Fix it (a new rollout of a healthy template).
    set_behavior(
        &cluster.client,
        &ns,
        "api",
        "healthy",
        "registry.example/api:v3",
    )
    .await;
    let list = wait_incidents(&cluster.client, &ns, "auto-resolution", |l| {
        l[0].status
            .as_ref()
            .is_some_and(|s| s.phase == Some(Phase::Resolved))
    })
    .await;
    let s = list[0].status.as_ref().unwrap();
    assert!(s
        .conditions
        .iter()
        .any(|c| c.type_ == "Resolved" && c.reason == "Recovered"));
    // Break it again: the same Incident reopens.
    set_behavior(
        &cluster.client,
        &ns,
        "api",
        "crashloop",
        "registry.example/api:v4",
    )
    .await;
    let list = wait_incidents(&cluster.client, &ns, "reopen", |l| {
        l.len() == 1
            && l[0]
                .status
                .as_ref()
                .is_some_and(|s| s.occurrences == Some(2) && s.phase != Some(Phase::Resolved))
    })
    .await;
    assert_eq!(list[0].metadata.name.as_deref(), Some(name.as_str()));
    op.stop().await.unwrap();
}

#[tokio::test]
async fn runbook_tenancy_and_severity_rules() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("tenant").await;
    let other = cluster.namespace("other").await;
    // A Runbook in another namespace with a namespaceSelector must not apply here.
    create_runbook(
        &cluster.client,
        &other,
        "sneaky",
        json!({"selector": {}, "namespaceSelector": {}, "severity": {"default": "SEV1"}, "paused": false}),
    )
    .await;
    create_runbook(
        &cluster.client,
        &ns,
        "shop",
        json!({"selector": {"matchLabels": {"app": "shop"}}, "severity": {"default": "SEV4", "rules": []},
               "triggers": [{"type": "OOMKilled"}]}),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("shop", 2, "oom"))
        .await
        .unwrap();
    let list = wait_incidents(&cluster.client, &ns, "an incident", |l| !l.is_empty()).await;
    assert_eq!(
        list[0].spec.severity,
        Severity::SEV4,
        "the namespace's own Runbook decides"
    );
    assert_eq!(
        list[0].spec.runbook_ref.as_ref().map(|r| r.name.as_str()),
        Some("shop")
    );
    op.stop().await.unwrap();
}

/// Every trigger, each on its own Deployment, with a Runbook that shortens
/// the grace periods so the test takes seconds.
#[tokio::test]
async fn every_trigger_opens_an_incident() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("triggers").await;
    create_runbook(
        &cluster.client,
        &ns,
        "fast",
        json!({
            "selector": {},
            "triggers": [
                {"type": "CrashLoopBackOff", "minRestarts": 2},
                {"type": "ImagePullBackOff", "for": "1s"},
                {"type": "OOMKilled"},
                {"type": "CreateContainerConfigError", "for": "1s"},
                {"type": "RestartStorm", "restarts": 3, "window": "10m"},
                {"type": "Unavailable", "minUnavailableRatio": "0.5", "for": "1s"},
                {"type": "ProgressDeadlineExceeded"},
                {"type": "Unschedulable", "for": "1s"},
                {"type": "NotReady", "for": "1s"}
            ]
        }),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let cases = [
        ("crash", "crashloop", "CrashLoopBackOff"),
        ("pull", "imagepull", "ImagePullBackOff"),
        ("oom", "oom", "OOMKilled"),
        ("config", "config-error", "CreateContainerConfigError"),
        ("sched", "unschedulable", "Unschedulable"),
        ("unready", "unready", "NotReady"),
    ];
    for (name, behavior, _) in cases {
        api.create(&PostParams::default(), &deployment(name, 2, behavior))
            .await
            .unwrap();
    }
    // A rollout that never becomes ready exceeds its (short) progress deadline.
    let mut stuck = deployment("stuck", 2, "healthy");
    stuck.spec.as_mut().unwrap().progress_deadline_seconds = Some(20);
    api.create(&PostParams::default(), &stuck).await.unwrap();
    wait_for(WAIT, || async {
        let d = api.get("stuck").await.ok()?;
        (d.status?.available_replicas? == 2).then_some(())
    })
    .await
    .expect("stuck starts healthy");
    set_behavior(
        &cluster.client,
        &ns,
        "stuck",
        "unready",
        "registry.example/stuck:v2",
    )
    .await;

    let symptom_of = |l: &[Incident], target: &str, trigger: &str| {
        l.iter().any(|i| {
            i.spec.target.as_ref().is_some_and(|t| t.name == target)
                && i.status.as_ref().is_some_and(|s| {
                    s.timeline
                        .iter()
                        .any(|e| e.message.starts_with(&format!("{trigger}: ")))
                })
        })
    };
    let list = wait_incidents(&cluster.client, &ns, "an incident per trigger", |l| {
        cases.iter().all(|(n, _, t)| symptom_of(l, n, t))
            && symptom_of(l, "stuck", "ProgressDeadlineExceeded")
            && symptom_of(l, "crash", "RestartStorm")
            && (symptom_of(l, "sched", "Unavailable") || symptom_of(l, "unready", "Unavailable"))
    })
    .await;
    // One incident per workload.
    let mut targets: Vec<_> = list
        .iter()
        .map(|i| i.spec.target.as_ref().unwrap().name.clone())
        .collect();
    targets.sort();
    let mut dedup = targets.clone();
    dedup.dedup();
    assert_eq!(targets, dedup, "one incident per workload");
    op.stop().await.unwrap();
}

//! Mitigations end to end on the emulated cluster with the workload
//! simulation: the bad-rollout loop, each executor against Kubernetes
//! semantics (revisions and ReplicaSet re-use, HPA, env), the approval gate,
//! dry-run, tenancy, faults and an operator stopped in the middle of a
//! step, each converging with exactly one write of the workload.

use std::time::Duration;
use testkit::CreateGranted;

use emulator::{FaultAction, FaultRule};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_incident::api::{Incident, Phase, Runbook, StepState, TimelineType};
use serde_json::json;

use crate::detection::{deployment, set_behavior};
use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::fixtures::{available, bad_rollout, revision};
use testkit::incidents::{create_runbook, incident, runbook, step_state, wait_status};

const WAIT: Duration = Duration::from_secs(60);

/// Successful writes of `resource` in `ns` by kube-incident (not
/// subresources): the emulator's write log, or the real API server's audit
/// log of the operator's user. Panics where they cannot be counted.
fn our_writes(cluster: &Cluster, ns: &str, resource: &str) -> usize {
    cluster
        .writes(ns, resource)
        .expect("writes are counted (emulator write log or audit log)")
}

async fn owned_replica_sets(client: &Client, ns: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn bad_rollout_detected_undone_recovered_resolved() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("undo").await;
    let runbooks: Api<Runbook> = Api::namespaced(cluster.client.clone(), &ns);
    let rb = runbook(
        "checkout",
        json!({
            "selector": {"matchLabels": {"app": "checkout"}},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 2}],
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic",
                             "when": {"rolloutWithin": "30m"}}],
            "monitoring": {"window": "3s"}
        }),
    );
    runbooks.create(&PostParams::default(), &rb).await.unwrap();
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    bad_rollout(&cluster.client, &ns, "checkout", 3, WAIT).await;

    let incidents: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    let name = wait_for(WAIT, || async {
        let l = incidents.list(&ListParams::default()).await.ok()?;
        l.items.first().and_then(|i| i.metadata.name.clone())
    })
    .await
    .expect("an incident opens");
    // The plan is a snapshot of the Runbook's steps.
    let inc = incidents.get(&name).await.unwrap();
    assert_eq!(inc.spec.mitigations, rb.spec.mitigations);
    runbooks
        .patch(
            "checkout",
            &PatchParams::default(),
            // (a step added; removing `rollback` would revoke it for the
            // Incident too: a step runs only while its Runbook grants it).
            &Patch::Merge(json!({"spec": {"mitigations": [
                {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic",
                 "when": {"rolloutWithin": "30m"}},
                {"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]}})),
        )
        .await
        .unwrap();

    let s = wait_status(&incidents, &name, WAIT, "resolution after the undo", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    let step = &s.mitigations[0];
    assert_eq!(step.state, StepState::Succeeded, "{step:#?}");
    assert_eq!(step.before.get("revision").map(String::as_str), Some("2"));
    assert_eq!(step.intent.get("toRevision").map(String::as_str), Some("1"));
    assert_eq!(step.after.get("revision").map(String::as_str), Some("3"));
    assert!(s.mitigated_at.is_some());
    let types: Vec<TimelineType> = s.timeline.iter().map(|e| e.type_).collect();
    for t in [
        TimelineType::Opened,
        TimelineType::MitigationStarted,
        TimelineType::MitigationSucceeded,
        TimelineType::Resolved,
    ] {
        assert!(types.contains(&t), "{t:?} missing from {types:?}");
    }
    // The Runbook edit did not change the incident in flight.
    let inc = incidents.get(&name).await.unwrap();
    assert_eq!(inc.spec.mitigations, rb.spec.mitigations);

    // kubectl semantics: revision 1's ReplicaSet is re-used as revision 3.
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("checkout")
        .await
        .unwrap();
    assert_eq!(revision(&d), 3);
    let image = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("registry.example/checkout:v1"));
    let last = d.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        last.get("kubeincident.io/last-action").map(String::as_str),
        Some(format!("{name}/rollback: RolloutUndo").as_str())
    );
    assert_eq!(owned_replica_sets(&cluster.client, &ns).await.len(), 2);
    cluster.assert_writes(&ns, "deployments", 1);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn manual_step_waits_for_approval_then_runs() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("approve").await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV2=2s"],
    )
    .await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident(
            "web-bad",
            json!({"title": "web crash-loops", "severity": "SEV2",
                   "target": {"kind": "Deployment", "name": "web"},
                   "mitigations": [{"name": "rollback", "action": "RolloutUndo"}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "web-bad", WAIT, "AwaitingApproval", |s| {
        step_state(s, 0) == Some(StepState::AwaitingApproval)
    })
    .await;
    assert!(s
        .conditions
        .iter()
        .any(|c| c.type_ == "AwaitingApproval" && c.status == "True"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        our_writes(&cluster, &ns, "deployments"),
        0,
        "nothing runs unapproved"
    );

    let patch = kube_incident::cli::commands::approve_patch(0, "rollback", "alice");
    api.patch(
        "web-bad",
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "web-bad", WAIT, "resolution", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Succeeded));
    assert!(s.mitigations[0].approved_at.is_some());
    cluster.assert_writes(&ns, "deployments", 1);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn dry_run_records_the_plan_and_changes_nothing() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("dryrun").await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--dry-run"],
    )
    .await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    let before = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident(
            "web-bad",
            json!({"title": "web crash-loops", "severity": "SEV2",
                   "target": {"kind": "Deployment", "name": "web"},
                   "mitigations": [
                       {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"},
                       {"name": "more", "action": "Scale", "replicas": 5, "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "web-bad", WAIT, "both steps planned", |s| {
        step_state(s, 1) == Some(StepState::Skipped)
    })
    .await;
    let m = &s.mitigations[0];
    assert_eq!(m.state, StepState::Skipped);
    assert!(
        m.message
            .contains("would have roll back web from revision 2 to revision 1"),
        "{}",
        m.message
    );
    assert_eq!(m.intent.get("dryRun").map(String::as_str), Some("true"));
    assert!(s.mitigations[1]
        .message
        .contains("would have scale web from 3 to 5"));
    let after = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, before.metadata.generation);
    cluster.assert_writes(&ns, "deployments", 0);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_have_clear_reasons_and_stay_in_namespace() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("refuse").await;
    let other = cluster.namespace("other").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("fresh", 2, "healthy"))
        .await
        .unwrap();
    let mut paused = deployment("paused", 2, "healthy");
    paused.spec.as_mut().unwrap().paused = Some(true);
    deps.create(&PostParams::default(), &paused).await.unwrap();
    // Only in the other namespace.
    Api::<Deployment>::namespaced(cluster.client.clone(), &other)
        .create(
            &PostParams::default(),
            &deployment("elsewhere", 2, "healthy"),
        )
        .await
        .unwrap();
    available(&cluster.client, &ns, "fresh", 2, WAIT).await;

    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    for (name, target, step) in [
        (
            "no-history",
            "fresh",
            json!({"name": "undo", "action": "RolloutUndo", "approval": "Automatic"}),
        ),
        (
            "no-rev-9",
            "fresh",
            json!({"name": "undo", "action": "RolloutUndo", "toRevision": 9, "approval": "Automatic"}),
        ),
        (
            "paused",
            "paused",
            json!({"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}),
        ),
        (
            "tenancy",
            "elsewhere",
            json!({"name": "more", "action": "Scale", "replicas": 4, "approval": "Automatic"}),
        ),
        (
            "no-container",
            "fresh",
            json!({"name": "flag", "action": "SetEnv", "container": "nope", "env": [{"name": "A", "value": "1"}], "approval": "Automatic"}),
        ),
    ] {
        api.create_granted(
            &PostParams::default(),
            &incident(
                name,
                json!({"title": name, "severity": "SEV3",
                "target": {"kind": "Deployment", "name": target}, "mitigations": [step]}),
            ),
        )
        .await
        .unwrap();
    }
    for (name, expect) in [
        ("no-history", "no rollout history found"),
        ("no-rev-9", "unable to find specified revision 9"),
        ("paused", "can't restart paused deployment"),
        ("tenancy", "not found in namespace"),
        ("no-container", "container \"nope\" not found"),
    ] {
        let s = wait_status(&api, name, WAIT, "the step to fail", |s| {
            step_state(s, 0) == Some(StepState::Failed)
        })
        .await;
        assert!(
            s.mitigations[0].message.contains(expect),
            "{name}: {}",
            s.mitigations[0].message
        );
        assert!(s
            .conditions
            .iter()
            .any(|c| c.type_ == "MitigationFailed" && c.status == "True"));
    }
    cluster.assert_writes(&ns, "deployments", 0);
    cluster.assert_writes(&other, "deployments", 0);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn scale_and_set_env_revert_on_resolve_exactly() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("revert").await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV3=1h"],
    )
    .await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    let mut d = deployment("web", 2, "healthy");
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .env = Some(vec![serde_json::from_value(
        json!({"name": "MODE", "value": "fast"}),
    )
    .unwrap()]);
    deps.create(&PostParams::default(), &d).await.unwrap();
    available(&cluster.client, &ns, "web", 2, WAIT).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident(
            "cap",
            json!({"title": "more capacity", "severity": "SEV3",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "more", "action": "Scale", "replicas": 4, "maxReplicas": 6,
                             "revertOnResolve": true, "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "cap", WAIT, "scale succeeded", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    assert_eq!(
        s.mitigations[0].before.get("replicas").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
    api.patch(
        "cap",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"resolution": {"by": "alice", "summary": "load is back to normal"}}}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "cap", WAIT, "scale reverted", |s| {
        step_state(s, 0) == Some(StepState::Reverted)
    })
    .await;
    assert!(s
        .timeline
        .iter()
        .any(|e| e.type_ == TimelineType::MitigationReverted));
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
    available(&cluster.client, &ns, "web", 2, WAIT).await;

    // SetEnv: one variable existed, one did not; a revert restores both exactly.
    api.create_granted(
        &PostParams::default(),
        &incident("flags", json!({"title": "kill switch", "severity": "SEV3",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "flag", "action": "SetEnv",
                             "env": [{"name": "MODE", "value": "safe"}, {"name": "NEW_CHECKOUT", "value": "false"}],
                             "revertOnResolve": true, "approval": "Automatic"}]})),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "flags", WAIT, "set env succeeded", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    let prev: Vec<(String, Option<String>)> = s.mitigations[0]
        .previous_env
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        prev,
        vec![
            ("MODE".into(), Some("fast".into())),
            ("NEW_CHECKOUT".into(), None)
        ]
    );
    api.patch(
        "flags",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"resolution": {"by": "alice", "summary": "fixed"}}})),
    )
    .await
    .unwrap();
    wait_status(&api, "flags", WAIT, "env reverted", |s| {
        step_state(s, 0) == Some(StepState::Reverted)
    })
    .await;
    let env = deps
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let env: Vec<(String, Option<String>)> = env.into_iter().map(|e| (e.name, e.value)).collect();
    assert_eq!(env, vec![("MODE".into(), Some("fast".into()))]);

    // Someone changes the value after us: no revert, and the reason is recorded.
    api.create_granted(
        &PostParams::default(),
        &incident(
            "flags2",
            json!({"title": "kill switch again", "severity": "SEV3",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "flag", "action": "SetEnv", "container": "app",
                             "env": [{"name": "MODE", "value": "safe"}],
                             "revertOnResolve": true, "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    wait_status(&api, "flags2", WAIT, "set env succeeded", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    deps.patch("web", &PatchParams::apply("alice").force(), &Patch::Apply(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "MODE", "value": "manual"}]}]}}}
    })))
    .await
    .unwrap();
    // Recorded as an external change during monitoring (before the
    // resolution: a resolved Incident no longer watches its workload)...
    wait_status(&api, "flags2", WAIT, "external change recorded", |s| {
        s.timeline
            .iter()
            .any(|e| e.type_ == TimelineType::ExternalChange && e.message.contains("alice"))
    })
    .await;
    api.patch(
        "flags2",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"resolution": {"by": "alice", "summary": "fixed"}}})),
    )
    .await
    .unwrap();
    // ...then declined on resolve.
    let s = wait_status(&api, "flags2", WAIT, "revert declined", |s| {
        s.mitigations
            .first()
            .is_some_and(|m| m.after.contains_key("revert"))
    })
    .await;
    assert!(s
        .timeline
        .iter()
        .any(|e| e.type_ == TimelineType::ExternalChange && e.message.contains("alice")));
    assert!(
        s.mitigations[0].after["revert"].contains("no longer"),
        "{:?}",
        s.mitigations[0].after
    );
    let writes_before = our_writes(&cluster, &ns, "deployments");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(our_writes(&cluster, &ns, "deployments"), writes_before);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn scale_under_an_hpa_raises_min_replicas_or_refuses() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("hpa").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("web", 2, "healthy"))
        .await
        .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(cluster.client.clone(), &ns);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 2, "maxReplicas": 5}
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    available(&cluster.client, &ns, "web", 2, WAIT).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident("too-many", json!({"title": "too many", "severity": "SEV3",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "more", "action": "Scale", "replicas": 8, "approval": "Automatic"}]})),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "too-many", WAIT, "refusal", |s| {
        step_state(s, 0) == Some(StepState::Failed)
    })
    .await;
    assert!(
        s.mitigations[0].message.contains("maxReplicas 5"),
        "{}",
        s.mitigations[0].message
    );

    api.create_granted(
        &PostParams::default(),
        &incident("more", json!({"title": "more", "severity": "SEV3",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "more", "action": "Scale", "replicas": 4, "approval": "Automatic"}]})),
    )
    .await
    .unwrap();
    wait_for(WAIT, || async {
        let h = hpas.get("web").await.ok()?;
        (h.spec?.min_replicas == Some(4)).then_some(())
    })
    .await
    .expect("the HPA's minReplicas is raised");
    assert_eq!(
        deps.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2),
        "the Deployment is left to the HPA"
    );
    cluster.assert_writes(&ns, "deployments", 0);
    cluster.assert_writes(&ns, "horizontalpodautoscalers", 1);
    // The emulator has no HPA controller: act as it would.
    deps.patch(
        "web",
        &PatchParams::apply("horizontal-pod-autoscaler").force(),
        &Patch::Apply(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 4}}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "more", WAIT, "verified", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    assert_eq!(
        s.mitigations[0]
            .before
            .get("hpaMinReplicas")
            .map(String::as_str),
        Some("2")
    );
    op.stop().await.unwrap();
}

#[tokio::test]
async fn rollout_restart_sets_restarted_at_and_rolls_out() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("restart").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("web", 2, "healthy"))
        .await
        .unwrap();
    available(&cluster.client, &ns, "web", 2, WAIT).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident("stuck", json!({"title": "stuck workers", "severity": "SEV3",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]})),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "stuck", WAIT, "restart verified", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    let d = deps.get("web").await.unwrap();
    let at = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()["kubectl.kubernetes.io/restartedAt"]
        .clone();
    assert_eq!(s.mitigations[0].intent.get("restartedAt"), Some(&at));
    assert_eq!(revision(&deps.get("web").await.unwrap()), 2);
    cluster.assert_writes(&ns, "deployments", 1);
    op.stop().await.unwrap();
}

/// Declare an approved RolloutUndo incident on a bad rollout of `web`.
async fn declare_undo(api: &Api<Incident>) {
    api.create_granted(
        &PostParams::default(),
        &incident(
            "web-bad",
            json!({"title": "web crash-loops", "severity": "SEV2",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approvedBy": "alice"}]}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn killed_after_intent_before_write_applies_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let Some(emu) = cluster.emulator_only("fault injection") else {
        return;
    };
    let ns = cluster.namespace("kill1").await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    // Every patch of the Deployment fails: the intent is recorded, the write never lands.
    let rule = emu.faults().add(
        FaultRule::new(FaultAction::InternalError)
            .verb("patch")
            .resource("deployments")
            .namespace(&ns),
    );
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    declare_undo(&api).await;
    let s = wait_status(&api, "web-bad", WAIT, "intent recorded", |s| {
        step_state(s, 0) == Some(StepState::Running)
    })
    .await;
    assert_eq!(
        s.mitigations[0]
            .intent
            .get("toRevision")
            .map(String::as_str),
        Some("1")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    op.stop().await.unwrap();
    cluster.assert_writes(&ns, "deployments", 0);
    emu.faults().remove(rule);

    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV2=2s"],
    )
    .await;
    wait_status(&api, "web-bad", WAIT, "resolved", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    cluster.assert_writes(&ns, "deployments", 1);
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(revision(&d), 3, "one rollback: revision 2 -> 3");
    op.stop().await.unwrap();
}

#[tokio::test]
async fn killed_after_write_before_success_never_writes_again() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let Some(emu) = cluster.emulator_only("fault injection") else {
        return;
    };
    let ns = cluster.namespace("kill2").await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    declare_undo(&api).await;
    // As soon as the workload write lands, no status write gets through.
    wait_for(WAIT, || async {
        (our_writes(&cluster, &ns, "deployments") == 1).then_some(())
    })
    .await
    .expect("the undo is written");
    let rule = emu.faults().add(
        FaultRule::new(FaultAction::InternalError)
            .verb("patch")
            .resource("incidents")
            .namespace(&ns),
    );
    op.stop().await.unwrap();
    // A replayed reconcile with the same (stale) status must not act again.
    emu.faults().remove(rule);
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV2=2s"],
    )
    .await;
    let s = wait_status(&api, "web-bad", WAIT, "resolved", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Succeeded));
    cluster.assert_writes(&ns, "deployments", 1);
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(revision(&d), 3);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn conflicts_server_errors_and_dropped_watches_converge_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let Some(emu) = cluster.emulator_only("fault injection") else {
        return;
    };
    let ns = cluster.namespace("faults").await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    emu.faults().add(
        FaultRule::new(FaultAction::Conflict)
            .verb("patch")
            .resource("deployments")
            .namespace(&ns)
            .times(2),
    );
    emu.faults().add(
        FaultRule::new(FaultAction::InternalError)
            .verb("patch")
            .resource("deployments")
            .namespace(&ns)
            .times(2),
    );
    emu.faults().add(
        FaultRule::new(FaultAction::InternalError)
            .verb("patch")
            .resource("incidents")
            .subresource("status")
            .namespace(&ns)
            .times(2),
    );
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV2=2s"],
    )
    .await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    declare_undo(&api).await;
    wait_status(&api, "web-bad", WAIT, "running", |s| {
        step_state(s, 0) == Some(StepState::Running)
    })
    .await;
    emu.faults().drop_watches();
    emu.faults().force_watch_expiry(None);
    let s = wait_status(&api, "web-bad", WAIT, "resolved", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Succeeded));
    cluster.assert_writes(&ns, "deployments", 1);
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(revision(&d), 3);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn external_revert_is_recorded_and_not_fought() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("gitops").await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV2=1h"],
    )
    .await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident(
            "web-bad",
            json!({"title": "web crash-loops", "severity": "SEV2",
            "target": {"kind": "Deployment", "name": "web"},
            "mitigations": [
                {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"},
                {"name": "rollback-again", "action": "RolloutUndo", "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    wait_status(&api, "web-bad", WAIT, "undo succeeded", |s| {
        step_state(s, 0) == Some(StepState::Succeeded)
    })
    .await;
    // A GitOps controller's self-heal puts the bad version back.
    set_behavior(
        &cluster.client,
        &ns,
        "web",
        "crashloop",
        "registry.example/web:v2",
    )
    .await;
    let s = wait_status(&api, "web-bad", WAIT, "the external change", |s| {
        s.timeline
            .iter()
            .any(|e| e.type_ == TimelineType::ExternalChange)
            && step_state(s, 1) == Some(StepState::Skipped)
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Failed));
    assert!(s
        .conditions
        .iter()
        .any(|c| c.type_ == "MitigationFailed" && c.status == "True"));
    assert!(
        s.mitigations[1].message.contains("does not fight"),
        "{}",
        s.mitigations[1].message
    );
    assert_eq!(our_writes(&cluster, &ns, "deployments"), 1, "no fight");
    op.stop().await.unwrap();
}

#[tokio::test]
async fn cooldown_holds_the_next_action() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("cooldown").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("web", 2, "healthy"))
        .await
        .unwrap();
    available(&cluster.client, &ns, "web", 2, WAIT).await;
    create_runbook(
        &cluster.client,
        &ns,
        "web",
        json!({"selector": {"matchLabels": {"app": "web"}}, "limits": {"cooldown": "10m", "maxActionsPerHour": 5}}),
    )
    .await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    for (name, replicas) in [("first", 3), ("second", 4)] {
        api.create_granted(
            &PostParams::default(),
            &incident(name, json!({"title": name, "severity": "SEV3", "runbookRef": {"name": "web"},
                "target": {"kind": "Deployment", "name": "web"},
                "mitigations": [{"name": "more", "action": "Scale", "replicas": replicas, "approval": "Automatic"}]})),
        )
        .await
        .unwrap();
        if name == "first" {
            wait_status(&api, "first", WAIT, "first scale", |s| {
                step_state(s, 0) == Some(StepState::Succeeded)
            })
            .await;
        }
    }
    let s = wait_status(&api, "second", WAIT, "cooldown", |s| {
        s.mitigations
            .first()
            .is_some_and(|m| m.message.contains("cooldown"))
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Pending));
    cluster.assert_writes(&ns, "deployments", 1);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_change_between_intent_and_write_is_reported_not_overwritten() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let Some(emu) = cluster.emulator_only("fault injection") else {
        return;
    };
    let ns = cluster.namespace("race").await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    let rule = emu.faults().add(
        FaultRule::new(FaultAction::InternalError)
            .verb("patch")
            .resource("deployments")
            .namespace(&ns)
            .name("web"),
    );
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    declare_undo(&api).await;
    wait_status(&api, "web-bad", WAIT, "intent recorded", |s| {
        step_state(s, 0) == Some(StepState::Running)
    })
    .await;
    op.stop().await.unwrap();
    emu.faults().remove(rule);
    // Meanwhile a person ships v3 by hand.
    set_behavior(
        &cluster.client,
        &ns,
        "web",
        "healthy",
        "registry.example/web:v3",
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &["--detect=false"]).await;
    let s = wait_status(&api, "web-bad", WAIT, "the external change", |s| {
        step_state(s, 0) == Some(StepState::Failed)
    })
    .await;
    assert!(
        s.mitigations[0]
            .message
            .contains("changed by another manager"),
        "{}",
        s.mitigations[0].message
    );
    assert!(s
        .timeline
        .iter()
        .any(|e| e.type_ == TimelineType::ExternalChange));
    cluster.assert_writes(&ns, "deployments", 0);
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("registry.example/web:v3"));
    op.stop().await.unwrap();
}

#[tokio::test]
async fn runbook_dry_run_plans_from_detection_and_changes_nothing() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("rbdry").await;
    create_runbook(
        &cluster.client,
        &ns,
        "web",
        json!({
            "selector": {"matchLabels": {"app": "web"}},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 2}],
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}],
            "dryRun": true
        }),
    )
    .await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    bad_rollout(&cluster.client, &ns, "web", 3, WAIT).await;
    let incidents: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    let name = wait_for(WAIT, || async {
        let l = incidents.list(&ListParams::default()).await.ok()?;
        l.items.first().and_then(|i| i.metadata.name.clone())
    })
    .await
    .expect("an incident opens");
    let s = wait_status(&incidents, &name, WAIT, "the dry-run plan", |s| {
        step_state(s, 0) == Some(StepState::Skipped)
    })
    .await;
    let m = &s.mitigations[0];
    assert!(
        m.message.contains("/web is in dry-run")
            && m.message
                .contains("would have roll back web from revision 2 to revision 1"),
        "{}",
        m.message
    );
    assert_eq!(m.before.get("revision").map(String::as_str), Some("2"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.assert_writes(&ns, "deployments", 0);
    let d = Api::<Deployment>::namespaced(cluster.client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(revision(&d), 2);
    op.stop().await.unwrap();
}

//! Fencing ("Authority", points 4 and 5): a status computed from an old
//! copy of an Incident never overwrites a newer one (the reconciler's
//! server-side apply carries the resourceVersion it was computed from); a
//! deposed leader whose status write is still on its way does not make the
//! new leader act twice; evidence and post-mortem ConfigMaps are created,
//! never adopted.

use std::time::{Duration, Instant};

use emulator::{FaultAction, FaultRule};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kube_incident::api::{Incident, IncidentStatus, Phase, StepState};
use kube_incident::controller::{incident::write_status, status};
use serde_json::json;

use testkit::CreateGranted;

use crate::detection::set_behavior;
use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::fixtures::{bad_rollout, revision};
use testkit::incidents::lease_holder;
use testkit::incidents::{incident, step_state, wait_status};

const WAIT: Duration = Duration::from_secs(60);
const LEASE: &str = "kube-incident-fence";

async fn wait_holder(client: &Client, ns: &str, instance: &str) {
    wait_for(Duration::from_secs(15), || async {
        lease_holder(client, ns, LEASE)
            .await
            .filter(|h| h.starts_with(&format!("{instance}_")))
    })
    .await
    .unwrap_or_else(|| panic!("{instance} takes the lease"));
}

/// An operator replica with leader election on, its own client.
async fn replica(client: &Client, ns: &str, instance: &str) -> RunningOperator {
    RunningOperator::start(
        client,
        ns,
        &[
            "--detect=false",
            "--monitoring-window",
            "SEV2=2s",
            "--instance",
            instance,
            "--leader-elect",
            "--lease-name",
            LEASE,
            "--lease-namespace",
            ns,
            "--lease-duration",
            "2s",
            "--lease-renew-deadline",
            "1500ms",
            "--lease-retry-period",
            "200ms",
        ],
    )
    .await
}

/// A client of the emulator impersonating `user`, so that fault rules can
/// tell the replicas' requests apart.
fn client_as(url: &str, user: &str) -> Client {
    let mut config = kube::Config::new(url.parse().expect("emulator url"));
    config.read_timeout = None;
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).expect("client")
}

/// The old leader's status write is held in flight (8s) while it loses the
/// lease and the new leader runs the approved rollback: the late write
/// must not take the Incident back to before the rollback (with an
/// unfenced forced apply and no cancellation it landed and undid the
/// resolution: phase back to Identified, the step back to awaiting
/// approval, "no mitigation step left"): exactly one Deployment write, and
/// the Incident resolves and stays resolved. (How far back the late write
/// takes it depends on when it lands, so without the fence this fails in
/// most runs, not all.)
///
/// Emulator-only: it needs the emulator's fault injection to hold one
/// replica's request (a delaying proxy in front of the real server is
/// not part of the test kit); `stale_status_from_an_old_copy_is_refused_*`
/// proves the fencing itself on both back ends.
#[tokio::test]
async fn a_deposed_leaders_late_status_write_does_not_make_the_new_leader_act_twice() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let Some(emu) = cluster.emulator_only("a_deposed_leaders_late_status_write") else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("fence-late").await;
    bad_rollout(&client, &ns, "web", 2, WAIT).await;
    let a = replica(&client_as(&emu.url(), "op-a"), &ns, "op-a").await;
    wait_holder(&client, &ns, "op-a").await;
    let b = replica(&client_as(&emu.url(), "op-b"), &ns, "op-b").await;

    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
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
    .expect("incident created");
    wait_status(&api, "web-bad", WAIT, "AwaitingApproval", |s| {
        step_state(s, 0) == Some(StepState::AwaitingApproval)
    })
    .await;

    // The leader's next status write is held for 8s.
    const HELD: Duration = Duration::from_secs(8);
    let held = emu.faults().add(
        FaultRule::new(FaultAction::Latency(HELD))
            .verb("patch")
            .resource("incidents")
            .subresource("status")
            .namespace(&ns)
            .user("op-a"),
    );
    api.patch(
        "web-bad",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"acknowledgedBy": "alice"}})),
    )
    .await
    .expect("acknowledged");
    wait_for(Duration::from_secs(10), || async {
        (emu.faults().hits(held).unwrap_or(0) >= 1).then_some(())
    })
    .await
    .expect("the leader's status write (the acknowledgement) is in flight");
    let sent_at = Instant::now();
    // Now the leader cannot renew its lease: it steps down at its renew
    // deadline and the other replica takes over.
    emu.faults().add(
        FaultRule::new(FaultAction::InternalError)
            .verb("update")
            .resource("leases")
            .namespace(&ns)
            .user("op-a"),
    );
    wait_holder(&client, &ns, "op-b").await;
    assert!(
        sent_at.elapsed() < HELD,
        "the new leader took over while the old write was held"
    );
    let patch = kube_incident::cli::commands::approve_patch(0, "rollback", "alice");
    api.patch(
        "web-bad",
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .expect("approved");
    let s = wait_status(&api, "web-bad", WAIT, "resolution", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    assert_eq!(step_state(&s, 0), Some(StepState::Succeeded));
    // Past the moment the held write reached the server (and a reconcile
    // or two after it).
    let landed = HELD + Duration::from_secs(3);
    if let Some(rest) = landed.checked_sub(sent_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let s = api
        .get("web-bad")
        .await
        .expect("incident")
        .status
        .expect("status");
    assert_eq!(
        s.phase,
        Some(Phase::Resolved),
        "the late write did not undo the resolution: {s:#?}"
    );
    assert_eq!(step_state(&s, 0), Some(StepState::Succeeded), "{s:#?}");
    assert!(s.acknowledged_at.is_some(), "{s:#?}");
    cluster.assert_writes(&ns, "deployments", 1);
    let d = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("web")
        .await
        .expect("deployment");
    assert_eq!(revision(&d), 3, "one rollback: revision 2 -> 3");
    assert_eq!(
        a.handle
            .metrics
            .encode()
            .expect("metrics")
            .lines()
            .filter(|l| l.contains("mitigations_total") && l.contains("applied"))
            .count(),
        0,
        "the deposed leader applied nothing"
    );
    b.stop().await.expect("b stops");
    emu.faults().clear();
    a.stop().await.expect("a stops");
}

/// The reconciler's status apply carries the resourceVersion it was
/// computed from: written from an old copy of the Incident it gets 409
/// and changes nothing, so the intent another writer recorded survives.
/// Both back ends (as the operator's user on a real server).
#[tokio::test]
async fn stale_status_from_an_old_copy_is_refused_and_the_recorded_intent_survives() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let ns = cluster.namespace("fence-stale").await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
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
    .expect("incident created");
    let old = api.get("web-bad").await.expect("read");
    let op = &cluster.operator_client;
    let with_intent: IncidentStatus = serde_json::from_value(json!({
        "phase": "Mitigating",
        "mitigations": [{"name": "rollback", "state": "Running",
                         "startedAt": "2026-01-01T00:00:00Z",
                         "intent": {"action": "RolloutUndo", "toRevision": "1"}}],
    }))
    .expect("status");
    let rv = status::apply_if_unchanged(op, &old, &with_intent)
        .await
        .expect("the intent is recorded")
        .expect("from the current copy: written");
    assert_ne!(Some(rv.as_str()), old.metadata.resource_version.as_deref());

    // A status computed from the old copy: the step not started yet.
    let stale: IncidentStatus = serde_json::from_value(json!({
        "phase": "Investigating",
        "mitigations": [{"name": "rollback", "state": "Pending"}],
    }))
    .expect("status");
    let old_rv = old.resource_version().expect("resourceVersion");
    let written = write_status(op, &ns, "web-bad", &old_rv, &stale)
        .await
        .expect("a conflict is not an error");
    assert!(!written, "409: the Incident changed since the old copy");
    assert_eq!(
        status::apply_if_unchanged(op, &old, &stale)
            .await
            .expect("a conflict is not an error"),
        None
    );
    let now = api
        .get("web-bad")
        .await
        .expect("read")
        .status
        .expect("status");
    assert_eq!(now.phase, Some(Phase::Mitigating));
    assert_eq!(step_state(&now, 0), Some(StepState::Running));
    assert_eq!(
        now.mitigations[0]
            .intent
            .get("toRevision")
            .map(String::as_str),
        Some("1"),
        "the recorded intent survives: {now:#?}"
    );
    // From the current copy the same write goes through.
    assert!(write_status(op, &ns, "web-bad", &rv, &stale)
        .await
        .expect("written"));
}

/// Evidence is created, never adopted: a ConfigMap named
/// `<incident>-evidence` that kube-incident did not create is left alone
/// (no ownerReference added, so it is not garbage-collected with the
/// Incident), and the failure is an `EvidenceFailed` Event naming it. The
/// post-mortem the Incident does own is re-rendered when its spec changes.
/// Both back ends.
#[tokio::test]
async fn an_existing_configmap_is_never_adopted_and_an_owned_one_is_updated() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("fence-cm").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-bad-evidence", "labels": {"team": "payments"}},
        "data": {"settings": "keep me"},
    }))
    .expect("configmap");
    cms.create(&PostParams::default(), &theirs)
        .await
        .expect("someone else's ConfigMap");
    bad_rollout(&client, &ns, "web", 2, WAIT).await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--monitoring-window", "SEV2=2s"],
    )
    .await;
    // Evidence is collected for targets a Runbook governs.
    let rb: kube_incident::api::Runbook = serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}},
    }))
    .expect("runbook");
    Api::<kube_incident::api::Runbook>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &rb)
        .await
        .expect("runbook created");
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident(
            "web-bad",
            json!({"title": "web crash-loops", "severity": "SEV2",
                   "target": {"kind": "Deployment", "name": "web"}}),
        ),
    )
    .await
    .expect("incident created");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let failed = wait_for(WAIT, || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("EvidenceFailed"))
    })
    .await
    .expect("an EvidenceFailed Event");
    let note = failed.note.unwrap_or_default();
    assert!(
        note.contains(&format!("ConfigMap {ns}/web-bad-evidence already exists"))
            && note.contains("not owned by incident web-bad"),
        "{note}"
    );
    let cm = cms.get("web-bad-evidence").await.expect("still there");
    assert_eq!(cm.metadata.owner_references, None, "not adopted");
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("settings")
            .map(String::as_str),
        Some("keep me")
    );
    let inc = api.get("web-bad").await.expect("incident");
    assert_eq!(inc.status.and_then(|s| s.evidence_ref), None);

    // Resolved: the post-mortem draft is created (owned); a rootCause added
    // later re-renders it in place.
    set_behavior(&client, &ns, "web", "healthy", "registry.example/web:v3").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_for(WAIT, || async {
        let s = deployments.get("web").await.ok()?.status?;
        (s.available_replicas? == 2 && s.updated_replicas? == 2).then_some(())
    })
    .await
    .expect("web recovers");
    api.patch(
        "web-bad",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"resolution": {"by": "alice", "summary": "rolled forward"}}}),
        ),
    )
    .await
    .expect("resolve");
    let s = wait_status(&api, "web-bad", WAIT, "post-mortem", |s| {
        s.postmortem_ref.is_some()
    })
    .await;
    let pm_name = s.postmortem_ref.expect("ref").name;
    let pm = cms.get(&pm_name).await.expect("post-mortem");
    let inc = api.get("web-bad").await.expect("incident");
    assert_eq!(
        pm.metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].uid.clone()),
        inc.metadata.uid.clone()
    );
    api.patch(
        "web-bad",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"rootCause": "a config flag flipped in v2"}})),
    )
    .await
    .expect("root cause");
    let data = wait_for(WAIT, || async {
        let data = cms.get(&pm_name).await.ok()?.data?;
        data.values()
            .any(|v| v.contains("a config flag flipped in v2"))
            .then_some(data)
    })
    .await
    .expect("the post-mortem is re-rendered with the root cause");
    assert!(!data.is_empty());
    // The foreign ConfigMap outlives the Incident.
    api.delete("web-bad", &Default::default())
        .await
        .expect("deleted");
    wait_for(WAIT, || async {
        api.get_opt("web-bad")
            .await
            .ok()
            .and_then(|i| i.is_none().then_some(()))
    })
    .await
    .expect("the incident is gone");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cm = cms.get("web-bad-evidence").await.expect("kept");
    assert_eq!(cm.name_any(), "web-bad-evidence");
    op.stop().await.expect("stops");
}

//! The Incident lifecycle controller end to end.

use std::time::Duration;
use testkit::CreateGranted;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use kube_incident::api::{Incident, IncidentStatus, Phase, StepState};
use kube_incident::operator;
use serde_json::json;

use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::incidents::{events_for, incident, wait_incident};

const WAIT: Duration = Duration::from_secs(30);

fn cond(s: &IncidentStatus, type_: &str) -> Option<(String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let code = buf[9..12].parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test]
async fn refuses_to_start_without_crds() {
    if crate::harness::e2e() {
        eprintln!("skipped on a real cluster: it would need the CRDs uninstalled");
        return;
    }
    let Some(cluster) = Cluster::bare(false).await else {
        return;
    };
    let err = operator::check_crds(&cluster.client).await.unwrap_err();
    assert!(
        err.to_string().contains("CRDs are not installed"),
        "unexpected message: {err}"
    );
}

#[tokio::test]
async fn manual_incident_opens_goes_overdue_is_acknowledged_and_resolved() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let ns = cluster.namespace("lifecycle").await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--response-target", "SEV2=3s"],
    )
    .await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);

    api.create_granted(
        &PostParams::default(),
        &incident(
            "db-slow",
            json!({"title": "database is slow", "severity": "SEV2"}),
        ),
    )
    .await
    .unwrap();
    let inc = wait_incident(&api, "db-slow", WAIT, "the incident to open", |s| {
        s.opened_at.is_some()
    })
    .await;
    let s = inc.status.as_ref().unwrap();
    assert_eq!(s.phase, Some(Phase::Investigating));
    assert_eq!(
        inc.spec.source,
        kube_incident::api::IncidentSource::Manual,
        "schema default applied"
    );
    let opened = s.opened_at.as_ref().unwrap().0;
    assert_eq!(
        s.response_deadline.as_ref().unwrap().0,
        opened + jiff::SignedDuration::from_secs(3)
    );
    assert_eq!(s.observed_generation, inc.metadata.generation);
    // Status is written with server-side apply by our field manager.
    let managers = inc.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("kube-incident")
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref() == Some("status")),
        "managedFields: {managers:#?}"
    );

    // The response deadline passes: ResponseOverdue appears on time.
    let inc = wait_incident(&api, "db-slow", WAIT, "ResponseOverdue", |s| {
        cond(s, "ResponseOverdue").is_some_and(|(st, _)| st == "True")
    })
    .await;
    let overdue = inc.status.as_ref().unwrap();
    let at = overdue
        .conditions
        .iter()
        .find(|c| c.type_ == "ResponseOverdue")
        .unwrap()
        .last_transition_time
        .0;
    let late = at.duration_since(opened).as_secs_f64();
    assert!(
        (3.0..=6.0).contains(&late),
        "ResponseOverdue {late}s after opening; target 3s"
    );

    // Acknowledge.
    api.patch(
        "db-slow",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"acknowledgedBy": "alice"}})),
    )
    .await
    .unwrap();
    let inc = wait_incident(&api, "db-slow", WAIT, "acknowledgement", |s| {
        s.acknowledged_at.is_some()
    })
    .await;
    let s = inc.status.unwrap();
    assert_eq!(
        cond(&s, "Acknowledged"),
        Some(("True".into(), "Acknowledged".into()))
    );
    assert_eq!(
        cond(&s, "ResponseOverdue"),
        Some(("False".into(), "Acknowledged".into()))
    );

    // Root cause, then resolve by hand.
    api.patch(
        "db-slow",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"rootCause": "missing index", "resolution": {"by": "alice", "summary": "added the index"}}})),
    )
    .await
    .unwrap();
    let inc = wait_incident(&api, "db-slow", WAIT, "resolution", |s| {
        s.phase == Some(Phase::Resolved)
    })
    .await;
    let s = inc.status.unwrap();
    assert_eq!(
        cond(&s, "Resolved"),
        Some(("True".into(), "ManuallyResolved".into()))
    );
    let types: Vec<_> = s
        .timeline
        .iter()
        .map(|e| format!("{:?}", e.type_))
        .collect();
    assert_eq!(
        types,
        vec!["Opened", "ResponseOverdue", "Acknowledged", "Resolved"],
        "{:#?}",
        s.timeline
    );

    // Events: one per transition, on the Incident.
    // Events: one per transition, on the Incident (other features add more
    // reasons, e.g. the post-mortem; each appears once).
    let expected = ["Acknowledged", "Opened", "Resolved", "ResponseOverdue"];
    let events = wait_for(WAIT, || async {
        let evs = events_for(&cluster.client, &ns, "db-slow").await;
        let reasons: Vec<String> = evs.iter().filter_map(|e| e.reason.clone()).collect();
        expected
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
            .then_some(evs)
    })
    .await
    .expect("events published");
    let once = |evs: &[Event]| {
        let mut reasons: Vec<String> = evs.iter().filter_map(|e| e.reason.clone()).collect();
        reasons.sort();
        let mut dedup = reasons.clone();
        dedup.dedup();
        assert_eq!(reasons, dedup, "an Event was published twice");
    };
    once(&events);
    assert!(events
        .iter()
        .all(|e| e.reporting_controller.as_deref() == Some("kube-incident")));

    // Metrics.
    let (code, body) = http_get(&format!("{}/metrics", op.metrics_url())).await;
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"kube_incident_incidents_opened_total{severity="SEV2",source="Manual"} 1"#),
        "{body}"
    );
    assert!(body.contains(r#"kube_incident_time_to_acknowledge_seconds_count{severity="SEV2"} 1"#));
    assert!(body.contains(r#"kube_incident_time_to_resolve_seconds_count{severity="SEV2"} 1"#));
    assert!(body.contains(r#"kube_incident_incidents_open{severity="SEV2"} 0"#));
    assert_eq!(
        http_get(&format!("{}/readyz", op.metrics_url())).await.0,
        200
    );
    assert_eq!(
        http_get(&format!("{}/healthz", op.metrics_url())).await.0,
        200
    );

    // A restart replays every reconcile: no new Event, no new timeline entry.
    op.stop().await.unwrap();
    let op2 = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--response-target", "SEV2=3s"],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = api.get("db-slow").await.unwrap().status.unwrap();
    assert_eq!(after.timeline, s.timeline);
    once(&events_for(&cluster.client, &ns, "db-slow").await);
    op2.stop().await.unwrap();
}

#[tokio::test]
async fn approval_gate_and_invalid_step() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let ns = cluster.namespace("approval").await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    api.create_granted(
        &PostParams::default(),
        &incident(
            "web-down",
            json!({
                "title": "web is down", "severity": "SEV1",
                "target": {"kind": "Deployment", "name": "web"},
                "mitigations": [
                    {"name": "more", "action": "Scale", "approval": "Automatic"},
                    {"name": "rollback", "action": "RolloutUndo"}
                ]
            }),
        ),
    )
    .await
    .unwrap();
    let inc = wait_incident(&api, "web-down", WAIT, "the approval gate", |s| {
        s.mitigations
            .get(1)
            .is_some_and(|m| m.state == StepState::AwaitingApproval)
    })
    .await;
    let s = inc.status.unwrap();
    // The Scale step without replicas fails with a message naming the field.
    assert_eq!(s.mitigations[0].state, StepState::Failed);
    assert!(
        s.mitigations[0]
            .message
            .contains("spec.mitigations[0].replicas"),
        "{}",
        s.mitigations[0].message
    );
    assert_eq!(
        cond(&s, "Valid"),
        Some(("False".into(), "InvalidSpec".into()))
    );
    assert_eq!(
        cond(&s, "AwaitingApproval"),
        Some(("True".into(), "AwaitingApproval".into()))
    );

    // Approve the second step (as `kubectl incident approve` does).
    api.patch(
        "web-down",
        &PatchParams::default(),
        &Patch::<()>::Json(json_patch::Patch(vec![
            serde_json::from_value(
                json!({"op": "test", "path": "/spec/mitigations/1/name", "value": "rollback"}),
            )
            .unwrap(),
            serde_json::from_value(
                json!({"op": "add", "path": "/spec/mitigations/1/approvedBy", "value": "alice"}),
            )
            .unwrap(),
        ])),
    )
    .await
    .unwrap();
    let inc = wait_incident(&api, "web-down", WAIT, "approval", |s| {
        s.mitigations
            .get(1)
            .is_some_and(|m| m.approved_at.is_some())
    })
    .await;
    let s = inc.status.unwrap();
    assert_eq!(s.phase, Some(Phase::Identified));
    assert_eq!(
        cond(&s, "AwaitingApproval"),
        Some(("False".into(), "NoPendingApproval".into()))
    );
    op.stop().await.unwrap();
}

#[tokio::test]
async fn schema_rejects_invalid_enum() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let ns = cluster.namespace("schema").await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    let dynamic: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        &ns,
        &kube::api::ApiResource::erase::<Incident>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
        "metadata": {"name": "bad"},
        "spec": {"title": "x", "severity": "SEV9"}
    }))
    .unwrap();
    let err = dynamic
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("spec.severity"), "{}", s.message);
        }
        other => panic!("expected 422, got {other}"),
    }
    assert!(api.get_opt("bad").await.unwrap().is_none());
}

//! Unit tests of the detector's index: watch deltas in (pods, deployments,
//! replica sets, namespaces, runbooks; deletes; relists), detections and
//! decisions out. No client, no cluster.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;

use super::*;
use crate::api::{Incident, IncidentStatus, Runbook, FINGERPRINT_LABEL};
use crate::controller::detector::evaluate::{Verdict, Write, IN_FLIGHT, RECHECK};
use crate::controller::detector::runbook_status::RunbookStatusWrite;
use crate::controller::detector::EPISODE_LABEL;
use crate::core::workload::PodLite;
use crate::core::workload::WorkloadKey;

fn t(s: i64) -> Timestamp {
    let base: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    base.checked_add(SignedDuration::from_secs(s)).unwrap()
}

fn index() -> Index {
    Index::new(Some("ops".into()), true, Arc::new(Detections::default()))
}

fn k(ns: &str, n: &str) -> Key {
    (ns.to_string(), n.to_string())
}

fn keys(list: &[(&str, &str)]) -> HashSet<Key> {
    list.iter().map(|(ns, n)| k(ns, n)).collect()
}

fn web(ns: &str) -> WorkloadKey {
    WorkloadKey::deployment(ns, "web")
}

/// A pod of ReplicaSet `rs` (None: a bare pod) whose container waits in
/// `waiting` (None: running and ready) after `restarts` restarts.
fn pod(ns: &str, name: &str, rs: Option<&str>, waiting: Option<&str>, restarts: i32) -> PodLite {
    let owners = match rs {
        Some(rs) => {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "u", "controller": true}])
        }
        None => json!([]),
    };
    let state = match waiting {
        Some(reason) => json!({"waiting": {"reason": reason, "message": "back-off"}}),
        None => json!({"running": {"startedAt": "2026-11-22T02:00:00Z"}}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "uid": name,
            "creationTimestamp": "2026-11-22T02:00:00Z", "labels": {"app": "web"},
            "ownerReferences": owners},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if waiting.is_some() {"False"} else {"True"},
                "lastTransitionTime": "2026-11-22T02:30:00Z"}],
            "containerStatuses": [{"name": "app", "ready": waiting.is_none(), "restartCount": restarts,
                "state": state,
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1,
                    "finishedAt": "2026-11-22T02:59:00Z"}}}]}
    }))
    .unwrap()
}

fn deployment(ns: &str, name: &str, labels: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels, "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}}},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True"}]}
    }))
    .unwrap()
}

fn replica_set(ns: &str, name: &str, deployment: &str) -> ObjectMeta {
    serde_json::from_value(json!({"name": name, "namespace": ns, "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment, "uid": "d", "controller": true}]}))
    .unwrap()
}

fn runbook(ns: &str, name: &str, spec: serde_json::Value) -> Runbook {
    serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": name, "namespace": ns, "generation": 1},
        "spec": spec
    }))
    .unwrap()
}

/// Deployment `web` in `ns` with one crash-looping pod, attributed.
fn crashing_web(ix: &mut Index, ns: &str) {
    ix.apply_deployment(&deployment(ns, "web", json!({"tier": "front"})));
    ix.apply_replica_set(&replica_set(ns, "web-7f", "web"));
    ix.apply_pod(
        &pod(ns, "web-7f-a", Some("web-7f"), Some("CrashLoopBackOff"), 5),
        t(0),
    );
}

/// Evaluate everything dirty at `now` as the leader with these Incidents.
fn evaluate_all(
    ix: &mut Index,
    incidents: &[Incident],
    now: Timestamp,
) -> Vec<(WorkloadKey, Verdict)> {
    let cached: Vec<Arc<Incident>> = incidents.iter().cloned().map(Arc::new).collect();
    let mut out: Vec<(WorkloadKey, Verdict)> = ix
        .take_dirty(now)
        .into_iter()
        .map(|w| {
            let cached = cached.clone();
            let v = ix.evaluate(
                w.clone(),
                move |ns| {
                    cached
                        .into_iter()
                        .filter(|i| i.metadata.namespace.as_deref() == Some(ns))
                        .collect()
                },
                true,
                now,
            );
            (w, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn created(verdicts: &[(WorkloadKey, Verdict)]) -> Vec<Incident> {
    verdicts
        .iter()
        .filter_map(|(_, v)| match &v.write {
            Write::Create { incident, .. } => Some((**incident).clone()),
            _ => None,
        })
        .collect()
}

/// The Incident the detector would have stored for episode `n` of `w`.
fn stored(w: &WorkloadKey, n: u32, resolved_at: Option<Timestamp>) -> Incident {
    let mut inc: Incident = serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
        "metadata": {"name": w.incident_name(n), "namespace": w.namespace,
            "labels": {FINGERPRINT_LABEL: w.fingerprint(), EPISODE_LABEL: n.to_string()}},
        "spec": {"title": "t", "severity": "SEV3", "source": "Detector",
            "target": {"kind": "Deployment", "name": w.name},
            "resolution": resolved_at.map(|_| json!({"by": "alice", "summary": "fixed"}))}
    }))
    .unwrap();
    inc.status = Some(IncidentStatus {
        opened_at: Some(Time(t(0))),
        resolved_at: resolved_at.map(Time),
        ..Default::default()
    });
    inc
}

#[test]
fn a_crash_looping_deployment_opens_its_first_episode_once() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    let verdicts = evaluate_all(&mut ix, &[], t(1));
    let opened = created(&verdicts);
    assert_eq!(opened.len(), 1, "{verdicts:?}");
    let inc = &opened[0];
    assert_eq!(
        inc.metadata.name.as_deref(),
        Some(web("shop").incident_name(1).as_str())
    );
    assert_eq!(inc.metadata.namespace.as_deref(), Some("shop"));
    let labels = inc.metadata.labels.clone().unwrap();
    assert_eq!(labels[FINGERPRINT_LABEL], web("shop").fingerprint());
    assert_eq!(labels[EPISODE_LABEL], "1");
    assert_eq!(inc.spec.target.as_ref().unwrap().name, "web");
    assert!(inc.spec.title.contains("web"), "{}", inc.spec.title);
    let d = ix.detections.get(&web("shop")).expect("a detection");
    assert!(!d.assessment.symptoms.is_empty());

    // The create went out: the same detection writes nothing more until
    // the cache shows the Incident, and then the open Incident decides.
    ix.record_created(&web("shop"), &inc.metadata.name.clone().unwrap(), t(1));
    ix.apply_pod(
        &pod(
            "shop",
            "web-7f-a",
            Some("web-7f"),
            Some("CrashLoopBackOff"),
            5,
        ),
        t(2),
    );
    assert!(
        created(&evaluate_all(&mut ix, &[], t(2))).is_empty(),
        "in flight"
    );
    ix.apply_pod(
        &pod(
            "shop",
            "web-7f-a",
            Some("web-7f"),
            Some("CrashLoopBackOff"),
            5,
        ),
        t(3),
    );
    let open = stored(&web("shop"), 1, None);
    let verdicts = evaluate_all(&mut ix, std::slice::from_ref(&open), t(3));
    assert!(
        created(&verdicts).is_empty(),
        "one open Incident per workload"
    );
    assert!(ix.created.is_empty(), "the cache shows it: forgotten");
}

#[test]
fn a_follower_keeps_detections_but_writes_nothing() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    for w in ix.take_dirty(t(1)) {
        let v = ix.evaluate(w, |_| Vec::new(), false, t(1));
        assert!(matches!(v.write, Write::Nothing));
    }
    assert!(ix.detections.get(&web("shop")).is_some());
    // Becoming the leader looks at everything again (and Runbook statuses).
    assert!(ix.take_dirty(t(1)).is_empty());
    ix.take_runbooks_dirty();
    ix.became_leader();
    assert!(ix.take_runbooks_dirty());
    assert_eq!(created(&evaluate_all(&mut ix, &[], t(2))).len(), 1);
}

#[test]
fn a_resolved_episode_reopens_within_the_window_and_a_new_one_opens_after() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    let resolved = stored(&web("shop"), 1, Some(t(-60)));
    let verdicts = evaluate_all(&mut ix, std::slice::from_ref(&resolved), t(1));
    let (_, v) = verdicts.iter().find(|(w, _)| *w == web("shop")).unwrap();
    assert!(matches!(&v.write, Write::Reopen(i) if i.metadata.name == resolved.metadata.name));
    assert_eq!(
        ix.detections.get(&web("shop")).unwrap().recurrence,
        Some(t(1)),
        "the recurrence is published with the detection"
    );
    assert!(
        v.reconcile
            .iter()
            .any(|r| r.name == resolved.metadata.name.clone().unwrap()),
        "the Incident is asked to look again"
    );
    // Resolved more than the (default, one hour) reopen window ago: episode 2.
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    let old = stored(&web("shop"), 1, Some(t(-7200)));
    let opened = created(&evaluate_all(&mut ix, &[old], t(1)));
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].metadata.name.as_deref(),
        Some(web("shop").incident_name(2).as_str())
    );
}

#[test]
fn an_incident_deleted_before_the_cache_saw_it_is_opened_again_after_the_in_flight_hold() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    let opened = created(&evaluate_all(&mut ix, &[], t(1)));
    let name = opened[0].metadata.name.clone().unwrap();
    ix.record_created(&web("shop"), &name, t(1));
    // The recheck timer brings the workload back without any event.
    assert!(ix.next_timer().is_some_and(|at| at <= t(1) + RECHECK));
    let later = t(1) + IN_FLIGHT + RECHECK;
    let again = created(&evaluate_all(&mut ix, &[], later));
    assert_eq!(
        again.len(),
        1,
        "the Incident never showed up: open it again"
    );
    assert_eq!(again[0].metadata.name.as_deref(), Some(name.as_str()));
}

#[test]
fn a_pod_seen_before_its_replica_set_is_attributed_once_the_owner_is_known() {
    let mut ix = index();
    ix.apply_deployment(&deployment("shop", "web", json!({})));
    ix.apply_pod(&pod("shop", "web-7f-a", Some("web-7f"), None, 0), t(0));
    let rs_key = WorkloadKey {
        namespace: "shop".into(),
        kind: "ReplicaSet".into(),
        name: "web-7f".into(),
    };
    assert!(ix.workload_pods.contains_key(&rs_key));
    assert_eq!(ix.unattributed.len(), 1);
    ix.apply_replica_set(&replica_set("shop", "web-7f", "web"));
    assert!(!ix.workload_pods.contains_key(&rs_key), "moved");
    assert_eq!(
        ix.workload_pods.get(&web("shop")).map(|s| s.len()),
        Some(1),
        "the pod counts for its Deployment now"
    );
    assert!(ix.unattributed.is_empty());
    assert!(ix.take_dirty(t(1)).contains(&web("shop")));
}

#[test]
fn deleting_everything_leaves_nothing_behind() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    ix.apply_pod(
        &pod("shop", "solo", None, Some("CrashLoopBackOff"), 3),
        t(0),
    );
    // Restarts recorded between two views of the same pod.
    ix.apply_pod(
        &pod(
            "shop",
            "web-7f-a",
            Some("web-7f"),
            Some("CrashLoopBackOff"),
            8,
        ),
        t(5),
    );
    let window = std::time::Duration::from_secs(600);
    let solo = WorkloadKey {
        namespace: "shop".into(),
        kind: "Pod".into(),
        name: "solo".into(),
    };
    assert_eq!(ix.ledger.restarts_within(&web("shop"), window, t(6)).0, 3);
    ix.apply_pod(&pod("shop", "web-7f-b", Some("unknown-rs"), None, 0), t(5));
    assert_eq!(ix.unattributed.len(), 1);
    assert_eq!(evaluate_all(&mut ix, &[], t(6)).len(), 3);
    assert_eq!(ix.detections.len(), 2, "web and the bare pod");
    assert!(ix.detections.get(&solo).is_some());

    for (ns, name) in [("shop", "web-7f-a"), ("shop", "web-7f-b"), ("shop", "solo")] {
        ix.delete_pod(ns, name);
    }
    ix.delete_replica_set("shop", "web-7f");
    ix.delete_deployment("shop", "web");
    assert!(ix.pods.is_empty());
    assert!(ix.workload_pods.is_empty());
    assert!(ix.unattributed.is_empty());
    assert!(ix.rs_owner.is_empty());
    assert!(ix.deployments.is_empty());
    assert_eq!(
        ix.ledger.restarts_within(&web("shop"), window, t(7)),
        (0, None),
        "restarts of deleted pods no longer count"
    );
    evaluate_all(&mut ix, &[], t(7));
    assert!(
        ix.detections.is_empty(),
        "detections of gone workloads are dropped"
    );
}

#[test]
fn a_relist_drops_only_what_its_scope_did_not_list() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    crashing_web(&mut ix, "bank");
    ix.apply_pod(&pod("shop", "web-7f-b", Some("web-7f"), None, 0), t(0));
    ix.apply_runbook(runbook("shop", "rb", json!({"selector": {}})));
    ix.apply_runbook(runbook("bank", "rb", json!({"selector": {}})));
    ix.take_dirty(t(0));

    // The watch of namespace shop relisted: web-7f-b is gone, bank untouched.
    let shop = Scope::Namespace("shop".into());
    ix.reset_pods(&shop, &keys(&[("shop", "web-7f-a")]));
    assert!(!ix.pods.contains_key(&k("shop", "web-7f-b")));
    assert!(ix.pods.contains_key(&k("shop", "web-7f-a")));
    assert!(ix.pods.contains_key(&k("bank", "web-7f-a")));
    ix.reset_deployments(&shop, &HashSet::new());
    assert!(!ix.deployments.contains_key(&k("shop", "web")));
    assert!(ix.deployments.contains_key(&k("bank", "web")));
    assert!(ix.take_dirty(t(1)).contains(&web("shop")));
    ix.reset_replica_sets(&shop, &HashSet::new());
    assert_eq!(
        ix.rs_owner.keys().cloned().collect::<Vec<_>>(),
        vec![k("bank", "web-7f")]
    );
    ix.reset_runbooks(&shop, &HashSet::new());
    assert_eq!(
        ix.runbooks.keys().cloned().collect::<Vec<_>>(),
        vec![k("bank", "rb")]
    );
    assert!(!ix.valid_runbooks.contains(&k("shop", "rb")));

    // A cluster-wide relist drops everything it did not list.
    ix.reset_pods(&Scope::All, &HashSet::new());
    assert!(ix.pods.is_empty() && ix.workload_pods.is_empty());
    ix.apply_namespace(&serde_json::from_value(json!({"name": "shop"})).unwrap());
    ix.apply_namespace(&serde_json::from_value(json!({"name": "bank"})).unwrap());
    ix.reset_namespaces(&keys(&[("", "bank")]));
    assert_eq!(
        ix.ns_labels.keys().cloned().collect::<Vec<_>>(),
        vec!["bank".to_string()]
    );
}

#[test]
fn a_relist_of_one_namespace_keeps_the_objects_of_the_others() {
    let map: HashMap<Key, ()> = [k("shop", "a"), k("bank", "b"), k("ops", "c")]
        .into_iter()
        .map(|k| (k, ()))
        .collect();
    // The operator namespace's Runbook watch lists nothing: only its
    // own namespace's objects are gone.
    assert_eq!(
        Scope::Namespace("ops".into()).unlisted(&map, &HashSet::new()),
        vec![k("ops", "c")]
    );
    let seen: HashSet<Key> = [k("shop", "x")].into_iter().collect();
    assert_eq!(
        Scope::Namespace("shop".into()).unlisted(&map, &seen),
        vec![k("shop", "a")]
    );
    // One stream for all namespaces: everything it did not list is gone.
    let mut all = Scope::All.unlisted(&map, &seen);
    all.sort();
    assert_eq!(all, vec![k("bank", "b"), k("ops", "c"), k("shop", "a")]);
}

#[test]
fn the_ignore_label_on_a_namespace_drops_its_detections() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    evaluate_all(&mut ix, &[], t(1));
    assert!(ix.detections.get(&web("shop")).is_some());
    ix.apply_namespace(
        &serde_json::from_value(
            json!({"name": "shop", "labels": {"kubeincident.io/ignore": "true"}}),
        )
        .unwrap(),
    );
    let verdicts = evaluate_all(&mut ix, &[], t(2));
    assert!(created(&verdicts).is_empty());
    assert!(ix.detections.get(&web("shop")).is_none());
}

#[test]
fn runbooks_govern_detection_and_get_a_status() {
    let mut ix = Index::new(Some("ops".into()), false, Arc::new(Detections::default()));
    crashing_web(&mut ix, "shop");
    // Without a Runbook and without the built-in policy: nothing.
    assert!(created(&evaluate_all(&mut ix, &[], t(1))).is_empty());
    assert!(ix.detections.is_empty());

    ix.apply_runbook(runbook(
        "shop",
        "front",
        json!({"selector": {"matchLabels": {"tier": "front"}}}),
    ));
    ix.apply_runbook(runbook(
        "shop",
        "broken",
        json!({"selector": {"matchLabels": {"tier": "front"}},
        "escalation": [{"after": "5m", "notify": ["pager"]}]}),
    ));
    assert!(ix.valid_runbooks.contains(&k("shop", "front")));
    assert!(!ix.valid_runbooks.contains(&k("shop", "broken")));
    // The pods of the uncovered workload were not kept: the pod watches
    // list again, and the pod comes back.
    assert!(ix.pods.is_empty());
    assert!(ix.take_pods_relist());
    ix.apply_pod(
        &pod(
            "shop",
            "web-7f-a",
            Some("web-7f"),
            Some("CrashLoopBackOff"),
            5,
        ),
        t(2),
    );
    let opened = created(&evaluate_all(&mut ix, &[], t(2)));
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].spec.runbook_ref.as_ref().map(|r| r.name.as_str()),
        Some("front")
    );

    assert!(ix.take_runbooks_dirty());
    let statuses = ix.runbook_statuses(t(2));
    let by_name: HashMap<&str, &RunbookStatusWrite> =
        statuses.iter().map(|s| (s.name.as_str(), s)).collect();
    let front = &by_name["front"].status;
    assert_eq!(front.matched_workloads, Some(1));
    assert_eq!(front.last_triggered_at, Some(Time(t(2))));
    assert_eq!(front.conditions[0].reason, "Valid");
    let broken = &by_name["broken"].status;
    assert_eq!(broken.conditions[0].status, "False");
    assert_eq!(broken.conditions[0].reason, "InvalidSpec");
    assert_eq!(broken.matched_workloads, Some(0));

    // Stored as computed: nothing to write again.
    let stored: Vec<Runbook> = ix.runbooks.values().cloned().collect();
    for mut rb in stored {
        rb.status = by_name
            .get(rb.metadata.name.as_deref().unwrap())
            .map(|s| s.status.clone());
        ix.apply_runbook(rb);
    }
    assert!(
        !ix.take_runbooks_dirty(),
        "a status-only change changes nothing"
    );
    assert!(ix.runbook_statuses(t(3)).is_empty());

    // Deleted: its memory goes, and the workloads it governed are looked at again.
    ix.delete_runbook("shop", "front");
    assert!(!ix.runbooks.contains_key(&k("shop", "front")));
    assert!(!ix.last_triggered.contains_key(&k("shop", "front")));
    assert!(ix.take_dirty(t(4)).contains(&web("shop")));
}

#[test]
fn due_timers_bring_workloads_back() {
    let mut ix = index();
    crashing_web(&mut ix, "shop");
    evaluate_all(&mut ix, &[], t(0));
    let at = ix.next_timer().expect("a recheck");
    assert!(at <= t(0) + RECHECK);
    assert!(ix.take_dirty(at - SignedDuration::from_secs(1)).is_empty());
    assert_eq!(ix.take_dirty(at), vec![web("shop")]);
}

#[test]
fn replica_set_revisions_and_deployment_baselines_are_kept_and_forgotten() {
    let mut ix = index();
    // `deployment()` is rolled out completely: its revision is the baseline.
    let mut d = deployment("shop", "web", json!({"app": "web"}));
    d.metadata.annotations = Some(BTreeMap::from([(
        "deployment.kubernetes.io/revision".to_string(),
        "1".to_string(),
    )]));
    ix.apply_deployment(&d);
    let k = ("shop".to_string(), "web".to_string());
    assert_eq!(ix.baselines.get(&k).map(|b| b.revision), Some(1));
    let mut rs = replica_set("shop", "web-7f", "web");
    rs.annotations = Some(BTreeMap::from([(
        "deployment.kubernetes.io/revision".to_string(),
        "1".to_string(),
    )]));
    ix.apply_replica_set(&rs);
    ix.dirty.clear();
    let p = PodView::from(&pod("shop", "web-7f-a", Some("web-7f"), None, 0));
    assert_eq!(pod_revision(&ix.rs_revision, &p), Some(1));
    // A rollback reuses the ReplicaSet at a new revision: the Deployment
    // is looked at again.
    rs.annotations = Some(BTreeMap::from([(
        "deployment.kubernetes.io/revision".to_string(),
        "3".to_string(),
    )]));
    ix.apply_replica_set(&rs);
    assert!(ix.dirty.contains(&WorkloadKey::deployment("shop", "web")));
    assert_eq!(pod_revision(&ix.rs_revision, &p), Some(3));
    // Deleted: forgotten.
    ix.delete_replica_set("shop", "web-7f");
    assert_eq!(pod_revision(&ix.rs_revision, &p), None);
    ix.delete_deployment("shop", "web");
    assert!(ix.baselines.is_empty());
}

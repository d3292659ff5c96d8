//! Unit tests of detection: every trigger, grace, attribution, severity, names.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::core::workload::{
    CondView, ContainerRole, ContainerView, OwnerView, PodLite, Termination,
};

fn t(s: i64) -> Timestamp {
    let base: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    base.checked_add(jiff::SignedDuration::from_secs(s))
        .unwrap()
}

fn key() -> WorkloadKey {
    WorkloadKey {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: "checkout".into(),
    }
}

fn cond(status: bool, reason: Option<&str>, since: i64) -> Option<CondView> {
    Some(CondView {
        status,
        reason: reason.map(Into::into),
        message: None,
        since: Some(t(since)),
    })
}

fn container(waiting: Option<&str>, restarts: i32) -> ContainerView {
    ContainerView {
        name: "app".into(),
        role: ContainerRole::App,
        ready: waiting.is_none(),
        restart_count: restarts,
        waiting: waiting.map(|w| {
            (
                w.to_string(),
                Some("back-off 40s restarting failed container".into()),
            )
        }),
        running_since: None,
        terminated: None,
        last_termination: None,
    }
}

fn pod(name: &str, c: ContainerView, ready: bool, since: i64) -> PodView {
    PodView {
        namespace: "shop".into(),
        name: name.into(),
        labels: Default::default(),
        owner: Some(OwnerView {
            kind: "ReplicaSet".into(),
            name: "checkout-7f9c".into(),
        }),
        phase: "Running".into(),
        created: Some(t(-3600)),
        deleting: false,
        scheduled: cond(true, None, -3600),
        ready: cond(ready, None, since),
        reason: None,
        containers: vec![c],
    }
}

fn deploy(desired: i32, available: i32) -> DeploymentView {
    DeploymentView {
        namespace: "shop".into(),
        name: "checkout".into(),
        desired,
        replicas: desired,
        updated: desired,
        ready: available,
        available,
        generation: Some(2),
        observed_generation: Some(2),
        available_cond: cond(available * 2 >= desired, None, 0),
        ..Default::default()
    }
}

fn run(d: Option<&DeploymentView>, pods: &[PodView], now: i64) -> Assessment {
    let refs: Vec<&PodView> = pods.iter().collect();
    assess(
        &key(),
        d,
        &refs,
        &DetectionPolicy::default(),
        &mut RestartLedger::default(),
        t(now),
    )
}

fn triggers(a: &Assessment) -> Vec<TriggerType> {
    a.symptoms.iter().map(|s| s.trigger).collect()
}

#[test]
fn healthy_workload() {
    let pods = [pod("a", container(None, 0), true, -3000)];
    let a = run(Some(&deploy(1, 1)), &pods, 0);
    assert!(a.healthy);
    assert!(a.symptoms.is_empty());
    assert_eq!(a.impact_severity, None);
}

#[test]
fn crashloop_needs_min_restarts() {
    // A single restart is not an incident.
    let pods = [pod("a", container(Some("CrashLoopBackOff"), 1), false, -30)];
    let a = run(Some(&deploy(4, 3)), &pods, 0);
    assert!(!triggers(&a).contains(&TriggerType::CrashLoopBackOff));
    assert!(!a.healthy);

    let mut c = container(Some("CrashLoopBackOff"), 3);
    c.last_termination = Some(Termination {
        reason: Some("Error".into()),
        exit_code: 1,
        finished_at: Some(t(-20)),
    });
    let pods = [pod("a", c.clone(), false, -60), pod("b", c, false, -50)];
    let a = run(Some(&deploy(4, 2)), &pods, 0);
    assert_eq!(triggers(&a), vec![TriggerType::CrashLoopBackOff]);
    // Half the replicas are unavailable, but only for 60s of the 2m grace.
    assert_eq!(a.pending.len(), 1);
    assert_eq!(a.pending[0].0.trigger, TriggerType::Unavailable);
    assert_eq!(a.pending[0].1, t(60));
    assert_eq!(a.symptoms[0].headline, "CrashLoopBackOff (2 of 2 pods)");
    assert_eq!(
        a.symptoms[0].message,
        "pods a and b; container app: back-off 40s restarting failed container"
    );
    // First visible when the first pod went unready.
    assert_eq!(a.first_observed_at, Some(t(-60)));
    // 2/4 unavailable = 0.5 -> SEV2 under the default rules.
    assert_eq!(a.impact_severity, Some(Severity::SEV2));
    assert_eq!(a.impact.unhealthy_pods, Some(2));
    assert_eq!(a.impact.reasons, vec!["CrashLoopBackOff"]);
}

#[test]
fn image_pull_waits_for_its_grace() {
    let pods = [pod("a", container(Some("ImagePullBackOff"), 0), false, -30)];
    // 30s after the pod went unready: pending until 60s.
    let a = run(None, &pods, 0);
    assert!(a.symptoms.is_empty());
    assert_eq!(a.pending.len(), 1);
    assert_eq!(a.wake_at(), Some(t(30)));
    let a = run(None, &pods, 30);
    assert_eq!(triggers(&a), vec![TriggerType::ImagePullBackOff]);
    assert_eq!(a.first_observed_at, Some(t(-30)));
    // ErrImagePull counts the same.
    let pods = [pod("a", container(Some("ErrImagePull"), 0), false, -120)];
    assert_eq!(
        triggers(&run(None, &pods, 0)),
        vec![TriggerType::ImagePullBackOff]
    );
}

#[test]
fn oom_killed() {
    let mut c = container(None, 1);
    c.last_termination = Some(Termination {
        reason: Some("OOMKilled".into()),
        exit_code: 137,
        finished_at: Some(t(-5)),
    });
    let pods = [pod("a", c.clone(), true, -2)];
    let a = run(Some(&deploy(2, 2)), &pods, 0);
    assert_eq!(triggers(&a), vec![TriggerType::OOMKilled]);
    assert!(a.symptoms[0].message.contains("exit code 137"));
    assert_eq!(a.first_observed_at, Some(t(-5)));
    // An OOM kill long ago (outside the window) is history, not an incident.
    let a = run(Some(&deploy(2, 2)), &pods, 3600);
    assert!(a.symptoms.is_empty());
}

#[test]
fn config_error() {
    let pods = [pod(
        "a",
        container(Some("CreateContainerConfigError"), 0),
        false,
        -31,
    )];
    assert_eq!(
        triggers(&run(None, &pods, 0)),
        vec![TriggerType::CreateContainerConfigError]
    );
    let pods = [pod(
        "a",
        container(Some("CreateContainerConfigError"), 0),
        false,
        -10,
    )];
    assert!(run(None, &pods, 0).symptoms.is_empty());
}

#[test]
fn unschedulable_for_five_minutes() {
    let mut p = pod("a", container(Some("ContainerCreating"), 0), false, -400);
    p.phase = "Pending".into();
    p.containers.clear();
    p.scheduled = Some(CondView {
        status: false,
        reason: Some("Unschedulable".into()),
        message: Some("0/3 nodes are available: 3 Insufficient cpu.".into()),
        since: Some(t(-299)),
    });
    let a = run(None, std::slice::from_ref(&p), 0);
    assert!(a.symptoms.is_empty());
    assert_eq!(a.wake_at(), Some(t(1)));
    let a = run(None, &[p], 1);
    assert_eq!(triggers(&a), vec![TriggerType::Unschedulable]);
    assert!(a.symptoms[0].message.contains("Insufficient cpu"));
}

#[test]
fn not_ready_for_five_minutes_but_not_when_crashing() {
    let pods = [pod("a", container(None, 0), false, -301)];
    assert_eq!(triggers(&run(None, &pods, 0)), vec![TriggerType::NotReady]);
    let pods = [pod("a", container(None, 0), false, -100)];
    assert!(run(None, &pods, 0).symptoms.is_empty());
}

#[test]
fn unavailable_ratio_for_duration() {
    let mut d = deploy(4, 1);
    d.available_cond = cond(false, Some("MinimumReplicasUnavailable"), -130);
    let a = run(Some(&d), &[], 0);
    assert_eq!(triggers(&a), vec![TriggerType::Unavailable]);
    assert_eq!(a.symptoms[0].headline, "Unavailable (3 of 4 replicas)");
    assert_eq!(
        a.symptoms[0].message,
        "3/4 replicas of checkout unavailable (1 ready, 4 up to date)"
    );
    assert_eq!(a.impact_severity, Some(Severity::SEV2));
    d.available_cond = cond(false, Some("MinimumReplicasUnavailable"), -60);
    assert!(run(Some(&d), &[], 0).symptoms.is_empty());
    // 100% down -> SEV1.
    let mut d = deploy(4, 0);
    d.available_cond = cond(false, None, -600);
    assert_eq!(run(Some(&d), &[], 0).impact_severity, Some(Severity::SEV1));
}

#[test]
fn progress_deadline_exceeded() {
    let mut d = deploy(2, 2);
    d.progressing_cond = Some(CondView {
        status: false,
        reason: Some("ProgressDeadlineExceeded".into()),
        message: Some("ReplicaSet \"checkout-abc\" has timed out progressing.".into()),
        since: Some(t(-1)),
    });
    let a = run(Some(&d), &[], 0);
    assert_eq!(triggers(&a), vec![TriggerType::ProgressDeadlineExceeded]);
    assert_eq!(
        a.impact_severity,
        Some(Severity::SEV3),
        "nothing unavailable: default severity"
    );
}

#[test]
fn restart_storm_across_pods() {
    let mut ledger = RestartLedger::default();
    let k = key();
    let policy = DetectionPolicy::default();
    let mut a = pod("a", container(None, 0), true, -3000);
    let mut b = pod("b", container(None, 0), true, -3000);
    ledger.observe(&k, None, &a, t(0));
    ledger.observe(&k, None, &b, t(0));
    let a0 = a.clone();
    a.containers[0].restart_count = 2;
    ledger.observe(&k, Some(&a0), &a, t(60));
    let b0 = b.clone();
    b.containers[0].restart_count = 2;
    ledger.observe(&k, Some(&b0), &b, t(120));
    let r = assess(
        &k,
        Some(&deploy(2, 2)),
        &[&a, &b],
        &policy,
        &mut ledger,
        t(130),
    );
    assert!(r.symptoms.is_empty(), "4 restarts < 5");
    let a1 = a.clone();
    a.containers[0].restart_count = 3;
    ledger.observe(&k, Some(&a1), &a, t(140));
    let refs = [&a, &b];
    let r = assess(&k, Some(&deploy(2, 2)), &refs, &policy, &mut ledger, t(150));
    assert_eq!(triggers(&r), vec![TriggerType::RestartStorm]);
    assert_eq!(r.first_observed_at, Some(t(60)));
    // Replacing the pods ends the storm (restarts of deleted pods are forgotten).
    let mut l2 = ledger.clone();
    l2.forget_pod("shop", "a");
    let r = assess(&k, Some(&deploy(2, 2)), &refs, &policy, &mut l2, t(150));
    assert!(r.symptoms.is_empty(), "only b's 2 restarts remain");
    // Outside the 10m window the storm is over.
    let r = assess(
        &k,
        Some(&deploy(2, 2)),
        &refs,
        &policy,
        &mut ledger,
        t(60 + 601),
    );
    assert!(r.symptoms.is_empty());
}

#[test]
fn runbook_refines_triggers_and_severity() {
    let rb: Runbook = serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {
            "selector": {},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 1}],
            "severity": {"default": "SEV4", "rules": [{"minUnavailableRatio": "0.25", "severity": "SEV1"}]},
            "reopenWindow": "2h",
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}]
        }
    }))
    .unwrap();
    let policy = DetectionPolicy::from_runbook(&rb);
    // The one listed, and BadRollout (on with a RolloutUndo step).
    let types: Vec<TriggerType> = policy.triggers.iter().map(|t| t.type_).collect();
    assert_eq!(
        types,
        [TriggerType::CrashLoopBackOff, TriggerType::BadRollout]
    );
    assert_eq!(policy.reopen_window, Duration::from_secs(7200));
    assert_eq!(
        policy.runbook.as_ref().map(|r| r.name.as_str()),
        Some("checkout")
    );
    assert_eq!(policy.severity_for(0.3), Severity::SEV1);
    assert_eq!(policy.severity_for(0.1), Severity::SEV4);
    let pods = [pod("a", container(Some("CrashLoopBackOff"), 1), false, -10)];
    let refs: Vec<&PodView> = pods.iter().collect();
    let a = assess(
        &key(),
        Some(&deploy(4, 3)),
        &refs,
        &policy,
        &mut RestartLedger::default(),
        t(0),
    );
    assert_eq!(triggers(&a), vec![TriggerType::CrashLoopBackOff]);
    assert_eq!(a.impact_severity, Some(Severity::SEV1));
    // Triggers the Runbook leaves out do not fire.
    let pods = [pod(
        "a",
        container(Some("ImagePullBackOff"), 0),
        false,
        -600,
    )];
    let refs: Vec<&PodView> = pods.iter().collect();
    let a = assess(
        &key(),
        Some(&deploy(4, 3)),
        &refs,
        &policy,
        &mut RestartLedger::default(),
        t(0),
    );
    assert!(a.symptoms.is_empty());
}

#[test]
fn deleting_pods_are_ignored() {
    let mut p = pod("a", container(Some("CrashLoopBackOff"), 5), false, -100);
    p.deleting = true;
    assert!(run(None, &[p], 0).symptoms.is_empty());
}

#[test]
fn attribution() {
    let p = pod("checkout-7f9c-abcde", container(None, 0), true, 0);
    let k = attribute(&p, |kind, ns, rs| {
        (kind == "ReplicaSet" && ns == "shop" && rs == "checkout-7f9c")
            .then(|| "checkout".to_string())
    });
    assert_eq!(k, key());
    let k = attribute(&p, |_, _, _| None);
    assert_eq!(
        (k.kind.as_str(), k.name.as_str()),
        ("ReplicaSet", "checkout-7f9c")
    );
    let mut bare = p.clone();
    bare.owner = None;
    let k = attribute(&bare, |_, _, _| None);
    assert_eq!(
        (k.kind.as_str(), k.name.as_str()),
        ("Pod", "checkout-7f9c-abcde")
    );
}

#[test]
fn conversions_from_api_objects() {
    let p: PodLite = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "creationTimestamp": "2026-11-22T02:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7f", "uid": "u", "controller": true}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-22T02:59:00Z"}],
            "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": "2026-11-22T02:59:30Z"}}}]}
    }))
    .unwrap();
    let v = PodView::from(&p);
    assert_eq!(v.owner.as_ref().unwrap().name, "web-7f");
    assert_eq!(v.containers[0].restart_count, 4);
    assert_eq!(v.ready.as_ref().unwrap().since, Some(t(-60)));
    let a = run(None, &[v], 0);
    assert_eq!(triggers(&a), vec![TriggerType::CrashLoopBackOff]);
    assert_eq!(a.first_observed_at, Some(t(-60)));
}

#[test]
fn titles_name_the_workload_and_the_symptom_never_a_pod() {
    // What the kubelet really writes: the pod's name, namespace and UID.
    let kubelet = |pod: &str| {
        format!(
            "back-off 40s restarting failed container=app pod={pod}_shop(0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0)"
        )
    };
    let crashing = |name: &str| {
        let mut c = container(Some("CrashLoopBackOff"), 3);
        c.waiting = Some(("CrashLoopBackOff".into(), Some(kubelet(name))));
        pod(name, c, false, -60)
    };
    let pods = [
        crashing("checkout-7f9c-aaaaa"),
        crashing("checkout-7f9c-bbbbb"),
        crashing("checkout-7f9c-ccccc"),
    ];
    let a = run(Some(&deploy(3, 0)), &pods, 0);
    assert_eq!(a.symptoms[0].trigger, TriggerType::CrashLoopBackOff);
    let title = a.title("checkout");
    assert!(
        title.starts_with("checkout: CrashLoopBackOff (3 of 3 pods)"),
        "{title}"
    );
    for s in &a.symptoms {
        assert!(!s.message.contains("0b1c2d3e"), "{}", s.message);
        // The headline (title, Opened) and the details (Symptom entries) differ.
        assert_ne!(s.headline, s.message);
        assert!(!s.message.contains(&s.headline), "{s:?}");
    }
    assert!(
        !title.contains("0b1c2d3e") && !title.contains("aaaaa"),
        "{title}"
    );
    assert_eq!(
        a.symptoms[0].message,
        "pods checkout-7f9c-aaaaa, checkout-7f9c-bbbbb and checkout-7f9c-ccccc; container app: back-off 40s restarting failed container=app"
    );
    // Same title whatever pods and back-off are current.
    let pods = [
        crashing("checkout-7f9c-xxxxx"),
        crashing("checkout-7f9c-yyyyy"),
        crashing("checkout-7f9c-zzzzz"),
    ];
    assert_eq!(run(Some(&deploy(3, 0)), &pods, 0).title("checkout"), title);
    // A bare pod, and the cap.
    let bare = [crashing("batch-1")];
    let a = run(None, &bare, 0);
    assert_eq!(a.title("batch-1"), "batch-1: CrashLoopBackOff (1 pod)");
    let long = "x".repeat(300);
    let t = a.title(&long);
    assert_eq!(t.chars().count(), TITLE_MAX);
    assert!(t.ends_with('…'));
    assert_eq!(
        without_pod_identity("back-off 5m0s restarting failed container=app pod=web-1_ns(uid)"),
        "back-off 5m0s restarting failed container=app"
    );
    assert_eq!(
        pod_list(
            &[
                "a".to_string(),
                "b".into(),
                "c".into(),
                "d".into(),
                "e".into()
            ]
            .into_iter()
            .collect()
        ),
        "pods a, b, c and 2 more"
    );
}

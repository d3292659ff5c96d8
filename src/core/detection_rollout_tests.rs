//! Unit tests of BadRollout: a rollout's failing new pods, seen at once,
//! and the guards (a pod that crashes once, a slow starter, a paused or
//! finished rollout, a Deployment that was not healthy before).

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::core::workload::{CondView, ContainerRole, ContainerView, OwnerView, Termination};

fn t(s: i64) -> Timestamp {
    let base: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
    base.checked_add(jiff::SignedDuration::from_secs(s))
        .unwrap()
}

fn key() -> WorkloadKey {
    WorkloadKey::deployment("shop", "web")
}

fn cond(status: bool, since: i64) -> Option<CondView> {
    Some(CondView {
        status,
        reason: None,
        message: None,
        since: Some(t(since)),
    })
}

/// `web` at revision 2 (image shop:2), rolling out over 4 replicas: one
/// new pod so far, the old ones still available.
fn rolling() -> DeploymentView {
    DeploymentView {
        namespace: "shop".into(),
        name: "web".into(),
        generation: Some(2),
        observed_generation: Some(2),
        desired: 4,
        replicas: 5,
        updated: 1,
        ready: 4,
        available: 4,
        available_cond: cond(true, -3600),
        revision: Some("2".into()),
        images: vec![("app".into(), "shop:2".into())],
        change_cause: Some("kubectl set image deployment/web app=shop:2".into()),
        ..Default::default()
    }
}

/// The same Deployment, rolled out completely at revision 1.
fn settled() -> DeploymentView {
    DeploymentView {
        replicas: 4,
        updated: 4,
        revision: Some("1".into()),
        images: vec![("app".into(), "shop:1".into())],
        change_cause: None,
        ..rolling()
    }
}

fn baseline() -> Baseline {
    Baseline::of(&settled()).expect("a complete rollout sets the baseline")
}

/// A container: waiting `waiting` after `restarts` restarts.
fn app(waiting: Option<(&str, &str)>, restarts: i32) -> ContainerView {
    ContainerView {
        name: "app".into(),
        role: ContainerRole::App,
        ready: waiting.is_none(),
        restart_count: restarts,
        waiting: waiting.map(|(r, m)| (r.to_string(), Some(m.to_string()))),
        running_since: None,
        terminated: None,
        last_termination: (restarts > 0).then(|| Termination {
            reason: Some("Error".into()),
            exit_code: 1,
            finished_at: Some(t(-1)),
        }),
    }
}

/// A pod of ReplicaSet `rs`, created at `created`.
fn pod(name: &str, rs: &str, c: ContainerView, ready: bool, created: i64) -> PodView {
    PodView {
        namespace: "shop".into(),
        name: name.into(),
        labels: Default::default(),
        owner: Some(OwnerView {
            kind: "ReplicaSet".into(),
            name: rs.into(),
        }),
        phase: "Running".into(),
        created: Some(t(created)),
        deleting: false,
        scheduled: cond(true, created),
        ready: cond(ready, created),
        reason: None,
        containers: vec![c],
    }
}

fn old_pods() -> Vec<PodView> {
    (0..3)
        .map(|i| pod(&format!("web-old-{i}"), "web-1", app(None, 0), true, -3600))
        .collect()
}

const CRASH: (&str, &str) = (
    "CrashLoopBackOff",
    "back-off 10s restarting failed container=app pod=web-new-0_shop(uid)",
);

/// A Runbook with a RolloutUndo step (BadRollout on by default), plus
/// `triggers`.
fn undo_policy(triggers: serde_json::Value) -> DetectionPolicy {
    let rb: Runbook = serde_json::from_value(json!({
        "apiVersion": "kube-incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "triggers": triggers,
            "mitigations": [{"name": "undo", "action": "RolloutUndo", "approval": "Automatic"}]
        }
    }))
    .unwrap();
    DetectionPolicy::from_runbook(&rb)
}

fn assess_rollout(
    d: &DeploymentView,
    baseline: Option<&Baseline>,
    pods: &[PodView],
    policy: &DetectionPolicy,
    now: i64,
) -> Assessment {
    let revisions: HashMap<&str, i64> = HashMap::from([("web-1", 1), ("web-2", 2)]);
    let pod_revision = |p: &PodView| {
        p.owner
            .as_ref()
            .and_then(|o| revisions.get(o.name.as_str()).copied())
    };
    let facts = RolloutFacts {
        baseline,
        pod_revision: &pod_revision,
    };
    let refs: Vec<&PodView> = pods.iter().collect();
    assess_with_rollout(
        &key(),
        Some(Controller::Deployment(d)),
        &refs,
        policy,
        &mut RestartLedger::default(),
        Some(&facts),
        t(now),
    )
}

fn bad_rollout(a: &Assessment) -> Option<&Symptom> {
    a.symptoms
        .iter()
        .find(|s| s.trigger == TriggerType::BadRollout)
}

fn with_new(new: PodView) -> Vec<PodView> {
    let mut pods = old_pods();
    pods.push(new);
    pods
}

#[test]
fn a_new_pod_that_crashes_twice_is_a_bad_rollout_at_once() {
    let b = baseline();
    let pods = with_new(pod("web-new-0", "web-2", app(Some(CRASH), 2), false, -12));
    let a = assess_rollout(&rolling(), Some(&b), &pods, &undo_policy(json!([])), 0);
    let s = bad_rollout(&a).expect("BadRollout fires");
    assert_eq!(
        s.headline,
        "BadRollout (revision 2: 1 of 1 new pods failing)"
    );
    assert!(
        s.message.starts_with(
            "rollout to revision 2 (app: shop:1 → shop:2; change-cause: kubectl set image deployment/web app=shop:2): pod web-new-0; container app: restarted 2 times, last Error (exit code 1); back-off 10s"
        ),
        "{}",
        s.message
    );
    assert!(!s.message.contains("uid"), "no pod identity: {}", s.message);
    // No restart count or `for:` of CrashLoopBackOff was waited for.
    assert!(a
        .symptoms
        .iter()
        .all(|s| s.trigger != TriggerType::CrashLoopBackOff));
    assert_eq!(a.first_observed_at, Some(t(-1)));
}

#[test]
fn a_new_pod_that_crashed_once_is_not_a_bad_rollout() {
    let b = baseline();
    let policy = undo_policy(json!([]));
    // In its first back-off (the kubelet's 10 s), then running again.
    for (c, ready) in [(app(Some(CRASH), 1), false), (app(None, 1), true)] {
        let pods = with_new(pod("web-new-0", "web-2", c, ready, -5));
        let a = assess_rollout(&rolling(), Some(&b), &pods, &policy, 0);
        assert!(bad_rollout(&a).is_none(), "{a:?}");
        assert!(a
            .pending
            .iter()
            .all(|(s, _)| s.trigger != TriggerType::BadRollout));
    }
    // A Runbook may choose speed over that guard.
    let eager = undo_policy(json!([{"type": "BadRollout", "minRestarts": 1}]));
    let pods = with_new(pod("web-new-0", "web-2", app(Some(CRASH), 1), false, -5));
    let a = assess_rollout(&rolling(), Some(&b), &pods, &eager, 0);
    assert!(bad_rollout(&a).is_some());
}

#[test]
fn image_pull_and_config_errors_of_new_pods_fire_at_once() {
    let b = baseline();
    let policy = undo_policy(json!([]));
    for (reason, msg) in [
        ("ImagePullBackOff", "Back-off pulling image \"shop:2\""),
        ("ErrImagePull", "rpc error: not found"),
        (
            "CreateContainerConfigError",
            "configmap \"web-config\" not found",
        ),
    ] {
        let pods = with_new(pod(
            "web-new-0",
            "web-2",
            app(Some((reason, msg)), 0),
            false,
            -1,
        ));
        let a = assess_rollout(&rolling(), Some(&b), &pods, &policy, 0);
        let s = bad_rollout(&a).unwrap_or_else(|| panic!("{reason}: {a:?}"));
        assert!(
            s.message
                .contains(&format!("container app: {reason}: {msg}")),
            "{}",
            s.message
        );
        assert_eq!(s.since, t(-1));
    }
}

#[test]
fn a_new_pod_not_ready_past_its_grace_fires_and_a_slow_one_does_not() {
    let b = baseline();
    let policy = undo_policy(json!([]));
    let mut d = rolling();
    d.min_ready_seconds = 10;
    // Running, not Ready, created 20 s ago: pending until 10 s + 1m.
    let pods = with_new(pod("web-new-0", "web-2", app(None, 0), false, -20));
    let a = assess_rollout(&d, Some(&b), &pods, &policy, 0);
    assert!(bad_rollout(&a).is_none());
    let (s, due) = a
        .pending
        .iter()
        .find(|(s, _)| s.trigger == TriggerType::BadRollout)
        .expect("pending");
    assert_eq!(*due, t(-20 + 70));
    assert_eq!(s.since, t(-20));
    assert_eq!(a.wake_at(), Some(t(50)));
    // Still not Ready at the due time: fires.
    let a = assess_rollout(&d, Some(&b), &pods, &policy, 50);
    assert!(bad_rollout(&a).is_some());
    // A slow starter Ready within its grace: nothing.
    let pods = with_new(pod("web-new-0", "web-2", app(None, 0), true, -20));
    let a = assess_rollout(&d, Some(&b), &pods, &policy, 50);
    assert!(bad_rollout(&a).is_none());
    assert!(a.pending.is_empty());
}

#[test]
fn paused_finished_or_already_seen_rollouts_do_not_fire() {
    let b = baseline();
    let policy = undo_policy(json!([]));
    let pods = with_new(pod("web-new-0", "web-2", app(Some(CRASH), 3), false, -40));
    // A paused rollout is a person's canary.
    let mut paused = rolling();
    paused.paused = true;
    assert!(bad_rollout(&assess_rollout(&paused, Some(&b), &pods, &policy, 0)).is_none());
    // Every replica updated and available: not in progress.
    let mut done = rolling();
    done.replicas = 4;
    done.updated = 4;
    assert!(bad_rollout(&assess_rollout(&done, Some(&b), &pods, &policy, 0)).is_none());
    // This revision completed once already (a later crash is not the rollout's).
    let seen = Baseline {
        revision: 2,
        images: vec![],
    };
    assert!(bad_rollout(&assess_rollout(&rolling(), Some(&seen), &pods, &policy, 0)).is_none());
    // Only the newest ReplicaSet's pods count: the old ones crash-looping is
    // not this rollout's doing.
    let mut old = old_pods();
    old.push(pod("web-old-3", "web-1", app(Some(CRASH), 5), false, -3600));
    assert!(bad_rollout(&assess_rollout(&rolling(), Some(&b), &old, &policy, 0)).is_none());
}

#[test]
fn without_memory_the_available_condition_says_whether_it_was_healthy_before() {
    let policy = undo_policy(json!([]));
    let pods = with_new(pod("web-new-0", "web-2", app(Some(CRASH), 2), false, -12));
    // After an operator restart: the old pods still serve.
    let a = assess_rollout(&rolling(), None, &pods, &policy, 0);
    let s = bad_rollout(&a).expect("fires");
    // No memory of the old images: the template's are named.
    assert!(
        s.message.starts_with("rollout to revision 2 (app: shop:2;"),
        "{}",
        s.message
    );
    // Not available before either: the existing triggers judge it.
    let mut broken = rolling();
    broken.available_cond = cond(false, -3600);
    assert!(bad_rollout(&assess_rollout(&broken, None, &pods, &policy, 0)).is_none());
    // With memory of a healthy revision, an unavailable Deployment (a
    // Recreate rollout) still counts.
    let b = baseline();
    assert!(bad_rollout(&assess_rollout(&broken, Some(&b), &pods, &policy, 0)).is_some());
}

#[test]
fn bad_rollout_is_on_with_a_rollout_undo_step_and_can_be_turned_off() {
    let has = |p: &DetectionPolicy| p.trigger(TriggerType::BadRollout).is_some();
    assert!(
        !has(&DetectionPolicy::default()),
        "not in the built-in policy"
    );
    assert!(has(&undo_policy(json!([]))));
    assert!(has(&undo_policy(json!([{"type": "CrashLoopBackOff"}]))));
    assert!(!has(&undo_policy(
        json!([{"type": "BadRollout", "enabled": false}])
    )));
    let grace = undo_policy(json!([{"type": "BadRollout", "for": "3m"}]));
    assert_eq!(
        grace.trigger(TriggerType::BadRollout).unwrap().for_,
        std::time::Duration::from_secs(180)
    );
    // Without a RolloutUndo step it is opt-in.
    let rb: Runbook = serde_json::from_value(json!({
        "apiVersion": "kube-incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {}, "triggers": []}
    }))
    .unwrap();
    assert!(!has(&DetectionPolicy::from_runbook(&rb)));
    // The other triggers are as they were.
    let p = undo_policy(json!([]));
    assert_eq!(
        p.trigger(TriggerType::CrashLoopBackOff)
            .unwrap()
            .min_restarts,
        3
    );
}

#[test]
fn a_baseline_is_a_complete_available_unpaused_revision() {
    assert_eq!(
        Baseline::of(&settled()),
        Some(Baseline {
            revision: 1,
            images: vec![("app".into(), "shop:1".into())],
        })
    );
    assert_eq!(Baseline::of(&rolling()), None);
    let mut unobserved = settled();
    unobserved.generation = Some(3);
    assert_eq!(Baseline::of(&unobserved), None);
    let mut short = settled();
    short.available = 3;
    assert_eq!(Baseline::of(&short), None);
}

//! RolloutUndo: target, refusals, verification after revision re-use.

use super::*;

#[test]
fn undo_finds_previous_revision_like_kubectl() {
    let d = dep(3, "web:v3", json!({}));
    let rss = history();
    let s = step(MitigationAction::RolloutUndo);
    let p = act(plan(
        Actor {
            incident: "inc",
            step: &s,
        },
        w(&d, &rss, &[]),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::TO_REVISION], "2");
    assert_eq!(p.intent[key::REPLICA_SET], "web-bbb");
    assert_eq!(p.intent[key::POD_TEMPLATE_HASH], "bbb");
    assert_eq!(p.intent[key::GENERATION], "5");
    assert_eq!(p.before[key::REVISION], "3");
    let ops = p.write.patch.as_array().unwrap();
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/generation", "value": 5})
    );
    assert_eq!(ops[1]["path"], "/spec/template");
    // The hash label is removed, the template copied.
    assert_eq!(ops[1]["value"]["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(ops[1]["value"]["spec"]["containers"][0]["image"], "web:v2");
    // Annotations: revision kept from the Deployment, the rest from the RS, plus ours.
    let ann = &ops[2]["value"];
    assert_eq!(ann[REVISION_ANNOTATION], "3");
    assert_eq!(ann["team"], "payments");
    assert!(ann
        .get("deployment.kubernetes.io/desired-replicas")
        .is_none());
    assert_eq!(ann[LAST_ACTION_ANNOTATION], "inc/s: RolloutUndo");

    let mut s = step(MitigationAction::RolloutUndo);
    s.to_revision = 1;
    let p = act(plan(
        Actor {
            incident: "inc",
            step: &s,
        },
        w(&d, &rss, &[]),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::REPLICA_SET], "web-aaa");
    s.to_revision = 9;
    assert!(
        matches!(plan(Actor { incident: "inc", step: &s }, w(&d, &rss, &[]), None, now()),
        Plan::Refuse(m) if m.contains("unable to find specified revision 9"))
    );
}

#[test]
fn undo_refusals_and_noop() {
    let d = dep(1, "web:v1", json!({}));
    let rss = vec![history().remove(0)];
    let s = step(MitigationAction::RolloutUndo);
    assert!(
        matches!(plan(Actor { incident: "i", step: &s }, w(&d, &rss, &[]), None, now()),
        Plan::Refuse(m) if m.contains("no rollout history"))
    );
    let d = dep(3, "web:v3", json!({"spec": {"paused": true}}));
    let rss = history();
    assert!(
        matches!(plan(Actor { incident: "i", step: &s }, w(&d, &rss, &[]), None, now()),
        Plan::Refuse(m) if m.contains("paused"))
    );
    // ReplicaSets of another Deployment (other uid) are not history.
    let d = dep(3, "web:v3", json!({"metadata": {"uid": "other"}}));
    assert!(matches!(
        plan(
            Actor {
                incident: "i",
                step: &s
            },
            w(&d, &rss, &[]),
            None,
            now()
        ),
        Plan::Refuse(_)
    ));
    // The template already matches the previous revision.
    let d = dep(3, "web:v2", json!({}));
    assert!(matches!(
        plan(
            Actor {
                incident: "i",
                step: &s
            },
            w(&d, &rss, &[]),
            None,
            now()
        ),
        Plan::Noop(_)
    ));
}

#[test]
fn undo_applied_and_verified_after_revision_reuse() {
    let rss = history();
    let s = step(MitigationAction::RolloutUndo);
    let d = dep(3, "web:v3", json!({}));
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &rss, &[]),
        None,
        now(),
    ));
    assert!(!is_applied(&s, &p.intent, w(&d, &rss, &[])));
    assert!(unchanged_since_intent(&p.intent, w(&d, &rss, &[])));
    // After the patch: template of v2, generation 6, not yet observed.
    let d = dep(3, "web:v2", json!({"metadata": {"generation": 6}}));
    assert!(is_applied(&s, &p.intent, w(&d, &rss, &[])));
    assert!(!unchanged_since_intent(&p.intent, w(&d, &rss, &[])));
    assert!(matches!(
        verify(&s, &p.intent, w(&d, &rss, &[])),
        Verification::Waiting(_)
    ));
    // The controller re-used web-bbb as revision 4 and finished the rollout.
    let d = dep(
        4,
        "web:v2",
        json!({"metadata": {"generation": 6}, "status": {"observedGeneration": 6}}),
    );
    let mut rss = history();
    rss[1] = rs("web-bbb", 4, "web:v2", "2026-01-01T01:00:00Z");
    match verify(&s, &p.intent, w(&d, &rss, &[])) {
        Verification::Done { after, message } => {
            assert_eq!(after[key::REVISION], "4");
            assert!(message.contains("template of revision 2"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A progress deadline fails the verification.
    let d = dep(
        4,
        "web:v2",
        json!({"metadata": {"generation": 6}, "status": {"observedGeneration": 6,
        "availableReplicas": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}),
    );
    assert!(matches!(
        verify(&s, &p.intent, w(&d, &rss, &[])),
        Verification::Failed(_)
    ));
    // Someone re-applied v3: an external change.
    let d = dep(5, "web:v3", json!({"metadata": {"generation": 7}}));
    assert!(external_change(&s, &p.intent, w(&d, &rss, &[])).is_some());
}

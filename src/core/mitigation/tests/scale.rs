//! Scale: bounds, HPAs (fenced by resourceVersion) and the revert.

use super::*;

#[test]
fn scale_bounds_hpa_and_revert() {
    let d = dep(3, "web:v3", json!({}));
    let mut s = step(MitigationAction::Scale);
    s.replicas = Some(6);
    s.max_replicas = Some(5);
    assert!(
        matches!(plan(Actor { incident: "i", step: &s }, w(&d, &[], &[]), None, now()),
        Plan::Refuse(m) if m.contains("maxReplicas 5"))
    );
    s.max_replicas = None;
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &[]),
        None,
        now(),
    ));
    assert_eq!(p.before[key::REPLICAS], "3");
    assert_eq!(
        p.write.patch[1],
        json!({"op": "add", "path": "/spec/replicas", "value": 6})
    );
    assert_eq!(p.write.target, WriteTarget::Deployment("web".into()));
    // Revert only while the field holds our value.
    let scaled = dep(3, "web:v3", json!({"spec": {"replicas": 6}}));
    assert!(matches!(
        plan_revert(
            Actor {
                incident: "i",
                step: &s
            },
            &p.before,
            &p.intent,
            &[],
            w(&scaled, &[], &[])
        ),
        Revert::Act { .. }
    ));
    let changed = dep(3, "web:v3", json!({"spec": {"replicas": 8}}));
    assert!(
        matches!(plan_revert(Actor { incident: "i", step: &s }, &p.before, &p.intent, &[], w(&changed, &[], &[])),
        Revert::Refuse(m) if m.contains("now has 8 replicas"))
    );
    assert!(matches!(
        plan_revert(
            Actor {
                incident: "i",
                step: &s
            },
            &p.before,
            &p.intent,
            &[],
            w(&d, &[], &[])
        ),
        Revert::AlreadyReverted(_)
    ));

    // Under an HPA: raise minReplicas, or refuse.
    let hpas = [hpa(None, 10)];
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &hpas),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::Hpa("web-hpa".into()));
    assert_eq!(p.before[key::HPA_MIN_REPLICAS], ABSENT);
    assert_eq!(
        p.write.patch[1],
        json!({"op": "add", "path": "/spec/minReplicas", "value": 6})
    );
    let raised = [hpa(Some(6), 10)];
    assert!(is_applied(&s, &p.intent, w(&d, &[], &raised)));
    match plan_revert(
        Actor {
            incident: "i",
            step: &s,
        },
        &p.before,
        &p.intent,
        &[],
        w(&d, &[], &raised),
    ) {
        Revert::Act { write, .. } => assert_eq!(
            write.patch[1],
            json!({"op": "remove", "path": "/spec/minReplicas"})
        ),
        other => panic!("{other:?}"),
    }
    let capped = [hpa(Some(2), 4)];
    assert!(
        matches!(plan(Actor { incident: "i", step: &s }, w(&d, &[], &capped), None, now()),
        Plan::Refuse(m) if m.contains("maxReplicas 4"))
    );
    s.replicas = Some(2);
    assert!(matches!(
        plan(
            Actor {
                incident: "i",
                step: &s
            },
            w(&d, &[], &capped),
            None,
            now()
        ),
        Plan::Refuse(_)
    ));
}

#[test]
fn hpa_writes_are_fenced_by_resource_version_not_generation() {
    // kube-apiserver sets no metadata.generation on HPAs.
    let no_generation = |min: Option<i32>, rv: &str, current: i32| -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "web-hpa", "resourceVersion": rv},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": min, "maxReplicas": 10},
            "status": {"currentReplicas": current, "desiredReplicas": current}
        }))
        .unwrap()
    };
    let d = dep(3, "web:v3", json!({}));
    let mut s = step(MitigationAction::Scale);
    s.replicas = Some(6);
    let hpas = [no_generation(Some(2), "41", 3)];
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &hpas),
        None,
        now(),
    ));
    assert_eq!(
        p.write.patch[0],
        json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "41"}),
        "the HPA write carries the resourceVersion it was planned from"
    );
    assert!(
        !p.write.patch.to_string().contains("/metadata/generation"),
        "no generation test on an object without a generation: {}",
        p.write.patch
    );
    assert_eq!(expected_generation(&p.write), None);
    assert!(!p.intent.contains_key(key::HPA_GENERATION));
    // The autoscaler's status writes move the resourceVersion, not the spec:
    // the recorded plan still applies (re-planned from the fresh read).
    let status_moved = [no_generation(Some(2), "57", 4)];
    assert!(unchanged_since_intent(&p.intent, w(&d, &[], &status_moved)));
    let again = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &status_moved),
        None,
        now(),
    ));
    assert_eq!(again.intent, p.intent);
    assert_eq!(again.write.patch[0]["value"], "57");
    // Someone changed the spec: not the state the intent was planned on.
    let spec_moved = [no_generation(Some(4), "60", 4)];
    assert!(!unchanged_since_intent(&p.intent, w(&d, &[], &spec_moved)));
    // The revert is fenced the same way.
    let raised = [no_generation(Some(6), "70", 6)];
    match plan_revert(
        Actor {
            incident: "i",
            step: &s,
        },
        &p.before,
        &p.intent,
        &[],
        w(&d, &[], &raised),
    ) {
        Revert::Act { write, .. } => {
            assert_eq!(
                write.patch[0],
                json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "70"})
            );
            assert_eq!(
                write.patch[1],
                json!({"op": "replace", "path": "/spec/minReplicas", "value": 2})
            );
        }
        other => panic!("{other:?}"),
    }
    // A Deployment write keeps its generation test.
    s.replicas = Some(5);
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &[]),
        None,
        now(),
    ));
    assert_eq!(expected_generation(&p.write), Some(5));
}

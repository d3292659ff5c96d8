//! SetEnv and RolloutRestart.

use super::*;

#[test]
fn set_env_records_prior_values_and_reverts_exactly() {
    let d = dep(3, "web:v3", json!({}));
    let mut s = step(MitigationAction::SetEnv);
    s.env = vec![
        EnvVarSetting {
            name: "MODE".into(),
            value: "safe".into(),
        },
        EnvVarSetting {
            name: "NEW".into(),
            value: "false".into(),
        },
    ];
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &[]),
        None,
        now(),
    ));
    // Every container by default.
    assert_eq!(p.previous_env.len(), 4);
    assert_eq!(
        p.previous_env[0],
        RecordedEnvVar {
            container: "app".into(),
            name: "MODE".into(),
            value: Some("fast".into())
        }
    );
    assert_eq!(p.previous_env[1].value, None);
    assert_eq!(
        p.write.patch[1]["path"],
        "/spec/template/spec/containers/0/env"
    );
    assert_eq!(
        p.write.patch[1]["value"],
        json!([{"name": "MODE", "value": "safe"}, {"name": "NEW", "value": "false"}])
    );
    assert_eq!(
        p.write.patch[2]["value"],
        json!([{"name": "MODE", "value": "safe"}, {"name": "NEW", "value": "false"}])
    );

    // One container only.
    s.container = Some("app".into());
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &[]),
        None,
        now(),
    ));
    assert_eq!(p.previous_env.len(), 2);
    let applied = dep(
        3,
        "web:v3",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "web:v3", "env": [{"name": "MODE", "value": "safe"}, {"name": "NEW", "value": "false"}]},
        {"name": "sidecar", "image": "proxy"}]}}}}),
    );
    assert!(is_applied(&s, &p.intent, w(&applied, &[], &[])));
    match plan_revert(
        Actor {
            incident: "i",
            step: &s,
        },
        &p.before,
        &p.intent,
        &p.previous_env,
        w(&applied, &[], &[]),
    ) {
        Revert::Act { write, .. } => assert_eq!(
            write.patch[1]["value"],
            json!([{"name": "MODE", "value": "fast"}])
        ),
        other => panic!("{other:?}"),
    }
    let changed = dep(
        3,
        "web:v3",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "web:v3", "env": [{"name": "MODE", "value": "manual"}, {"name": "NEW", "value": "false"}]},
        {"name": "sidecar", "image": "proxy"}]}}}}),
    );
    assert!(
        matches!(plan_revert(Actor { incident: "i", step: &s }, &p.before, &p.intent, &p.previous_env, w(&changed, &[], &[])),
        Revert::Refuse(m) if m.contains("MODE"))
    );
    assert!(matches!(
        plan_revert(
            Actor {
                incident: "i",
                step: &s
            },
            &p.before,
            &p.intent,
            &p.previous_env,
            w(&d, &[], &[])
        ),
        Revert::AlreadyReverted(_)
    ));
    // valueFrom cannot be restored exactly: refuse.
    let from = dep(
        3,
        "web:v3",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "web:v3", "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]}]}}}}),
    );
    assert!(
        matches!(plan(Actor { incident: "i", step: &s }, w(&from, &[], &[]), None, now()),
        Plan::Refuse(m) if m.contains("valueFrom"))
    );
}

#[test]
fn restart_reuses_recorded_timestamp() {
    let d = dep(3, "web:v3", json!({}));
    let s = step(MitigationAction::RolloutRestart);
    let p = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &[]),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::RESTARTED_AT], "2026-01-01T02:10:00Z");
    assert_eq!(
        p.write.patch[1]["path"],
        "/spec/template/metadata/annotations"
    );
    let later = act(plan(
        Actor {
            incident: "i",
            step: &s,
        },
        w(&d, &[], &[]),
        Some(&p.intent),
        ts("2026-01-01T03:00:00Z"),
    ));
    assert_eq!(later.write, p.write, "a replay sends the same write");
    let paused = dep(3, "web:v3", json!({"spec": {"paused": true}}));
    assert!(
        matches!(plan(Actor { incident: "i", step: &s }, w(&paused, &[], &[]), None, now()),
        Plan::Refuse(m) if m.contains("paused"))
    );
}

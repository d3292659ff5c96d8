//! StatefulSets, DaemonSets and CronJobs: undo from ControllerRevisions,
//! what an undo cannot do (OnDelete, partition, OrderedReady), DeletePods,
//! Suspend, and the generic actions on these kinds.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;

use super::*;

fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "app", "image": image,
            "env": [{"name": "MODE", "value": "fast"}]}]}})
}

fn sts(image: &str, extra: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "db", "namespace": "shop", "uid": "s-uid", "generation": 7,
            "resourceVersion": "50", "labels": {"app": "db"}},
        "spec": {"replicas": 3, "serviceName": "db", "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}}, "template": template(image)},
        "status": {"observedGeneration": 7, "replicas": 3, "readyReplicas": 2,
            "updatedReplicas": 1, "currentReplicas": 2,
            "currentRevision": "db-bbb", "updateRevision": "db-ccc"}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn cr(owner: (&str, &str, &str), name: &str, revision: i64, image: &str) -> ControllerRevision {
    let (kind, owner_name, uid) = owner;
    let mut t = template(image);
    t["$patch"] = json!("replace");
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": "2026-01-01T02:00:00Z",
            "labels": {"app": "db", "controller-revision-hash": name.rsplit('-').next().unwrap()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner_name,
                "uid": uid, "controller": true}]},
        "revision": revision,
        "data": {"spec": {"template": t}}
    }))
    .unwrap()
}

fn sts_history() -> Vec<ControllerRevision> {
    let o = ("StatefulSet", "db", "s-uid");
    vec![
        cr(o, "db-aaa", 1, "db:v1"),
        cr(o, "db-bbb", 2, "db:v2"),
        cr(o, "db-ccc", 3, "db:v3"),
    ]
}

fn pod(name: &str, uid: &str, owner_uid: &str, rev: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": format!("rv-{uid}"),
            "labels": {"app": "db", "controller-revision-hash": rev},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                "uid": owner_uid, "controller": true}]},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap()
}

fn sts_pods() -> Vec<Pod> {
    vec![
        pod("db-0", "p0", "s-uid", "db-bbb", true),
        pod("db-1", "p1", "s-uid", "db-bbb", true),
        pod("db-2", "p2", "s-uid", "db-ccc", false),
        // Another owner's pod is never counted.
        pod("other-0", "px", "o-uid", "x", false),
    ]
}

fn set<'a, T>(
    object: &'a T,
    revisions: &'a [ControllerRevision],
    pods: &'a [Pod],
) -> SetWorkload<'a, T> {
    SetWorkload {
        object,
        revisions,
        pods,
        hpas: &[],
    }
}

fn undo() -> MitigationStep {
    step(MitigationAction::RolloutUndo)
}

#[test]
fn statefulset_undo_writes_the_previous_revision_template_fenced_by_generation() {
    let s = sts("db:v3", json!({}));
    let (revs, pods) = (sts_history(), sts_pods());
    let st = undo();
    let p = act(plan(
        Actor {
            incident: "inc",
            step: &st,
        },
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::StatefulSet("db".into()));
    let ops = p.write.patch.as_array().unwrap();
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/generation", "value": 7})
    );
    assert_eq!(ops[1]["op"], "replace");
    assert_eq!(ops[1]["path"], "/spec/template");
    assert!(ops[1]["value"].get("$patch").is_none());
    assert_eq!(ops[1]["value"]["spec"]["containers"][0]["image"], "db:v2");
    assert_eq!(p.intent[key::CONTROLLER_REVISION], "db-bbb");
    assert_eq!(p.intent[key::TO_REVISION], "2");
    assert_eq!(p.intent[key::KIND], "StatefulSet");
    assert_eq!(p.intent[key::IMAGES], "app=db:v2");
    assert_eq!(p.before[key::REVISION], "3");
    assert_eq!(p.before[key::CONTROLLER_REVISION], "db-ccc");
    assert!(!p.intent.contains_key(key::LIMITATION), "{:?}", p.intent);
    assert!(
        p.description.contains("from revision 3 to revision 2"),
        "{}",
        p.description
    );
    assert!(!is_applied(
        &st,
        &p.intent,
        Target::StatefulSet(set(&s, &revs, &pods))
    ));
    assert!(unchanged_since_intent(
        &p.intent,
        Target::StatefulSet(set(&s, &revs, &pods))
    ));

    // Written, not yet observed: applied, waiting.
    let written = sts("db:v2", json!({"metadata": {"generation": 8}}));
    let t = Target::StatefulSet(set(&written, &revs, &pods));
    assert!(is_applied(&st, &p.intent, t));
    assert!(
        matches!(verify(&st, &p.intent, t), Verification::Waiting(m) if m.contains("want db-bbb"))
    );
    // Observed and rolled out (the controller reuses db-bbb as revision 4).
    let done = sts(
        "db:v2",
        json!({"metadata": {"generation": 8}, "status": {"observedGeneration": 8,
        "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-bbb", "updateRevision": "db-bbb"}}),
    );
    match verify(
        &st,
        &p.intent,
        Target::StatefulSet(set(&done, &revs, &pods)),
    ) {
        Verification::Done { after, message } => {
            assert_eq!(after[key::CONTROLLER_REVISION], "db-bbb");
            assert!(message.contains("rolling update complete"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Someone else changed the template since: the external change is named.
    let other = sts("db:v9", json!({"metadata": {"generation": 9}}));
    let msg = external_change(
        &st,
        &p.intent,
        Target::StatefulSet(set(&other, &revs, &pods)),
    )
    .unwrap();
    assert!(
        msg.contains("StatefulSet db no longer matches revision 2"),
        "{msg}"
    );
}

#[test]
fn statefulset_undo_noop_and_refusals_like_kubectl() {
    let (revs, pods) = (sts_history(), sts_pods());
    let st = undo();
    let a = Actor {
        incident: "i",
        step: &st,
    };
    let same = sts("db:v2", json!({}));
    assert!(
        matches!(plan(a, Target::StatefulSet(set(&same, &revs, &pods)), None, now()),
        Plan::Noop(m) if m.contains("skipped rollback"))
    );
    let s = sts("db:v3", json!({}));
    let one = vec![sts_history().remove(2)];
    assert!(
        matches!(plan(a, Target::StatefulSet(set(&s, &one, &pods)), None, now()),
        Plan::Refuse(m) if m.contains("no last revision to roll back to"))
    );
    let mut to9 = undo();
    to9.to_revision = 9;
    assert!(
        matches!(plan(Actor { incident: "i", step: &to9 }, Target::StatefulSet(set(&s, &revs, &pods)), None, now()),
        Plan::Refuse(m) if m.contains("unable to find specified revision 9"))
    );
    let mut to1 = undo();
    to1.to_revision = 1;
    let p = act(plan(
        Actor {
            incident: "i",
            step: &to1,
        },
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::CONTROLLER_REVISION], "db-aaa");
}

#[test]
fn statefulset_undo_says_what_it_cannot_replace() {
    let (revs, pods) = (sts_history(), sts_pods());
    let st = undo();
    let a = Actor {
        incident: "i",
        step: &st,
    };
    // OrderedReady waiting on the broken db-2: a forced rollback.
    let ordered = sts(
        "db:v3",
        json!({"spec": {"podManagementPolicy": "OrderedReady"}}),
    );
    let p = act(plan(
        a,
        Target::StatefulSet(set(&ordered, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "OrderedReady");
    assert!(p.description.contains("db-2"), "{}", p.description);
    assert!(
        p.description.contains("cannot replace"),
        "{}",
        p.description
    );
    assert!(p.description.contains("DeletePods"), "{}", p.description);
    // Done once written and observed, though db-2 is still broken.
    let observed = sts(
        "db:v2",
        json!({"metadata": {"generation": 8},
        "spec": {"podManagementPolicy": "OrderedReady"},
        "status": {"observedGeneration": 8, "updateRevision": "db-bbb"}}),
    );
    match verify(
        &st,
        &p.intent,
        Target::StatefulSet(set(&observed, &revs, &pods)),
    ) {
        Verification::Done { message, after } => {
            assert!(message.contains("not replaced until deleted"), "{message}");
            assert!(message.contains("db-2"), "{message}");
            assert_eq!(after[key::LIMITATION], "OrderedReady");
        }
        other => panic!("{other:?}"),
    }
    // The default policy is OrderedReady too.
    let default = sts("db:v3", json!({"spec": {"podManagementPolicy": null}}));
    let p = act(plan(
        a,
        Target::StatefulSet(set(&default, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "OrderedReady");
    // OnDelete and partitions.
    let on_delete = sts(
        "db:v3",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    let p = act(plan(
        a,
        Target::StatefulSet(set(&on_delete, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "OnDelete");
    assert!(
        p.description.contains("does not replace pods"),
        "{}",
        p.description
    );
    let partitioned = sts(
        "db:v3",
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"partition": 2}}}}),
    );
    let p = act(plan(
        a,
        Target::StatefulSet(set(&partitioned, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "Partition");
    // Parallel with every off-revision pod Ready: the controller replaces them.
    let healthy: Vec<Pod> = vec![pod("db-2", "p2", "s-uid", "db-ccc", true)];
    let ordered_ok = sts(
        "db:v3",
        json!({"spec": {"podManagementPolicy": "OrderedReady"}}),
    );
    let p = act(plan(
        a,
        Target::StatefulSet(set(&ordered_ok, &revs, &healthy)),
        None,
        now(),
    ));
    assert!(!p.intent.contains_key(key::LIMITATION));
}

#[test]
fn delete_pods_records_the_pods_then_deletes_with_preconditions() {
    let revs = sts_history();
    let pods = sts_pods();
    let st = step(MitigationAction::DeletePods);
    let a = Actor {
        incident: "i",
        step: &st,
    };
    let s = sts(
        "db:v2",
        json!({"spec": {"podManagementPolicy": "OrderedReady"},
        "status": {"updateRevision": "db-bbb"}}),
    );
    let p = act(plan(
        a,
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::PODS], "db-2/p2");
    assert_eq!(p.intent[key::UPDATE_REVISION], "db-bbb");
    assert_eq!(
        p.write.target,
        WriteTarget::Pods(vec![PodDelete {
            name: "db-2".into(),
            uid: "p2".into(),
            resource_version: "rv-p2".into()
        }])
    );
    assert!(p.before[key::PODS].contains("db-2=db-ccc (not ready)"));
    let t = Target::StatefulSet(set(&s, &revs, &pods));
    assert!(!is_applied(&st, &p.intent, t));
    // After a crash: only the recorded pods, never new ones.
    let more = vec![
        pod("db-1", "p1", "s-uid", "db-ccc", false),
        pod("db-2", "p2", "s-uid", "db-ccc", false),
    ];
    let again = act(plan(
        a,
        Target::StatefulSet(set(&s, &revs, &more)),
        Some(&p.intent),
        now(),
    ));
    assert_eq!(again.intent, p.intent);
    assert!(
        matches!(&again.write.target, WriteTarget::Pods(d) if d.len() == 1 && d[0].name == "db-2")
    );
    // Replaced (same name, new uid): applied; verified when rolled out.
    let replaced = vec![
        pod("db-0", "p0", "s-uid", "db-bbb", true),
        pod("db-1", "p1", "s-uid", "db-bbb", true),
        pod("db-2", "p2b", "s-uid", "db-bbb", false),
    ];
    let t = Target::StatefulSet(set(&s, &revs, &replaced));
    assert!(is_applied(&st, &p.intent, t));
    assert!(matches!(
        verify(&st, &p.intent, t),
        Verification::Waiting(_)
    ));
    let ready = sts(
        "db:v2",
        json!({"status": {"readyReplicas": 3, "updatedReplicas": 3,
        "currentRevision": "db-bbb", "updateRevision": "db-bbb"}}),
    );
    match verify(
        &st,
        &p.intent,
        Target::StatefulSet(set(&ready, &revs, &replaced)),
    ) {
        Verification::Done { message, .. } => {
            assert!(message.contains("deleted pod(s) db-2"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        external_change(
            &st,
            &p.intent,
            Target::StatefulSet(set(&ready, &revs, &replaced))
        ),
        None
    );
    // Nothing off the update revision: nothing to do.
    assert!(matches!(
        plan(
            a,
            Target::StatefulSet(set(&ready, &revs, &replaced)),
            None,
            now()
        ),
        Plan::Noop(_)
    ));
    // Not observed yet: the update revision is unknown.
    let unobserved = sts("db:v2", json!({"metadata": {"generation": 9}}));
    assert!(
        matches!(plan(a, Target::StatefulSet(set(&unobserved, &revs, &pods)), None, now()),
        Plan::Refuse(m) if m.contains("not observed generation 9"))
    );
    // A partition keeps pods below it.
    let part = sts(
        "db:v2",
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"partition": 3}}}, "status": {"updateRevision": "db-bbb"}}),
    );
    assert!(matches!(
        plan(
            a,
            Target::StatefulSet(set(&part, &revs, &pods)),
            None,
            now()
        ),
        Plan::Noop(_)
    ));
}

fn ds(image: &str, extra: Value) -> DaemonSet {
    let mut v = json!({
        "metadata": {"name": "agent", "namespace": "shop", "uid": "d-uid", "generation": 3,
            "labels": {"app": "db"}},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": template(image)},
        "status": {"observedGeneration": 3, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
            "numberMisscheduled": 0, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn ds_history() -> Vec<ControllerRevision> {
    let o = ("DaemonSet", "agent", "d-uid");
    vec![cr(o, "agent-h1", 1, "db:v1"), cr(o, "agent-h2", 2, "db:v2")]
}

#[test]
fn daemonset_undo_and_delete_pods() {
    let revs = ds_history();
    let pods = vec![
        pod("agent-x", "x1", "d-uid", "h2", false),
        pod("agent-y", "y1", "d-uid", "h1", true),
    ];
    let st = undo();
    let a = Actor {
        incident: "i",
        step: &st,
    };
    let d = ds("db:v2", json!({}));
    let p = act(plan(
        a,
        Target::DaemonSet(set(&d, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::DaemonSet("agent".into()));
    assert_eq!(p.write.patch[0]["value"], 3);
    assert_eq!(p.intent[key::CONTROLLER_REVISION], "agent-h1");
    assert!(!p.intent.contains_key(key::LIMITATION));
    // The controller makes agent-h1 the newest revision (3) and rolls out.
    let mut after_revs = ds_history();
    after_revs[0].revision = 3;
    let rolled = ds(
        "db:v1",
        json!({"metadata": {"generation": 4}, "status": {"observedGeneration": 4,
        "numberAvailable": 3, "numberReady": 3}}),
    );
    let t = Target::DaemonSet(set(&rolled, &after_revs, &pods));
    assert!(is_applied(&st, &p.intent, t));
    match verify(&st, &p.intent, t) {
        Verification::Done { message, .. } => {
            assert!(message.contains("successfully rolled out"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let waiting = Target::DaemonSet(set(&rolled, &revs, &pods));
    assert!(
        matches!(verify(&st, &p.intent, waiting), Verification::Waiting(m) if m.contains("newest ControllerRevision agent-h2"))
    );
    // OnDelete: said plainly.
    let on_delete = ds(
        "db:v2",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    let p = act(plan(
        a,
        Target::DaemonSet(set(&on_delete, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "OnDelete");
    assert!(p.description.contains("agent-x"), "{}", p.description);
    // DeletePods: pods whose hash is not the newest revision's.
    let del = step(MitigationAction::DeletePods);
    let p = act(plan(
        Actor {
            incident: "i",
            step: &del,
        },
        Target::DaemonSet(set(&d, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::PODS], "agent-y/y1");
    assert_eq!(p.intent[key::UPDATE_REVISION], "h2");
}

#[test]
fn generic_actions_on_statefulsets_and_daemonsets() {
    let (revs, pods) = (sts_history(), sts_pods());
    let s = sts("db:v3", json!({}));
    let d = ds("db:v2", json!({}));
    let mut scale = step(MitigationAction::Scale);
    scale.replicas = Some(5);
    let p = act(plan(
        Actor {
            incident: "i",
            step: &scale,
        },
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::StatefulSet("db".into()));
    assert_eq!(
        p.write.patch[1],
        json!({"op": "add", "path": "/spec/replicas", "value": 5})
    );
    // An HPA on the StatefulSet gets its minReplicas raised instead.
    let h: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "db-hpa", "resourceVersion": "7"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"},
            "minReplicas": 2, "maxReplicas": 10}
    }))
    .unwrap();
    let hpas = vec![h];
    let with_hpa = SetWorkload {
        object: &s,
        revisions: &revs,
        pods: &pods,
        hpas: &hpas,
    };
    let p = act(plan(
        Actor {
            incident: "i",
            step: &scale,
        },
        Target::StatefulSet(with_hpa),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::Hpa("db-hpa".into()));
    // Scale is refused on a DaemonSet.
    assert!(
        matches!(plan(Actor { incident: "i", step: &scale }, Target::DaemonSet(set(&d, &[], &[])), None, now()),
        Plan::Refuse(m) if m.contains("Scale acts on a Deployment or StatefulSet, not on a DaemonSet"))
    );
    let mut env = step(MitigationAction::SetEnv);
    env.env = vec![EnvVarSetting {
        name: "MODE".into(),
        value: "safe".into(),
    }];
    env.revert_on_resolve = true;
    let p = act(plan(
        Actor {
            incident: "i",
            step: &env,
        },
        Target::DaemonSet(set(&d, &[], &[])),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::DaemonSet("agent".into()));
    assert_eq!(p.intent[key::KIND], "DaemonSet");
    let restart = step(MitigationAction::RolloutRestart);
    let p = act(plan(
        Actor {
            incident: "i",
            step: &restart,
        },
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.write.target, WriteTarget::StatefulSet("db".into()));
    assert_eq!(p.intent[key::RESTARTED_AT], "2026-01-01T02:10:00Z");
    assert_eq!(p.before[key::REVISION], "generation 7");
}

fn cronjob(suspend: Option<bool>, generation: i64) -> CronJob {
    serde_json::from_value(json!({
        "metadata": {"name": "nightly", "namespace": "shop", "generation": generation,
            "annotations": {"team": "batch"}},
        "spec": {"schedule": "0 3 * * *", "suspend": suspend,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "app", "image": "job:v1"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}]}
    }))
    .unwrap()
}

#[test]
fn suspend_a_cronjob_and_resume_it_on_resolve() {
    let mut st = step(MitigationAction::Suspend);
    st.revert_on_resolve = true;
    let a = Actor {
        incident: "inc",
        step: &st,
    };
    let c = cronjob(Some(false), 2);
    let p = act(plan(a, Target::CronJob(&c), None, now()));
    assert_eq!(p.write.target, WriteTarget::CronJob("nightly".into()));
    assert_eq!(
        p.write.patch,
        json!([
            {"op": "test", "path": "/metadata/generation", "value": 2},
            {"op": "add", "path": "/spec/suspend", "value": true},
            {"op": "add", "path": "/metadata/annotations/kubeincident.io~1last-action", "value": "inc/s: Suspend"},
        ])
    );
    assert_eq!(p.before[key::SUSPEND], "false");
    assert!(!is_applied(&st, &p.intent, Target::CronJob(&c)));
    let suspended = cronjob(Some(true), 3);
    assert!(is_applied(&st, &p.intent, Target::CronJob(&suspended)));
    match verify(&st, &p.intent, Target::CronJob(&suspended)) {
        Verification::Done { message, .. } => assert!(
            message.contains("1 active Job(s) left running"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        plan(a, Target::CronJob(&suspended), None, now()),
        Plan::Noop(_)
    ));
    // Resumed on Resolved, fenced by the generation.
    match plan_revert(a, &p.before, &p.intent, &[], Target::CronJob(&suspended)) {
        Revert::Act { write, description } => {
            assert_eq!(write.patch[0]["value"], 3);
            assert_eq!(
                write.patch[1],
                json!({"op": "replace", "path": "/spec/suspend", "value": false})
            );
            assert!(description.contains("resumed CronJob nightly"));
        }
        other => panic!("{other:?}"),
    }
    // Resumed by someone else meanwhile: the monitor reports it, the revert has nothing to do.
    assert_eq!(
        external_change(&st, &p.intent, Target::CronJob(&c)).as_deref(),
        Some("CronJob nightly is no longer suspended")
    );
    assert!(matches!(
        plan_revert(a, &p.before, &p.intent, &[], Target::CronJob(&c)),
        Revert::AlreadyReverted(_)
    ));
    // Suspend on a Deployment is refused.
    let d = dep(3, "web:v3", json!({}));
    assert!(matches!(plan(a, w(&d, &[], &[]), None, now()),
        Plan::Refuse(m) if m.contains("Suspend acts on a CronJob, not on a Deployment")));
}

#[test]
fn statefulset_scale_reverts_and_the_gate_reads_each_kind() {
    let (revs, pods) = (sts_history(), sts_pods());
    let s = sts("db:v3", json!({}));
    let mut scale = step(MitigationAction::Scale);
    scale.replicas = Some(5);
    scale.revert_on_resolve = true;
    let a = Actor {
        incident: "i",
        step: &scale,
    };
    let p = act(plan(
        a,
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.before[key::REPLICAS], "3");
    let scaled = sts(
        "db:v3",
        json!({"spec": {"replicas": 5}, "metadata": {"generation": 8}}),
    );
    let t = Target::StatefulSet(set(&scaled, &revs, &pods));
    assert!(is_applied(&scale, &p.intent, t));
    match plan_revert(a, &p.before, &p.intent, &[], t) {
        Revert::Act { write, .. } => {
            assert_eq!(write.target, WriteTarget::StatefulSet("db".into()));
            assert_eq!(write.patch[0]["value"], 8);
            assert_eq!(
                write.patch[1],
                json!({"op": "replace", "path": "/spec/replicas", "value": 3})
            );
        }
        other => panic!("{other:?}"),
    }
    let changed = sts("db:v3", json!({"spec": {"replicas": 4}}));
    assert!(matches!(
        plan_revert(a, &p.before, &p.intent, &[], Target::StatefulSet(set(&changed, &revs, &pods))),
        Revert::Refuse(m) if m.contains("now has 4 replicas")
    ));

    // The gate: the ignore label of any kind; rolloutWithin from the newest
    // ControllerRevision; a CronJob has no rollout.
    let ignored = sts(
        "db:v3",
        json!({"metadata": {"labels": {IGNORE_LABEL: "true"}}}),
    );
    let input = |workload| GateInput {
        step: &scale,
        runbook: None,
        global_dry_run: false,
        workload,
        history: &[],
        now: now(),
    };
    assert!(
        matches!(gate(input(Target::StatefulSet(set(&ignored, &revs, &pods)))),
        Gate::Skip(m) if m.contains("StatefulSet db is labelled"))
    );
    let mut within = step(MitigationAction::RolloutUndo);
    within.when = Some(serde_json::from_value(json!({"rolloutWithin": "30m"})).unwrap());
    let g = |workload| {
        gate(GateInput {
            step: &within,
            runbook: None,
            global_dry_run: false,
            workload,
            history: &[],
            now: now(),
        })
    };
    // Revisions created at 02:00, now 02:10.
    assert_eq!(g(Target::StatefulSet(set(&s, &revs, &pods))), Gate::Go);
    let c = cronjob(None, 1);
    assert!(matches!(g(Target::CronJob(&c)), Gate::Skip(m) if m.contains("no rollout of nightly")));
}

#[test]
fn template_changes_of_sets_say_what_their_controller_will_not_roll_out() {
    let (revs, pods) = (sts_history(), sts_pods());
    let mut env = step(MitigationAction::SetEnv);
    env.env = vec![EnvVarSetting {
        name: "MODE".into(),
        value: "safe".into(),
    }];
    let a = Actor {
        incident: "i",
        step: &env,
    };
    let on_delete = sts(
        "db:v3",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    let p = act(plan(
        a,
        Target::StatefulSet(set(&on_delete, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "OnDelete");
    assert!(
        p.description.contains("does not replace pods"),
        "{}",
        p.description
    );
    // Done once the controller observed the new template.
    let written = sts(
        "db:v3",
        json!({"metadata": {"generation": 8},
        "spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    assert!(
        matches!(verify(&env, &p.intent, Target::StatefulSet(set(&written, &revs, &pods))),
        Verification::Waiting(m) if m.contains("observe generation 8"))
    );
    let observed = sts(
        "db:v3",
        json!({"metadata": {"generation": 8},
        "spec": {"updateStrategy": {"type": "OnDelete"}}, "status": {"observedGeneration": 8}}),
    );
    match verify(
        &env,
        &p.intent,
        Target::StatefulSet(set(&observed, &revs, &pods)),
    ) {
        Verification::Done { message, after } => {
            assert!(message.contains("not replaced until deleted"), "{message}");
            assert_eq!(after[key::ENV], "MODE=safe");
        }
        other => panic!("{other:?}"),
    }
    // OrderedReady with a pod that is not Ready: a restart cannot get past it.
    let restart = step(MitigationAction::RolloutRestart);
    let ordered = sts(
        "db:v3",
        json!({"spec": {"podManagementPolicy": "OrderedReady"}}),
    );
    let p = act(plan(
        Actor {
            incident: "i",
            step: &restart,
        },
        Target::StatefulSet(set(&ordered, &revs, &pods)),
        None,
        now(),
    ));
    assert_eq!(p.intent[key::LIMITATION], "OrderedReady");
    // A healthy Parallel StatefulSet and a RollingUpdate DaemonSet: none.
    let s = sts("db:v3", json!({}));
    let p = act(plan(
        a,
        Target::StatefulSet(set(&s, &revs, &pods)),
        None,
        now(),
    ));
    assert!(!p.intent.contains_key(key::LIMITATION));
    let d = ds("db:v2", json!({}));
    let p = act(plan(a, Target::DaemonSet(set(&d, &[], &[])), None, now()));
    assert!(!p.intent.contains_key(key::LIMITATION));
}

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use serde_json::{json, Value};

use super::*;

fn cr(name: &str, revision: i64, image: &str, uid: &str) -> ControllerRevision {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"controller-revision-hash": name.trim_start_matches("db-")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                "uid": uid, "controller": true}]},
        "revision": revision,
        "data": {"spec": {"template": {"$patch": "replace",
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "app", "image": image}]}}}}
    }))
    .unwrap()
}

fn history() -> Vec<ControllerRevision> {
    vec![
        cr("db-c", 3, "db:v3", "u1"),
        cr("db-a", 1, "db:v1", "u1"),
        cr("other-x", 9, "db:v9", "u2"),
        cr("db-b", 2, "db:v2", "u1"),
    ]
}

fn sts(extra: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "db", "uid": "u1", "generation": 4},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "app", "image": "db:v3"}]}}},
        "status": {"observedGeneration": 4, "replicas": 3, "readyReplicas": 3,
            "updatedReplicas": 3, "currentReplicas": 3, "currentRevision": "db-c", "updateRevision": "db-c"}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            match a.get_mut(&k) {
                Some(x) if x.is_object() && v.is_object() => merge(x, v),
                _ => {
                    a.insert(k, v);
                }
            }
        }
    }
}

#[test]
fn owned_revisions_in_revision_order() {
    let h = history();
    let names: Vec<_> = owned_revisions("u1", &h)
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["db-a", "db-b", "db-c"]);
    assert_eq!(
        newest_revision("u1", &h).unwrap().metadata.name.as_deref(),
        Some("db-c")
    );
}

#[test]
fn rollback_target_like_kubectl_find_history() {
    let h = history();
    let prev = revision_rollback_target("StatefulSet", "db", "u1", &h, 0).unwrap();
    assert_eq!(prev.revision, 2);
    let one = revision_rollback_target("StatefulSet", "db", "u1", &h, 1).unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("db-a"));
    // Another owner's revision is not in the history.
    assert!(matches!(
        revision_rollback_target("StatefulSet", "db", "u1", &h, 9),
        Err(RevisionRollbackError::RevisionNotFound { revision: 9, .. })
    ));
    let only = vec![cr("db-a", 1, "db:v1", "u1")];
    let e = revision_rollback_target("StatefulSet", "db", "u1", &only, 0).unwrap_err();
    assert!(
        e.to_string().contains("no last revision to roll back to"),
        "{e}"
    );
}

#[test]
fn revision_template_drops_the_patch_directive() {
    let t = revision_template(&cr("db-a", 1, "db:v1", "u1")).unwrap();
    assert!(t.get("$patch").is_none());
    assert_eq!(t["spec"]["containers"][0]["image"], "db:v1");
    let s = sts(json!({}));
    let current = s.spec.as_ref().map(|s| &s.template);
    assert!(template_matches_revision(
        &cr("db-c", 3, "db:v3", "u1"),
        current
    ));
    assert!(!template_matches_revision(
        &cr("db-b", 2, "db:v2", "u1"),
        current
    ));
    let empty: ControllerRevision =
        serde_json::from_value(json!({"metadata": {"name": "x"}, "revision": 1})).unwrap();
    assert!(revision_template(&empty).is_err());
    assert_eq!(revision_hash(&cr("db-b", 2, "db:v2", "u1"), "db"), "b");
}

#[test]
fn statefulset_rollout_status() {
    assert!(statefulset_status(&sts(json!({}))).complete);
    let unobserved = sts(json!({"metadata": {"generation": 5}}));
    assert!(statefulset_status(&unobserved)
        .message
        .contains("spec update to be observed"));
    let not_ready = sts(json!({"status": {"readyReplicas": 2}}));
    assert!(statefulset_status(&not_ready)
        .message
        .contains("Waiting for 1 pods"));
    let rolling = sts(json!({"status": {"updateRevision": "db-d", "updatedReplicas": 3}}));
    assert!(!statefulset_status(&rolling).complete);
    let partitioned = sts(json!({
        "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
        "status": {"updateRevision": "db-d", "updatedReplicas": 1}
    }));
    let st = statefulset_status(&partitioned);
    assert!(st.complete, "{st:?}");
    assert!(st.message.contains("partitioned roll out complete"));
    let short = sts(json!({
        "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
        "status": {"updateRevision": "db-d", "updatedReplicas": 1}
    }));
    assert!(!statefulset_status(&short).complete);
    assert_eq!(partition(&short), 1);
    let on_delete_done = sts(json!({
        "spec": {"updateStrategy": {"type": "OnDelete"}},
        "status": {"updateRevision": "db-d", "updatedReplicas": 3}
    }));
    assert!(statefulset_status(&on_delete_done).complete);
    assert!(on_delete(&on_delete_done));
    let on_delete_old = sts(json!({
        "spec": {"updateStrategy": {"type": "OnDelete"}},
        "status": {"updateRevision": "db-d", "updatedReplicas": 0}
    }));
    assert!(!statefulset_status(&on_delete_old).complete);
}

#[test]
fn daemonset_rollout_status() {
    let ds = |status: Value| -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "a"}]}}},
            "status": status
        }))
        .unwrap()
    };
    let base = json!({"observedGeneration": 2, "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3, "numberMisscheduled": 0, "numberReady": 3,
        "updatedNumberScheduled": 3, "numberAvailable": 3});
    assert!(daemonset_status(&ds(base.clone())).complete);
    let mut v = base.clone();
    v["observedGeneration"] = json!(1);
    assert!(daemonset_status(&ds(v)).message.contains("to be observed"));
    let mut v = base.clone();
    v["updatedNumberScheduled"] = json!(2);
    assert!(daemonset_status(&ds(v))
        .message
        .contains("2 out of 3 new pods"));
    let mut v = base;
    v["numberAvailable"] = json!(1);
    assert!(daemonset_status(&ds(v))
        .message
        .contains("1 of 3 updated pods are available"));
}

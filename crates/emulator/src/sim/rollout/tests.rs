//! Tests of the deployment controller's pure logic.

use std::collections::BTreeMap;

use super::*;
use serde_json::json;

fn dep(v: serde_json::Value) -> Deployment {
    serde_json::from_value(v).expect("deployment")
}

fn rs(
    name: &str,
    created: &str,
    replicas: i32,
    available: i32,
    ann: serde_json::Value,
) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created, "annotations": ann},
        "spec": {"replicas": replicas, "selector": {}},
        "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
    }))
    .expect("rs")
}

fn d_with(replicas: i32, surge: serde_json::Value, unavail: serde_json::Value) -> Deployment {
    dep(json!({
        "metadata": {"name": "web", "generation": 2},
        "spec": {"replicas": replicas, "selector": {}, "template": {},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}}
    }))
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let p = |s: &str| IntOrString::String(s.to_string());
    assert_eq!(resolve_fenceposts(&p("25%"), &p("25%"), 10), Ok((3, 2)));
    assert_eq!(resolve_fenceposts(&p("25%"), &p("25%"), 1), Ok((1, 0)));
    assert_eq!(
        resolve_fenceposts(&IntOrString::Int(0), &IntOrString::Int(0), 5),
        Ok((0, 1))
    );
    assert_eq!(resolve_fenceposts(&p("0%"), &p("10%"), 5), Ok((0, 1)));
    assert_eq!(
        resolve_fenceposts(&p("50%"), &IntOrString::Int(2), 3),
        Ok((2, 2))
    );
    assert!(resolve_fenceposts(&p("abc"), &p("1"), 3).is_err());
    // Defaults: 25%/25% of 4 -> 1/1; Recreate -> 0; unavailable capped at replicas.
    let d = dep(json!({"metadata":{},"spec":{"replicas":4,"selector":{},"template":{}}}));
    assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 1));
    let r = dep(
        json!({"metadata":{},"spec":{"replicas":4,"selector":{},"template":{},"strategy":{"type":"Recreate"}}}),
    );
    assert_eq!((max_surge(&r), max_unavailable(&r)), (0, 0));
    assert_eq!(max_unavailable(&d_with(2, json!(0), json!(5))), 2);
}

#[test]
fn revision_reuse_appends_history() {
    let d = dep(
        json!({"metadata":{"annotations":{"kubernetes.io/change-cause":"undo","deployment.kubernetes.io/revision":"2"}},"spec":{"replicas":3,"selector":{},"template":{}}}),
    );
    // Re-used RS of revision 1 becomes revision 3 with history "1".
    let mut ann: BTreeMap<String, String> =
        [(REVISION_ANNOTATION.to_string(), "1".to_string())].into();
    assert!(set_new_rs_annotations(&d, &mut ann, 3, true));
    assert_eq!(ann.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert_eq!(
        ann.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        ann.get(CHANGE_CAUSE_ANNOTATION).map(String::as_str),
        Some("undo")
    );
    assert!(
        !ann.contains_key(DESIRED_REPLICAS_ANNOTATION),
        "existing RS: no replicas annotations here"
    );
    // Again re-used later as 5: history "1,3".
    assert!(set_new_rs_annotations(&d, &mut ann, 5, true));
    assert_eq!(
        ann.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1,3")
    );
    // Same revision: nothing changes.
    assert!(!set_new_rs_annotations(&d, &mut ann, 5, true));
    // New RS: revision and desired/max replicas (3 + ceil(25% of 3) = 4).
    let mut fresh = BTreeMap::new();
    assert!(set_new_rs_annotations(&d, &mut fresh, 1, false));
    assert_eq!(
        fresh.get(REVISION_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert!(!fresh.contains_key(REVISION_HISTORY_ANNOTATION));
    assert_eq!(
        fresh.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        fresh.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("4")
    );
}

#[test]
fn find_new_rs_picks_oldest_matching_and_max_revision() {
    let d = dep(
        json!({"metadata":{},"spec":{"selector":{},"template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"v1"}]}}}}),
    );
    let mk = |name: &str, created: &str, image: &str, rev: &str| -> ReplicaSet {
        serde_json::from_value(json!({"metadata":{"name":name,"creationTimestamp":created,"annotations":{REVISION_ANNOTATION:rev}},
            "spec":{"selector":{},"template":{"metadata":{"labels":{"app":"a","pod-template-hash":name}},"spec":{"containers":[{"name":"c","image":image}]}}}})).expect("rs")
    };
    let rss = vec![
        mk("b", "2024-01-01T00:00:02Z", "v2", "2"),
        mk("a", "2024-01-01T00:00:01Z", "v1", "1"),
        mk("c", "2024-01-01T00:00:03Z", "v1", "x"),
    ];
    assert_eq!(find_new_rs(&d, &rss), Some(1));
    assert_eq!(max_revision(&rss), 2);
    assert_eq!(revision(&rss[2]), 0);
}

#[test]
fn new_rs_scale_up_respects_surge() {
    let d = d_with(4, json!(1), json!(0));
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 0, 0, json!({})),
    ];
    assert_eq!(new_rs_new_replicas(&d, &rss, 1), 1);
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 3, 3, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 2, 1, json!({})),
    ];
    assert_eq!(
        new_rs_new_replicas(&d, &rss, 1),
        2,
        "already at max total 5"
    );
    let d = d_with(10, json!("30%"), json!(0));
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 10, 10, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 0, 0, json!({})),
    ];
    assert_eq!(new_rs_new_replicas(&d, &rss, 1), 3);
    let r = dep(
        json!({"metadata":{},"spec":{"replicas":4,"selector":{},"template":{},"strategy":{"type":"Recreate"}}}),
    );
    assert_eq!(new_rs_new_replicas(&r, &rss, 1), 4);
}

#[test]
fn old_rs_scale_down_respects_unavailable() {
    // 4 replicas, maxUnavailable 1: old 4 available, new 1 not available yet.
    let d = d_with(4, json!(1), json!(1));
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 1, 0, json!({})),
    ];
    // all=5, minAvailable=3, newUnavailable=1 -> maxScaledDown=1; available 4 > 3 -> scale old to 3.
    assert_eq!(reconcile_old_plan(&d, &rss, 1), vec![(0, 3)]);
    // New pod available: all=5, newUnavailable 0 -> maxScaledDown 2; available=5, minAvail 3 -> down 2.
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 1, 1, json!({})),
    ];
    assert_eq!(reconcile_old_plan(&d, &rss, 1), vec![(0, 2)]);
    // Unhealthy old replicas are cleaned first.
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 4, 2, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 1, 1, json!({})),
    ];
    // all=5, minAvail 3, newUnavail 0 -> maxScaledDown 2: cleanup 2 unhealthy -> 2; available 3 == minAvail -> stop.
    assert_eq!(reconcile_old_plan(&d, &rss, 1), vec![(0, 2)]);
    // maxUnavailable 0 and nothing new available: no scale down.
    let d0 = d_with(4, json!(1), json!(0));
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 4, 4, json!({})),
        rs("new", "2024-01-01T00:01:00Z", 1, 0, json!({})),
    ];
    assert!(reconcile_old_plan(&d0, &rss, 1).is_empty());
}

#[test]
fn proportional_scaling_during_rollout() {
    // Real controller example: 10 replicas mid-rollout (old 8, new 5, maxSurge 3), scaled to 15.
    let d = d_with(15, json!(3), json!(2));
    let ann = json!({MAX_REPLICAS_ANNOTATION: "13", DESIRED_REPLICAS_ANNOTATION: "10"});
    let rss = vec![
        rs("old", "2024-01-01T00:00:00Z", 8, 8, ann.clone()),
        rs("new", "2024-01-01T00:01:00Z", 5, 0, ann),
    ];
    let plan = scale_plan(&d, &rss, Some(1));
    let total: i32 = plan.iter().map(|(_, s)| s).sum();
    assert_eq!(total, 18, "15 + maxSurge 3");
    let sizes: BTreeMap<usize, i32> = plan.into_iter().collect();
    assert_eq!(sizes.get(&0), Some(&11)); // 8*18/13 = 11.07 -> 11
    assert_eq!(sizes.get(&1), Some(&7)); // 5*18/13 = 6.9 -> 7
                                         // Only one active RS: it simply gets spec.replicas.
    let rss = vec![rs("new", "2024-01-01T00:01:00Z", 10, 10, json!({}))];
    assert_eq!(scale_plan(&d, &rss, Some(0)), vec![(0, 15)]);
    assert!(is_scaling_event(
        &d,
        &[rs(
            "x",
            "2024-01-01T00:00:00Z",
            3,
            3,
            json!({DESIRED_REPLICAS_ANNOTATION: "10"})
        )]
    ));
}

#[test]
fn cleanup_keeps_history_limit() {
    let d =
        dep(json!({"metadata":{},"spec":{"revisionHistoryLimit":1,"selector":{},"template":{}}}));
    let old = vec![
        rs(
            "r2",
            "2024-01-01T00:00:02Z",
            0,
            0,
            json!({REVISION_ANNOTATION: "2"}),
        ),
        rs(
            "r1",
            "2024-01-01T00:00:01Z",
            0,
            0,
            json!({REVISION_ANNOTATION: "1"}),
        ),
        rs(
            "r3",
            "2024-01-01T00:00:03Z",
            1,
            1,
            json!({REVISION_ANNOTATION: "3"}),
        ),
    ];
    assert_eq!(
        cleanup_plan(&d, &old),
        vec!["r1".to_string(), "r2".to_string()]
    );
}

#[test]
fn conditions_and_progress_deadline() {
    let t0: Timestamp = "2024-01-01T00:00:00Z".parse().expect("ts");
    let t1: Timestamp = "2024-01-01T00:00:05Z".parse().expect("ts");
    let mut d = dep(
        json!({"metadata":{"generation":1},"spec":{"replicas":2,"progressDeadlineSeconds":100,"selector":{},"template":{}}}),
    );
    let rss = vec![rs("new", "2024-01-01T00:00:00Z", 2, 0, json!({}))];
    let s = rollout_status(&d, &rss, Some(0), t0, 1.0);
    let avail = get_condition(&s, COND_AVAILABLE).expect("available");
    assert_eq!(
        (avail.status.as_str(), avail.reason.as_deref()),
        ("False", Some(MIN_UNAVAILABLE_REASON))
    );
    let prog = get_condition(&s, COND_PROGRESSING).expect("progressing");
    assert_eq!(prog.reason.as_deref(), Some(RS_UPDATED_REASON));
    d.status = Some(s);
    // No progress, deadline 100s scaled by 20 -> 5s: not yet at t1 (== deadline), yes after.
    let s2 = rollout_status(&d, &rss, Some(0), t1, 20.0);
    assert_eq!(
        get_condition(&s2, COND_PROGRESSING).and_then(|c| c.reason.as_deref()),
        Some(RS_UPDATED_REASON)
    );
    assert!(requeue_stuck_after(&d, &s2, t1, 20.0).is_some());
    let t2: Timestamp = "2024-01-01T00:00:06Z".parse().expect("ts");
    let s3 = rollout_status(&d, &rss, Some(0), t2, 20.0);
    let c = get_condition(&s3, COND_PROGRESSING).expect("progressing");
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some(TIMED_OUT_REASON))
    );
    assert_eq!(
        c.message.as_deref(),
        Some("ReplicaSet \"new\" has timed out progressing.")
    );
    // Completes: NewReplicaSetAvailable, transition time of Available changes, Progressing's stays.
    let done = vec![rs("new", "2024-01-01T00:00:00Z", 2, 2, json!({}))];
    let s4 = rollout_status(&d, &done, Some(0), t2, 20.0);
    let c = get_condition(&s4, COND_PROGRESSING).expect("progressing");
    assert_eq!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE_REASON));
    assert_eq!(c.last_transition_time.as_ref().map(|t| t.0), Some(t0));
    let a = get_condition(&s4, COND_AVAILABLE).expect("available");
    assert_eq!(
        (
            a.status.as_str(),
            a.last_transition_time.as_ref().map(|t| t.0)
        ),
        ("True", Some(t2))
    );
}

#[test]
fn paused_condition() {
    let now: Timestamp = "2024-01-01T00:00:00Z".parse().expect("ts");
    let d = dep(json!({"metadata":{},"spec":{"paused":true,"selector":{},"template":{}}}));
    let s = paused_conditions(&d, now).expect("paused");
    let c = get_condition(&s, COND_PROGRESSING).expect("cond");
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("Unknown", Some(PAUSED_REASON))
    );
    let mut d2 = d.clone();
    d2.status = Some(s);
    assert!(paused_conditions(&d2, now).is_none());
    d2.spec.as_mut().expect("spec").paused = Some(false);
    let s = paused_conditions(&d2, now).expect("resumed");
    assert_eq!(
        get_condition(&s, COND_PROGRESSING).and_then(|c| c.reason.as_deref()),
        Some(RESUMED_REASON)
    );
}

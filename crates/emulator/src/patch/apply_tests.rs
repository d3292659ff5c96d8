use super::*;
use serde_json::json;

const T1: &str = "2026-11-22T10:00:00Z";
const T2: &str = "2026-11-22T11:00:00Z";
const T3: &str = "2026-11-22T12:00:00Z";

fn deploy() -> MergeSchema {
    MergeSchema::builtin("apps", "v1", "Deployment")
}

fn dep(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn ok<T>(r: Result<T, PatchError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry(obj: &Value, manager: &str) -> Value {
    entries(obj)
        .into_iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or(Value::Null)
}

fn simple_config() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                                         "ports": [{"containerPort": 80}]}]}}}})
}

#[test]
fn apply_creates_with_real_fieldsv1_format() {
    let out = ok(server_side_apply(
        None,
        &simple_config(),
        "kube-incident",
        false,
        None,
        &deploy(),
        T1,
    ));
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let mf = entries(&out);
    assert_eq!(mf.len(), 1);
    // The shape kube-apiserver returns for `kubectl apply --server-side`
    // of this manifest: declared struct fields carry no ".", list-map
    // items do, labels entries are leaves, LabelSelector is atomic and the
    // port key includes the defaulted protocol.
    assert_eq!(
        mf[0],
        json!({"manager": "kube-incident", "operation": "Apply", "apiVersion": "apps/v1",
            "time": T1, "fieldsType": "FieldsV1", "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:containerPort": {}}}}}}}}}})
    );
}

#[test]
fn reapply_same_config_is_a_noop_and_keeps_the_time() {
    let first = ok(server_side_apply(
        None,
        &simple_config(),
        "op",
        false,
        None,
        &deploy(),
        T1,
    ));
    let second = ok(server_side_apply(
        Some(&first),
        &simple_config(),
        "op",
        false,
        None,
        &deploy(),
        T2,
    ));
    // managedFieldsUpdater only moves the time when the object changed.
    assert_eq!(second, first);
}

#[test]
fn two_managers_own_different_env_of_the_same_container() {
    let a = dep(json!({"template": {"spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "X", "value": "1"}]}]}}}));
    let b = dep(json!({"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "Y", "value": "2"}]}]}}}));
    let s = deploy();
    let o1 = ok(server_side_apply(None, &a, "a", false, None, &s, T1));
    let o2 = ok(server_side_apply(Some(&o1), &b, "b", false, None, &s, T2));
    assert_eq!(
        o2["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
    );
    let fb = &entry(&o2, "b")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"app\"}"];
    assert_eq!(
        fb,
        &json!({".": {}, "f:env": {"k:{\"name\":\"Y\"}": {".": {}, "f:name": {}, "f:value": {}}}, "f:name": {}})
    );
    // A re-applies without X: X goes, Y (owned by b) stays, the shared
    // container item stays.
    let a2 =
        dep(json!({"template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}));
    let o3 = ok(server_side_apply(Some(&o2), &a2, "a", false, None, &s, T3));
    assert_eq!(
        o3["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:1", "env": [{"name": "Y", "value": "2"}]}])
    );
}

#[test]
fn dropped_field_is_removed_unless_another_manager_owns_it() {
    let s = MergeSchema::builtin("", "v1", "ConfigMap");
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let o1 = ok(server_side_apply(
        None,
        &cm(json!({"a": "1", "b": "2"})),
        "a",
        false,
        None,
        &s,
        T1,
    ));
    let o2 = ok(server_side_apply(
        Some(&o1),
        &cm(json!({"a": "1"})),
        "a",
        false,
        None,
        &s,
        T2,
    ));
    assert_eq!(o2["data"], json!({"a": "1"}));

    // Same, but "b" is co-owned by another applier with the same value.
    let shared = ok(server_side_apply(
        Some(&o1),
        &cm(json!({"b": "2"})),
        "b",
        false,
        None,
        &s,
        T2,
    ));
    assert_eq!(
        entry(&shared, "b")["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
    // b's apply changed nothing: its entry has no time yet (real behaviour).
    assert!(entry(&shared, "b").get("time").is_none());
    let o3 = ok(server_side_apply(
        Some(&shared),
        &cm(json!({"a": "1"})),
        "a",
        false,
        None,
        &s,
        T3,
    ));
    assert_eq!(o3["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(entry(&o3, "a")["fieldsV1"], json!({"f:data": {"f:a": {}}}));
}

#[test]
fn conflict_with_applier_then_force_moves_ownership() {
    let s = deploy();
    let o1 = ok(server_side_apply(
        None,
        &dep(json!({"replicas": 2})),
        "A",
        false,
        None,
        &s,
        T1,
    ));
    let err = server_side_apply(
        Some(&o1),
        &dep(json!({"replicas": 3})),
        "B",
        false,
        None,
        &s,
        T2,
    );
    match err {
        Err(PatchError::Conflicts(c)) => {
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].manager, "A");
            assert_eq!(c[0].field, ".spec.replicas");
            // printManager prints appliers without version.
            assert_eq!(
                PatchError::Conflicts(c).to_string(),
                "Apply failed with 1 conflict: conflict with \"A\": .spec.replicas"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Same value: no conflict, shared ownership.
    let shared = ok(server_side_apply(
        Some(&o1),
        &dep(json!({"replicas": 2})),
        "B",
        false,
        None,
        &s,
        T2,
    ));
    assert_eq!(
        entry(&shared, "A")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&shared, "B")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // Force: B takes the field, A's entry (now empty) disappears.
    let forced = ok(server_side_apply(
        Some(&o1),
        &dep(json!({"replicas": 3})),
        "B",
        true,
        None,
        &s,
        T2,
    ));
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(entry(&forced, "A"), Value::Null);
    assert_eq!(
        entry(&forced, "B")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn conflict_with_updater_names_its_api_version_and_lists_all_fields() {
    let s = deploy();
    let o1 = ok(server_side_apply(
        None,
        &dep(json!({"replicas": 2, "paused": false})),
        "op",
        false,
        None,
        &s,
        T1,
    ));
    // kubectl scale / edit (an Update) changes fields the applier owns...
    let mut edited = o1.clone();
    edited["spec"]["replicas"] = json!(5);
    edited["spec"]["paused"] = json!(true);
    let o2 = track_update(Some(&o1), &edited, "kubectl-edit", None, &s, T2);
    // ...and silently takes them over.
    assert_eq!(entry(&o2, "op"), Value::Null);
    assert_eq!(entry(&o2, "kubectl-edit")["operation"], "Update");
    assert_eq!(
        entry(&o2, "kubectl-edit")["fieldsV1"],
        json!({"f:spec": {"f:paused": {}, "f:replicas": {}}})
    );
    // Our next apply of other values conflicts.
    let err = server_side_apply(
        Some(&o2),
        &dep(json!({"replicas": 2})),
        "op",
        false,
        None,
        &s,
        T3,
    );
    let Err(PatchError::Conflicts(c)) = err else {
        panic!("expected a conflict")
    };
    assert_eq!(
        PatchError::Conflicts(c).to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
    );
    let err = server_side_apply(
        Some(&o2),
        &dep(json!({"replicas": 2, "paused": false})),
        "op",
        false,
        None,
        &s,
        T3,
    );
    let Err(PatchError::Conflicts(c)) = err else {
        panic!("expected conflicts")
    };
    assert_eq!(
        PatchError::Conflicts(c).to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.paused\n- .spec.replicas"
    );
}

#[test]
fn status_subresource_apply_only_touches_status() {
    let s = deploy();
    let o1 = ok(server_side_apply(
        None,
        &dep(json!({"replicas": 2})),
        "op",
        false,
        None,
        &s,
        T1,
    ));
    let mut body = dep(json!({"replicas": 9}));
    body["status"] =
        json!({"readyReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    let o2 = ok(server_side_apply(
        Some(&o1),
        &body,
        "ctrl",
        false,
        Some("status"),
        &s,
        T2,
    ));
    assert_eq!(o2["spec"]["replicas"], 2);
    assert_eq!(o2["status"]["readyReplicas"], 2);
    let e = entry(&o2, "ctrl");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
                            "f:readyReplicas": {}}})
    );
    // A main-resource apply ignores .status for kinds with a status subresource.
    let mut main = dep(json!({"replicas": 2}));
    main["status"] = json!({"readyReplicas": 7});
    let o3 = ok(server_side_apply(
        Some(&o2),
        &main,
        "op",
        false,
        None,
        &s,
        T3,
    ));
    assert_eq!(o3["status"]["readyReplicas"], 2);
    assert_eq!(
        entry(&o3, "op")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn apply_validation_errors() {
    let s = deploy();
    let mut c = simple_config();
    c["metadata"]["managedFields"] = json!([]);
    assert!(matches!(
        server_side_apply(None, &c, "m", false, None, &s, T1),
        Err(PatchError::Invalid(_))
    ));
    let no_kind = json!({"apiVersion": "apps/v1", "metadata": {"name": "web"}});
    assert!(matches!(
        server_side_apply(None, &no_kind, "m", false, None, &s, T1),
        Err(PatchError::Invalid(_))
    ));
    let no_key = dep(json!({"template": {"spec": {"containers": [{"image": "x"}]}}}));
    let err = server_side_apply(None, &no_key, "m", false, None, &s, T1);
    match err {
        Err(PatchError::Unprocessable(m)) => {
            assert!(m.contains("omits key field \"name\""), "{m}")
        }
        other => panic!("expected Unprocessable, got {other:?}"),
    }
    let dup = dep(json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}));
    assert!(server_side_apply(None, &dup, "m", false, None, &s, T1).is_err());
}

#[test]
fn track_update_on_create_matches_kubectl_create_fields() {
    let s = deploy();
    let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
    let out = track_update(None, &obj, "kubectl-create", None, &s, T1);
    let e = entry(&out, "kubectl-create");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    // Compared with the Go zero value of a Deployment: maps absent from it
    // (labels, rollingUpdate, list items) get ".", those present in it
    // (spec, strategy, template.metadata) do not.
    assert_eq!(
        e["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
    );
    // An update that changes nothing keeps entries and time.
    let same = track_update(Some(&out), &out, "kubectl-create", None, &s, T2);
    assert_eq!(same, out);
    // The real reset: managedFields: [{}] strips them.
    let mut reset = out.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    let r = track_update(Some(&out), &reset, "kubectl-patch", None, &s, T2);
    assert!(r["metadata"].get("managedFields").is_none());
}

#[test]
fn kubectl_rollout_undo_json_patch_is_tracked_as_update() {
    let s = deploy();
    let live = ok(server_side_apply(
        None,
        &simple_config(),
        "op",
        false,
        None,
        &s,
        T1,
    ));
    // kubectl rollout undo sends a JSON patch replacing the template and
    // the annotations (getDeploymentPatch in kubectl's rollback.go).
    let undo = json!([
        {"op": "replace", "path": "/spec/template", "value": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.24", "ports": [{"containerPort": 80}]}]}}},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
    ]);
    let mut patched = live.clone();
    // /metadata/annotations does not exist yet: "replace" fails like in
    // kube-apiserver, kubectl then gets a 422.
    assert!(super::super::json_patch(&mut patched, &undo).is_err());
    patched = live.clone();
    patched["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
    ok(super::super::json_patch(&mut patched, &undo));
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.24"
    );
    let out = track_update(Some(&live), &patched, "kubectl-rollout", None, &s, T2);
    let e = entry(&out, "kubectl-rollout");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}})
    );
    // The applier lost only the image.
    let op = entry(&out, "op");
    assert!(
        op["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
            .get("f:image")
            .is_none()
    );
    assert_eq!(op["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
}

#[test]
fn crd_schema_list_map_merges_items_across_managers() {
    let schema = MergeSchema::from_openapi_v3(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "steps": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {
                          "name": {"type": "string"}, "action": {"type": "string"}}}},
            "tags": {"type": "array", "items": {"type": "string"}}}}}}));
    let cr = |spec: Value| {
        json!({"apiVersion": "ops.example.com/v1alpha1", "kind": "Runbook",
                                  "metadata": {"name": "r"}, "spec": spec})
    };
    let o1 = ok(server_side_apply(
        None,
        &cr(json!({"steps": [{"name": "a", "action": "x"}], "tags": ["t1"]})),
        "m1",
        false,
        None,
        &schema,
        T1,
    ));
    let o2 = ok(server_side_apply(
        Some(&o1),
        &cr(json!({"steps": [{"name": "b", "action": "y"}]})),
        "m2",
        false,
        None,
        &schema,
        T2,
    ));
    assert_eq!(
        o2["spec"]["steps"],
        json!([{"name": "a", "action": "x"}, {"name": "b", "action": "y"}])
    );
    assert_eq!(
        entry(&o2, "m1")["fieldsV1"],
        json!({"f:spec": {"f:steps": {"k:{\"name\":\"a\"}": {".": {}, "f:action": {}, "f:name": {}}}, "f:tags": {}}})
    );
    // Atomic list: another manager replacing it conflicts.
    let err = server_side_apply(
        Some(&o2),
        &cr(json!({"tags": ["t2"]})),
        "m2",
        false,
        None,
        &schema,
        T3,
    );
    let Err(PatchError::Conflicts(c)) = err else {
        panic!("expected conflict")
    };
    assert_eq!(c[0].field, ".spec.tags");
}

#[test]
fn merge_list_keeps_live_order_and_places_config_items() {
    // structured-merge-diff merge.go: live-only items keep their place,
    // new config items follow the config order.
    let l = ListNode {
        ssa: super::super::schema::ListType::Set,
        smp: super::super::schema::SmpList::Replace,
        elem: std::sync::Arc::new(Node::Scalar),
        key_defaults: Vec::new(),
    };
    let mut live = vec![json!("a"), json!("b"), json!("c")];
    ok(merge_list(&mut live, &[json!("d"), json!("b")], &l));
    assert_eq!(live, vec![json!("a"), json!("d"), json!("b"), json!("c")]);
}

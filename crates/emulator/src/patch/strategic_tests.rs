use super::*;
use serde_json::json;

fn deploy() -> MergeSchema {
    MergeSchema::builtin("apps", "v1", "Deployment")
}

fn pod() -> MergeSchema {
    MergeSchema::builtin("", "v1", "Pod")
}

fn smp(target: Value, patch: Value, schema: &MergeSchema) -> Value {
    match strategic_merge_patch(&target, &patch, schema) {
        Ok(v) => v,
        Err(e) => panic!("patch failed: {e}"),
    }
}

/// Wrap a `mergingList` test case of upstream `patch_test.go` as Pod
/// containers (merge key `name`, like `mergingList`).
fn containers(list: Value) -> Value {
    json!({"spec": {"containers": list}})
}

#[test]
fn upstream_add_map_and_delete_map_from_merging_list() {
    // patch_test.go "add map and delete map from merging list": ThreeWay
    // applied to Current gives Result.
    let current = containers(
        json!([{"name": "1"}, {"name": "2", "other": "b"}, {"name": "4", "other": "c"}]),
    );
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
        "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}]}});
    let want = containers(
        json!([{"name": "2", "other": "b"}, {"name": "4", "other": "c"}, {"name": "3"}]),
    );
    assert_eq!(smp(current, patch, &pod()), want);
}

#[test]
fn upstream_add_map_and_delete_map_with_conflict() {
    // patch_test.go "add map and delete map from merging list with conflict".
    let current = containers(json!([{"name": "1", "other": "a"}, {"name": "4", "other": "c"}]));
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
        "containers": [{"name": "2"}, {"name": "3"}, {"name": "1", "$patch": "delete"}]}});
    let want = containers(json!([{"name": "4", "other": "c"}, {"name": "2"}, {"name": "3"}]));
    assert_eq!(smp(current, patch, &pod()), want);
}

#[test]
fn upstream_delete_field_from_map_in_merging_list() {
    // patch_test.go "delete field from map in merging list".
    let current = containers(json!([
        {"name": "1", "value": 1, "other": "a"}, {"name": "2", "value": 2, "other": "b"}]));
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}],
        "containers": [{"name": "1", "value": null}]}});
    let want =
        containers(json!([{"name": "1", "other": "a"}, {"name": "2", "value": 2, "other": "b"}]));
    assert_eq!(smp(current, patch, &pod()), want);
}

#[test]
fn upstream_delete_map_from_merging_list() {
    // patch_test.go "delete map from merging list".
    let current = containers(json!([{"name": "1"}, {"name": "2", "other": "b"}]));
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "2"}],
        "containers": [{"name": "1", "$patch": "delete"}]}});
    assert_eq!(
        smp(current, patch, &pod()),
        containers(json!([{"name": "2", "other": "b"}]))
    );
}

#[test]
fn container_image_change_by_name_keeps_other_containers() {
    let d = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "side:1"}]}}}});
    // What `kubectl set image deployment/x app=app:2` sends (two-way patch).
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "app", "image": "app:2"}]}}}});
    let out = smp(d.clone(), patch, &deploy());
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:2", "ports": [{"containerPort": 80}]},
               {"name": "sidecar", "image": "side:1"}])
    );
    assert_eq!(out["spec"]["replicas"], 2);
    // Same without the order directive (hand-written `kubectl patch`).
    let patch2 = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "side:2"}]}}}});
    let out2 = smp(d, patch2, &deploy());
    assert_eq!(
        out2["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:1", "ports": [{"containerPort": 80}]},
               {"name": "sidecar", "image": "side:2"}])
    );
}

#[test]
fn new_item_without_order_directive_goes_first() {
    // mergeSortedSlice takes patch items that are not in the live list
    // first: a hand-written SMP adding a container prepends it.
    let d = containers(json!([{"name": "a"}]));
    let out = smp(d, containers(json!([{"name": "b", "image": "b"}])), &pod());
    assert_eq!(
        out,
        containers(json!([{"name": "b", "image": "b"}, {"name": "a"}]))
    );
}

#[test]
fn env_add_replace_delete_by_name() {
    let d = containers(json!([{"name": "app", "env": [
        {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]));
    let patch = containers(json!([{"name": "app", "env": [
        {"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "$patch": "delete"}]}]));
    let out = smp(d, patch, &pod());
    assert_eq!(
        out["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
}

#[test]
fn env_delete_directive_on_missing_list_creates_nothing() {
    let d = containers(json!([{"name": "app"}]));
    let patch = containers(json!([{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]));
    let out = smp(d, patch, &pod());
    assert_eq!(out["spec"]["containers"][0]["env"], json!([]));
}

#[test]
fn finalizers_union_and_delete_from_primitive_list() {
    let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
    let out = smp(
        obj.clone(),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
        &pod(),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
    let out = smp(
        obj.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        &pod(),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    // kubectl's two-way patch when removing "a": order list + deletion list.
    let out = smp(
        obj,
        json!({"metadata": {"$setElementOrder/finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
        &pod(),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn patch_replace_and_delete_on_maps() {
    let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}});
    let out = smp(
        obj.clone(),
        json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        &pod(),
    );
    assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
    assert_eq!(out["metadata"]["annotations"], json!({"x": "y"}));
    let out = smp(
        obj.clone(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
        &pod(),
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
    let out = smp(
        obj,
        json!({"metadata": {"labels": {"a": null, "d": "4"}}}),
        &pod(),
    );
    assert_eq!(out["metadata"]["labels"], json!({"b": "2", "d": "4"}));
}

#[test]
fn patch_replace_inside_a_merging_list() {
    let d = containers(json!([{"name": "a"}, {"name": "b"}]));
    let out = smp(
        d,
        containers(json!([{"name": "c"}, {"$patch": "replace"}])),
        &pod(),
    );
    assert_eq!(out, containers(json!([{"name": "c"}])));
}

#[test]
fn retain_keys_clears_other_volume_source() {
    let p = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
    // What kubectl apply sends when a volume switches source.
    let patch = json!({"spec": {"volumes": [
        {"name": "v", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/x"}, "emptyDir": null}]}});
    let out = smp(p, patch, &pod());
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "v", "hostPath": {"path": "/x"}}])
    );
    let bad = json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"], "hostPath": {"path": "/x"}}]}});
    assert!(matches!(
        strategic_merge_patch(&json!({"spec": {"volumes": [{"name": "v"}]}}), &bad, &pod()),
        Err(PatchError::Invalid(_))
    ));
}

#[test]
fn tolerations_are_replaced_and_ports_merge_by_container_port() {
    let p = json!({"spec": {"tolerations": [{"key": "a"}], "containers": [
        {"name": "app", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 9090}]}]}});
    let patch = json!({"spec": {"tolerations": [{"key": "b"}], "containers": [
        {"name": "app", "ports": [{"containerPort": 80, "name": "web"}]}]}});
    let out = smp(p, patch, &pod());
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "b"}]));
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "name": "web"}, {"containerPort": 9090}])
    );
}

#[test]
fn kubectl_rollout_restart_patch() {
    // kubectl's objectrestarter sends this two-way patch for Deployments.
    let d = json!({"metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}});
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-22T10:00:00Z"}}}}});
    let out = smp(d.clone(), patch, &deploy());
    let mut want = d;
    want["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2026-11-22T10:00:00Z"});
    assert_eq!(out, want);
}

#[test]
fn errors_map_to_status_codes() {
    let d = containers(json!([{"name": "a"}]));
    // Unknown directive in a map.
    assert!(matches!(
        strategic_merge_patch(&d, &json!({"spec": {"$patch": "frobnicate"}}), &pod()),
        Err(PatchError::Unprocessable(_))
    ));
    // List item without its merge key.
    assert!(matches!(
        strategic_merge_patch(&d, &containers(json!([{"image": "x"}])), &pod()),
        Err(PatchError::Unprocessable(_))
    ));
    // Not an object.
    assert!(matches!(
        strategic_merge_patch(&d, &json!([1]), &pod()),
        Err(PatchError::Invalid(_))
    ));
    // Order list inconsistent with the patch list.
    let bad = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}], "containers": [{"name": "a", "image": "x"}]}});
    assert!(strategic_merge_patch(&d, &bad, &pod()).is_err());
}

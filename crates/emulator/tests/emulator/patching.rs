//! Patch content types, server-side apply, field managers and the write log.

use crate::harness::env;
use crate::util::{api_err, cm, deployment};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let Some(e) = env("patch_types").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    let mut d = deployment("p", 1);
    let c = &mut d
        .spec
        .as_mut()
        .expect("spec")
        .template
        .spec
        .as_mut()
        .expect("pod")
        .containers;
    c.push(serde_json::from_value(json!({"name": "side", "image": "busybox:1"})).expect("c"));
    deps.create(&PostParams::default(), &d)
        .await
        .expect("create");
    let pp = PatchParams::default();
    // Strategic merge: containers merge by name.
    let d = deps
        .patch("p", &pp, &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}}})))
        .await
        .expect("smp");
    let cs = d.spec.expect("spec").template.spec.expect("pod").containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[1].image.as_deref(), Some("busybox:2"));
    assert_eq!(cs[0].image.as_deref(), Some("nginx:1.25"));
    // JSON merge patch replaces lists.
    let d = deps
        .patch("p", &pp, &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}})))
        .await
        .expect("merge");
    assert_eq!(
        d.spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers
            .len(),
        1
    );
    // JSON patch, including a failing test op (422).
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]))
            .expect("jp");
    let d = deps
        .patch("p", &pp, &Patch::<()>::Json(jp))
        .await
        .expect("json patch");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 9}]))
            .expect("jp");
    let err = api_err(deps.patch("p", &pp, &Patch::<()>::Json(bad)).await);
    assert_eq!(err.code, 422);
    e.finish().await;
}

#[tokio::test]
async fn server_side_apply_creates_and_requires_field_manager() {
    let Some(e) = env("ssa").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let created = cms
        .patch(
            "ssa",
            &PatchParams::apply("kube-incident"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("apply creates");
    assert_eq!(
        created.data.and_then(|d| d.get("a").cloned()).as_deref(),
        Some("1")
    );
    let mf = created.metadata.managed_fields.unwrap_or_default();
    assert!(
        mf.iter()
            .any(|m| m.manager.as_deref() == Some("kube-incident")
                && m.operation.as_deref() == Some("Apply")),
        "{mf:?}"
    );
    // Missing fieldManager: the PatchOptions are invalid (422).
    let err = api_err(
        cms.patch("ssa", &PatchParams::default(), &Patch::Apply(&applied))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    // Re-applying the same configuration is a no-op (same resourceVersion).
    let again = cms
        .patch(
            "ssa",
            &PatchParams::apply("kube-incident"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("re-apply");
    assert_eq!(
        again.metadata.resource_version,
        cms.get("ssa").await.expect("get").metadata.resource_version
    );
    // fieldManager on update is recorded.
    let pp = PatchParams {
        field_manager: Some("my-updater".into()),
        ..Default::default()
    };
    let upd = cms
        .patch("ssa", &pp, &Patch::Merge(json!({"data": {"b": "2"}})))
        .await
        .expect("merge");
    let mf = upd.metadata.managed_fields.unwrap_or_default();
    assert!(
        mf.iter().any(|m| m.manager.as_deref() == Some("my-updater")
            && m.operation.as_deref() == Some("Update")),
        "{mf:?}"
    );
    e.finish().await;
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let Some(e) = env("ssa_conflicts").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": v}});
    let apply = |m: &str| PatchParams::apply(m);
    cms.patch("c", &apply("first"), &Patch::Apply(cfg("1")))
        .await
        .expect("first applies");
    // Another applier changing an owned field: 409 with one cause per field.
    let err = api_err(
        cms.patch("c", &apply("second"), &Patch::Apply(cfg("2")))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"first\": .data.a"
    );
    let causes = err.details.expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(
        (
            causes[0].reason.as_str(),
            causes[0].field.as_str(),
            causes[0].message.as_str()
        ),
        ("FieldManagerConflict", ".data.a", "conflict with \"first\"")
    );
    // Applying the same value is no conflict: both own the field.
    let shared = cms
        .patch("c", &apply("second"), &Patch::Apply(cfg("1")))
        .await
        .expect("same value");
    let mut owners: Vec<String> = shared
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    owners.sort();
    assert_eq!(owners, vec!["first", "second"]);
    // An Update takes the field from both appliers.
    let upd = PatchParams {
        field_manager: Some("editor".into()),
        ..Default::default()
    };
    let edited = cms
        .patch("c", &upd, &Patch::Merge(json!({"data": {"a": "3"}})))
        .await
        .expect("update");
    let mf = edited.metadata.managed_fields.unwrap_or_default();
    assert_eq!(
        mf.iter()
            .map(|m| (m.manager.as_deref(), m.operation.as_deref()))
            .collect::<Vec<_>>(),
        vec![(Some("editor"), Some("Update"))]
    );
    // A conflict with an updater names its API version.
    let err = api_err(
        cms.patch("c", &apply("first"), &Patch::Apply(cfg("1")))
            .await,
    );
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.a"
    );
    // force takes ownership.
    let forced = cms
        .patch("c", &apply("first").force(), &Patch::Apply(cfg("1")))
        .await
        .expect("forced");
    assert_eq!(
        forced.data.and_then(|d| d.get("a").cloned()).as_deref(),
        Some("1")
    );
    let mf = forced.metadata.managed_fields.unwrap_or_default();
    assert_eq!(
        mf.iter()
            .map(|m| (m.manager.as_deref(), m.operation.as_deref()))
            .collect::<Vec<_>>(),
        vec![(Some("first"), Some("Apply"))]
    );
    e.finish().await;
}

/// Bad request options are 422 Invalid on the options object, as
/// kube-apiserver validates them (raw requests: kube-rs checks some of
/// these itself before sending).
#[tokio::test]
async fn request_options_are_validated() {
    let Some(e) = env("options").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    cms.create(&PostParams::default(), &cm("o", &[]))
        .await
        .expect("create");
    let base = format!("/api/v1/namespaces/{}/configmaps", e.ns);
    let send = |method: &str, uri: String, ct: &str, body: &str| {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("Content-Type", ct)
            .body(body.as_bytes().to_vec())
            .expect("request");
        let client = e.client.clone();
        async move { api_err(client.request::<serde_json::Value>(req).await) }
    };
    let merge = "application/merge-patch+json";
    let err = send("PATCH", format!("{base}/o?force=true"), merge, "{}").await;
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    let err = send("PATCH", format!("{base}/o?dryRun=Bogus"), merge, "{}").await;
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: [\"Bogus\"]: supported values: \"All\""
    );
    let long = "m".repeat(129);
    let err = send(
        "POST",
        format!("{base}?fieldManager={long}"),
        "application/json",
        r#"{"metadata": {"name": "p"}}"#,
    )
    .await;
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            422,
            "CreateOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
        )
    );
    let err = send(
        "DELETE",
        format!("{base}/o?propagationPolicy=Bogus"),
        "application/json",
        "",
    )
    .await;
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            422,
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        )
    );
    e.finish().await;
}

#[tokio::test]
async fn write_log_records_each_mutation_once() {
    let Some(e) = env("write_log").await else {
        return;
    };
    let Some(emu) = e.emulator("write_log_records_each_mutation_once") else {
        return e.finish().await;
    };
    let cms: Api<ConfigMap> = e.api();
    cms.create(&PostParams::default(), &cm("w", &[]))
        .await
        .expect("create");
    cms.patch(
        "w",
        &PatchParams::apply("kube-incident"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}})),
    )
    .await
    .expect("apply");
    let _ = cms.get("w").await.expect("get is not a write");
    cms.delete("w", &Default::default()).await.expect("delete");
    let log: Vec<_> = emu
        .write_log()
        .into_iter()
        .filter(|r| r.namespace.as_deref() == Some(e.ns.as_str()) && r.name == "w")
        .collect();
    let verbs: Vec<&str> = log.iter().map(|r| r.verb.as_str()).collect();
    assert_eq!(verbs, vec!["create", "apply", "delete"]);
    assert_eq!(log[1].field_manager.as_deref(), Some("kube-incident"));
    assert_eq!(log[1].resource, "configmaps");
    assert!(log.iter().all(|r| !r.internal));
    let rvs: Vec<u64> = log
        .iter()
        .map(|r| r.resource_version.parse().expect("rv"))
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
    e.finish().await;
}

#[tokio::test]
async fn scale_subresource() {
    let Some(e) = env("scale").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    deps.create(&PostParams::default(), &deployment("s", 2))
        .await
        .expect("create");
    let sc = deps.get_scale("s").await.expect("scale");
    assert_eq!(sc.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(
        sc.status.map(|s| s.selector.unwrap_or_default()).as_deref(),
        Some("app=s")
    );
    let sc = deps
        .patch_scale(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("patch scale");
    assert_eq!(sc.spec.and_then(|s| s.replicas), Some(5));
    let d = deps.get("s").await.expect("get");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(5));
    assert_eq!(d.metadata.generation, Some(2));
    e.finish().await;
}

/// `metadata.resourceVersion` in an applied configuration is a
/// precondition (409 when the object moved on), on the main resource and
/// on the status subresource alike; kube-incident fences its status
/// writes with it.
#[tokio::test]
async fn apply_with_a_resource_version_is_a_precondition_on_status_too() {
    let Some(e) = env("apply_rv").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    deps.create(&PostParams::default(), &deployment("f", 1))
        .await
        .expect("create");
    let pp = PatchParams::apply("kube-incident").force();
    let status = |rv: &str, observed: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "f", "resourceVersion": rv},
               "status": {"observedGeneration": observed}})
    };
    // From the current version: applied (a real deployment controller may
    // write the status in between: then read again).
    let mut old_rv = String::new();
    for _ in 0..20 {
        let rv = deps.get("f").await.expect("get").metadata.resource_version;
        old_rv = rv.expect("rv");
        match deps
            .patch_status("f", &pp, &Patch::Apply(status(&old_rv, 1)))
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => old_rv.clear(),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(!old_rv.is_empty(), "applied from the current version");
    let stale = api_err(
        deps.patch_status("f", &pp, &Patch::Apply(status(&old_rv, 7)))
            .await,
    );
    assert_eq!(stale.code, 409, "{stale:?}");
    let main = api_err(
        deps.patch(
            "f",
            &pp,
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "f", "resourceVersion": old_rv},
                "spec": {"replicas": 3}})),
        )
        .await,
    );
    assert_eq!(main.code, 409, "{main:?}");
    let d = deps.get("f").await.expect("get");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(1), "nothing applied");
    e.finish().await;
}

//! CustomResourceDefinitions served dynamically: Established condition,
//! schema defaulting, pruning and validation, status subresource, 415 for
//! strategic merge patch.

use crate::harness::{env, eventually};
use crate::util::api_err;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::Discovery;
use serde_json::json;

fn crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "string", "enum": ["S", "M", "L"]},
                        "color": {"type": "string", "default": "blue"},
                        "count": {"type": "integer", "minimum": 0}}},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}}}]}}))
    .expect("crd")
}

async fn install(client: &kube::Client, group: &str) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &crd(group))
        .await
        .expect("create crd");
    assert_eq!(created.metadata.generation, Some(1));
    let name = format!("widgets.{group}");
    let est = eventually(30, || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let c = crds.get(&name).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;
    assert!(est.is_some(), "CRD established");
    let gvk = GroupVersionKind::gvk(group, "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    Api::all_with(client.clone(), &ar)
}

fn widget(ns: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .expect("widget")
}

#[tokio::test]
async fn crd_lifecycle_defaults_validation_status() {
    let Some(e) = env("crd").await else {
        return;
    };
    let group = format!("{}.example.com", e.ns);
    let all = install(&e.client, &group).await;
    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let api: Api<DynamicObject> = Api::namespaced_with(e.client.clone(), &e.ns, &ar);
    // Discovery serves it (kube-apiserver may list the group a moment
    // before its group-version path answers: poll).
    let served = eventually(30, || {
        let client = e.client.clone();
        let group = group.clone();
        async move {
            let disc = Discovery::new(client)
                .filter(&[group.as_str()])
                .run()
                .await
                .ok()?;
            let found = disc.groups().any(|g| g.name() == group);
            found.then_some(())
        }
    })
    .await;
    assert!(served.is_some(), "discovery serves {group}");
    // Defaults and pruning.
    let mut w = widget(&e.ns, "w1", json!({"size": "M", "unknown": 1}));
    w.types = Some(kube::api::TypeMeta {
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
    });
    let created = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create");
    assert_eq!(created.data["spec"]["color"], "blue");
    assert!(created.data["spec"].get("unknown").is_none());
    assert_eq!(created.metadata.generation, Some(1));
    // Validation: enum, required, type.
    let mut bad = widget(&e.ns, "w2", json!({"size": "XL", "count": "many"}));
    bad.types = w.types.clone();
    let err = api_err(api.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.expect("details").causes;
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert!(
        fields.contains(&"spec.size") && fields.contains(&"spec.count"),
        "{fields:?}"
    );
    let mut missing = widget(&e.ns, "w3", json!({}));
    missing.types = w.types.clone();
    let err = api_err(api.create(&PostParams::default(), &missing).await);
    assert!(
        err.message.contains("spec.size: Required value"),
        "{}",
        err.message
    );
    // Status subresource.
    let s = api
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": "L"},
                "metadata": {"labels": {"z": "1"}}})),
        )
        .await
        .expect("status");
    assert_eq!(s.data["status"]["phase"], "Ready");
    assert_eq!(s.data["spec"]["size"], "M");
    assert_eq!(s.metadata.generation, Some(1));
    // Unlike most built-in kinds, a custom resource's status takes no metadata.
    assert!(s.metadata.labels.is_none_or(|l| !l.contains_key("z")));
    let m = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "L"}, "status": {"phase": "X"}})),
        )
        .await
        .expect("merge");
    assert_eq!(m.data["status"]["phase"], "Ready");
    assert_eq!(m.metadata.generation, Some(2));
    // Strategic merge patch is not supported for custom resources.
    let err = api_err(
        api.patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": "S"}})),
        )
        .await,
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    // Server-side apply works on custom resources.
    let applied = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w4"}, "spec": {"size": "S"}});
    let a = api
        .patch(
            "w4",
            &PatchParams::apply("kube-incident"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("apply");
    assert_eq!(a.data["spec"]["color"], "blue");
    assert_eq!(
        all.list(&Default::default())
            .await
            .expect("list all")
            .items
            .len(),
        2
    );
    // Deleting the CRD removes the resource.
    let crds: Api<CustomResourceDefinition> = Api::all(e.client.clone());
    crds.delete(&format!("widgets.{group}"), &Default::default())
        .await
        .expect("delete crd");
    let gone = eventually(30, || {
        let api = api.clone();
        async move { api.get("w1").await.is_err().then_some(()) }
    })
    .await;
    assert!(gone.is_some());
    e.finish().await;
}

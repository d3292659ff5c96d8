//! Deletion: finalizers, ownerReference garbage collection with
//! propagation policies, and namespace deletion.

use crate::harness::{env, eventually};
use crate::util::{api_err, cm};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;

fn owner_ref(owner: &ConfigMap) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
        "uid": owner.metadata.uid, "blockOwnerDeletion": true})
}

async fn dependent(cms: &Api<ConfigMap>, name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let refs: Vec<serde_json::Value> = owners.iter().map(|o| owner_ref(o)).collect();
    let c: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": refs}}))
            .expect("cm");
    cms.create(&PostParams::default(), &c)
        .await
        .expect("dependent")
}

async fn gone(cms: &Api<ConfigMap>, name: &str) -> bool {
    eventually(30, || async {
        cms.get_opt(name)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn finalizers_delay_deletion() {
    let Some(e) = env("finalizers").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let mut c = cm("f", &[]);
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &c)
        .await
        .expect("create");
    let resp = cms
        .delete("f", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = resp.left().expect("200 with the object");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(obj.metadata.deletion_grace_period_seconds, Some(0));
    let still = cms.get("f").await.expect("still there");
    assert!(still.metadata.deletion_timestamp.is_some());
    // No new finalizers once deleting.
    let err = api_err(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
            ),
        )
        .await,
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        err.message
    );
    // Other changes are still allowed; removing the last finalizer deletes it.
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "1"}})),
    )
    .await
    .expect("update while deleting");
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    assert!(gone(&cms, "f").await);
    e.finish().await;
}

#[tokio::test]
async fn background_gc_deletes_dependents() {
    let Some(e) = env("gc_background").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .expect("owner");
    let other = cms
        .create(&PostParams::default(), &cm("other", &[]))
        .await
        .expect("other");
    dependent(&cms, "dep", &[&owner]).await;
    dependent(&cms, "shared", &[&owner, &other]).await;
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete");
    assert!(gone(&cms, "dep").await);
    let shared = cms
        .get("shared")
        .await
        .expect("shared survives: another owner exists");
    let refs = shared.metadata.owner_references.unwrap_or_default();
    let ok = eventually(30, || {
        let cms = cms.clone();
        async move {
            let s = cms.get("shared").await.ok()?;
            (s.metadata.owner_references.unwrap_or_default().len() == 1).then_some(())
        }
    })
    .await;
    assert!(ok.is_some(), "dangling owner reference removed: {refs:?}");
    e.finish().await;
}

#[tokio::test]
async fn orphan_keeps_dependents() {
    let Some(e) = env("gc_orphan").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .expect("owner");
    dependent(&cms, "dep", &[&owner]).await;
    cms.delete("owner", &DeleteParams::orphan())
        .await
        .expect("delete");
    assert!(gone(&cms, "owner").await);
    let ok = eventually(30, || {
        let cms = cms.clone();
        async move {
            let d = cms.get("dep").await.ok()?;
            d.metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
                .then_some(())
        }
    })
    .await;
    assert!(ok.is_some());
    e.finish().await;
}

#[tokio::test]
async fn foreground_deletes_dependents_first() {
    let Some(e) = env("gc_foreground").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .expect("owner");
    let mut d = cm("dep", &[]);
    d.metadata.owner_references =
        Some(vec![serde_json::from_value(owner_ref(&owner)).expect("ref")]);
    d.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &d).await.expect("dep");
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    cms.delete("owner", &dp).await.expect("delete");
    let o = cms
        .get("owner")
        .await
        .expect("owner waits for its dependent");
    assert!(o.metadata.deletion_timestamp.is_some());
    assert!(o
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"foregroundDeletion".to_string()));
    cms.patch(
        "dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert!(gone(&cms, "dep").await);
    assert!(gone(&cms, "owner").await);
    e.finish().await;
}

#[tokio::test]
async fn namespace_deletion_removes_content() {
    let Some(e) = env("ns_delete").await else {
        return;
    };
    let nss: Api<Namespace> = Api::all(e.client.clone());
    let name = format!("{}-x", e.ns);
    let mut n = Namespace::default();
    n.metadata.name = Some(name.clone());
    nss.create(&PostParams::default(), &n).await.expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), &name);
    cms.create(&PostParams::default(), &cm("inside", &[]))
        .await
        .expect("cm");
    nss.delete(&name, &DeleteParams::default())
        .await
        .expect("delete ns");
    let gone_ns = eventually(60, || {
        let nss = nss.clone();
        let name = name.clone();
        async move {
            nss.get_opt(&name)
                .await
                .expect("get")
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(gone_ns.is_some());
    assert!(cms
        .get_opt("inside")
        .await
        .map(|o| o.is_none())
        .unwrap_or(true));
    e.finish().await;
}

#[tokio::test]
async fn terminating_namespace_rejects_new_content() {
    let Some(e) = env("ns_terminating").await else {
        return;
    };
    let nss: Api<Namespace> = Api::all(e.client.clone());
    let cms: Api<ConfigMap> = e.api();
    let mut c = cm("held", &[]);
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &c).await.expect("cm");
    nss.delete(&e.ns, &DeleteParams::default())
        .await
        .expect("delete ns");
    let n = nss.get(&e.ns).await.expect("terminating");
    assert_eq!(
        n.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let err = api_err(cms.create(&PostParams::default(), &cm("new", &[])).await);
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    // The emulator's namespace controller finishes inside the request; the
    // real one within seconds.
    let ns_gone = eventually(60, || async {
        nss.get_opt(&e.ns)
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(ns_gone.is_some(), "namespace deleted");
    e.finish().await;
}

#[tokio::test]
async fn delete_collection_with_label_selector() {
    let Some(e) = env("delete_collection").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut c = cm(n, &[]);
        c.metadata.labels = Some([("grp".to_string(), l.to_string())].into());
        cms.create(&PostParams::default(), &c).await.expect("cm");
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &kube::api::ListParams::default().labels("grp=x"),
    )
    .await
    .expect("deletecollection");
    assert!(gone(&cms, "a").await && gone(&cms, "b").await);
    assert!(cms.get_opt("c").await.expect("get").is_some());
    e.finish().await;
}

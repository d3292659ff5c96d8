use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use super::*;
use crate::api::{GitOpsMode, GitOpsOwnerKind, TargetKind};

fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
    let m = |kv: &[(&str, &str)]| -> Option<BTreeMap<String, String>> {
        (!kv.is_empty()).then(|| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    };
    ObjectMeta {
        labels: m(labels),
        annotations: m(annotations),
        ..ObjectMeta::default()
    }
}

fn web(meta: &ObjectMeta) -> Workload<'_> {
    Workload {
        kind: TargetKind::Deployment,
        namespace: "shop",
        name: "web",
        meta,
    }
}

fn owner(kind: GitOpsOwnerKind, ns: &str, name: &str) -> GitOpsOwner {
    GitOpsOwner {
        kind,
        namespace: ns.into(),
        name: name.into(),
        via: "test".into(),
    }
}

#[test]
fn no_labels_no_owner() {
    let m = meta(
        &[("app", "web"), ("app.kubernetes.io/instance", "web")],
        &[],
    );
    assert_eq!(discover(web(&m), "argocd"), None);
}

#[test]
fn argocd_instance_label_names_an_application_in_the_argocd_namespace() {
    let m = meta(&[(ARGOCD_INSTANCE_LABEL, "shop")], &[]);
    let o = discover(web(&m), "argocd").unwrap();
    assert_eq!(
        (o.kind, o.namespace.as_str(), o.name.as_str()),
        (GitOpsOwnerKind::Application, "argocd", "shop")
    );
    assert_eq!(o.via, "label argocd.argoproj.io/instance");
    assert_eq!(o.to_string(), "Argo CD Application argocd/shop");
    // Apps in any namespace: <namespace>_<name>.
    let m = meta(&[(ARGOCD_INSTANCE_LABEL, "team-a_shop")], &[]);
    let o = discover(web(&m), "argocd").unwrap();
    assert_eq!((o.namespace.as_str(), o.name.as_str()), ("team-a", "shop"));
}

#[test]
fn argocd_tracking_id_counts_only_when_it_names_this_object() {
    let m = meta(
        &[],
        &[(ARGOCD_TRACKING_ANNOTATION, "shop:apps/Deployment:shop/web")],
    );
    let o = discover(web(&m), "gitops").unwrap();
    assert_eq!(
        (o.kind, o.namespace.as_str(), o.name.as_str()),
        (GitOpsOwnerKind::Application, "gitops", "shop")
    );
    assert!(o.via.contains("tracking-id"));
    // Copied onto another object: not this one's owner.
    for copied in [
        "shop:apps/Deployment:shop/api",
        "shop:apps/StatefulSet:shop/web",
        "shop:apps/Deployment:other/web",
        "garbage",
        ":apps/Deployment:shop/web",
    ] {
        let m = meta(&[], &[(ARGOCD_TRACKING_ANNOTATION, copied)]);
        assert_eq!(discover(web(&m), "argocd"), None, "{copied}");
    }
    let m = meta(
        &[],
        &[(
            ARGOCD_TRACKING_ANNOTATION,
            "apps_shop:apps/Deployment:shop/web",
        )],
    );
    let o = discover(web(&m), "argocd").unwrap();
    assert_eq!((o.namespace.as_str(), o.name.as_str()), ("apps", "shop"));
}

#[test]
fn flux_labels_name_kustomization_and_helmrelease() {
    let m = meta(
        &[
            (FLUX_KUSTOMIZE_NAME, "apps"),
            (FLUX_KUSTOMIZE_NAMESPACE, "flux-system"),
        ],
        &[],
    );
    let o = discover(web(&m), "argocd").unwrap();
    assert_eq!(o.to_string(), "Flux Kustomization flux-system/apps");
    let m = meta(
        &[(FLUX_HELM_NAME, "web"), (FLUX_HELM_NAMESPACE, "shop")],
        &[],
    );
    let o = discover(web(&m), "argocd").unwrap();
    assert_eq!(o.to_string(), "Flux HelmRelease shop/web");
    assert_eq!(o.via, "label helm.toolkit.fluxcd.io/name");
}

#[test]
fn argocd_confirms_from_status_resources() {
    let m = meta(&[(ARGOCD_INSTANCE_LABEL, "shop")], &[]);
    let o = owner(GitOpsOwnerKind::Application, "argocd", "shop");
    let app = json!({"status": {"resources": [
        {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop", "name": "web"}
    ]}});
    assert_eq!(confirm(&o, &app, web(&m)), Ok(()));
    let other = json!({"status": {"resources": [
        {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "api"}
    ]}});
    let e = confirm(&o, &other, web(&m)).unwrap_err();
    assert!(e.contains("does not list Deployment shop/web"), "{e}");
    assert!(confirm(&o, &json!({}), web(&m)).is_err());
}

#[test]
fn flux_confirms_from_the_inventory_or_helm_release() {
    let m = meta(&[], &[]);
    let k = owner(GitOpsOwnerKind::Kustomization, "flux-system", "apps");
    let ks = json!({"status": {"inventory": {"entries": [
        {"id": "shop_web_apps_Deployment", "v": "v1"}
    ]}}});
    assert_eq!(confirm(&k, &ks, web(&m)), Ok(()));
    assert!(confirm(&k, &json!({"status": {}}), web(&m)).is_err());

    let h = owner(GitOpsOwnerKind::HelmRelease, "shop", "web");
    let hr = json!({"metadata": {"namespace": "shop", "name": "web"}, "spec": {}});
    let m = meta(
        &[],
        &[(HELM_RELEASE_NAME, "web"), (HELM_RELEASE_NAMESPACE, "shop")],
    );
    assert_eq!(confirm(&h, &hr, web(&m)), Ok(()));
    // targetNamespace: the release is <targetNamespace>-<name> there.
    let hr_t = json!({"metadata": {"namespace": "flux-system", "name": "web"},
                      "spec": {"targetNamespace": "shop"}});
    let m_t = meta(
        &[],
        &[
            (HELM_RELEASE_NAME, "shop-web"),
            (HELM_RELEASE_NAMESPACE, "shop"),
        ],
    );
    assert_eq!(confirm(&h, &hr_t, web(&m_t)), Ok(()));
    let e = confirm(&h, &hr_t, web(&m)).unwrap_err();
    assert!(e.contains("installs release shop/shop-web"), "{e}");
    // Annotations naming a release that installs elsewhere do not count.
    let elsewhere = json!({"metadata": {"namespace": "payments", "name": "web"}, "spec": {}});
    let m_p = meta(
        &[],
        &[
            (HELM_RELEASE_NAME, "web"),
            (HELM_RELEASE_NAMESPACE, "payments"),
        ],
    );
    let e = confirm(&h, &elsewhere, web(&m_p)).unwrap_err();
    assert!(
        e.contains("installs into namespace payments, not shop"),
        "{e}"
    );
}

const ME: &str = "shop/web-1/rollback";

fn with_record(mut obj: Value, by: &[&str], prior: &str, field: &str) -> Value {
    let r = Paused {
        field: field.into(),
        prior: prior.into(),
        by: by.iter().map(|s| s.to_string()).collect(),
    };
    obj["metadata"]["annotations"][PAUSED_ANNOTATION] = json!(serde_json::to_string(&r).unwrap());
    obj
}

#[test]
fn flux_suspend_and_restore() {
    let k = owner(GitOpsOwnerKind::Kustomization, "flux-system", "apps");
    let live = json!({"metadata": {"resourceVersion": "4"}, "spec": {"interval": "1m"}});
    let Suspension::Patch {
        patch,
        field,
        prior,
        ..
    } = suspend(&k, &live, ME)
    else {
        panic!("suspends")
    };
    assert_eq!(field, "spec.suspend");
    assert_eq!(prior, ABSENT);
    assert_eq!(
        patch[0],
        json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "4"})
    );
    assert_eq!(
        patch[1],
        json!({"op": "add", "path": "/spec/suspend", "value": true})
    );
    // The record is written in the same patch (no annotations yet: the map).
    assert_eq!(patch[2]["path"], json!("/metadata/annotations"));
    let record: Paused =
        serde_json::from_str(patch[2]["value"][PAUSED_ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!(
        record,
        Paused {
            field: "spec.suspend".into(),
            prior: ABSENT.into(),
            by: vec![ME.into()]
        }
    );
    // Suspended by a person (no record): nothing to do, nothing to restore.
    let off = json!({"spec": {"suspend": true}});
    assert!(matches!(
        suspend(&k, &off, ME),
        Suspension::AlreadyOff { .. }
    ));
    assert!(matches!(
        restore(&k, &off, ME),
        Restore::Done {
            restored: false,
            ..
        }
    ));

    let ours = with_record(
        json!({"metadata": {"resourceVersion": "5", "annotations": {"a": "b"}, "managedFields": [
            {"manager": "kustomize-controller", "operation": "Update", "subresource": "status",
             "fieldsV1": {"f:status": {}}},
            {"manager": "kube-incident", "operation": "Update", "fieldsV1": {"f:spec": {"f:suspend": {}}}}
        ]}, "spec": {"suspend": true}}),
        &[ME],
        ABSENT,
        "spec.suspend",
    );
    assert!(matches!(suspend(&k, &ours, ME), Suspension::Held { .. }));
    let Restore::Patch {
        patch, restored, ..
    } = restore(&k, &ours, ME)
    else {
        panic!("restores")
    };
    assert!(restored);
    assert_eq!(
        patch,
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "5"},
            {"op": "remove", "path": "/spec/suspend"},
            {"op": "remove", "path": "/metadata/annotations/kubeincident.io~1gitops-paused"}
        ])
    );
    let prior_false = with_record(ours.clone(), &[ME], "false", "spec.suspend");
    let Restore::Patch { patch, .. } = restore(&k, &prior_false, ME) else {
        panic!("restores")
    };
    assert_eq!(
        patch[1],
        json!({"op": "add", "path": "/spec/suspend", "value": false})
    );
    // A person resumed it, or suspended it again themselves: the record
    // goes, the field is left as it is.
    let resumed = with_record(
        json!({"spec": {"suspend": false}}),
        &[ME],
        ABSENT,
        "spec.suspend",
    );
    let Restore::Patch {
        patch,
        restored,
        description,
    } = restore(&k, &resumed, ME)
    else {
        panic!("cleans up")
    };
    assert!(!restored, "{description}");
    assert!(description.contains("changed since kube-incident paused it"));
    assert_eq!(
        patch.as_array().unwrap().len(),
        2,
        "only the record: {patch}"
    );
    let theirs = with_record(
        json!({"metadata": {"managedFields": [
            {"manager": "flux", "operation": "Update", "fieldsV1": {"f:spec": {"f:suspend": {}}}}
        ]}, "spec": {"suspend": true}}),
        &[ME],
        ABSENT,
        "spec.suspend",
    );
    assert!(matches!(
        restore(&k, &theirs, ME),
        Restore::Patch {
            restored: false,
            ..
        }
    ));
    // Given back already (a retry after a crash): nothing to send.
    let back = json!({"spec": {}});
    assert!(matches!(
        restore(&k, &back, ME),
        Restore::Done { restored: true, .. }
    ));
}

#[test]
fn two_steps_share_one_pause_and_the_last_gives_it_back() {
    let k = owner(GitOpsOwnerKind::Kustomization, "flux-system", "apps");
    let other = "shop/api-1/rollback";
    let paused_for_other = with_record(
        json!({"metadata": {"resourceVersion": "7", "managedFields": [
            {"manager": "kube-incident", "operation": "Update", "fieldsV1": {"f:spec": {"f:suspend": {}}}}
        ]}, "spec": {"suspend": true}}),
        &[other],
        "false",
        "spec.suspend",
    );
    let Suspension::Join { patch, prior, .. } = suspend(&k, &paused_for_other, ME) else {
        panic!("joins")
    };
    assert_eq!(prior, "false", "the value before the first pause");
    let both: Paused = serde_json::from_str(patch[1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(both.by, vec![other.to_string(), ME.to_string()]);
    let shared = with_record(
        paused_for_other.clone(),
        &[other, ME],
        "false",
        "spec.suspend",
    );
    // The first to let go leaves it paused for the other.
    let Restore::Patch {
        patch,
        restored,
        description,
    } = restore(&k, &shared, other)
    else {
        panic!()
    };
    assert!(!restored && description.contains(ME), "{description}");
    let left: Paused = serde_json::from_str(patch[1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(left.by, vec![ME.to_string()]);
    // The last one puts back the value before the first pause.
    let last = with_record(paused_for_other, &[ME], "false", "spec.suspend");
    let Restore::Patch {
        patch, restored, ..
    } = restore(&k, &last, ME)
    else {
        panic!()
    };
    assert!(restored);
    assert_eq!(
        patch[1],
        json!({"op": "add", "path": "/spec/suspend", "value": false})
    );
}

#[test]
fn argocd_automated_sync_off_and_back() {
    let a = owner(GitOpsOwnerKind::Application, "argocd", "shop");
    let live = json!({"metadata": {"resourceVersion": "2"}, "spec": {"syncPolicy": {
        "automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]}}});
    assert!(automated(a.kind, &live));
    let Suspension::Patch { patch, prior, .. } = suspend(&a, &live, ME) else {
        panic!("suspends")
    };
    assert_eq!(
        patch[1],
        json!({"op": "remove", "path": "/spec/syncPolicy/automated"})
    );
    let prior_v: Value = serde_json::from_str(&prior).unwrap();
    assert_eq!(prior_v, json!({"prune": true, "selfHeal": true}));
    // Turned off by a person: theirs.
    let by_person =
        json!({"metadata": {"resourceVersion": "3"}, "spec": {"syncPolicy": {"syncOptions": []}}});
    assert!(!automated(a.kind, &by_person));
    assert!(matches!(
        suspend(&a, &by_person, ME),
        Suspension::AlreadyOff { .. }
    ));
    let paused = with_record(by_person, &[ME], &prior, "spec.syncPolicy.automated");
    let Restore::Patch {
        patch, restored, ..
    } = restore(&a, &paused, ME)
    else {
        panic!("restores")
    };
    assert!(restored);
    assert_eq!(
        patch[0],
        json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "3"})
    );
    assert_eq!(
        patch[1],
        json!({"op": "add", "path": "/spec/syncPolicy/automated", "value": {"prune": true, "selfHeal": true}})
    );
    // Someone turned it back on: not ours to restore; the record goes.
    let on_again = with_record(live.clone(), &[ME], &prior, "spec.syncPolicy.automated");
    assert!(matches!(
        restore(&a, &on_again, ME),
        Restore::Patch {
            restored: false,
            ..
        }
    ));
    // `automated.enabled: false` (Argo CD 3) is off too.
    let disabled = json!({"spec": {"syncPolicy": {"automated": {"enabled": false}}}});
    assert!(!automated(a.kind, &disabled));
}

#[test]
fn policies() {
    let o = owner(GitOpsOwnerKind::Kustomization, "flux-system", "apps");
    assert_eq!(stance(GitOpsMode::Suspend, &o, true), Stance::Suspend);
    assert_eq!(stance(GitOpsMode::Ignore, &o, false), Stance::Ignore);
    let Stance::Refuse(m) = stance(GitOpsMode::Refuse, &o, true) else {
        panic!()
    };
    assert!(m.contains("Flux Kustomization flux-system/apps"), "{m}");
    let Stance::Refuse(m) = stance(GitOpsMode::Suspend, &o, false) else {
        panic!()
    };
    assert!(m.contains("--gitops"), "{m}");
}

#[test]
fn managers_of_the_tools() {
    assert_eq!(tool_of_manager("argocd-controller"), Some("Argo CD"));
    assert_eq!(tool_of_manager("kustomize-controller"), Some("Flux"));
    assert_eq!(tool_of_manager("helm-controller"), Some("Flux"));
    assert_eq!(tool_of_manager("kubectl-edit"), None);
}

#[test]
fn diff_names_each_changed_leaf() {
    let git = json!({"spec": {"containers": [
        {"name": "app", "image": "shop/web:v2", "env": [{"name": "MODE", "value": "fast"}]}
    ]}});
    let running = json!({"spec": {"containers": [
        {"name": "app", "image": "shop/web:v1", "env": [{"name": "MODE", "value": "fast"}]}
    ]}});
    assert_eq!(
        diff(&git, &running),
        vec!["spec.containers[app].image: \"shop/web:v2\" (Git) → \"shop/web:v1\" (running)"]
    );
    assert_eq!(diff(&git, &git), Vec::<String>::new());
    assert_eq!(
        diff(&json!({"replicas": 2}), &json!({"replicas": 6})),
        vec!["replicas: 2 (Git) → 6 (running)"]
    );
    let many_a: serde_json::Map<String, Value> =
        (0..30).map(|i| (format!("k{i:02}"), json!(i))).collect();
    let d = diff(&Value::Object(many_a), &json!({}));
    assert_eq!(d.len(), MAX_DIFF_LINES + 1);
    assert_eq!(d.last().unwrap(), "… and 10 more");
}

#[test]
fn only_argocd_reports_that_git_differs_for_the_target() {
    let m = meta(&[], &[]);
    let w = web(&m);
    let app = GitOpsOwnerKind::Application;
    let out = json!({"status": {"sync": {"status": "OutOfSync"}}});
    let synced = json!({"status": {"sync": {"status": "Synced"}}});
    assert!(reports_git_differs(app, &out, &w));
    assert!(!reports_git_differs(app, &synced, &w));
    assert!(!reports_git_differs(app, &json!({}), &w));
    assert!(!reports_git_differs(
        GitOpsOwnerKind::Kustomization,
        &out,
        &w
    ));
    // The target's own entry decides: another resource's drift does not.
    let other_drift = json!({"status": {"sync": {"status": "OutOfSync"}, "resources": [
        {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web", "status": "Synced"},
        {"kind": "ConfigMap", "namespace": "shop", "name": "x", "status": "OutOfSync"}
    ]}});
    assert!(!reports_git_differs(app, &other_drift, &w));
    let ours = json!({"status": {"sync": {"status": "OutOfSync"}, "resources": [
        {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "web", "status": "OutOfSync"}
    ]}});
    assert!(reports_git_differs(app, &ours, &w));
}

#[test]
fn argocd_syncs_and_parents() {
    let app = GitOpsOwnerKind::Application;
    assert!(sync_running(app, &json!({"operation": {"sync": {}}})));
    assert!(sync_running(
        app,
        &json!({"status": {"operationState": {"phase": "Running"}}})
    ));
    assert!(!sync_running(
        app,
        &json!({"status": {"operationState": {"phase": "Succeeded"}}})
    ));
    assert!(!sync_running(
        GitOpsOwnerKind::Kustomization,
        &json!({"operation": {}})
    ));
    let from_set = json!({"metadata": {"ownerReferences": [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": "tenants", "uid": "u"}
    ]}});
    assert_eq!(
        managed_by_parent(app, &from_set).as_deref(),
        Some("ApplicationSet tenants")
    );
    let child = json!({"metadata": {"labels": {ARGOCD_INSTANCE_LABEL: "root"}}});
    assert!(managed_by_parent(app, &child).unwrap().contains("root"));
    assert_eq!(managed_by_parent(app, &json!({"metadata": {}})), None);
}

#[test]
fn a_namespace_runbook_pauses_only_owners_in_its_namespace() {
    let o = owner(GitOpsOwnerKind::Kustomization, "flux-system", "apps");
    assert!(may_pause(&o, Some(("flux-system", "rb")), None).is_ok());
    assert!(
        may_pause(&o, Some(("ops", "rb")), Some("ops")).is_ok(),
        "cluster-wide"
    );
    let e = may_pause(&o, Some(("shop", "web")), Some("ops")).unwrap_err();
    assert!(
        e.contains("Runbook shop/web may pause only owners in its own namespace"),
        "{e}"
    );
    assert!(may_pause(&o, None, Some("ops")).is_err());
}

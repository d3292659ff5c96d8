//! Create/get/update semantics: resourceVersion, optimistic concurrency,
//! generation, status isolation, server-set metadata, errors.

use crate::harness::env;
use crate::util::{api_err, cm, deployment, pod, unscheduled_pod};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn rv<K: kube::Resource>(k: &K) -> u64 {
    k.meta()
        .resource_version
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("numeric rv")
}

fn gen<K: kube::Resource>(k: &K) -> Option<i64> {
    k.meta().generation
}

#[tokio::test]
async fn resource_version_is_monotonic_across_kinds() {
    let Some(e) = env("rv_monotonic").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let pods: Api<Pod> = e.api();
    let a = cms
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("cm");
    let p = pods
        .create(&PostParams::default(), &pod("p", &[]))
        .await
        .expect("pod");
    let b = cms
        .create(&PostParams::default(), &cm("b", &[]))
        .await
        .expect("cm");
    assert!(
        rv(&a) < rv(&p) && rv(&p) < rv(&b),
        "{} {} {}",
        rv(&a),
        rv(&p),
        rv(&b)
    );
    let list = cms.list(&Default::default()).await.expect("list");
    let list_rv: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("rv");
    assert!(list_rv >= rv(&b));
    e.finish().await;
}

#[tokio::test]
async fn create_existing_is_already_exists_and_stale_update_is_conflict() {
    let Some(e) = env("conflicts").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    let d = deps
        .create(&PostParams::default(), &deployment("x", 1))
        .await
        .expect("create");
    let err = api_err(
        deps.create(&PostParams::default(), &deployment("x", 1))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "deployments.apps \"x\" already exists");
    // An update from a fresh read succeeds. On a real cluster the deployment
    // controller writes the status at once, so read-modify-write retries on
    // Conflict as any client must.
    let mut attempts = 0;
    let updated = loop {
        let mut fresh = deps.get("x").await.expect("get");
        fresh.spec.as_mut().expect("spec").replicas = Some(2);
        match deps.replace("x", &PostParams::default(), &fresh).await {
            Ok(u) => break u,
            Err(kube::Error::Api(s)) if s.code == 409 && attempts < 10 => attempts += 1,
            Err(other) => panic!("update: {other:?}"),
        }
    };
    assert!(rv(&updated) > rv(&d));
    let mut stale = d.clone();
    stale.spec.as_mut().expect("spec").replicas = Some(3);
    let err = api_err(deps.replace("x", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on deployments.apps \"x\": the object has been modified; please apply your changes to the latest version and try again"
    );
    e.finish().await;
}

#[tokio::test]
async fn not_found_message_and_details() {
    let Some(e) = env("not_found").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    let err = api_err(deps.get("nope").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "deployments.apps \"nope\" not found");
    let details = err.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("nope", "apps", "deployments")
    );
    let pods: Api<Pod> = e.api();
    assert_eq!(
        api_err(pods.get("nope").await).message,
        "pods \"nope\" not found"
    );
    e.finish().await;
}

#[tokio::test]
async fn missing_namespace_is_not_found_and_default_namespaces_exist() {
    let Some(e) = env("missing_ns").await else {
        return;
    };
    let cms: Api<ConfigMap> = Api::namespaced(e.client.clone(), "does-not-exist-x1");
    let err = api_err(cms.create(&PostParams::default(), &cm("a", &[])).await);
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"does-not-exist-x1\" not found");
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(e.client.clone());
    for ns in ["default", "kube-system", "kube-public"] {
        let n = nss.get(ns).await.expect("namespace exists");
        assert_eq!(n.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    }
    e.finish().await;
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let Some(e) = env("generation").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    let d = deps
        .create(&PostParams::default(), &deployment("g", 1))
        .await
        .expect("create");
    assert_eq!(d.metadata.generation, Some(1));
    let pp = PatchParams::default();
    let d = deps
        .patch(
            "g",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"extra": "1"}}})),
        )
        .await
        .expect("label patch");
    assert_eq!(d.metadata.generation, Some(1), "labels do not bump");
    // The Deployment strategy bumps the generation on annotation changes too
    // (the controller copies annotations to the ReplicaSets).
    let d = deps
        .patch(
            "g",
            &pp,
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
        )
        .await
        .expect("annotation patch");
    assert_eq!(d.metadata.generation, Some(2), "annotations bump");
    let d = deps
        .patch("g", &pp, &Patch::Merge(json!({"spec": {"replicas": 4}})))
        .await
        .expect("spec patch");
    assert_eq!(d.metadata.generation, Some(3));
    let d = deps
        .patch_status(
            "g",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 4, "observedGeneration": 3}})),
        )
        .await
        .expect("status");
    assert_eq!(d.metadata.generation, Some(3));
    // A no-op patch changes neither generation nor resourceVersion. (A pod
    // no scheduler picks: no controller writes to it in between.)
    let pods: Api<Pod> = e.api();
    let p = pods
        .create(&PostParams::default(), &unscheduled_pod("noop", &[]))
        .await
        .expect("pod");
    let again = pods
        .patch(
            "noop",
            &pp,
            &Patch::Merge(json!({"spec": {"schedulerName": "kube-incident-nobody"}})),
        )
        .await
        .expect("noop");
    assert_eq!(
        (again.metadata.generation, rv(&again)),
        (p.metadata.generation, rv(&p))
    );
    e.finish().await;
}

/// Which kinds carry `metadata.generation` and what bumps it, per kind, as
/// kube-apiserver v1.36's registry strategies do it: Deployments (spec and
/// annotations), ReplicaSets and Pods (spec), on deletion with finalizers
/// (+1); never ConfigMaps, Secrets, ServiceAccounts, Leases,
/// HorizontalPodAutoscalers, Events or Namespaces.
#[tokio::test]
async fn generation_per_kind() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Namespace, Secret, ServiceAccount};
    let Some(e) = env("generation_kinds").await else {
        return;
    };
    let pp = PatchParams::default();
    let labels = Patch::Merge(json!({"metadata": {"labels": {"l": "1"}}}));
    let annotations = Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}}));
    let hold = Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}}));
    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));

    // Pods: generation 1, bumped by spec changes only, and when deleted.
    let pods: Api<Pod> = e.api();
    let p = pods
        .create(&PostParams::default(), &unscheduled_pod("p", &[]))
        .await
        .expect("pod");
    assert_eq!(gen(&p), Some(1));
    let p = pods.patch("p", &pp, &labels).await.expect("labels");
    assert_eq!(gen(&p), Some(1));
    let p = pods
        .patch("p", &pp, &annotations)
        .await
        .expect("annotations");
    assert_eq!(gen(&p), Some(1));
    let p = pods
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"spec": {"activeDeadlineSeconds": 3000}})),
        )
        .await
        .expect("spec");
    assert_eq!(gen(&p), Some(2));
    let p = pods
        .patch_status("p", &pp, &Patch::Merge(json!({"status": {"message": "m"}})))
        .await
        .expect("status");
    assert_eq!(gen(&p), Some(2));
    pods.patch("p", &pp, &hold).await.expect("finalizer");
    pods.delete("p", &Default::default()).await.expect("delete");
    let p = pods.get("p").await.expect("terminating");
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(gen(&p), Some(3), "deletion bumps the generation");
    pods.patch("p", &pp, &release).await.expect("release");
    if let Some(_emu) = e.emu.as_ref() {
        // Emulator only: it has no pods/binding, and its simulated scheduler
        // binds by setting spec.nodeName, which (like a binding) leaves the
        // generation alone. kube-apiserver rejects that update of a pod.
        pods.create(&PostParams::default(), &unscheduled_pod("b", &[]))
            .await
            .expect("pod");
        let b = pods
            .patch(
                "b",
                &pp,
                &Patch::Merge(json!({"spec": {"nodeName": "node-1"}})),
            )
            .await
            .expect("bind");
        assert_eq!(gen(&b), Some(1));
    }

    // ReplicaSets: spec only (annotations do not bump, unlike Deployments).
    let rss: Api<ReplicaSet> = e.api();
    let mut rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "rs"}},
            "template": {"metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}}}))
    .expect("rs");
    rs = rss.create(&PostParams::default(), &rs).await.expect("rs");
    assert_eq!(gen(&rs), Some(1));
    rs = rss.patch("rs", &pp, &labels).await.expect("labels");
    assert_eq!(gen(&rs), Some(1));
    rs = rss
        .patch("rs", &pp, &annotations)
        .await
        .expect("annotations");
    assert_eq!(gen(&rs), Some(1));
    rs = rss
        .patch(
            "rs",
            &pp,
            &Patch::Merge(json!({"spec": {"minReadySeconds": 3}})),
        )
        .await
        .expect("spec");
    assert_eq!(gen(&rs), Some(2));

    // Deployments: spec and annotations.
    let deps: Api<Deployment> = e.api();
    let d = deps
        .create(&PostParams::default(), &deployment("d", 0))
        .await
        .expect("deployment");
    assert_eq!(gen(&d), Some(1));
    let d = deps.patch("d", &pp, &labels).await.expect("labels");
    assert_eq!(gen(&d), Some(1));
    let d = deps
        .patch("d", &pp, &annotations)
        .await
        .expect("annotations");
    assert_eq!(gen(&d), Some(2));

    // No generation at all, before or after an update.
    let cms: Api<ConfigMap> = e.api();
    let c = cms
        .create(&PostParams::default(), &cm("c", &[("a", "1")]))
        .await
        .expect("cm");
    assert_eq!(gen(&c), None);
    let c = cms
        .patch("c", &pp, &Patch::Merge(json!({"data": {"a": "2"}})))
        .await
        .expect("cm data");
    assert_eq!(gen(&c), None);
    let secrets: Api<Secret> = e.api();
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "1"}}))
            .expect("secret");
    assert_eq!(
        gen(&secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("secret")),
        None
    );
    let sas: Api<ServiceAccount> = e.api();
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "sa"}})).expect("sa");
    assert_eq!(
        gen(&sas.create(&PostParams::default(), &sa).await.expect("sa")),
        None
    );
    let leases: Api<Lease> = e.api();
    let l: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "x"}}))
            .expect("lease");
    assert_eq!(
        gen(&leases
            .create(&PostParams::default(), &l)
            .await
            .expect("lease")),
        None
    );
    let l = leases
        .patch(
            "l",
            &pp,
            &Patch::Merge(json!({"spec": {"holderIdentity": "y"}})),
        )
        .await
        .expect("lease spec");
    assert_eq!(gen(&l), None);
    let hpas: Api<HorizontalPodAutoscaler> = e.api();
    let h: HorizontalPodAutoscaler = serde_json::from_value(json!({"metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
            "minReplicas": 1, "maxReplicas": 3}}))
    .expect("hpa");
    assert_eq!(
        gen(&hpas.create(&PostParams::default(), &h).await.expect("hpa")),
        None
    );
    let h = hpas
        .patch("h", &pp, &Patch::Merge(json!({"spec": {"maxReplicas": 4}})))
        .await
        .expect("hpa spec");
    assert_eq!(gen(&h), None, "HPAs have no generation");
    let events: Api<Event> = e.api();
    let ev: Event = serde_json::from_value(json!({"metadata": {"name": "ev"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": e.ns},
        "reason": "R", "message": "m", "type": "Normal"}))
    .expect("event");
    assert_eq!(
        gen(&events
            .create(&PostParams::default(), &ev)
            .await
            .expect("event")),
        None
    );
    let nss: Api<Namespace> = Api::all(e.client.clone());
    assert_eq!(gen(&nss.get(&e.ns).await.expect("namespace")), None);
    e.finish().await;
}

#[tokio::test]
async fn status_subresource_isolates_status_and_spec() {
    let Some(e) = env("status_isolation").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    deps.create(&PostParams::default(), &deployment("s", 1))
        .await
        .expect("create");
    let pp = PatchParams::default();
    // Main resource ignores status. (On a real cluster the deployment
    // controller writes the status concurrently: only our value is excluded.)
    let d = deps
        .patch(
            "s",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"replicas": 9}})),
        )
        .await
        .expect("patch");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_ne!(d.status.as_ref().and_then(|s| s.replicas), Some(9));
    // Status ignores spec; the Deployment status strategy also keeps the
    // labels but lets annotations through (the controller's revision).
    let d = deps
        .patch_status(
            "s",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 7},
                "metadata": {"labels": {"z": "1"}, "annotations": {"w": "1"}},
                "status": {"replicas": 5}})),
        )
        .await
        .expect("status patch");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(d.status.as_ref().and_then(|s| s.replicas), Some(5));
    assert!(d
        .metadata
        .labels
        .as_ref()
        .is_none_or(|l| !l.contains_key("z")));
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("w"))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(d.metadata.generation, Some(2), "status writes never bump");
    // Pods (no scheduler picks this one, so nothing else writes its status).
    // Created with a status, they start Pending.
    let pods: Api<Pod> = e.api();
    let mut p = unscheduled_pod("p", &[]);
    p.status = Some(serde_json::from_value(json!({"phase": "Running"})).expect("status"));
    let p = pods.create(&PostParams::default(), &p).await.expect("pod");
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    // PUT of the main resource with a different status keeps the stored status.
    let mut put = p.clone();
    put.status.as_mut().expect("status").phase = Some("Running".into());
    let p = pods
        .replace("p", &PostParams::default(), &put)
        .await
        .expect("put");
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    // The pod status strategy lets labels through but not ownerReferences.
    let owner = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "s",
        "uid": d.metadata.uid}]);
    let p = pods
        .patch_status(
            "p",
            &pp,
            &Patch::Merge(
                json!({"metadata": {"labels": {"z": "1"}, "ownerReferences": owner},
                "spec": {"activeDeadlineSeconds": 5}, "status": {"phase": "Running"}}),
            ),
        )
        .await
        .expect("pod status");
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    assert_eq!(
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("z"))
            .map(String::as_str),
        Some("1")
    );
    assert!(p.metadata.owner_references.is_none());
    assert_eq!(p.spec.and_then(|s| s.active_deadline_seconds), None);
    e.finish().await;
}

#[tokio::test]
async fn server_sets_uid_and_creation_timestamp_immutably() {
    let Some(e) = env("immutable_meta").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let mut c = cm("m", &[("a", "1")]);
    c.metadata.uid = Some("client-chosen".into());
    let created = cms
        .create(&PostParams::default(), &c)
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    assert_ne!(uid, "client-chosen");
    assert!(created.metadata.creation_timestamp.is_some());
    // A uid in a PUT body is a precondition: 409 when it differs.
    let mut other = created.clone();
    other.metadata.uid = Some("other".into());
    let err = api_err(cms.replace("m", &PostParams::default(), &other).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message
            .starts_with("Operation cannot be fulfilled on configmaps \"m\": ")
            && err.message.ends_with(&format!(
                "Precondition failed: UID in precondition: other, UID in object meta: {uid}"
            )),
        "{}",
        err.message
    );
    // A patch may not change it: 422.
    let err = api_err(
        cms.patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"uid": "other"}})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "ConfigMap \"m\" is invalid: metadata.uid: Invalid value: \"other\": field is immutable"
    );
    // Without a uid, the stored uid and creationTimestamp stay.
    let mut changed = created.clone();
    changed.metadata.uid = None;
    changed.metadata.creation_timestamp = None;
    changed.data = Some([("a".to_string(), "2".to_string())].into());
    let updated = cms
        .replace("m", &PostParams::default(), &changed)
        .await
        .expect("update");
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(
        updated.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_eq!(
        updated
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("2")
    );
    // Delete preconditions name the kind.
    let dp = |uid: Option<&str>, rv: Option<&str>| kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: uid.map(str::to_string),
            resource_version: rv.map(str::to_string),
        }),
        ..Default::default()
    };
    let err = api_err(cms.delete("m", &dp(Some("other"), None)).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        format!("Operation cannot be fulfilled on ConfigMap \"m\": the UID in the precondition (other) does not match the UID in record ({uid}). The object might have been deleted and then recreated")
    );
    let err = api_err(cms.delete("m", &dp(None, Some("1"))).await);
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        format!("Operation cannot be fulfilled on ConfigMap \"m\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({}). The object might have been modified", rv(&updated))
    );
    cms.delete("m", &dp(Some(&uid), Some(&rv(&updated).to_string())))
        .await
        .expect("delete with matching preconditions");
    e.finish().await;
}

#[tokio::test]
async fn generate_name_and_name_validation() {
    let Some(e) = env("generate_name").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let mut c = cm("", &[]);
    c.metadata.name = None;
    c.metadata.generate_name = Some("gen-".into());
    let a = cms.create(&PostParams::default(), &c).await.expect("a");
    let b = cms.create(&PostParams::default(), &c).await.expect("b");
    let (an, bn) = (
        a.metadata.name.expect("name"),
        b.metadata.name.expect("name"),
    );
    assert!(an.starts_with("gen-") && an.len() == 9, "{an}");
    assert_ne!(an, bn);
    let err = api_err(
        cms.create(&PostParams::default(), &cm("Bad_Name", &[]))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.expect("details").causes;
    assert_eq!(causes[0].field, "metadata.name");
    c.metadata.generate_name = None;
    let err = api_err(cms.create(&PostParams::default(), &c).await);
    assert_eq!(err.code, 422);
    // Required fields of built-in kinds.
    let pods: Api<Pod> = e.api();
    let bad: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
            .expect("pod");
    let err = api_err(pods.create(&PostParams::default(), &bad).await);
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .starts_with("Pod \"p\" is invalid: spec.containers: Required value"),
        "{}",
        err.message
    );
    e.finish().await;
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let Some(e) = env("dry_run").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = cms
        .create(&pp, &cm("d", &[("a", "1")]))
        .await
        .expect("dry create");
    assert_eq!(out.metadata.name.as_deref(), Some("d"));
    assert_eq!(api_err(cms.get("d").await).code, 404);
    cms.create(&PostParams::default(), &cm("d", &[("a", "1")]))
        .await
        .expect("create");
    let patched = cms
        .patch(
            "d",
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .expect("dry patch");
    assert_eq!(
        patched.data.and_then(|d| d.get("a").cloned()).as_deref(),
        Some("2")
    );
    let stored = cms.get("d").await.expect("get");
    assert_eq!(
        stored.data.and_then(|d| d.get("a").cloned()).as_deref(),
        Some("1")
    );
    e.finish().await;
}

#[tokio::test]
async fn defaults_are_applied_to_builtins() {
    let Some(e) = env("defaults").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    let mut d = deployment("dflt", 1);
    d.spec.as_mut().expect("spec").replicas = None;
    let d = deps
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("RollingUpdate")
    );
    let ps = spec.template.spec.expect("pod spec");
    assert_eq!(ps.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        ps.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    e.finish().await;
}

#[tokio::test]
async fn invalid_labels_are_rejected() {
    let Some(e) = env("invalid_labels").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let mut c = cm("l", &[]);
    c.metadata.labels = Some([("ok".to_string(), "has space".to_string())].into());
    let err = api_err(cms.create(&PostParams::default(), &c).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.details.expect("details").causes[0].field,
        "metadata.labels"
    );
    e.finish().await;
}

#[tokio::test]
async fn table_responses_for_kubectl() {
    let Some(e) = env("table").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    deps.create(&PostParams::default(), &deployment("t", 1))
        .await
        .expect("create");
    let req = http::Request::get(format!("/apis/apps/v1/namespaces/{}/deployments", e.ns))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .expect("request");
    let text = e.client.request_text(req).await.expect("table");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["kind"], "Table");
    let cols: Vec<&str> = v["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(&cols[..2], &["Name", "Ready"]);
    assert_eq!(v["rows"][0]["cells"][0], "t");
    assert_eq!(v["rows"][0]["object"]["metadata"]["name"], "t");
    e.finish().await;
}

/// Protobuf bodies over plain HTTP (hand-encoded here, independent of the
/// emulator's decoder): a ConfigMap is created; a kind the emulator has no
/// protobuf descriptor for gets 415 naming the kind; a client that accepts
/// only protobuf gets 406, one that also accepts JSON gets JSON.
#[tokio::test]
async fn protobuf_bodies_and_accept_negotiation() {
    let Some(e) = env("protobuf").await else {
        return;
    };
    let Some(emu) = e.emulator("protobuf_bodies_and_accept_negotiation") else {
        return e.finish().await;
    };
    fn bytes_field(field: u8, data: &[u8]) -> Vec<u8> {
        assert!(data.len() < 128, "one-byte lengths only");
        let mut v = vec![(field << 3) | 2, data.len() as u8];
        v.extend_from_slice(data);
        v
    }
    // magic + runtime.Unknown{typeMeta{apiVersion, kind}, raw}
    let envelope = |api_version: &str, kind: &str, raw: &[u8]| {
        let tm = [
            bytes_field(1, api_version.as_bytes()),
            bytes_field(2, kind.as_bytes()),
        ]
        .concat();
        [b"k8s\0".to_vec(), bytes_field(1, &tm), bytes_field(2, raw)].concat()
    };
    // ConfigMap{metadata{name: "pb"}, data{"k": "v"}}
    let meta = bytes_field(1, b"pb");
    let entry = [bytes_field(1, b"k"), bytes_field(2, b"v")].concat();
    let cm_raw = [bytes_field(1, &meta), bytes_field(2, &entry)].concat();

    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/{}/configmaps", emu.url(), e.ns);
    let post = |body: Vec<u8>| {
        http.post(&url)
            .header("Content-Type", "application/vnd.kubernetes.protobuf")
            .header("Accept", "application/vnd.kubernetes.protobuf, */*")
            .body(body)
            .send()
    };
    let r = post(envelope("v1", "ConfigMap", &cm_raw))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let cms: Api<ConfigMap> = e.api();
    let got = cms.get("pb").await.expect("stored");
    assert_eq!(
        got.data.unwrap_or_default().get("k").map(String::as_str),
        Some("v")
    );

    let r = post(envelope("example.com/v1", "Widget", &cm_raw))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 415);
    let status: serde_json::Value = r.json().await.expect("status json");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let msg = status["message"].as_str().unwrap_or_default();
    assert!(msg.contains("\"Widget\"") && msg.contains("JSON"), "{msg}");

    let get = |accept: &'static str| {
        http.get(format!("{url}/pb"))
            .header("Accept", accept)
            .send()
    };
    let r = get("application/vnd.kubernetes.protobuf")
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 406);
    let r = get("application/vnd.kubernetes.protobuf,application/json")
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    e.finish().await;
}

#[tokio::test]
async fn apps_selectors_are_immutable() {
    let Some(e) = env("selector_immutable").await else {
        return;
    };
    let deps: Api<Deployment> = e.api();
    deps.create(&PostParams::default(), &deployment("sel", 0))
        .await
        .expect("create");
    let err = api_err(
        deps.patch(
            "sel",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "selector": {"matchLabels": {"app": "sel", "x": "y"}},
                "template": {"metadata": {"labels": {"app": "sel", "x": "y"}}}}})),
        )
        .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Deployment.apps \"sel\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"sel\",\"x\":\"y\"}}: field is immutable"
    );
    e.finish().await;
}

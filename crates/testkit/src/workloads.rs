//! Fixtures for the workload kinds beyond Deployments: StatefulSets,
//! DaemonSets, Jobs and CronJobs, with pods that behave as
//! [`crate::fixtures`] describes. Their controllers run on the real control
//! plane only (`../shared/k8s`, whose kube-controller-manager runs them over
//! the kubelet stand-in's fake nodes); the emulator stores and serves these
//! kinds without a controller.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::fixtures::{container, template, BEHAVIOR_ANNOTATION};
use crate::wait::wait_for;

/// A StatefulSet `name` of `replicas` pods behaving as `behavior` (image
/// `registry.example/<name>:v1`, no volume claims: there is no storage
/// provisioner). `pod_management` is `OrderedReady` or `Parallel`.
pub fn statefulset(name: &str, replicas: i32, behavior: &str, pod_management: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": pod_management,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, &format!("registry.example/{name}:v1"), behavior),
        }
    }))
    .expect("statefulset fixture")
}

/// A DaemonSet `name` (one pod per node) behaving as `behavior`.
pub fn daemonset(name: &str, behavior: &str) -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, &format!("registry.example/{name}:v1"), behavior),
        }
    }))
    .expect("daemonset fixture")
}

/// A Job's pod template: `restartPolicy: Never`, so a crash ends the pod
/// `Failed` and the Job retries up to `backoffLimit`.
fn job_template(name: &str, behavior: &str) -> Value {
    let mut t = template(name, &format!("registry.example/{name}:v1"), behavior);
    t["spec"]["restartPolicy"] = json!("Never");
    t
}

/// A Job `name` behaving as `behavior`, failing after `backoff_limit` retries.
pub fn job(name: &str, behavior: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"backoffLimit": backoff_limit, "template": job_template(name, behavior)}
    }))
    .expect("job fixture")
}

/// A CronJob `name` on `schedule` whose Jobs behave as `behavior` (no
/// retries: each Job fails with its first pod).
pub fn cronjob(name: &str, schedule: &str, behavior: &str) -> CronJob {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": job_template(name, behavior)}}
        }
    }))
    .expect("cronjob fixture")
}

/// Launch Job `job` of CronJob `cronjob` now, as `kubectl create job
/// --from=cronjob/<cronjob>` does: its spec from the CronJob's jobTemplate,
/// and the CronJob as its controller.
pub async fn job_from_cronjob(client: &Client, ns: &str, cronjob: &str, job: &str) -> Job {
    let cj = Api::<CronJob>::namespaced(client.clone(), ns)
        .get(cronjob)
        .await
        .unwrap_or_else(|e| panic!("cronjob {ns}/{cronjob}: {e}"));
    let spec = cj
        .spec
        .as_ref()
        .and_then(|s| s.job_template.spec.clone())
        .expect("cronjob has a job template");
    let j: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job, "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                "uid": cj.metadata.uid, "controller": true}]},
        "spec": spec,
    }))
    .expect("job from cronjob");
    Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &j)
        .await
        .unwrap_or_else(|e| panic!("create job {ns}/{job}: {e}"))
}

fn apps_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind))
}

/// Roll the `kind` (`Deployment`, `StatefulSet` or `DaemonSet`) `name` out
/// to `image` behaving as `behavior`, as `kubectl set image` would: only the
/// app container's image (and the cause a behaviour needs) change; retries
/// on conflicts.
pub async fn set_template_behavior(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    behavior: &str,
    image: &str,
) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &apps_resource(kind));
    for _ in 0..20 {
        let o = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{kind} {ns}/{name}: {e}"));
        let mut v = serde_json::to_value(&o).expect("object json");
        let t = &mut v["spec"]["template"];
        t["metadata"]["annotations"][BEHAVIOR_ANNOTATION] = json!(behavior);
        let wanted = container(image, behavior);
        if let Some(c) = t["spec"]["containers"]
            .as_array_mut()
            .and_then(|cs| cs.iter_mut().find(|c| c["name"] == "app"))
        {
            c["image"] = wanted["image"].clone();
            let mut env: Vec<Value> = c["env"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e["name"] != "SETTING")
                .collect();
            env.extend(wanted["env"].as_array().cloned().unwrap_or_default());
            if let Some(o) = c.as_object_mut() {
                if env.is_empty() {
                    o.remove("env");
                } else {
                    o.insert("env".into(), json!(env));
                }
                match wanted.get("resources") {
                    Some(r) => {
                        o.insert("resources".into(), r.clone());
                    }
                    None => {
                        o.remove("resources");
                    }
                }
            }
        }
        let o: DynamicObject = serde_json::from_value(v).expect("object");
        match api.replace(name, &PostParams::default(), &o).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("roll out {kind} {name}: {e}"),
        }
    }
    panic!("roll out {kind} {name}: conflicts did not stop");
}

/// StatefulSet `name` once rolled out: generation observed, `replicas`
/// replicas ready and updated, currentRevision == updateRevision.
pub async fn statefulset_ready(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> StatefulSet {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    wait_for(timeout, || async {
        let s = api.get(name).await.ok()?;
        let st = s.status.clone()?;
        (st.observed_generation >= s.metadata.generation
            && st.ready_replicas == Some(replicas)
            && st.updated_replicas == Some(replicas)
            && st.current_revision.is_some()
            && st.current_revision == st.update_revision)
            .then_some(s)
    })
    .await
    .unwrap_or_else(|| {
        panic!("statefulset {name} in {ns} has {replicas} ready replicas within {timeout:?}")
    })
}

/// DaemonSet `name` once rolled out: generation observed, a pod on every
/// node it wants, all updated and available (and at least one).
pub async fn daemonset_ready(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> DaemonSet {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    wait_for(timeout, || async {
        let d = api.get(name).await.ok()?;
        let st = d.status.clone()?;
        (st.observed_generation >= d.metadata.generation
            && st.desired_number_scheduled > 0
            && st.updated_number_scheduled == Some(st.desired_number_scheduled)
            && st.number_available == Some(st.desired_number_scheduled))
        .then_some(d)
    })
    .await
    .unwrap_or_else(|| panic!("daemonset {name} in {ns} is rolled out within {timeout:?}"))
}

/// The `metadata.generation` of the `K` named `name` in `ns` (0 without one).
pub async fn generation<K>(client: &Client, ns: &str, name: &str) -> i64
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{ns}/{name}: {e}"))
        .meta()
        .generation
        .unwrap_or(0)
}

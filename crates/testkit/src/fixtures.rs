//! Workloads whose pods behave the same on both back ends.
//!
//! A behaviour is named once and written in both dialects: the image tag
//! that the real control plane's kubelet stand-in (`../shared/k8s`,
//! `kubelet_sim.py`) reads, and the `sim.kubeincident.io/behavior`
//! annotation the emulator's simulation reads. Where the real kubelet needs
//! a real cause (a missing ConfigMap, a request no node can hold), the pod
//! spec has it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::wait::wait_for;

/// The emulator's behaviour annotation.
pub const BEHAVIOR_ANNOTATION: &str = "sim.kubeincident.io/behavior";

/// The image tag prefix the kubelet stand-in reads for a behaviour (`None`:
/// the tag is left as it is).
pub fn tag_prefix(behavior: &str) -> Option<&'static str> {
    match behavior {
        "crashloop" | "crash" => Some("crash"),
        "oom" => Some("oom"),
        "imagepull" => Some("nopull"),
        "unready" => Some("unready"),
        "flaky" => Some("flaky"),
        "slow" => Some("slow"),
        _ => None,
    }
}

/// `image` with its tag prefixed for `behavior`:
/// `registry.example/web:v2` + `crashloop` -> `registry.example/web:crash-v2`.
pub fn behavior_image(image: &str, behavior: &str) -> String {
    let Some(prefix) = tag_prefix(behavior) else {
        return image.to_string();
    };
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(colon) => {
            let (repo, tag) = image.split_at(slash + colon);
            format!("{repo}:{prefix}-{}", &tag[1..])
        }
        None => format!("{image}:{prefix}"),
    }
}

/// The app container for `behavior` with `image`.
pub fn container(image: &str, behavior: &str) -> Value {
    let mut c = json!({"name": "app", "image": behavior_image(image, behavior)});
    match behavior {
        "config-error" => {
            c["env"] = json!([{"name": "SETTING", "valueFrom": {"configMapKeyRef": {
                "name": "kube-incident-missing-config", "key": "setting"}}}]);
        }
        "unschedulable" => {
            c["resources"] = json!({"requests": {"cpu": "512"}});
        }
        _ => {}
    }
    c
}

/// A pod template (labels `app: name`) for `behavior`.
pub fn template(name: &str, image: &str, behavior: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": name}, "annotations": {BEHAVIOR_ANNOTATION: behavior}},
        "spec": {"containers": [container(image, behavior)], "terminationGracePeriodSeconds": 0}
    })
}

/// A Deployment `name` of `replicas` pods behaving as `behavior`
/// (image `registry.example/<name>:v1`).
pub fn deployment(name: &str, replicas: i32, behavior: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, &format!("registry.example/{name}:v1"), behavior),
        }
    }))
    .expect("deployment fixture")
}

/// Roll Deployment `name` out to `image` behaving as `behavior` (a new
/// revision), as `kubectl set image` would: only the app container's image
/// (and the cause a behaviour needs) change; retries on conflicts.
pub async fn set_behavior(client: &Client, ns: &str, name: &str, behavior: &str, image: &str) {
    crate::workloads::set_template_behavior(client, ns, "Deployment", name, behavior, image).await;
}

/// The annotation a Deployment's revision stands in.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// The revision of Deployment `d` (0 before the first).
pub fn revision(d: &Deployment) -> i64 {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Deployment `name` once it is rolled out: the current generation
/// observed, and `replicas` replicas, all updated and available; polled for
/// at most `timeout`.
pub async fn available(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_for(timeout, || async {
        let d = api.get(name).await.ok()?;
        let s = d.status.clone()?;
        (s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && s.replicas == Some(replicas))
        .then_some(d)
    })
    .await
    .unwrap_or_else(|| {
        panic!("deployment {name} in {ns} has {replicas} available replicas within {timeout:?}")
    })
}

/// Create a healthy Deployment `name` of `replicas` pods and wait until it
/// is [`available`].
pub async fn healthy_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    timeout: Duration,
) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &deployment(name, replicas, "healthy"),
        )
        .await
        .unwrap_or_else(|e| panic!("create deployment {name} in {ns}: {e}"));
    available(client, ns, name, replicas, timeout).await
}

/// A bad rollout: a healthy v1 of `replicas` pods rolled out, then a
/// crash-looping v2 (revision 2).
pub async fn bad_rollout(client: &Client, ns: &str, name: &str, replicas: i32, timeout: Duration) {
    healthy_deployment(client, ns, name, replicas, timeout).await;
    set_behavior(
        client,
        ns,
        name,
        "crashloop",
        &format!("registry.example/{name}:v2"),
    )
    .await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_for(timeout, || async {
        let d = api.get(name).await.ok()?;
        (revision(&d) == 2).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("deployment {name} in {ns} reaches revision 2 within {timeout:?}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_carry_the_behaviour_in_their_tag() {
        assert_eq!(
            behavior_image("registry.example/web:v2", "crashloop"),
            "registry.example/web:crash-v2"
        );
        assert_eq!(
            behavior_image("localhost:5000/web", "imagepull"),
            "localhost:5000/web:nopull"
        );
        assert_eq!(behavior_image("web:v1", "healthy"), "web:v1");
        assert_eq!(
            container("web:v1", "config-error")["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            "kube-incident-missing-config"
        );
    }
}

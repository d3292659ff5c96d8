//! Small builders and assertions shared by the tests.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::core::Status;
use serde_json::json;

pub fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let d: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name}, "data": d})).expect("configmap")
}

pub fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    let l: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name, "labels": l},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}))
    .expect("pod")
}

pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}}))
    .expect("deployment")
}

/// A pod no scheduler picks up (`schedulerName` names none), so on a real
/// cluster neither the scheduler nor the kubelet touches it.
pub fn unscheduled_pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    let mut p = pod(name, labels);
    if let Some(spec) = p.spec.as_mut() {
        spec.scheduler_name = Some("kube-incident-nobody".into());
    }
    p
}

/// The label selector of the ConfigMaps a test creates with [`labelled`]
/// and lists or watches: a real cluster adds ConfigMaps of its own to every
/// namespace (`kube-root-ca.crt`, and more in some distributions), and does
/// so asynchronously, so tests select their own.
pub const SET: &str = "kube-incident.test/set=mine";

/// A ConfigMap carrying the [`SET`] label.
pub fn labelled(name: &str) -> ConfigMap {
    let mut c = cm(name, &[]);
    let (k, v) = SET.split_once('=').unwrap_or((SET, ""));
    c.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(k.to_string(), v.to_string());
    c
}

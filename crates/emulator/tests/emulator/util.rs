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

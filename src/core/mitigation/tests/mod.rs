//! Tests of the mitigation decisions; fixtures here, tests by topic.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::{json, Value};

use super::*;
use crate::api::{
    EnvVarSetting, GoDuration, IncidentStatus, Limits, MitigationAction, MitigationStep,
    RecordedEnvVar, RunbookSpec, StepGuard, StepState, IGNORE_LABEL, LAST_ACTION_ANNOTATION,
};

mod env_restart;
mod gate;
mod kinds;
mod scale;
mod undo;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn dep(rev: i64, image: &str, extra: Value) -> Deployment {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "d-uid", "generation": 5,
            "resourceVersion": "100",
            "annotations": {REVISION_ANNOTATION: rev.to_string(), "team": "payments"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "env": [{"name": "MODE", "value": "fast"}]}, {"name": "sidecar", "image": "proxy"}]}}},
        "status": {"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b.clone()) {
        for (k, v) in b {
            match a.get_mut(&k) {
                Some(x) if x.is_object() && v.is_object() => merge(x, v),
                _ => {
                    a.insert(k, v);
                }
            }
        }
    }
}

fn rs(name: &str, rev: i64, image: &str, created: &str) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
            "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: name.trim_start_matches("web-")},
            "annotations": {REVISION_ANNOTATION: rev.to_string(), "team": "payments",
                "deployment.kubernetes.io/desired-replicas": "3"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": "d-uid", "controller": true}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: name.trim_start_matches("web-")}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "env": [{"name": "MODE", "value": "fast"}]}, {"name": "sidecar", "image": "proxy"}]}}}
    }))
    .unwrap()
}

fn history() -> Vec<ReplicaSet> {
    vec![
        rs("web-aaa", 1, "web:v1", "2026-01-01T00:00:00Z"),
        rs("web-bbb", 2, "web:v2", "2026-01-01T01:00:00Z"),
        rs("web-ccc", 3, "web:v3", "2026-01-01T02:00:00Z"),
    ]
}

fn w<'a>(
    d: &'a Deployment,
    rss: &'a [ReplicaSet],
    hpas: &'a [HorizontalPodAutoscaler],
) -> Workload<'a> {
    Workload {
        deployment: d,
        replica_sets: rss,
        hpas,
    }
}

fn step(action: MitigationAction) -> MitigationStep {
    MitigationStep::new("s", action)
}

fn act(p: Plan) -> Planned {
    match p {
        Plan::Act(p) => *p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn now() -> Timestamp {
    ts("2026-01-01T02:10:00Z")
}

fn hpa(min: Option<i32>, max: i32) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": "web-hpa", "generation": 2, "resourceVersion": "7"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min, "maxReplicas": max}
    }))
    .unwrap()
}

fn runbook(limits: Value, extra: Value) -> RunbookSpec {
    let mut v = json!({"selector": {}, "limits": limits});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

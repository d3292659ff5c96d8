//! The per-event hot path of detection, alone: decode a pod watch event
//! (as the API server sends it, managedFields and spec included) into the
//! lean wire type, project it to a `PodView`, and classify its workload
//! (attribute the pod, the restart ledger, `assess_workload` over the
//! workload's 10 pods and its Deployment), as the detector does for every
//! pod event. Throughput is in events per second on one core.
//!
//! ```sh
//! cargo bench --bench pod_events -j 2
//! ```
//!
//! The whole-process figure (HTTP, TLS-less watch streams, the index, the
//! Incident controller) is `examples/scale_bench.rs`'s CPU per 1k events.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jiff::Timestamp;
use kube::core::WatchEvent;
use kube_incident::core::detection::{
    assess_workload, attribute, Controller, DetectionPolicy, RestartLedger,
};
use kube_incident::core::workload::{DeploymentView, PodLite, PodView, WorkloadKey};
use serde_json::json;

/// A pod watch event as a real API server sends it (kubelet and
/// controller managedFields, a realistic spec), healthy or crash-looping.
fn event(i: usize, crashing: bool) -> Vec<u8> {
    let now = "2026-12-01T03:00:00Z";
    let name = format!("checkout-7f9c6d5b8-{i:05}");
    let status = if crashing {
        json!({
            "phase": "Running", "podIP": "10.244.1.17", "hostIP": "10.0.0.1", "startTime": now, "qosClass": "Burstable",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "app", "image": "registry.example.com/shop/checkout:v2", "imageID": "registry.example.com/shop/checkout@sha256:8f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a2918",
                "containerID": "containerd://1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f",
                "ready": false, "started": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 2m40s restarting failed container=app pod={name}_shop(0b1c2d3e)")}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "startedAt": now, "finishedAt": now, "containerID": "containerd://1c2d"}}}]
        })
    } else {
        json!({
            "phase": "Running", "podIP": "10.244.1.17", "podIPs": [{"ip": "10.244.1.17"}], "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
            "startTime": now, "qosClass": "Burstable",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "app", "image": "registry.example.com/shop/checkout:v1", "imageID": "registry.example.com/shop/checkout@sha256:8f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a2918",
                "containerID": "containerd://1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f",
                "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}}]
        })
    };
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "generateName": "checkout-7f9c6d5b8-", "namespace": "shop",
            "uid": "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e", "resourceVersion": format!("{}", 1_000_000 + i),
            "creationTimestamp": now,
            "labels": {"app": "checkout", "pod-template-hash": "7f9c6d5b8", "app.kubernetes.io/part-of": "shop"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": now, "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7f9c6d5b8",
                "uid": "9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": now, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, "k:{\"uid\":\"9a8b7c6d\"}": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:ports": {}, "f:resources": {}}},
                    "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": now, "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:startTime": {}}}}]
        },
        "spec": {
            "containers": [{"name": "app", "image": "registry.example.com/shop/checkout:v1", "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "postgres.shop.svc"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
            "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": "node-3", "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0, "restartPolicy": "Always", "schedulerName": "default-scheduler", "securityContext": {},
            "serviceAccount": "default", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}}]
        },
        "status": status
    });
    serde_json::to_vec(&json!({"type": "MODIFIED", "object": pod})).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> PodLite {
    match serde_json::from_slice::<WatchEvent<PodLite>>(bytes) {
        Ok(WatchEvent::Modified(p)) => p,
        other => panic!("not a MODIFIED pod event: {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    // 10 pods of one Deployment; every 4th event is a crash-looping pod.
    let events: Vec<Vec<u8>> = (0..40).map(|i| event(i % 10, i % 4 == 0)).collect();
    let bytes = events.iter().map(Vec::len).sum::<usize>() / events.len();
    eprintln!("a pod watch event is {bytes} bytes of JSON on average");
    let now: Timestamp = "2026-12-01T03:00:30Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let workload = WorkloadKey::deployment("shop", "checkout");
    let deployment = DeploymentView {
        namespace: "shop".into(),
        name: "checkout".into(),
        generation: Some(1),
        observed_generation: Some(1),
        desired: 10,
        replicas: 10,
        updated: 10,
        ready: 10,
        available: 10,
        ..Default::default()
    };
    let policy = DetectionPolicy::default();

    let mut g = c.benchmark_group("pod_events");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("decode", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            black_box(decode(black_box(&events[i])))
        })
    });
    g.bench_function("decode+project", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            black_box(PodView::from(&decode(black_box(&events[i]))))
        })
    });
    // The detector's per-event work: decode, project, attribute, the
    // restart ledger, then assess the pod's workload (its 10 pods).
    let mut pods: Vec<PodView> = events[..10]
        .iter()
        .map(|e| PodView::from(&decode(e)))
        .collect();
    let mut ledger = RestartLedger::default();
    g.bench_function("decode+project+classify", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            let view = PodView::from(&decode(black_box(&events[i])));
            let w = attribute(&view, |_, _, _| Some("checkout".to_string()));
            let slot = i % pods.len();
            ledger.observe(&w, Some(&pods[slot]), &view, now);
            pods[slot] = view;
            let refs: Vec<&PodView> = pods.iter().collect();
            black_box(assess_workload(
                &workload,
                Some(Controller::Deployment(&deployment)),
                &refs,
                &policy,
                &mut ledger,
                now,
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

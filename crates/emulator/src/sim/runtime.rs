//! Scheduler + kubelet driver: binds pods to fake nodes (`pods/binding`),
//! advances each pod's [`PodSim`] when its next transition is due (one
//! shared timer queue, no per-pod tasks), patches `/status` as the kubelet
//! does, records events and writes container logs.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Api;

use super::events::EventReq;
use super::kubelet::{Behavior, BehaviorSpec, Effect, PodSim, SimEvent};
use super::{Shared, SimError, KUBELET};

/// Simulated pods known to the kubelet, by (namespace, name).
#[derive(Debug, Default)]
pub struct KubeletState {
    pods: HashMap<(String, String), Entry>,
    next_node: usize,
    next_ip: u32,
}

#[derive(Debug)]
struct Entry {
    uid: String,
    sim: PodSim,
    last_written: Option<serde_json::Value>,
    killing: bool,
}

/// Name of the i-th fake node (0-based).
pub fn node_name(i: usize) -> String {
    format!("sim-node-{}", i + 1)
}

/// InternalIP of the i-th fake node (0-based).
pub fn node_ip(i: usize) -> String {
    format!("172.18.0.{}", i + 2)
}

/// The n-th pod IP (10.244.0.2 onwards).
pub fn pod_ip(n: u32) -> String {
    let v = n + 2;
    format!(
        "10.{}.{}.{}",
        244 + ((v >> 16) % 12),
        (v >> 8) & 255,
        v & 255
    )
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn record(sh: &Shared, pod: &Pod, ev: SimEvent, host: Option<String>) {
    let mut object = pod_ref(pod);
    object.field_path = ev.field_path;
    sh.events.record(EventReq {
        object,
        type_: ev.type_.into(),
        reason: ev.reason.into(),
        message: ev.message,
        component: ev.component.into(),
        host,
    });
}

fn until(t: Timestamp) -> Duration {
    let d = t.duration_since(Timestamp::now());
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Registers the fake nodes like kubelets do (best effort).
pub(crate) async fn register_nodes(sh: &Shared) {
    let api: Api<Node> = Api::all(sh.client.clone());
    for i in 0..super::NODES {
        let name = node_name(i);
        let now = super::rollout::now_secs().to_string();
        let node: Node = match serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "sim"}},
            "spec": {"podCIDR": format!("10.244.{i}.0/24"), "podCIDRs": [format!("10.244.{i}.0/24")]},
            "status": {
                "capacity": {"cpu": "8", "memory": "32858504Ki", "pods": "110", "ephemeral-storage": "102626232Ki"},
                "allocatable": {"cpu": "8", "memory": "32756104Ki", "pods": "110", "ephemeral-storage": "94580335255"},
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}
                ],
                "addresses": [{"type": "InternalIP", "address": node_ip(i)}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"machineID": format!("{:032x}", i + 1), "systemUUID": format!("{:032x}", i + 1), "bootID": format!("{:032x}", i + 101),
                    "kernelVersion": "6.8.0-sim", "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "containerd://1.7.24",
                    "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0", "operatingSystem": "linux", "architecture": "amd64"}
            }
        })) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "building a simulated node");
                continue;
            }
        };
        let pp = PostParams {
            field_manager: Some(KUBELET.into()),
            ..Default::default()
        };
        match api.create(&pp, &node).await {
            Ok(created) => {
                if created
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_none()
                {
                    let patch = serde_json::json!({"status": node.status});
                    let pp = PatchParams {
                        field_manager: Some(KUBELET.into()),
                        ..Default::default()
                    };
                    if let Err(e) = api.patch_status(&name, &pp, &Patch::Merge(&patch)).await {
                        tracing::debug!(error = %e, node = %name, "node status");
                    }
                }
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::info!("the API server serves no nodes; pods are bound to node names without Node objects");
                return;
            }
            Err(e) => tracing::warn!(error = %e, node = %name, "registering simulated node"),
        }
    }
}

/// Binds a pod like kube-scheduler (`POST pods/{name}/binding`); falls back to
/// setting `spec.nodeName` when the server has no binding subresource.
async fn bind(sh: &Shared, pod: &Pod, node: &str) -> Result<(), SimError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(sh.client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}
    });
    if sh.no_binding.load(Ordering::Relaxed) {
        return set_node_name(sh, &api, &name, node).await;
    }
    let pp = PostParams {
        field_manager: Some("kube-scheduler".into()),
        ..Default::default()
    };
    match api
        .create_subresource::<_, serde_json::Value>("binding", &name, &pp, &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s))
            if (s.code == 404 && sh.pods.get(&ns, &name).is_some()) || s.code == 405 =>
        {
            tracing::info!("the API server has no pods/binding subresource; the simulated scheduler sets spec.nodeName instead");
            sh.no_binding.store(true, Ordering::Relaxed);
            set_node_name(sh, &api, &name, node).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_node_name(
    sh: &Shared,
    api: &Api<Pod>,
    name: &str,
    node: &str,
) -> Result<(), SimError> {
    let patch = serde_json::json!({"spec": {"nodeName": node}});
    let pp = PatchParams {
        field_manager: Some("kube-scheduler".into()),
        ..Default::default()
    };
    let out = api.patch(name, &pp, &Patch::Merge(&patch)).await?;
    sh.pods.insert(out);
    Ok(())
}

/// Syncs one pod: schedule, advance the lifecycle, write status.
pub(crate) async fn sync_pod(
    sh: &Shared,
    ns: &str,
    name: &str,
) -> Result<Option<Duration>, SimError> {
    let key = (ns.to_string(), name.to_string());
    let Some(pod) = sh.pods.get(ns, name) else {
        let gone = sh
            .kubelet
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pods
            .remove(&key);
        if let Some(e) = gone {
            sh.logs.remove_pod(ns, name);
            sh.events.forget(&e.uid);
        }
        return Ok(None);
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(sh.client.clone(), ns);

    if pod.metadata.deletion_timestamp.is_some() {
        // The kubelet stops the containers, then removes the pod object.
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let first = {
            let mut st = sh.kubelet.lock().unwrap_or_else(PoisonError::into_inner);
            match st.pods.get_mut(&key) {
                Some(e) if e.uid == uid && !e.killing => {
                    e.killing = true;
                    true
                }
                _ => false,
            }
        };
        if first {
            for c in pod
                .spec
                .as_ref()
                .map(|s| s.containers.clone())
                .unwrap_or_default()
            {
                let ev = SimEvent {
                    type_: "Normal",
                    reason: "Killing",
                    message: format!("Stopping container {}", c.name),
                    field_path: Some(format!("spec.containers{{{}}}", c.name)),
                    component: "kubelet",
                };
                record(sh, &pod, ev, bound.clone());
            }
        }
        if bound.is_some()
            && pod
                .metadata
                .finalizers
                .as_ref()
                .is_none_or(|f| f.is_empty())
        {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    }

    // New pod (or a new incarnation under the same name): schedule it.
    let known = {
        let st = sh.kubelet.lock().unwrap_or_else(PoisonError::into_inner);
        st.pods.get(&key).is_some_and(|e| e.uid == uid)
    };
    if !known {
        let spec = BehaviorSpec::from_pod(&pod);
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let (node, host_ip, ip) = {
            let mut st = sh.kubelet.lock().unwrap_or_else(PoisonError::into_inner);
            if spec.behavior == Behavior::Unschedulable && assigned.is_none() {
                (None, String::new(), String::new())
            } else {
                let n = super::NODES;
                let idx = match &assigned {
                    Some(a) => (0..n).find(|i| node_name(*i) == *a).unwrap_or(0),
                    None => {
                        st.next_node = (st.next_node + 1) % n;
                        st.next_node
                    }
                };
                let ip = pod_ip(st.next_ip);
                st.next_ip = st.next_ip.wrapping_add(1);
                (
                    Some(assigned.clone().unwrap_or_else(|| node_name(idx))),
                    node_ip(idx),
                    ip,
                )
            }
        };
        if let (Some(n), None) = (&node, &assigned) {
            bind(sh, &pod, n).await?;
        }
        let sim = PodSim::new(
            &pod,
            node.clone(),
            host_ip,
            ip,
            Timestamp::now(),
            sh.cfg.time_scale,
        );
        if assigned.is_none() {
            record(sh, &pod, sim.scheduler_event(), None);
        }
        sh.kubelet
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pods
            .insert(
                key.clone(),
                Entry {
                    uid: uid.clone(),
                    sim,
                    last_written: None,
                    killing: false,
                },
            );
    }

    // Advance the lifecycle and compute the status.
    let now = Timestamp::now();
    let (effects, status, next, node, already) = {
        let mut st = sh.kubelet.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = st.pods.get_mut(&key) else {
            return Ok(None);
        };
        let effects = e.sim.advance(now);
        let status = serde_json::to_value(e.sim.status(now))?;
        let already = e.last_written.as_ref() == Some(&status);
        (
            effects,
            status,
            e.sim.next_wakeup(),
            e.sim.node.clone(),
            already,
        )
    };
    for eff in effects {
        match eff {
            Effect::Event(ev) => record(sh, &pod, ev, node.clone()),
            Effect::Log { container, line } => sh.logs.append(ns, name, &container, line),
            Effect::RestartLog { container } => sh.logs.restart(ns, name, &container),
        }
    }
    if !already {
        let patch = serde_json::json!({"metadata": {"uid": uid}, "status": status});
        let pp = PatchParams {
            field_manager: Some(KUBELET.into()),
            ..Default::default()
        };
        match api.patch_status(name, &pp, &Patch::Merge(&patch)).await {
            Ok(out) => {
                sh.pods.insert(out);
                let mut st = sh.kubelet.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(e) = st.pods.get_mut(&key) {
                    e.last_written = Some(status);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(next.map(until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(node_name(0), "sim-node-1");
        assert_eq!(node_ip(2), "172.18.0.4");
        assert_eq!(pod_ip(0), "10.244.0.2");
        assert_eq!(pod_ip(254), "10.244.1.0");
        assert_eq!(pod_ip(70_000), "10.245.17.114");
    }
}

//! What the simulated kubelet reads from a pod's spec: its containers, its
//! QoS class and the first secret/configmap it references.

use k8s_openapi::api::core::v1::{Container, Pod};

pub(super) fn container_list(cs: &[Container]) -> Vec<(String, String)> {
    cs.iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// QoS class as the API server computes it (`BestEffort`, `Burstable`, `Guaranteed`).
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let res = c.resources.as_ref();
        let req = res.and_then(|r| r.requests.as_ref());
        let lim = res.and_then(|r| r.limits.as_ref());
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for k in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(k));
            let r = req.and_then(|m| m.get(k)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The name of the first secret/configmap a pod's containers reference, as
/// the kubelet would report it when missing (`secret "x" not found`).
pub(super) fn first_config_ref(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        for e in c.env.iter().flatten() {
            if let Some(v) = e.value_from.as_ref() {
                if let Some(s) = v.secret_key_ref.as_ref() {
                    return format!("secret \"{}\" not found", s.name);
                }
                if let Some(s) = v.config_map_key_ref.as_ref() {
                    return format!("configmap \"{}\" not found", s.name);
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(s) = e.secret_ref.as_ref() {
                return format!("secret \"{}\" not found", s.name);
            }
            if let Some(s) = e.config_map_ref.as_ref() {
                return format!("configmap \"{}\" not found", s.name);
            }
        }
    }
    let base = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .cloned()
        .unwrap_or_else(|| "app".to_string());
    format!("secret \"{base}-secrets\" not found")
}

//! The ReplicaSet controller (`pkg/controller/replicaset/replica_set.go`):
//! creates pods from the template (slow-start batches, expectations so a
//! lagging cache never double-creates), deletes the least valuable pods
//! first (`controller.ActivePodsWithRanks`) and writes status through
//! `/status`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use rand::Rng;
use tokio::time::Instant;

use super::events::EventReq;
use super::rollout::{now_secs, rs_replicas, scale_duration};
use super::{Shared, SimError, CONTROLLER_MANAGER};
use ::rollout::hash::SAFE_ALPHABET;

/// `burstReplicas`: at most this many creates/deletes per sync.
pub const BURST_REPLICAS: usize = 500;
/// Expectations expire after this long (real: 5 minutes).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);
/// Annotation `controller.kubernetes.io/pod-deletion-cost`.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Pending creations/deletions of one ReplicaSet, by pod name.
#[derive(Debug, Clone)]
pub struct Expectations {
    adds: HashSet<String>,
    dels: HashSet<String>,
    at: Instant,
}

/// Whether a pod counts as active (`controller.IsPodActive`).
pub fn is_pod_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed")) && p.metadata.deletion_timestamp.is_none()
}

fn ready_condition(p: &Pod) -> Option<(bool, Option<Timestamp>)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            (
                c.status == "True",
                c.last_transition_time.as_ref().map(|t| t.0),
            )
        })
}

/// `podutil.IsPodReady`.
pub fn is_pod_ready(p: &Pod) -> bool {
    ready_condition(p).is_some_and(|(r, _)| r)
}

/// `podutil.IsPodAvailable` with `min_ready_seconds` divided by the time scale.
pub fn is_pod_available(p: &Pod, min_ready_seconds: i32, now: Timestamp, time_scale: f64) -> bool {
    match ready_condition(p) {
        Some((true, ltt)) => {
            if min_ready_seconds <= 0 {
                return true;
            }
            let Some(ltt) = ltt else { return false };
            let d = scale_duration(Duration::from_secs(min_ready_seconds as u64), time_scale);
            let Ok(sd) = jiff::SignedDuration::try_from(d) else {
                return false;
            };
            ltt.checked_add(sd).is_ok_and(|t| t <= now)
        }
        _ => false,
    }
}

fn labels_match(
    template: Option<&BTreeMap<String, String>>,
    pod: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let pod = pod.unwrap_or(&empty);
    template
        .unwrap_or(&empty)
        .iter()
        .all(|(k, v)| pod.get(k) == Some(v))
}

/// `calculateStatus` of the ReplicaSet controller over its active pods.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    now: Timestamp,
    time_scale: f64,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let tmpl_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let mut fully = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in active {
        if labels_match(tmpl_labels, p.metadata.labels.as_ref()) {
            fully += 1;
        }
        if is_pod_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now, time_scale) {
                available += 1;
            }
        }
    }
    let old = rs.status.clone().unwrap_or_default();
    let conditions = old
        .conditions
        .map(|c| {
            c.into_iter()
                .filter(|c| c.type_ != "ReplicaFailure")
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty());
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions,
        terminating_replicas: None,
    }
}

fn phase_rank(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn deletion_cost(p: &Pod) -> i64 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

/// `controller.ActivePods(WithRanks).Less` (without the co-location rank):
/// `Less` pods are deleted first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| !n.is_empty())
    };
    // 1. unassigned < assigned
    assigned(a)
        .cmp(&assigned(b))
        // 2. Pending < Unknown < Running
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        // 3. not ready < ready
        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
        // 4. lower deletion cost first
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        // 6. both ready: ready for less time first
        .then_with(|| {
            if is_pod_ready(a) && is_pod_ready(b) {
                let t = |p: &Pod| ready_condition(p).and_then(|(_, t)| t);
                t(b).cmp(&t(a))
            } else {
                Ordering::Equal
            }
        })
        // 7. more restarts first
        .then_with(|| restarts(b).cmp(&restarts(a)))
        // 8. newer first
        .then_with(|| {
            let c = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            c(b).cmp(&c(a))
        })
}

/// Pod name for a ReplicaSet: `<rs>-<5 chars>` (like `generateName`,
/// prefix cut to 58 characters).
pub fn pod_name(rs_name: &str, rng: &mut impl Rng) -> String {
    let mut base = format!("{rs_name}-");
    if base.len() > 58 {
        base.truncate(58);
    }
    let suffix: String = (0..5)
        .map(|_| char::from(SAFE_ALPHABET[rng.random_range(0..SAFE_ALPHABET.len())]))
        .collect();
    format!("{base}{suffix}")
}

/// The pod the controller creates from the ReplicaSet's template.
pub fn pod_from_template(rs: &ReplicaSet, name: String) -> Result<Pod, SimError> {
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let tmpl = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| SimError::Invalid(format!("replica set {rs_name} has no template")))?;
    let tm = tmpl.metadata.unwrap_or_default();
    let mut gen = format!("{rs_name}-");
    gen.truncate(58);
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(gen),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: rs_name,
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    })
}

fn rs_ref(rs: &ReplicaSet) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("ReplicaSet".into()),
        namespace: rs.metadata.namespace.clone(),
        name: rs.metadata.name.clone(),
        uid: rs.metadata.uid.clone(),
        resource_version: rs.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn record(sh: &Shared, rs: &ReplicaSet, type_: &str, reason: &str, message: String) {
    sh.events.record(EventReq {
        object: rs_ref(rs),
        type_: type_.into(),
        reason: reason.into(),
        message,
        component: "replicaset-controller".into(),
        host: None,
    });
}

/// Whether the expectations of `uid` are met, checked against the cache.
fn expectations_satisfied(sh: &Shared, uid: &str, pods: &[Arc<Pod>]) -> bool {
    let mut ex = sh
        .expectations
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(e) = ex.get_mut(uid) else {
        return true;
    };
    let names: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    e.adds.retain(|n| !names.contains(n.as_str()));
    e.dels.retain(|n| names.contains(n.as_str()));
    let timeout =
        scale_duration(EXPECTATIONS_TIMEOUT, sh.cfg.time_scale).max(Duration::from_secs(1));
    if (e.adds.is_empty() && e.dels.is_empty()) || e.at.elapsed() > timeout {
        ex.remove(uid);
        true
    } else {
        false
    }
}

fn lower_expectation(sh: &Shared, uid: &str, name: &str) {
    let mut ex = sh
        .expectations
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = ex.get_mut(uid) {
        e.adds.remove(name);
        e.dels.remove(name);
    }
}

/// Syncs one ReplicaSet; returns when to look again.
pub(crate) async fn sync(sh: &Shared, ns: &str, name: &str) -> Result<Option<Duration>, SimError> {
    let Some(rs) = sh.replicasets.get(ns, name) else {
        return Ok(None);
    };
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let owned = sh.pods.owned_by(&uid);
    let needs_sync = expectations_satisfied(sh, &uid, &owned);
    let mut active: Vec<Arc<Pod>> = owned.iter().filter(|p| is_pod_active(p)).cloned().collect();
    let mut manage_err = None;
    if needs_sync && rs.metadata.deletion_timestamp.is_none() {
        if let Err(e) = manage_replicas(sh, &rs, &mut active).await {
            manage_err = Some(e);
        }
    }
    let now = now_secs();
    let status = calculate_status(&rs, &active, now, sh.cfg.time_scale);
    let cur = serde_json::to_value(rs.status.clone().unwrap_or_default())?;
    let mut rs_out = rs.clone();
    if !super::same_json(&cur, &serde_json::to_value(&status)?) {
        let mut obj = (*rs).clone();
        // Go's `omitempty`: zero counters are not written.
        let mut written = status.clone();
        for f in [
            &mut written.fully_labeled_replicas,
            &mut written.ready_replicas,
            &mut written.available_replicas,
        ] {
            if *f == Some(0) {
                *f = None;
            }
        }
        obj.status = Some(written);
        let api: Api<ReplicaSet> = Api::namespaced(sh.client.clone(), ns);
        let pp = PostParams {
            field_manager: Some(CONTROLLER_MANAGER.into()),
            ..Default::default()
        };
        let out = api.replace_status(name, &pp, &obj).await?;
        sh.replicasets.insert(out.clone());
        rs_out = Arc::new(out);
    }
    if let Some(e) = manage_err {
        return Err(e);
    }
    // Pods ready but not yet available (minReadySeconds): look again when they are.
    let min_ready = rs_out
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready > 0 && status.ready_replicas.unwrap_or(0) > status.available_replicas.unwrap_or(0)
    {
        let d = scale_duration(Duration::from_secs(min_ready as u64), sh.cfg.time_scale);
        return Ok(Some(d + Duration::from_millis(200)));
    }
    Ok(None)
}

async fn manage_replicas(
    sh: &Shared,
    rs: &Arc<ReplicaSet>,
    active: &mut Vec<Arc<Pod>>,
) -> Result<(), SimError> {
    let want = rs_replicas(rs).max(0) as usize;
    let have = active.len();
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(sh.client.clone(), &ns);
    if have < want {
        let n = (want - have).min(BURST_REPLICAS);
        let names: Vec<String> = {
            let mut rng = sh.rng();
            (0..n).map(|_| pod_name(&rs_name, &mut *rng)).collect()
        };
        sh.expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                uid.clone(),
                Expectations {
                    adds: names.iter().cloned().collect(),
                    dels: HashSet::new(),
                    at: Instant::now(),
                },
            );
        // slowStartBatch: 1, 2, 4, ... creations in parallel; stop on the first failing batch.
        let pp = PostParams {
            field_manager: Some(CONTROLLER_MANAGER.into()),
            ..Default::default()
        };
        let mut batch = 1usize;
        let mut pos = 0usize;
        let mut first_err = None;
        while pos < names.len() {
            let end = (pos + batch).min(names.len());
            let mut futs = Vec::new();
            for name in &names[pos..end] {
                let pod = pod_from_template(rs, name.clone())?;
                let api = api.clone();
                let pp = pp.clone();
                futs.push(async move { (name.clone(), api.create(&pp, &pod).await) });
            }
            let mut failed = false;
            for (name, res) in join_all(futs).await {
                match res {
                    Ok(p) => {
                        record(
                            sh,
                            rs,
                            "Normal",
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                        let p = Arc::new(p);
                        sh.pods.insert((*p).clone());
                        active.push(p);
                    }
                    Err(e) => {
                        lower_expectation(sh, &uid, &name);
                        let already = matches!(&e, kube::Error::Api(s) if s.code == 409);
                        if !already {
                            record(
                                sh,
                                rs,
                                "Warning",
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            failed = true;
                            first_err.get_or_insert(SimError::Kube(e));
                        }
                    }
                }
            }
            pos = end;
            if failed {
                for name in &names[pos..] {
                    lower_expectation(sh, &uid, name);
                }
                break;
            }
            batch *= 2;
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    } else if have > want {
        let n = (have - want).min(BURST_REPLICAS);
        let mut sorted = active.clone();
        sorted.sort_by(|a, b| deletion_order(a, b));
        let victims: Vec<Arc<Pod>> = sorted.into_iter().take(n).collect();
        let names: HashSet<String> = victims
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        sh.expectations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                uid.clone(),
                Expectations {
                    adds: HashSet::new(),
                    dels: names.clone(),
                    at: Instant::now(),
                },
            );
        let futs = victims.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let api = api.clone();
            async move {
                (
                    name.clone(),
                    api.delete(&name, &DeleteParams::default()).await,
                )
            }
        });
        let mut first_err = None;
        for (name, res) in join_all(futs).await {
            match res {
                Ok(_) => record(
                    sh,
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    lower_expectation(sh, &uid, &name);
                    if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                        record(
                            sh,
                            rs,
                            "Warning",
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        first_err.get_or_insert(SimError::Kube(e));
                    }
                }
            }
        }
        active.retain(|p| !p.metadata.name.as_ref().is_some_and(|n| names.contains(n)));
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready: Option<&str>,
        restarts: i32,
        created: &str,
    ) -> Pod {
        let mut conds = vec![];
        if let Some(t) = ready {
            conds.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": t}));
        } else {
            conds.push(json!({"type": "Ready", "status": "False", "lastTransitionTime": created}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web", "pod-template-hash": "h"}},
            "spec": {"nodeName": node, "containers": [{"name": "app"}]},
            "status": {"phase": phase, "conditions": conds, "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": ready.is_some(), "restartCount": restarts}]}
        }))
        .expect("pod")
    }

    #[test]
    fn deletion_ranking() {
        let mut pods = [
            pod(
                "ready-old",
                Some("n"),
                "Running",
                Some("2024-01-01T00:00:10Z"),
                0,
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "ready-new",
                Some("n"),
                "Running",
                Some("2024-01-01T00:01:10Z"),
                0,
                "2024-01-01T00:01:00Z",
            ),
            pod(
                "unassigned",
                None,
                "Pending",
                None,
                0,
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "pending",
                Some("n"),
                "Pending",
                None,
                0,
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "crashing",
                Some("n"),
                "Running",
                None,
                5,
                "2024-01-01T00:00:00Z",
            ),
            pod(
                "unready",
                Some("n"),
                "Running",
                None,
                0,
                "2024-01-01T00:00:00Z",
            ),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        assert_eq!(
            names,
            vec![
                "unassigned",
                "pending",
                "crashing",
                "unready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    #[test]
    fn status_counts_and_min_ready_seconds() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-h", "generation": 3},
            "spec": {"replicas": 3, "minReadySeconds": 10, "selector": {}, "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "h"}}}}
        }))
        .expect("rs");
        let pods: Vec<Arc<Pod>> = vec![
            Arc::new(pod(
                "a",
                Some("n"),
                "Running",
                Some("2024-01-01T00:00:00Z"),
                0,
                "2024-01-01T00:00:00Z",
            )),
            Arc::new(pod(
                "b",
                Some("n"),
                "Running",
                Some("2024-01-01T00:00:08Z"),
                0,
                "2024-01-01T00:00:00Z",
            )),
            Arc::new(pod(
                "c",
                Some("n"),
                "Pending",
                None,
                0,
                "2024-01-01T00:00:00Z",
            )),
        ];
        let now: Timestamp = "2024-01-01T00:00:10Z".parse().expect("ts");
        let s = calculate_status(&rs, &pods, now, 1.0);
        assert_eq!(
            (
                s.replicas,
                s.ready_replicas,
                s.available_replicas,
                s.fully_labeled_replicas
            ),
            (3, Some(2), Some(1), Some(3))
        );
        assert_eq!(s.observed_generation, Some(3));
        // Time scale 10: minReadySeconds 10 -> 1s, both ready pods available.
        let s = calculate_status(&rs, &pods, now, 10.0);
        assert_eq!(s.available_replicas, Some(2));
    }

    #[test]
    fn pod_names_and_template() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = pod_name("web-7c5ddbdf54", &mut rng);
        assert!(n.starts_with("web-7c5ddbdf54-") && n.len() == "web-7c5ddbdf54-".len() + 5);
        let mut rng2 = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            n,
            pod_name("web-7c5ddbdf54", &mut rng2),
            "seeded: deterministic"
        );
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-h", "namespace": "ns", "uid": "rs-uid"},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"sim.kubeincident.io/behavior": "oom"}},
                "spec": {"containers": [{"name": "app", "image": "x"}]}}}
        }))
        .expect("rs");
        let p = pod_from_template(&rs, n).expect("pod");
        let o = &p.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.uid.as_str(),
                o.controller,
                o.block_owner_deletion
            ),
            ("ReplicaSet", "rs-uid", Some(true), Some(true))
        );
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-h-"));
        assert_eq!(
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("sim.kubeincident.io/behavior"))
                .map(String::as_str),
            Some("oom")
        );
    }
}

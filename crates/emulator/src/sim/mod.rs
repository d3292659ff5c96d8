//! Workload simulation (like kwok): deployment, ReplicaSet and pod-lifecycle
//! controllers that act on the emulated API server through a real
//! `kube::Client`, exactly as the real controllers act on kube-apiserver.
//!
//! - [`rollout`]: pure deployment-controller logic (revisions, rollout
//!   math, status and conditions), transcribed from kube-controller-manager;
//!   what the operator shares with it (annotations, pod-template-hash,
//!   template comparison) is in the `rollout` crate.
//! - [`replicaset`]: the ReplicaSet controller (pure status/ranking + sync).
//! - [`kubelet`]: the pure pod state machine (behaviour annotations
//!   `sim.kubeincident.io/behavior` / `sim.kubeincident.io/after`).
//! - [`runtime`]: scheduler + kubelet driver (binding, status patches,
//!   events, logs, fake nodes).
//! - [`queue`], [`cache`], [`events`]: one delayed work queue (a heap of
//!   next-transition times, no per-pod tasks), watch-fed caches and an
//!   event recorder.
//!
//! Writes use the field managers of the real components
//! (`kube-controller-manager`, `kubelet`), PUT with resourceVersion for
//! controller writes (409 conflicts are retried from the cache) and the
//! `/status` subresource for status.

pub mod cache;
pub mod deployment;
pub mod events;
pub mod kubelet;
pub mod queue;
pub mod replicaset;
pub mod rollout;
pub mod runtime;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use rand::SeedableRng;

use crate::logs::PodLogs;
use cache::{controller_ref, Cache, Change};
use events::EventRecorder;
use queue::{Key, WorkQueue};

/// Field manager of controller writes (like kube-controller-manager).
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// Field manager of pod status writes.
pub const KUBELET: &str = "kubelet";

/// Number of concurrent reconcile workers.
pub const WORKERS: usize = 16;
/// Seed of the RNG for pod name suffixes.
pub const SEED: u64 = 0x6b75_6265;
/// Number of fake nodes (`sim-node-1`..`sim-node-3`).
pub const NODES: usize = 3;

/// Configuration of the simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// 1.0 = real time; 10.0 = everything ten times faster (back-offs,
    /// `after:` delays, progress deadlines, readiness delays, minReadySeconds).
    pub time_scale: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { time_scale: 1.0 }
    }
}

impl SimConfig {
    /// A config with the given time scale.
    pub fn with_time_scale(time_scale: f64) -> Self {
        Self { time_scale }
    }

    /// A simulated duration converted to real time.
    pub fn scaled(&self, d: Duration) -> Duration {
        rollout::scale_duration(d, self.time_scale)
    }
}

/// Errors of the simulation controllers (logged and retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An API call failed.
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Invalid deployment fields.
    #[error(transparent)]
    Rollout(#[from] rollout::RolloutError),
    /// (De)serialization failed.
    #[error("serialization error: {0}")]
    Serde(#[from] serde_json::Error),
    /// A pod-template-hash collision; the collision count was bumped.
    #[error("hash collision for replica set {0}")]
    HashCollision(String),
    /// An object lacks a required field.
    #[error("{0}")]
    Invalid(String),
}

impl SimError {
    /// HTTP status of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            SimError::Kube(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }
}

/// State shared by the controllers.
pub(crate) struct Shared {
    pub client: Client,
    pub cfg: SimConfig,
    pub logs: PodLogs,
    pub deployments: Arc<Cache<Deployment>>,
    pub replicasets: Arc<Cache<ReplicaSet>>,
    pub pods: Arc<Cache<Pod>>,
    pub queue: Arc<WorkQueue>,
    pub events: EventRecorder,
    pub kubelet: Mutex<runtime::KubeletState>,
    pub expectations: Mutex<HashMap<String, replicaset::Expectations>>,
    pub rng: Mutex<rand::rngs::StdRng>,
    /// Set once the server answered that it has no `pods/binding` subresource.
    pub no_binding: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(crate) fn rng(&self) -> std::sync::MutexGuard<'_, rand::rngs::StdRng> {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Running simulation; aborts all its tasks when dropped.
#[derive(Debug)]
pub struct SimHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// Stops all simulation tasks and waits for them to end.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the simulation against the API server behind `client`. Must be
/// called inside a tokio runtime.
pub fn spawn(client: Client, cfg: SimConfig, logs: PodLogs) -> SimHandle {
    let (events, event_tasks) = EventRecorder::spawn(client.clone());
    let workers = WORKERS;
    let sh = Arc::new(Shared {
        client: client.clone(),
        rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(SEED)),
        cfg,
        logs,
        deployments: Arc::default(),
        replicasets: Arc::default(),
        pods: Arc::default(),
        queue: Arc::new(WorkQueue::new()),
        events,
        kubelet: Mutex::new(runtime::KubeletState::default()),
        expectations: Mutex::new(HashMap::new()),
        no_binding: std::sync::atomic::AtomicBool::new(false),
    });
    let mut tasks = event_tasks;

    // Deployments.
    {
        let q = sh.queue.clone();
        tasks.push(tokio::spawn(cache::run_watch(
            Api::<Deployment>::all(client.clone()),
            sh.deployments.clone(),
            move |c| {
                let d = match c {
                    Change::Applied(d) | Change::Deleted(d) => d,
                };
                let (ns, name) = cache::obj_key(d);
                q.add(Key::Deployment(ns, name));
            },
        )));
    }
    // ReplicaSets.
    {
        let q = sh.queue.clone();
        tasks.push(tokio::spawn(cache::run_watch(
            Api::<ReplicaSet>::all(client.clone()),
            sh.replicasets.clone(),
            move |c| {
                let rs = match c {
                    Change::Applied(r) | Change::Deleted(r) => r,
                };
                let (ns, name) = cache::obj_key(rs);
                if let Some((kind, owner)) = controller_ref(rs) {
                    if kind == "Deployment" {
                        q.add(Key::Deployment(ns.clone(), owner));
                    }
                }
                q.add(Key::ReplicaSet(ns, name));
            },
        )));
    }
    // Pods.
    {
        let q = sh.queue.clone();
        let rss = sh.replicasets.clone();
        tasks.push(tokio::spawn(cache::run_watch(
            Api::<Pod>::all(client.clone()),
            sh.pods.clone(),
            move |c| {
                let (pod, deleted) = match c {
                    Change::Applied(p) => (p, false),
                    Change::Deleted(p) => (p, true),
                };
                let (ns, name) = cache::obj_key(pod);
                if let Some((kind, owner)) = controller_ref(pod) {
                    if kind == "ReplicaSet" {
                        if deleted {
                            // Recreate deployments wait for old pods to be gone.
                            if let Some((dk, dn)) = rss
                                .get(&ns, &owner)
                                .and_then(|rs| controller_ref(rs.as_ref()))
                            {
                                if dk == "Deployment" {
                                    q.add(Key::Deployment(ns.clone(), dn));
                                }
                            }
                        }
                        q.add(Key::ReplicaSet(ns.clone(), owner));
                    }
                }
                q.add(Key::Pod(ns, name));
            },
        )));
    }
    // Fake nodes.
    {
        let sh = sh.clone();
        tasks.push(tokio::spawn(
            async move { runtime::register_nodes(&sh).await },
        ));
    }
    // Workers.
    for _ in 0..workers {
        let sh = sh.clone();
        tasks.push(tokio::spawn(async move { worker(sh).await }));
    }
    tracing::info!(
        time_scale = sh.cfg.time_scale,
        workers,
        "workload simulation started"
    );
    SimHandle { tasks }
}

async fn worker(sh: Arc<Shared>) {
    loop {
        let key = sh.queue.next().await;
        let res = match &key {
            Key::Deployment(ns, n) => deployment::sync(&sh, ns, n).await,
            Key::ReplicaSet(ns, n) => replicaset::sync(&sh, ns, n).await,
            Key::Pod(ns, n) => runtime::sync_pod(&sh, ns, n).await,
        };
        match res {
            Ok(requeue) => {
                sh.queue.forget(&key);
                if let Some(d) = requeue {
                    sh.queue.add_after(key.clone(), d);
                }
            }
            Err(e) => {
                match e.code() {
                    Some(404 | 409) => tracing::debug!(?key, error = %e, "simulation sync retry"),
                    _ => tracing::warn!(?key, error = %e, "simulation sync failed"),
                }
                sh.queue.add_rate_limited(key.clone());
            }
        }
        sh.queue.done(&key);
    }
}

/// Whether two JSON renderings are equal once nulls, empty collections and
/// zero numbers (Go's `omitempty`) are ignored.
pub(crate) fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    fn strip(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter()
                    .filter(|(_, x)| {
                        !(x.is_null() || x.as_i64() == Some(0) || x.as_bool() == Some(false))
                    })
                    .map(|(k, x)| (k.clone(), strip(x)))
                    .filter(|(_, x)| {
                        !(x.as_object().is_some_and(|o| o.is_empty())
                            || x.as_array().is_some_and(|a| a.is_empty()))
                    })
                    .collect(),
            ),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(strip).collect()),
            o => o.clone(),
        }
    }
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_json_ignores_omitempty_fields() {
        assert!(same_json(
            &json!({"a": 0, "b": {"c": null}, "d": [1]}),
            &json!({"d": [1]})
        ));
        assert!(!same_json(&json!({"a": 1}), &json!({})));
    }

    #[test]
    fn config_scaling() {
        let c = SimConfig::with_time_scale(20.0);
        assert_eq!(
            c.scaled(Duration::from_secs(10)),
            Duration::from_millis(500)
        );
        assert_eq!(SimConfig::default().time_scale, 1.0);
    }
}

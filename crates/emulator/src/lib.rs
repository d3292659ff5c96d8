//! The emulated Kubernetes cluster: an in-process API server on loopback
//! (real HTTP + JSON, so kube-rs clients, watchers and `kubectl` work against
//! it) plus a kwok-like workload simulation.
//!
//! Its public API is small: [`Emulator`] and [`EmulatorConfig`], fault
//! injection ([`FaultInjector`], [`FaultRule`]), the write log
//! ([`WriteRecord`]), pod logs ([`PodLogs`]) and the simulation ([`sim`]);
//! everything else is internal to the crate.
//!
//! Used three ways: integration tests of the real operator code,
//! `kube-incident demo`, and the scale benchmarks.

#![forbid(unsafe_code)]
// Today's discipline, kept by the compiler: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod app_state;
mod crd;
mod defaults;
mod faults;
mod logs;
mod managed;
mod object_version;
mod openapi;
mod pagination;
mod patch;
mod protobuf;
mod resources;
mod selectors;
mod server;
pub mod sim;
mod status;
mod store;
mod table;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use faults::{FaultAction, FaultInjector, FaultRule, RuleId};
pub use logs::PodLogs;
/// The API server's `labelSelector` grammar, for tests that check what a
/// selector string selects once the server parses it.
pub use selectors::{LabelSelector, SelectorError};
pub use store::{Store, WriteCtx, WriteRecord};

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// Binding the loopback listener failed.
    #[error("binding 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// Building the kube client failed.
    #[error("building the kube client: {0}")]
    Client(String),
}

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Spawn the workload simulation (`sim::spawn`).
    pub simulate: bool,
    /// Simulation speed: 1.0 real time, 10.0 ten times faster.
    pub time_scale: f64,
    /// Watch events kept per resource for resume before 410 Gone.
    pub watch_history: usize,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            simulate: true,
            time_scale: 1.0,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(60),
        }
    }
}

/// Name of the cluster, context (and kubeconfig entries) of the emulator.
pub const CONTEXT_NAME: &str = "kube-incident-emulator";

/// A running emulated API server.
pub struct Emulator {
    addr: SocketAddr,
    store: Arc<store::Store>,
    faults: FaultInjector,
    logs: logs::PodLogs,
    client: kube::Client,
    shutdown_tx: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    sim: Option<SimGuard>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The running simulation (see [`start_simulation`]).
struct SimGuard(sim::SimHandle);

/// The single call site of the workload simulation.
fn start_simulation(
    client: kube::Client,
    cfg: &EmulatorConfig,
    logs: logs::PodLogs,
) -> Option<SimGuard> {
    let handle = sim::spawn(
        client,
        sim::SimConfig {
            time_scale: cfg.time_scale,
        },
        logs,
    );
    Some(SimGuard(handle))
}

impl Emulator {
    /// Start the API server on `127.0.0.1:0` (and the simulation when `cfg.simulate`).
    pub async fn start(cfg: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let logs = logs::PodLogs::new();
        let store = Arc::new(store::Store::new(cfg.watch_history, logs.clone()));
        let faults = FaultInjector::new(Arc::clone(&store));
        let state = app_state::AppState {
            store: Arc::clone(&store),
            faults: faults.clone(),
            logs: logs.clone(),
            bookmark_interval: cfg.bookmark_interval,
        };
        let app = server::router(state);
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "emulator server stopped");
            }
        });
        let url = format!("http://{addr}");
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| EmulatorError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.read_timeout = None;
        let client =
            kube::Client::try_from(config).map_err(|e| EmulatorError::Client(e.to_string()))?;
        tracing::info!(%url, "emulated API server listening");
        let sim = if cfg.simulate {
            start_simulation(client.clone(), &cfg, logs.clone())
        } else {
            None
        };
        Ok(Emulator {
            addr,
            store,
            faults,
            logs,
            client,
            shutdown_tx: Some(shutdown_tx),
            server,
            sim,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client talking HTTP to the emulator.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig for the emulator (cluster and context
    /// `kube-incident-emulator`, user `admin`).
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        use kube::config::{
            AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
        };
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: CONTEXT_NAME.to_string(),
                cluster: Some(Cluster {
                    server: Some(self.url()),
                    ..Cluster::default()
                }),
                other: Default::default(),
            }],
            auth_infos: vec![NamedAuthInfo {
                name: "admin".to_string(),
                auth_info: Some(AuthInfo::default()),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: CONTEXT_NAME.to_string(),
                context: Some(Context {
                    cluster: CONTEXT_NAME.to_string(),
                    user: Some("admin".to_string()),
                    namespace: Some("default".to_string()),
                    ..Context::default()
                }),
                other: Default::default(),
            }],
            current_context: Some(CONTEXT_NAME.to_string()),
            kind: Some("Config".to_string()),
            api_version: Some("v1".to_string()),
            ..Kubeconfig::default()
        }
    }

    /// Write [`Emulator::kubeconfig`] as YAML.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        let yaml = serde_yaml::to_string(&self.kubeconfig()).map_err(std::io::Error::other)?;
        std::fs::write(path, yaml)
    }

    /// Fault injection handle.
    pub fn faults(&self) -> FaultInjector {
        self.faults.clone()
    }

    /// The container log store (written by the simulation, served on `/log`).
    pub fn pod_logs(&self) -> logs::PodLogs {
        self.logs.clone()
    }

    /// Every successful mutating request so far.
    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.store.write_log()
    }

    /// Direct access to the object store, bypassing HTTP (bulk loading in
    /// benchmarks; tests should go through [`Emulator::client`]).
    pub fn store(&self) -> Arc<store::Store> {
        Arc::clone(&self.store)
    }

    /// The current (global) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.current_rv()
    }

    /// Stop the simulation and the server (open watches are closed).
    pub async fn shutdown(mut self) {
        if let Some(SimGuard(sim)) = self.sim.take() {
            sim.shutdown().await;
        }
        self.faults.drop_watches();
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

//! `kube-incident run`: configuration, start-up checks, and the set of
//! controllers and servers that make up the operator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::{join_all, BoxFuture, FutureExt, Shared};
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tokio::sync::{broadcast, watch};
use tracing::{debug, error, info};

use crate::alertmanager::{Intake, Mapping, TokenRef};
use crate::api::{Incident, Severity, GROUP, VERSION};
use crate::controller::context::Context;
use crate::controller::detector::{Detections, Detector, DetectorConfig, IncidentLookup};
use crate::controller::{self, incident, Clock};
use crate::core::evidence::Caps;
use crate::core::targets::{SeverityTargets, TargetField, TargetOverrideError};
use crate::http::{self, HttpState};
use crate::leader::{ElectionConfig, LeaderElector, LeaderError, Leadership};
use crate::metrics::Metrics;
use crate::notify::{Notifier, RetryPolicy};

/// Flags of `kube-incident run` (each also readable from an environment variable).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; empty = all namespaces.
    #[arg(long, env = "KUBE_INCIDENT_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(
        long,
        env = "KUBE_INCIDENT_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Plan and record, never change a workload (global dry-run).
    #[arg(long, env = "KUBE_INCIDENT_DRY_RUN")]
    pub dry_run: bool,
    /// GitOps support: read the Argo CD Application or Flux
    /// Kustomization/HelmRelease that applies a target from Git, and pause
    /// its automation before a mitigation (Runbook gitOps.policy Suspend).
    /// Needs get and patch on those resources (chart: gitops.enabled).
    #[arg(long, env = "KUBE_INCIDENT_GITOPS")]
    pub gitops: bool,
    /// Where Argo CD Applications live (when a label names only the application).
    #[arg(long, env = "KUBE_INCIDENT_ARGOCD_NAMESPACE", default_value = "argocd")]
    pub argocd_namespace: String,
    /// Override response (acknowledge) targets, e.g. SEV1=10m (repeatable or comma-separated).
    #[arg(
        long = "response-target",
        env = "KUBE_INCIDENT_RESPONSE_TARGETS",
        value_delimiter = ','
    )]
    pub response_targets: Vec<String>,
    /// Override resolution targets, e.g. SEV2=8h.
    #[arg(
        long = "resolution-target",
        env = "KUBE_INCIDENT_RESOLUTION_TARGETS",
        value_delimiter = ','
    )]
    pub resolution_targets: Vec<String>,
    /// Override default monitoring windows, e.g. SEV3=5m.
    #[arg(
        long = "monitoring-window",
        env = "KUBE_INCIDENT_MONITORING_WINDOWS",
        value_delimiter = ','
    )]
    pub monitoring_windows: Vec<String>,
    /// Name of this operator instance (the pod name), reported on Events.
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// The operator's own namespace: Runbooks there may use namespaceSelector.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// Watch Pods and Deployments and open Incidents on their own.
    #[arg(long, env = "KUBE_INCIDENT_DETECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub detect: bool,
    /// Honour `approvedBy` even when the admission policy that makes the API
    /// server check it is missing or stale (reported on every such incident:
    /// condition ApprovalsVerified=False, an Event). Off by default: without
    /// the policy anyone who may edit an Incident could approve a step.
    #[arg(long, env = "KUBE_INCIDENT_ACCEPT_UNVERIFIED_APPROVALS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub accept_unverified_approvals: bool,
    /// Apply the built-in detection policy to workloads no Runbook covers.
    #[arg(long, env = "KUBE_INCIDENT_BUILTIN_POLICY", default_value_t = true, action = clap::ArgAction::Set)]
    pub builtin_policy: bool,
    /// Notifications, evidence and the Alertmanager intake (boxed: keeps
    /// the CLI's command enum small).
    #[command(flatten)]
    pub response: Box<ResponseArgs>,
    /// Leader election (`--leader-elect`, `--lease-*`).
    #[command(flatten)]
    pub lease: Box<LeaseArgs>,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    crate::api::parse_go_duration(s).map_err(|e| e.to_string())
}

/// Leader election flags: only the holder of a coordination.k8s.io Lease acts.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaseArgs {
    /// Elect a leader with a coordination.k8s.io Lease: only the leader acts
    /// and writes (run several replicas for fast failover).
    #[arg(long, env = "KUBE_INCIDENT_LEADER_ELECT", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "KUBE_INCIDENT_LEASE_NAME",
        default_value = "kube-incident"
    )]
    pub lease_name: String,
    /// Namespace of the leader election Lease (default: the operator's namespace, POD_NAMESPACE).
    #[arg(long, env = "KUBE_INCIDENT_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a lease is valid without renewal (whole seconds); a killed leader is replaced after at most this plus one retry period.
    #[arg(long, env = "KUBE_INCIDENT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration_arg)]
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal (less than --lease-duration).
    #[arg(long, env = "KUBE_INCIDENT_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration_arg)]
    pub lease_renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews (less than --lease-renew-deadline).
    #[arg(long, env = "KUBE_INCIDENT_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration_arg)]
    pub lease_retry_period: Duration,
}

/// Flags of the response around the action: notifications, evidence and
/// the Alertmanager intake (see docs/notifications.md).
#[derive(clap::Args, Debug, Clone)]
pub struct ResponseArgs {
    /// Send notifications to the Runbooks' `notify` sinks.
    #[arg(long, env = "KUBE_INCIDENT_NOTIFY", default_value_t = true, action = clap::ArgAction::Set)]
    pub notify: bool,
    /// Attempts per notification (connection errors, HTTP 429 and 5xx are retried).
    #[arg(long, env = "KUBE_INCIDENT_NOTIFY_MAX_ATTEMPTS", default_value_t = 4)]
    pub notify_max_attempts: u32,
    /// First retry backoff; doubles per attempt (capped at 8s), each wait drawn from [d/2, d).
    #[arg(long, env = "KUBE_INCIDENT_NOTIFY_BACKOFF", default_value = "500ms", value_parser = parse_notify_duration)]
    pub notify_backoff: Duration,
    /// Per-request timeout of a notification (a timed-out request is not retried).
    #[arg(long, env = "KUBE_INCIDENT_NOTIFY_TIMEOUT", default_value = "10s", value_parser = parse_notify_duration)]
    pub notify_timeout: Duration,
    /// Keep evidence (logs, Events, rollout history) with each Incident.
    #[arg(long, env = "KUBE_INCIDENT_EVIDENCE", default_value_t = true, action = clap::ArgAction::Set)]
    pub evidence: bool,
    /// Failing pods whose logs are kept as evidence.
    #[arg(long, env = "KUBE_INCIDENT_EVIDENCE_PODS", default_value_t = 3)]
    pub evidence_pods: usize,
    /// Log lines kept per container (tail of the previous instance).
    #[arg(long, env = "KUBE_INCIDENT_EVIDENCE_LOG_LINES", default_value_t = 50)]
    pub evidence_log_lines: i64,
    /// Longest wait for evidence reads (before a mitigation's first workload write, the mitigation waits at most twice this); what is not read by then is recorded as missing.
    #[arg(long, env = "KUBE_INCIDENT_EVIDENCE_TIMEOUT", default_value = "5s", value_parser = parse_notify_duration)]
    pub evidence_timeout: Duration,
    /// Turn on `POST /alertmanager` (on --metrics-addr): NAMESPACE/NAME of the Secret holding the bearer token Alertmanager must send.
    #[arg(long, env = "KUBE_INCIDENT_ALERTMANAGER_TOKEN_SECRET")]
    pub alertmanager_token_secret: Option<String>,
    /// Key of the token in that Secret.
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_TOKEN_KEY",
        default_value = "token"
    )]
    pub alertmanager_token_key: String,
    /// Alert label naming the Incident's namespace.
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_NAMESPACE_LABEL",
        default_value = "namespace"
    )]
    pub alertmanager_namespace_label: String,
    /// Alert label naming the target Deployment.
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_DEPLOYMENT_LABEL",
        default_value = "deployment"
    )]
    pub alertmanager_deployment_label: String,
    /// Alert label naming the target Pod (when no deployment label).
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_POD_LABEL",
        default_value = "pod"
    )]
    pub alertmanager_pod_label: String,
    /// Alert label carrying the severity.
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_SEVERITY_LABEL",
        default_value = "severity"
    )]
    pub alertmanager_severity_label: String,
    /// Severity label values to SEV levels, e.g. critical=SEV1,warning=SEV3 (added to the defaults).
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_SEVERITY_MAP",
        value_delimiter = ','
    )]
    pub alertmanager_severity_map: Vec<String>,
    /// Severity of alerts without a mapped severity label.
    #[arg(
        long,
        env = "KUBE_INCIDENT_ALERTMANAGER_DEFAULT_SEVERITY",
        default_value = "SEV3"
    )]
    pub alertmanager_default_severity: crate::api::Severity,
    /// Alerts firing again within this long of their Incident's resolution reopen it; later, a new Incident (episode) opens.
    #[arg(long, env = "KUBE_INCIDENT_ALERTMANAGER_REOPEN_WINDOW", default_value = "1h", value_parser = parse_notify_duration)]
    pub alertmanager_reopen_window: Duration,
}

fn parse_notify_duration(s: &str) -> Result<Duration, String> {
    crate::api::parse_go_duration(s).map_err(|e| e.to_string())
}

impl RunArgs {
    /// The severity targets after flag overrides.
    pub fn severity_targets(&self) -> Result<SeverityTargets, TargetOverrideError> {
        let mut t = SeverityTargets::default();
        t.apply_overrides(TargetField::Response, &self.response_targets)?;
        t.apply_overrides(TargetField::Resolution, &self.resolution_targets)?;
        t.apply_overrides(TargetField::MonitoringWindow, &self.monitoring_windows)?;
        Ok(t)
    }

    /// The leader election settings (`None` without `--leader-elect`).
    pub fn election(&self) -> Result<Option<ElectionConfig>, LeaderError> {
        if !self.lease.leader_elect {
            return Ok(None);
        }
        let base = self
            .instance
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "kube-incident".to_string());
        let cfg = ElectionConfig {
            lease_name: self.lease.lease_name.clone(),
            lease_namespace: self
                .lease
                .lease_namespace
                .clone()
                .or_else(|| self.operator_namespace.clone())
                .unwrap_or_default(),
            // Unique per process: a restarted pod is a new candidate.
            identity: format!("{base}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            lease_duration: self.lease.lease_duration,
            renew_deadline: self.lease.lease_renew_deadline,
            retry_period: self.lease.lease_retry_period,
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }
}

/// Why the operator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("the kube-incident CRDs are not installed on this cluster ({GROUP}/{VERSION} is not served): install them with `kubectl apply -f crds/` or `kube-incident crds | kubectl apply -f -`")]
    CrdsMissing,
    #[error("cannot reach the Kubernetes API server: {0}")]
    Discovery(#[source] kube::Error),
    #[error(transparent)]
    Targets(#[from] TargetOverrideError),
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error(transparent)]
    AlertmanagerMapping(#[from] crate::alertmanager::MappingError),
    #[error("invalid --alertmanager-token-secret {0:?}: want NAMESPACE/NAME")]
    AlertmanagerToken(String),
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Check that the API server serves our kinds (via discovery, which every
/// authenticated user may read).
pub async fn check_crds(client: &Client) -> Result<(), OperatorError> {
    match client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
    {
        Ok(list) => {
            let has = |n: &str| list.resources.iter().any(|r| r.name == n);
            if has("incidents") && has("runbooks") {
                Ok(())
            } else {
                Err(OperatorError::CrdsMissing)
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Err(OperatorError::CrdsMissing),
        Err(e) => Err(OperatorError::Discovery(e)),
    }
}

/// A running operator's handles, for tests and the demo.
#[derive(Clone)]
pub struct OperatorHandle {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub metrics_addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl OperatorHandle {
    fn new() -> OperatorHandle {
        OperatorHandle {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            metrics_addr: Arc::new(Mutex::new(None)),
        }
    }
}

type ShutdownSignal = Shared<BoxFuture<'static, ()>>;

/// A part of the operator that runs until shutdown.
type Component = BoxFuture<'static, ()>;

/// Run the operator until `shutdown` resolves: one Incident controller per
/// watched namespace (or one for all), the detector, the leader election
/// and the HTTP endpoints.
///
/// Every component runs inside this future (none is spawned): dropping or
/// aborting it stops them all at once, as a killed pod would.
pub async fn run(
    client: Client,
    args: RunArgs,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    handle: Option<OperatorHandle>,
) -> Result<(), OperatorError> {
    check_crds(&client).await?;
    let handle = handle.unwrap_or_else(OperatorHandle::new);
    let shutdown: ShutdownSignal = shutdown.boxed().shared();
    let mut components: Vec<Component> = Vec::new();

    let leadership = match args.election()? {
        Some(cfg) => {
            let elector = LeaderElector::new(client.clone(), cfg, clock.clone())?;
            let leadership = elector.leadership();
            components.push(elector.run(shutdown.clone()).boxed());
            leadership
        }
        None => Leadership::always(),
    };
    // Whether the API server checks approvals (the admission policy is
    // installed and current): checked now, then every 30 seconds.
    // The binding must cover the namespaces it acts in (all of them when
    // cluster-wide).
    let approvals = crate::admission::watch_state_for(
        client.clone(),
        Duration::from_secs(30),
        None,
        Some(args.namespaces.clone()),
    )
    .await;
    let ctx = Arc::new(context(
        &client,
        &args,
        &clock,
        &handle,
        &leadership,
        approvals,
    )?);
    let alertmanager = alertmanager_intake(&client, &args, &clock, &leadership)?;

    let scopes = watch_scopes(&args.namespaces);
    let caches = IncidentCaches::new(scopes.len());
    // Ready when every Incident cache and (if on) the detector have synced.
    let readiness = Readiness::new(scopes.len() + usize::from(args.detect), &handle.ready);
    // The detector's reconcile requests, to every Incident controller.
    let (requests, _) = broadcast::channel(4096);
    for scope in &scopes {
        components.push(incident_controller(
            &client,
            scope.as_deref(),
            &ctx,
            &caches,
            &readiness,
            args.detect.then(|| requests.subscribe()),
            &shutdown,
        ));
    }
    if let Some(detections) = ctx.detections.clone() {
        let detector = Detector {
            client: client.clone(),
            cfg: DetectorConfig {
                namespaces: args.namespaces.clone(),
                operator_namespace: args.operator_namespace.clone(),
                builtin_policy: args.builtin_policy,
                clock: clock.clone(),
                leadership: leadership.clone(),
            },
            detections,
            lookup: caches.lookup(),
            reconcile: requests.clone(),
            metrics: handle.metrics.clone(),
        };
        components.push(detector_after_caches(
            detector, &caches, &readiness, &shutdown,
        ));
    }
    let server = http_server(&args, &handle, &caches, alertmanager, &shutdown);

    info!(namespaces = ?args.namespaces, dry_run = args.dry_run, "kube-incident operator starting");
    let (server_result, _) = tokio::join!(server, join_all(components));
    if let Err(e) = &server_result {
        error!(error = %e, "HTTP server failed");
    }
    info!("kube-incident operator stopped");
    server_result.map_err(OperatorError::from)
}

/// One Incident controller per watched namespace, or one for all (`None`).
fn watch_scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    }
}

/// The Incident controllers' shared state: client, recorder, targets,
/// detections, leadership, notifier and evidence settings.
fn context(
    client: &Client,
    args: &RunArgs,
    clock: &Clock,
    handle: &OperatorHandle,
    leadership: &Leadership,
    approvals: tokio::sync::watch::Receiver<crate::admission::PolicyState>,
) -> Result<Context, OperatorError> {
    let reporter = Reporter {
        controller: "kube-incident".into(),
        instance: args.instance.clone(),
    };
    let response = &args.response;
    let notifier = if response.notify {
        let retry = RetryPolicy {
            max_attempts: response.notify_max_attempts.max(1),
            base_backoff: response.notify_backoff,
            timeout: response.notify_timeout,
            ..Default::default()
        };
        Some(Arc::new(Notifier::new(handle.metrics.clone(), retry)?))
    } else {
        None
    };
    Ok(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: handle.metrics.clone(),
        targets: args.severity_targets()?,
        clock: clock.clone(),
        resync: Duration::from_secs(60),
        detections: args.detect.then(|| Arc::new(Detections::default())),
        leadership: leadership.clone(),
        dry_run: args.dry_run,
        notifier,
        evidence: response.evidence.then(|| Caps {
            pods: response.evidence_pods,
            log_lines: response.evidence_log_lines.max(1),
            max_wait: response.evidence_timeout,
            ..Default::default()
        }),
        operator_namespace: args.operator_namespace.clone(),
        read_namespaces: args.namespaces.is_empty(),
        approvals,
        accept_unverified_approvals: args.accept_unverified_approvals,
        selectors: Default::default(),
        gitops: args.gitops,
        argocd_namespace: args.argocd_namespace.clone(),
    })
}

/// The Alertmanager webhook intake (`None` without a token Secret).
fn alertmanager_intake(
    client: &Client,
    args: &RunArgs,
    clock: &Clock,
    leadership: &Leadership,
) -> Result<Option<Arc<Intake>>, OperatorError> {
    let response = &args.response;
    let Some(secret) = &response.alertmanager_token_secret else {
        return Ok(None);
    };
    let token = TokenRef::parse(secret, &response.alertmanager_token_key)
        .ok_or_else(|| OperatorError::AlertmanagerToken(secret.clone()))?;
    let mapping = Mapping {
        namespace_label: response.alertmanager_namespace_label.clone(),
        deployment_label: response.alertmanager_deployment_label.clone(),
        pod_label: response.alertmanager_pod_label.clone(),
        severity_label: response.alertmanager_severity_label.clone(),
        default_severity: response.alertmanager_default_severity,
        ..Default::default()
    }
    .with_severity_overrides(&response.alertmanager_severity_map)?;
    info!(secret = %secret, "Alertmanager intake on POST /alertmanager");
    Ok(Some(Arc::new(Intake {
        client: client.clone(),
        token,
        mapping,
        watched: args.namespaces.clone(),
        leadership: leadership.clone(),
        reopen_window: response.alertmanager_reopen_window,
        clock: clock.clone(),
    })))
}

/// The Incident caches of the controllers, shared with the detector
/// (which Incidents exist) and `/metrics` (open Incidents by severity).
#[derive(Clone)]
struct IncidentCaches {
    stores: Arc<Mutex<Vec<Store<Incident>>>>,
    expected: usize,
    /// `true` once every controller's cache has synced.
    synced: watch::Sender<bool>,
}

impl IncidentCaches {
    fn new(expected: usize) -> IncidentCaches {
        IncidentCaches {
            stores: Arc::default(),
            expected,
            synced: watch::Sender::new(false),
        }
    }

    /// A controller's cache has synced.
    fn add(&self, store: Store<Incident>) {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores.push(store);
        debug!(
            synced = stores.len(),
            expected = self.expected,
            "incident cache synced"
        );
        if stores.len() == self.expected {
            self.synced.send_replace(true);
        }
    }

    /// Resolves once every cache has synced.
    async fn all_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`: the channel cannot close meanwhile.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// The Incidents of a namespace, for the detector.
    fn lookup(&self) -> IncidentLookup {
        let stores = self.stores.clone();
        Arc::new(move |ns: &str| {
            let stores = stores.lock().unwrap_or_else(PoisonError::into_inner);
            stores
                .iter()
                .flat_map(|s| s.state())
                .filter(|i| i.metadata.namespace.as_deref() == Some(ns))
                .collect()
        })
    }

    /// Open Incidents by severity (one entry each), for `/metrics`.
    fn open_by_severity(&self) -> Vec<(Severity, i64)> {
        let stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores
            .iter()
            .flat_map(|s| s.state())
            .filter(|i| i.status.as_ref().is_some_and(|s| s.resolved_at.is_none()))
            .filter_map(|i| i.status.as_ref().and_then(|s| s.severity))
            .map(|s| (s, 1))
            .collect()
    }
}

/// Counts the parts that must sync before `/readyz` says ready.
#[derive(Clone)]
struct Readiness {
    remaining: Arc<AtomicUsize>,
    ready: Arc<AtomicBool>,
}

impl Readiness {
    fn new(parts: usize, ready: &Arc<AtomicBool>) -> Readiness {
        Readiness {
            remaining: Arc::new(AtomicUsize::new(parts)),
            ready: ready.clone(),
        }
    }

    /// One part has synced.
    fn synced(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            info!("caches synced; ready");
            self.ready.store(true, Ordering::SeqCst);
        }
    }
}

/// The Incident controller of one namespace (or all). Without the
/// detector it watches Deployments itself; with it, it takes the
/// detector's reconcile requests.
fn incident_controller(
    client: &Client,
    scope: Option<&str>,
    ctx: &Arc<Context>,
    caches: &IncidentCaches,
    readiness: &Readiness,
    requests: Option<broadcast::Receiver<ObjectRef<Incident>>>,
    shutdown: &ShutdownSignal,
) -> Component {
    let (incidents, deployments): (Api<Incident>, Api<Deployment>) = match scope {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (caches, readiness) = (caches.clone(), readiness.clone());
    let on_ready = move |store: Store<Incident>| {
        caches.add(store);
        readiness.synced();
    };
    let deployments = requests.is_none().then_some(deployments);
    incident::run(
        incidents,
        deployments,
        ctx.clone(),
        shutdown.clone(),
        on_ready,
        requests,
    )
    .boxed()
}

/// The detector, started once the Incident caches know what exists (it
/// must not open what is already there).
fn detector_after_caches(
    detector: Detector,
    caches: &IncidentCaches,
    readiness: &Readiness,
    shutdown: &ShutdownSignal,
) -> Component {
    let (caches, readiness, shutdown) = (caches.clone(), readiness.clone(), shutdown.clone());
    async move {
        tokio::select! {
            () = caches.all_synced() => {}
            () = shutdown.clone() => return,
        }
        detector.run(shutdown, move || readiness.synced()).await;
    }
    .boxed()
}

/// `/metrics`, `/healthz`, `/readyz` and (if on) `/alertmanager`.
fn http_server(
    args: &RunArgs,
    handle: &OperatorHandle,
    caches: &IncidentCaches,
    alertmanager: Option<Arc<Intake>>,
    shutdown: &ShutdownSignal,
) -> impl std::future::Future<Output = Result<(), http::HttpError>> {
    let (caches, metrics) = (caches.clone(), handle.metrics.clone());
    let state = HttpState {
        alertmanager,
        metrics: handle.metrics.clone(),
        ready: handle.ready.clone(),
        refresh: Arc::new(move || metrics.set_open(&caches.open_by_severity())),
    };
    let addr_slot = handle.metrics_addr.clone();
    http::serve(args.metrics_addr, state, shutdown.clone(), move |a| {
        *addr_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(a);
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The controller module's clock, re-exported for the binary.
pub fn system_clock() -> Clock {
    controller::system_clock()
}

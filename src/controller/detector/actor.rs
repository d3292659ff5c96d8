//! The detector's watcher: a thin actor around the [`Index`]. It turns
//! watch events into index calls, wakes for the index's timers and for
//! leadership changes, and performs what evaluation decided: creating and
//! reopening Incidents, asking the Incident controller to look again, and
//! writing Runbook status. Every decision is in the index.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::evaluate::Write;
use super::index::{key_of, Index, Key, Scope};
use super::runbook_status::RunbookStatusWrite;
use super::{Detections, DetectorConfig, DetectorError, IncidentLookup};
use crate::api::{Incident, Runbook, FIELD_MANAGER};
use crate::core::workload::PodLite;
use crate::core::workload::WorkloadKey;
use crate::core::workload::{CronJobLite, DaemonSetLite, JobLite, StatefulSetLite};
use crate::metrics::Metrics;

/// The detector: its writes' client, settings, and where its detections
/// and reconcile requests go.
pub struct Detector {
    pub client: Client,
    pub cfg: DetectorConfig,
    /// Shared with the Incident controller.
    pub detections: Arc<Detections>,
    /// The Incidents of a namespace (the Incident controller's caches).
    pub lookup: IncidentLookup,
    /// Reconcile requests for the Incident controllers.
    pub reconcile: broadcast::Sender<ObjectRef<Incident>>,
    pub metrics: Arc<Metrics>,
}

/// One watch event, reduced to what the index takes.
enum Delta<K> {
    Apply(K),
    Delete(K),
    /// The end of a (re)list: it listed exactly these keys.
    Relisted(HashSet<Key>),
}

/// A delta of one of the watched kinds.
// Deltas are moved into the index at once; boxing every Pod event would
// only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Change {
    Pod(Delta<PodLite>),
    Deployment(Delta<Deployment>),
    ReplicaSet(Delta<PartialObjectMeta<ReplicaSet>>),
    Namespace(Delta<PartialObjectMeta<Namespace>>),
    Runbook(Delta<Runbook>),
    StatefulSet(Delta<StatefulSetLite>),
    DaemonSet(Delta<DaemonSetLite>),
    Job(Delta<JobLite>),
    CronJob(Delta<CronJobLite>),
}

/// How an Incident create the detector started in the background ended.
struct CreateDone {
    workload: WorkloadKey,
    name: String,
    result: Result<(), DetectorError>,
}

/// A change from watch number `stream`.
struct Input {
    stream: usize,
    change: Change,
}

/// Turn watch events into deltas: objects as they come (listed ones
/// included), and at the end of a list the keys it listed.
fn deltas<K: Resource + Send + 'static>(
    events: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Delta<K>> + Send + 'static {
    events
        .scan(None::<HashSet<Key>>, |listing, event| {
            let delta = match event {
                Ok(Event::Init) => {
                    *listing = Some(HashSet::new());
                    None
                }
                Ok(Event::InitApply(o)) => {
                    listing.get_or_insert_default().insert(key_of(&o));
                    Some(Delta::Apply(o))
                }
                Ok(Event::InitDone) => Some(Delta::Relisted(listing.take().unwrap_or_default())),
                Ok(Event::Apply(o)) => Some(Delta::Apply(o)),
                Ok(Event::Delete(o)) => Some(Delta::Delete(o)),
                Err(e) => {
                    // The watcher retries with backoff; a 410 leads to a relist.
                    warn!(error = %e, "watch error");
                    None
                }
            };
            futures::future::ready(Some(delta))
        })
        .filter_map(futures::future::ready)
}

/// A watch that starts over (a fresh list, then a watch) whenever
/// `restarts` changes: the detector asks for it when it pruned pods of
/// workloads no policy judged and a policy may cover them now.
fn restartable<K>(
    api: Api<K>,
    config: watcher::Config,
    restarts: tokio::sync::watch::Receiver<u64>,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    type Events<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;
    let start = move || -> Events<K> { watcher::watcher(api.clone(), config.clone()).boxed() };
    stream::unfold(
        (None::<Events<K>>, restarts),
        move |(current, mut restarts)| {
            let mut current = current.unwrap_or_else(&start);
            let start = start.clone();
            async move {
                loop {
                    tokio::select! {
                        event = current.next() => {
                            return event.map(|e| (e, (Some(current), restarts)));
                        }
                        Ok(()) = restarts.changed() => {
                            debug!("pod watch lists again");
                            current = start();
                        }
                    }
                }
            }
        },
    )
}

/// The watches of the detector, each with the scope its relists cover.
struct Watches {
    inputs: Vec<BoxStream<'static, Input>>,
    scopes: Vec<Scope>,
    /// Bumped to make the pod watches list again.
    pod_relists: tokio::sync::watch::Sender<u64>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            inputs: Vec::new(),
            scopes: Vec::new(),
            pod_relists: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Watches {
    fn add<K>(&mut self, api: Api<K>, wrap: fn(Delta<K>) -> Change)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let scope = Scope::of(api.namespace());
        let config = watcher::Config::default().any_semantic();
        self.push(scope, deltas(watcher::watcher(api, config)), wrap);
    }

    /// A pod watch: one that lists again when asked to.
    fn add_pods(&mut self, api: Api<PodLite>) {
        let scope = Scope::of(api.namespace());
        let config = watcher::Config::default().any_semantic();
        let restarts = self.pod_relists.subscribe();
        self.push(
            scope,
            deltas(restartable(api, config, restarts)),
            Change::Pod,
        );
    }

    fn push<K: 'static>(
        &mut self,
        scope: Scope,
        deltas: impl futures::Stream<Item = Delta<K>> + Send + 'static,
        wrap: fn(Delta<K>) -> Change,
    ) {
        let stream = self.scopes.len();
        self.scopes.push(scope);
        self.inputs.push(
            deltas
                .map(move |d| Input {
                    stream,
                    change: wrap(d),
                })
                .boxed(),
        );
    }
}

/// Until `at` by `now`, at least nothing.
fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

impl Detector {
    /// Run until `shutdown` resolves; `on_synced` is called once every
    /// watch has listed.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        on_synced: impl FnOnce() + Send + 'static,
    ) {
        let Watches {
            inputs,
            scopes,
            pod_relists,
        } = self.watches();
        let mut input = stream::select_all(inputs).take_until(Box::pin(shutdown));
        let mut index = Index::new(
            self.cfg.operator_namespace.clone(),
            self.cfg.builtin_policy,
            self.detections.clone(),
        );
        let mut listed: HashSet<usize> = HashSet::new();
        let mut on_synced = Some(on_synced);
        let mut leadership = self.cfg.leadership.subscribe();
        let mut leading_term = None;
        // Creates run beside the loop: a round trip to the API server
        // must not hold up the detection of other workloads.
        let (created_tx, mut created_rx) = tokio::sync::mpsc::unbounded_channel::<CreateDone>();
        let profile = &self.metrics.detector;
        loop {
            let wake = index.next_timer().map(|at| until(at, (self.cfg.clock)()));
            let first = tokio::select! {
                item = input.next() => match item {
                    Some(item) => Some(item),
                    None => break,
                },
                Some(done) = created_rx.recv() => {
                    self.created(&mut index, done);
                    None
                }
                Ok(()) = leadership.changed() => None,
                () = sleep_for(wake) => None,
            };
            let started = Instant::now();
            let now = (self.cfg.clock)();
            // Apply what is already buffered too, then decide once per batch.
            let mut next = first;
            let mut applied = 0;
            while let Some(item) = next {
                if item.change.is_relist() {
                    listed.insert(item.stream);
                }
                apply(&mut index, &scopes[item.stream], item.change, now);
                applied += 1;
                next = input.next().now_or_never().flatten();
            }
            profile.events.inc_by(applied);
            profile
                .apply_seconds
                .inc_by(started.elapsed().as_secs_f64());
            if listed.len() < scopes.len() {
                continue;
            }
            if let Some(f) = on_synced.take() {
                info!("detector caches synced");
                f();
            }
            // A new leader looks at everything again: a follower decided
            // without acting.
            let term = self.cfg.leadership.term();
            if self.cfg.leadership.is_leader() && leading_term != Some(term) {
                leading_term = Some(term);
                index.became_leader();
            }
            let evaluating = Instant::now();
            for w in index.take_dirty(now) {
                let leading = self.cfg.leadership.is_leader();
                profile.evaluations.inc();
                let lookup = |ns: &str| {
                    profile.lookups.inc();
                    (self.lookup)(ns)
                };
                let verdict = index.evaluate(w.clone(), lookup, leading, now);
                self.write(&mut index, &w, verdict.write, now, &created_tx)
                    .await;
                for r in verdict.reconcile {
                    let _ = self.reconcile.send(r);
                }
            }
            profile
                .evaluate_seconds
                .inc_by(evaluating.elapsed().as_secs_f64());
            profile.batches.inc();
            profile
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
            if index.take_pods_relist() {
                pod_relists.send_modify(|n| *n += 1);
            }
            if index.take_runbooks_dirty() && self.cfg.leadership.is_leader() {
                for s in index.runbook_statuses(now) {
                    self.write_runbook_status(s).await;
                }
            }
        }
        info!("detector stopped");
    }

    /// Pods, Deployments, ReplicaSets (metadata), Runbooks, StatefulSets,
    /// DaemonSets, Jobs and CronJobs (lean projections) of each
    /// watched namespace (or all); Namespaces (metadata) cluster-wide; the
    /// operator namespace's Runbooks (they apply cluster-wide) when that
    /// namespace is not watched anyway.
    fn watches(&self) -> Watches {
        fn api<K>(client: &Client, scope: Option<&str>) -> Api<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        let scopes: Vec<Option<&str>> = if self.cfg.namespaces.is_empty() {
            vec![None]
        } else {
            self.cfg
                .namespaces
                .iter()
                .map(|n| Some(n.as_str()))
                .collect()
        };
        let client = &self.client;
        let mut w = Watches::default();
        for &scope in &scopes {
            w.add_pods(api::<PodLite>(client, scope));
            w.add(api::<Deployment>(client, scope), Change::Deployment);
            w.add(
                api::<PartialObjectMeta<ReplicaSet>>(client, scope),
                Change::ReplicaSet,
            );
            w.add(api::<Runbook>(client, scope), Change::Runbook);
            w.add(api::<StatefulSetLite>(client, scope), Change::StatefulSet);
            w.add(api::<DaemonSetLite>(client, scope), Change::DaemonSet);
            w.add(api::<JobLite>(client, scope), Change::Job);
            w.add(api::<CronJobLite>(client, scope), Change::CronJob);
        }
        let cluster_wide = scopes == [None];
        // A namespaced install cannot list Namespaces; its namespaces'
        // labels are not used.
        if cluster_wide {
            w.add(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                Change::Namespace,
            );
        }
        if let Some(ns) = &self.cfg.operator_namespace {
            if !cluster_wide && !scopes.contains(&Some(ns.as_str())) {
                w.add(
                    Api::<Runbook>::namespaced(client.clone(), ns),
                    Change::Runbook,
                );
            }
        }
        w
    }

    async fn write(
        &self,
        index: &mut Index,
        w: &WorkloadKey,
        write: Write,
        now: Timestamp,
        created: &tokio::sync::mpsc::UnboundedSender<CreateDone>,
    ) {
        match write {
            Write::Nothing => {}
            Write::Reopen(last) => {
                if let Err(e) = self.clear_resolution(&last).await {
                    warn!(error = %e, "cannot reopen incident");
                    self.metrics.reconcile_error("Reopen");
                }
            }
            Write::Create { incident, summary } => {
                // Held back from now on: the next evaluation of `w` must not
                // create it again while this create is on its way.
                let name = incident.name_any();
                index.record_created(w, &name, now);
                let client = self.client.clone();
                let metrics = self.metrics.clone();
                let done = created.clone();
                let workload = w.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = create(client, &incident, &summary).await;
                    metrics
                        .detector
                        .create_duration
                        .observe(started.elapsed().as_secs_f64());
                    let _ = done.send(CreateDone {
                        workload,
                        name,
                        result,
                    });
                });
            }
        }
    }

    /// A background create ended: a failed one may be tried again.
    fn created(&self, index: &mut Index, done: CreateDone) {
        if let Err(e) = done.result {
            warn!(error = %e, "cannot open incident");
            self.metrics.reconcile_error("Create");
            index.forget_created(&done.workload, &done.name);
        }
    }

    /// Reopening needs `spec.resolution` gone (the lifecycle re-resolves
    /// while it stands): remove exactly the value we saw.
    async fn clear_resolution(&self, inc: &Incident) -> Result<(), DetectorError> {
        let Some(res) = &inc.spec.resolution else {
            return Ok(());
        };
        let api: Api<Incident> =
            Api::namespaced(self.client.clone(), &inc.namespace().unwrap_or_default());
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/spec/resolution", "value": res},
            {"op": "remove", "path": "/spec/resolution"}
        ]))
        .map_err(|e| DetectorError::Reopen {
            name: inc.name_any(),
            source: kube::Error::SerdeError(e),
        })?;
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match api
            .patch(&inc.name_any(), &pp, &Patch::<()>::Json(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 404 => Ok(()),
            Err(source) => Err(DetectorError::Reopen {
                name: inc.name_any(),
                source,
            }),
        }
    }

    async fn write_runbook_status(&self, w: RunbookStatusWrite) {
        let api: Api<Runbook> = Api::namespaced(self.client.clone(), &w.namespace);
        let patch = json!({
            "apiVersion": Runbook::api_version(&()),
            "kind": Runbook::kind(&()),
            "status": w.status,
        });
        if let Err(source) = api
            .patch_status(
                &w.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            let e = DetectorError::RunbookStatus {
                name: format!("{}/{}", w.namespace, w.name),
                source,
            };
            warn!(error = %e, "runbook status");
            self.metrics.reconcile_error("RunbookStatus");
        }
    }
}

/// Create a detector-opened Incident; one that exists already counts as created.
async fn create(client: Client, inc: &Incident, summary: &str) -> Result<(), DetectorError> {
    let ns = inc.namespace().unwrap_or_default();
    let name = inc.name_any();
    let api: Api<Incident> = Api::namespaced(client, &ns);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.create(&pp, inc).await {
        Ok(_) => {
            info!(incident = %name, namespace = %ns, "opened incident: {summary}");
            Ok(())
        }
        // Another replica, a restarted us, or a retry got there first.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            debug!(incident = %name, "incident already exists");
            Ok(())
        }
        Err(source) => Err(DetectorError::Create { name, source }),
    }
}

impl Change {
    /// Whether this is the end of a (re)list.
    fn is_relist(&self) -> bool {
        fn relist<K>(d: &Delta<K>) -> bool {
            matches!(d, Delta::Relisted(_))
        }
        match self {
            Change::Pod(d) => relist(d),
            Change::Deployment(d) => relist(d),
            Change::ReplicaSet(d) => relist(d),
            Change::Namespace(d) => relist(d),
            Change::Runbook(d) => relist(d),
            Change::StatefulSet(d) => relist(d),
            Change::DaemonSet(d) => relist(d),
            Change::Job(d) => relist(d),
            Change::CronJob(d) => relist(d),
        }
    }
}

/// One watch delta into the index. `scope`: what the delta's watch lists.
fn apply(index: &mut Index, scope: &Scope, change: Change, now: Timestamp) {
    match change {
        Change::Pod(Delta::Apply(p)) => index.apply_pod(&p, now),
        Change::Pod(Delta::Delete(p)) => {
            let (ns, name) = key_of(&p);
            index.delete_pod(&ns, &name);
        }
        Change::Pod(Delta::Relisted(keys)) => index.reset_pods(scope, &keys),
        Change::Deployment(Delta::Apply(d)) => index.apply_deployment(&d),
        Change::Deployment(Delta::Delete(d)) => {
            let (ns, name) = key_of(&d);
            index.delete_deployment(&ns, &name);
        }
        Change::Deployment(Delta::Relisted(keys)) => index.reset_deployments(scope, &keys),
        Change::ReplicaSet(Delta::Apply(rs)) => index.apply_replica_set(&rs.metadata),
        Change::ReplicaSet(Delta::Delete(rs)) => {
            let (ns, name) = key_of(&rs);
            index.delete_replica_set(&ns, &name);
        }
        Change::ReplicaSet(Delta::Relisted(keys)) => index.reset_replica_sets(scope, &keys),
        Change::Namespace(Delta::Apply(ns)) => index.apply_namespace(&ns.metadata),
        Change::Namespace(Delta::Delete(ns)) => index.delete_namespace(&ns.name_any()),
        Change::Namespace(Delta::Relisted(keys)) => index.reset_namespaces(&keys),
        Change::Runbook(Delta::Apply(rb)) => index.apply_runbook(rb),
        Change::Runbook(Delta::Delete(rb)) => {
            let (ns, name) = key_of(&rb);
            index.delete_runbook(&ns, &name);
        }
        Change::Runbook(Delta::Relisted(keys)) => index.reset_runbooks(scope, &keys),
        Change::StatefulSet(Delta::Apply(o)) => index.apply_statefulset(&o),
        Change::StatefulSet(Delta::Delete(o)) => {
            let (ns, name) = key_of(&o);
            index.delete_statefulset(&ns, &name);
        }
        Change::StatefulSet(Delta::Relisted(keys)) => index.reset_statefulsets(scope, &keys),
        Change::DaemonSet(Delta::Apply(o)) => index.apply_daemonset(&o),
        Change::DaemonSet(Delta::Delete(o)) => {
            let (ns, name) = key_of(&o);
            index.delete_daemonset(&ns, &name);
        }
        Change::DaemonSet(Delta::Relisted(keys)) => index.reset_daemonsets(scope, &keys),
        Change::Job(Delta::Apply(o)) => index.apply_job(&o),
        Change::Job(Delta::Delete(o)) => {
            let (ns, name) = key_of(&o);
            index.delete_job(&ns, &name);
        }
        Change::Job(Delta::Relisted(keys)) => index.reset_jobs(scope, &keys),
        Change::CronJob(Delta::Apply(o)) => index.apply_cronjob(&o),
        Change::CronJob(Delta::Delete(o)) => {
            let (ns, name) = key_of(&o);
            index.delete_cronjob(&ns, &name);
        }
        Change::CronJob(Delta::Relisted(keys)) => index.reset_cronjobs(scope, &keys),
    }
}

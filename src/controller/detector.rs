//! The detector: watches Pods, Deployments, ReplicaSets, Namespaces and
//! Runbooks, keeps compact projections (never whole Pods), assesses each
//! changed workload with the pure detection core, opens Incidents with
//! deterministic names (exactly once, whatever races), reopens recurring
//! ones, feeds observations to the Incident controller, and writes Runbook
//! status (`Ready`, `matchedWorkloads`, `lastTriggeredAt`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::Clock;
use crate::api::{
    Incident, IncidentSource, IncidentSpec, LocalObjectReference, Runbook, RunbookStatus,
    TargetKind, TargetRef, FIELD_MANAGER, FINGERPRINT_LABEL, IGNORE_LABEL,
};
use crate::core::conditions::set_condition;
use crate::core::detection::{self, attribute, Assessment, DetectionPolicy, RestartLedger};
use crate::core::lifecycle::truncate_to_seconds;
use crate::core::selector;
use crate::core::validation::{summarize, validate_runbook};
use crate::core::workload::{DeploymentView, PodLite, PodView, WorkloadKey};
use crate::metrics::Metrics;

/// Label on detector-opened Incidents: the episode number of the workload.
pub const EPISODE_LABEL: &str = "kubeincident.io/episode";

/// What the detector currently knows of a workload, shared with the
/// Incident controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub assessment: Assessment,
    /// The trouble recurred after the latest Incident was resolved, within
    /// the reopen window.
    pub recurrence: Option<Timestamp>,
}

/// Shared detections, keyed by workload.
#[derive(Debug, Default)]
pub struct Detections {
    inner: RwLock<HashMap<WorkloadKey, Arc<Detection>>>,
}

impl Detections {
    pub fn get(&self, key: &WorkloadKey) -> Option<Arc<Detection>> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn set(&self, key: WorkloadKey, d: Option<Detection>) -> bool {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match d {
            Some(d) => {
                let changed = map.get(&key).is_none_or(|old| **old != d);
                map.insert(key, Arc::new(d));
                changed
            }
            None => map.remove(&key).is_some(),
        }
    }
}

/// The workload an Incident targets.
pub fn workload_of(inc: &Incident) -> Option<WorkloadKey> {
    let t = inc.spec.target.as_ref()?;
    Some(WorkloadKey {
        namespace: inc.namespace()?,
        kind: t.kind.as_str().to_string(),
        name: t.name.clone(),
    })
}

/// The Incidents of a namespace (from the Incident controller's caches).
pub type IncidentLookup = Arc<dyn Fn(&str) -> Vec<Arc<Incident>> + Send + Sync>;

/// Detector settings.
#[derive(Clone)]
pub struct DetectorConfig {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// The operator's own namespace (where cluster-wide Runbooks live).
    pub operator_namespace: Option<String>,
    /// Apply the built-in policy to workloads no Runbook covers.
    pub builtin_policy: bool,
    pub clock: Clock,
    /// Only the leader opens incidents and writes Runbook status.
    pub leadership: crate::leader::Leadership,
}

/// Errors of the detector's writes (logged, counted, retried on the next event).
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("creating incident {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reopening incident {name}: {source}")]
    Reopen {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of runbook {name}: {source}")]
    RunbookStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
}

// Events are moved into the state at once; boxing every Pod event would
// only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Input {
    Pod(usize, Result<Event<PodLite>, watcher::Error>),
    Deploy(usize, Result<Event<Deployment>, watcher::Error>),
    Rs(
        usize,
        Result<Event<PartialObjectMeta<ReplicaSet>>, watcher::Error>,
    ),
    Ns(
        usize,
        Result<Event<PartialObjectMeta<Namespace>>, watcher::Error>,
    ),
    Runbook(usize, Result<Event<Runbook>, watcher::Error>),
    Tick,
}

type Key = (String, String);

/// How long a created Incident the cache does not show yet holds back
/// another create of the same name. Only an optimisation (the API server's
/// `AlreadyExists` makes creation exactly-once): it must not outlive the
/// Incident, or a deleted Incident would never be opened again.
const IN_FLIGHT: Duration = Duration::from_secs(10);

/// Incidents this process created that the Incident cache has not shown
/// yet, by fingerprint: (name, when created). An entry goes as soon as the
/// cache shows that name (from then on the cache decides), or after
/// [`IN_FLIGHT`]. So when the Incident is deleted (or its namespace is
/// deleted and re-created), the next detection creates it again.
#[derive(Debug, Default)]
struct InFlight(HashMap<String, (String, Timestamp)>);

impl InFlight {
    /// Forget the entry of `fp` once the cache shows it (or it is old).
    fn settle<'a>(&mut self, fp: &str, cached: impl IntoIterator<Item = &'a str>, now: Timestamp) {
        let Some((name, at)) = self.0.get(fp) else {
            return;
        };
        let expired = at.checked_add(IN_FLIGHT).is_ok_and(|end| now >= end);
        if expired || cached.into_iter().any(|n| n == name) {
            self.0.remove(fp);
        }
    }

    /// Whether `name` was created moments ago and is not in the cache yet.
    fn pending(&self, fp: &str, name: &str) -> bool {
        self.0.get(fp).is_some_and(|(n, _)| n == name)
    }

    fn record(&mut self, fp: &str, name: &str, now: Timestamp) {
        self.0.insert(fp.to_string(), (name.to_string(), now));
    }
}

fn key_of<K: Resource>(o: &K) -> Key {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

/// In-memory state of the detector.
#[derive(Default)]
struct State {
    pods: HashMap<Key, (PodView, Arc<WorkloadKey>)>,
    workload_pods: HashMap<Arc<WorkloadKey>, BTreeSet<String>>,
    /// Pods whose ReplicaSet's owner is not known yet, by ReplicaSet.
    unattributed: HashMap<Key, BTreeSet<String>>,
    deployments: HashMap<Key, DeploymentView>,
    rs_owner: HashMap<Key, String>,
    ns_labels: HashMap<String, BTreeMap<String, String>>,
    runbooks: HashMap<Key, Runbook>,
    /// Runbooks whose spec passed validation (checked once per change).
    valid_runbooks: HashSet<Key>,
    ledger: RestartLedger,
    dirty: HashSet<WorkloadKey>,
    runbooks_dirty: bool,
    timers: BTreeSet<(Timestamp, WorkloadKey)>,
    /// Per stream: keys seen since its last Init (relist), to drop vanished objects.
    relisting: HashMap<(u8, usize), HashSet<Key>>,
    pending_inits: usize,
    /// Incidents this process created, until the cache shows them.
    created: InFlight,
    /// The namespace each watch stream covers (`None`: all), by stream
    /// index; [`OPERATOR_STREAM`] is the operator namespace's Runbooks.
    scopes: Vec<Option<String>>,
    operator_namespace: Option<String>,
    last_triggered: HashMap<Key, Timestamp>,
}

/// Stream index of the watch on the operator namespace's Runbooks.
const OPERATOR_STREAM: usize = usize::MAX;

impl State {
    /// Whether stream `i` lists objects of namespace `ns`: a relist of one
    /// namespace says nothing about the objects of another.
    fn covers(&self, i: usize, ns: &str) -> bool {
        if i == OPERATOR_STREAM {
            return self.operator_namespace.as_deref() == Some(ns);
        }
        match self.scopes.get(i) {
            Some(Some(scope)) => scope == ns,
            Some(None) | None => true,
        }
    }

    /// Keys of `map` that stream `i` covers but did not list.
    fn vanished<V>(&self, i: usize, map: &HashMap<Key, V>, seen: &HashSet<Key>) -> Vec<Key> {
        map.keys()
            .filter(|k| self.covers(i, &k.0) && !seen.contains(*k))
            .cloned()
            .collect()
    }

    fn rs_deployment(&self, ns: &str, rs: &str) -> Option<String> {
        self.rs_owner
            .get(&(ns.to_string(), rs.to_string()))
            .cloned()
    }

    /// The shared key of a workload (one allocation per workload, not per pod).
    fn intern(&mut self, w: WorkloadKey) -> Arc<WorkloadKey> {
        match self.workload_pods.get_key_value(&w) {
            Some((k, _)) => k.clone(),
            None => Arc::new(w),
        }
    }

    fn upsert_pod(&mut self, pod: &PodLite, now: Timestamp) {
        let view = PodView::from(pod);
        let k = key_of(pod);
        let workload = attribute(&view, |ns, rs| self.rs_deployment(ns, rs));
        let workload = self.intern(workload);
        if workload.kind == "ReplicaSet" {
            if let Some(o) = &view.owner {
                self.unattributed
                    .entry((k.0.clone(), o.name.clone()))
                    .or_default()
                    .insert(k.1.clone());
            }
        }
        let previous = self.pods.remove(&k);
        self.ledger
            .observe(&workload, previous.as_ref().map(|(v, _)| v), &view, now);
        if let Some((_, old)) = &previous {
            if *old != workload {
                let old = old.clone();
                self.unlink(&old, &k.1);
            }
        }
        self.workload_pods
            .entry(workload.clone())
            .or_default()
            .insert(k.1.clone());
        self.dirty.insert((*workload).clone());
        self.pods.insert(k, (view, workload));
    }

    fn unlink(&mut self, w: &WorkloadKey, pod: &str) {
        if let Some(set) = self.workload_pods.get_mut(w) {
            set.remove(pod);
            if set.is_empty() {
                self.workload_pods.remove(w);
            }
        }
        self.dirty.insert(w.clone());
    }

    fn remove_pod(&mut self, k: &Key) {
        if let Some((view, w)) = self.pods.remove(k) {
            self.unlink(&w, &k.1);
            self.ledger.forget_pod(&k.0, &k.1);
            if let Some(o) = view.owner.filter(|o| o.kind == "ReplicaSet") {
                let rs = (k.0.clone(), o.name);
                if let Some(set) = self.unattributed.get_mut(&rs) {
                    set.remove(&k.1);
                    if set.is_empty() {
                        self.unattributed.remove(&rs);
                    }
                }
            }
        }
    }

    /// A ReplicaSet's owner became known: attribute its waiting pods.
    fn reattribute_rs(&mut self, rs: &Key) {
        let Some(pods) = self.unattributed.remove(rs) else {
            return;
        };
        for p in pods {
            let k = (rs.0.clone(), p);
            if let Some((view, old)) = self.pods.get(&k).cloned() {
                let new = attribute(&view, |ns, r| self.rs_deployment(ns, r));
                let new = self.intern(new);
                if new != old {
                    self.unlink(&old, &k.1);
                    self.workload_pods
                        .entry(new.clone())
                        .or_default()
                        .insert(k.1.clone());
                    self.dirty.insert((*new).clone());
                    self.pods.insert(k, (view, new));
                }
            }
        }
    }

    /// Every known workload must be looked at again (e.g. this instance just
    /// became the leader and may owe an action its predecessor did not take).
    fn mark_all_dirty(&mut self) {
        let pods: Vec<WorkloadKey> = self.workload_pods.keys().map(|w| (**w).clone()).collect();
        let deployments: Vec<WorkloadKey> =
            self.deployments.values().map(DeploymentView::key).collect();
        self.dirty.extend(pods);
        self.dirty.extend(deployments);
    }

    fn mark_namespace_dirty(&mut self, ns: &str) {
        let keys: Vec<WorkloadKey> = self
            .workload_pods
            .keys()
            .filter(|w| w.namespace == ns)
            .map(|w| (**w).clone())
            .chain(
                self.deployments
                    .values()
                    .filter(|d| d.namespace == ns)
                    .map(DeploymentView::key),
            )
            .collect();
        self.dirty.extend(keys);
    }

    fn ignored(&self, w: &WorkloadKey) -> bool {
        let flagged = |labels: Option<&BTreeMap<String, String>>| {
            labels.is_some_and(|l| l.get(IGNORE_LABEL).is_some_and(|v| v == "true"))
        };
        if flagged(self.ns_labels.get(&w.namespace)) {
            return true;
        }
        match w.kind.as_str() {
            "Deployment" => flagged(
                self.deployments
                    .get(&(w.namespace.clone(), w.name.clone()))
                    .map(|d| &d.labels),
            ),
            "Pod" => flagged(
                self.pods
                    .get(&(w.namespace.clone(), w.name.clone()))
                    .map(|(p, _)| &p.labels),
            ),
            _ => false,
        }
    }

    fn workload_labels(&self, w: &WorkloadKey) -> BTreeMap<String, String> {
        match w.kind.as_str() {
            "Deployment" => self
                .deployments
                .get(&(w.namespace.clone(), w.name.clone()))
                .map(|d| d.labels.clone())
                .unwrap_or_default(),
            _ => self
                .pods
                .get(&(w.namespace.clone(), w.name.clone()))
                .map(|(p, _)| p.labels.clone())
                .unwrap_or_default(),
        }
    }

    fn runbook_for(&self, w: &WorkloadKey, operator_ns: Option<&str>) -> Option<&Runbook> {
        let ns_labels = self
            .ns_labels
            .get(&w.namespace)
            .cloned()
            .unwrap_or_default();
        let valid = self
            .runbooks
            .iter()
            .filter(|(k, _)| self.valid_runbooks.contains(*k))
            .map(|(_, rb)| rb);
        selector::runbook_for(
            valid,
            &w.namespace,
            &ns_labels,
            &self.workload_labels(w),
            operator_ns,
        )
    }
}

/// Run the detector until `shutdown` resolves.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: Client,
    cfg: DetectorConfig,
    detections: Arc<Detections>,
    lookup: IncidentLookup,
    reconcile: broadcast::Sender<ObjectRef<Incident>>,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_synced: impl FnOnce() + Send + 'static,
) {
    let scopes: Vec<Option<String>> = if cfg.namespaces.is_empty() {
        vec![None]
    } else {
        cfg.namespaces.iter().cloned().map(Some).collect()
    };
    let wc = || watcher::Config::default().any_semantic();
    let mut streams: Vec<BoxStream<'static, Input>> = Vec::new();
    for (i, scope) in scopes.iter().enumerate() {
        fn api<K>(client: &Client, scope: &Option<String>) -> Api<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            }
        }
        streams.push(
            watcher::watcher(api::<PodLite>(&client, scope), wc())
                .map(move |e| Input::Pod(i, e))
                .boxed(),
        );
        streams.push(
            watcher::watcher(api::<Deployment>(&client, scope), wc())
                .map(move |e| Input::Deploy(i, e))
                .boxed(),
        );
        streams.push(
            watcher::watcher(api::<PartialObjectMeta<ReplicaSet>>(&client, scope), wc())
                .map(move |e| Input::Rs(i, e))
                .boxed(),
        );
        streams.push(
            watcher::watcher(api::<Runbook>(&client, scope), wc())
                .map(move |e| Input::Runbook(i, e))
                .boxed(),
        );
    }
    let mut inits = scopes.len() * 4;
    // Cluster-wide mode also watches Namespaces (ignore label, namespaceSelector).
    // A namespaced install cannot list Namespaces; its namespaces' labels are not used.
    if scopes == [None] {
        streams.push(
            watcher::watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                wc(),
            )
            .map(|e| Input::Ns(0, e))
            .boxed(),
        );
        inits += 1;
    }
    let mut ctx_operator_namespace = None;
    if let Some(ns) = &cfg.operator_namespace {
        // Runbooks of the operator's namespace apply cluster-wide (namespaceSelector).
        if !scopes.contains(&Some(ns.clone())) && scopes != [None] {
            streams.push(
                watcher::watcher(Api::<Runbook>::namespaced(client.clone(), ns), wc())
                    .map(move |e| Input::Runbook(OPERATOR_STREAM, e))
                    .boxed(),
            );
            inits += 1;
            ctx_operator_namespace = Some(ns.clone());
        }
    }
    let ticks = stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((Input::Tick, ()))
    })
    .boxed();
    streams.push(ticks);
    let mut input = stream::select_all(streams).take_until(Box::pin(shutdown));

    let mut st = State {
        pending_inits: inits,
        scopes: scopes.clone(),
        operator_namespace: ctx_operator_namespace,
        ..Default::default()
    };
    let mut on_synced = Some(on_synced);
    let mut was_leader = false;
    let ctx = Ctx {
        client,
        cfg,
        detections,
        lookup,
        reconcile,
        metrics,
    };
    while let Some(first) = input.next().await {
        let now = (ctx.cfg.clock)();
        apply(&mut st, first, now);
        // Drain what is already buffered, then decide once per batch.
        while let Some(Some(more)) = input.now_or_never_opt() {
            apply(&mut st, more, now);
        }
        if st.pending_inits > 0 {
            continue;
        }
        if let Some(f) = on_synced.take() {
            info!("detector caches synced");
            f();
        }
        // A new leader looks at everything again: a follower decided
        // without acting.
        let leading = ctx.cfg.leadership.is_leader();
        if std::mem::replace(&mut was_leader, leading) != leading && leading {
            st.mark_all_dirty();
        }
        // Timers that came due.
        while let Some((at, w)) = st.timers.first().cloned() {
            if at > now {
                break;
            }
            st.timers.pop_first();
            st.dirty.insert(w);
        }
        let dirty: Vec<WorkloadKey> = st.dirty.drain().collect();
        for w in dirty {
            ctx.evaluate(&mut st, w, now).await;
        }
        if std::mem::take(&mut st.runbooks_dirty) {
            ctx.write_runbook_statuses(&st).await;
        }
    }
    info!("detector stopped");
}

trait NowOrNever: StreamExt + Unpin {
    /// The next item if one is ready now, without waiting.
    fn now_or_never_opt(&mut self) -> Option<Option<Self::Item>> {
        futures::FutureExt::now_or_never(self.next())
    }
}
impl<S: StreamExt + Unpin> NowOrNever for S {}

/// Apply one watch event to the state.
fn apply(st: &mut State, input: Input, now: Timestamp) {
    fn relist<K: Resource>(st: &mut State, id: (u8, usize), ev: &Event<K>) -> Option<HashSet<Key>> {
        match ev {
            Event::Init => {
                st.relisting.insert(id, HashSet::new());
                None
            }
            Event::InitApply(o) => {
                st.relisting.entry(id).or_default().insert(key_of(o));
                None
            }
            Event::InitDone => {
                if st.pending_inits > 0 && !st.relisting.contains_key(&(id.0 | 0x80, id.1)) {
                    st.pending_inits -= 1;
                    st.relisting.insert((id.0 | 0x80, id.1), HashSet::new());
                }
                st.relisting.remove(&id)
            }
            _ => None,
        }
    }
    match input {
        Input::Tick => {}
        Input::Pod(i, Ok(ev)) => {
            let done = relist(st, (0, i), &ev);
            match ev {
                Event::Apply(p) | Event::InitApply(p) => st.upsert_pod(&p, now),
                Event::Delete(p) => st.remove_pod(&key_of(&p)),
                Event::InitDone => {
                    if let Some(seen) = done {
                        let gone = st.vanished(i, &st.pods, &seen);
                        gone.iter().for_each(|k| st.remove_pod(k));
                    }
                }
                Event::Init => {}
            }
        }
        Input::Deploy(i, Ok(ev)) => {
            let done = relist(st, (1, i), &ev);
            let dirty = |d: &Deployment| {
                WorkloadKey::deployment(d.namespace().unwrap_or_default(), d.name_any())
            };
            match ev {
                Event::Apply(d) | Event::InitApply(d) => {
                    st.dirty.insert(dirty(&d));
                    let view = DeploymentView::from(&d);
                    // Matches only change with labels (or existence).
                    let relabelled = st
                        .deployments
                        .get(&key_of(&d))
                        .is_none_or(|old| old.labels != view.labels);
                    st.runbooks_dirty |= relabelled;
                    st.deployments.insert(key_of(&d), view);
                }
                Event::Delete(d) => {
                    st.dirty.insert(dirty(&d));
                    st.deployments.remove(&key_of(&d));
                    st.runbooks_dirty = true;
                }
                Event::InitDone => {
                    if let Some(seen) = done {
                        let gone = st.vanished(i, &st.deployments, &seen);
                        for k in gone {
                            st.deployments.remove(&k);
                            st.dirty.insert(WorkloadKey::deployment(k.0, k.1));
                        }
                    }
                }
                Event::Init => {}
            }
        }
        Input::Rs(i, Ok(ev)) => {
            let done = relist(st, (2, i), &ev);
            match ev {
                Event::Apply(rs) | Event::InitApply(rs) => {
                    let k = key_of(&rs);
                    let owner = rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.controller == Some(true) && o.kind == "Deployment")
                        .map(|o| o.name.clone());
                    let changed = match owner {
                        Some(d) => st.rs_owner.insert(k.clone(), d.clone()) != Some(d),
                        None => st.rs_owner.remove(&k).is_some(),
                    };
                    if changed {
                        st.reattribute_rs(&k);
                    }
                }
                Event::Delete(rs) => {
                    st.rs_owner.remove(&key_of(&rs));
                }
                Event::InitDone => {
                    if let Some(seen) = done {
                        for k in st.vanished(i, &st.rs_owner, &seen) {
                            st.rs_owner.remove(&k);
                        }
                    }
                }
                Event::Init => {}
            }
        }
        Input::Ns(i, Ok(ev)) => {
            let done = relist(st, (3, i), &ev);
            match ev {
                Event::Apply(ns) | Event::InitApply(ns) => {
                    let name = ns.name_any();
                    let labels: BTreeMap<String, String> =
                        ns.metadata.labels.clone().unwrap_or_default();
                    if st.ns_labels.get(&name) != Some(&labels) {
                        st.ns_labels.insert(name.clone(), labels);
                        st.mark_namespace_dirty(&name);
                        st.runbooks_dirty = true;
                    }
                }
                Event::Delete(ns) => {
                    st.ns_labels.remove(&ns.name_any());
                }
                Event::InitDone => {
                    if let Some(seen) = done {
                        st.ns_labels
                            .retain(|n, _| seen.iter().any(|(_, name)| name == n));
                    }
                }
                Event::Init => {}
            }
        }
        Input::Runbook(i, Ok(ev)) => {
            let done = relist(st, (4, i), &ev);
            match ev {
                Event::Apply(rb) | Event::InitApply(rb) => {
                    let k = key_of(&rb);
                    let changed = st.runbooks.get(&k).is_none_or(|old| {
                        old.spec != rb.spec || old.metadata.generation != rb.metadata.generation
                    });
                    if changed {
                        if validate_runbook(&rb.spec).is_empty() {
                            st.valid_runbooks.insert(k.clone());
                        } else {
                            st.valid_runbooks.remove(&k);
                        }
                        st.runbooks.insert(k, rb);
                        st.runbooks_dirty = true;
                        let all: Vec<WorkloadKey> =
                            st.workload_pods.keys().map(|w| (**w).clone()).collect();
                        st.dirty.extend(all);
                        let deps: Vec<WorkloadKey> =
                            st.deployments.values().map(DeploymentView::key).collect();
                        st.dirty.extend(deps);
                    } else {
                        st.runbooks.insert(k, rb);
                    }
                }
                Event::Delete(rb) => {
                    st.runbooks.remove(&key_of(&rb));
                    st.valid_runbooks.remove(&key_of(&rb));
                    let all: Vec<WorkloadKey> =
                        st.workload_pods.keys().map(|w| (**w).clone()).collect();
                    st.dirty.extend(all);
                }
                Event::InitDone => {
                    if let Some(seen) = done {
                        for k in st.vanished(i, &st.runbooks, &seen) {
                            st.runbooks.remove(&k);
                            st.valid_runbooks.remove(&k);
                            st.runbooks_dirty = true;
                        }
                    }
                }
                Event::Init => {}
            }
        }
        Input::Pod(_, Err(e))
        | Input::Deploy(_, Err(e))
        | Input::Rs(_, Err(e))
        | Input::Ns(_, Err(e))
        | Input::Runbook(_, Err(e)) => {
            // The watcher retries with backoff; a 410 leads to a relist.
            warn!(error = %e, "watch error");
        }
    }
}

struct Ctx {
    client: Client,
    cfg: DetectorConfig,
    detections: Arc<Detections>,
    lookup: IncidentLookup,
    reconcile: broadcast::Sender<ObjectRef<Incident>>,
    metrics: Arc<Metrics>,
}

fn episode(inc: &Incident) -> u32 {
    inc.labels()
        .get(EPISODE_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Ctx {
    async fn evaluate(&self, st: &mut State, w: WorkloadKey, now: Timestamp) {
        if !matches!(w.kind.as_str(), "Deployment" | "Pod") || st.ignored(&w) {
            self.forget(&w);
            return;
        }
        let deployment = if w.kind == "Deployment" {
            match st.deployments.get(&(w.namespace.clone(), w.name.clone())) {
                Some(d) => Some(d.clone()),
                None => {
                    // Deleted (or not yet seen): nothing to judge.
                    self.forget(&w);
                    return;
                }
            }
        } else {
            None
        };
        let runbook = st
            .runbook_for(&w, self.cfg.operator_namespace.as_deref())
            .cloned();
        let policy = match &runbook {
            Some(rb) => DetectionPolicy::from_runbook(rb),
            None if self.cfg.builtin_policy => DetectionPolicy::default(),
            None => {
                self.forget(&w);
                return;
            }
        };
        let names = st.workload_pods.get(&w).cloned().unwrap_or_default();
        let pods: Vec<&PodView> = names
            .iter()
            .filter_map(|n| {
                st.pods
                    .get(&(w.namespace.clone(), n.clone()))
                    .map(|(v, _)| v)
            })
            .collect();
        let assessment =
            detection::assess(&w, deployment.as_ref(), &pods, &policy, &mut st.ledger, now);
        if let Some(at) = assessment.wake_at() {
            st.timers.insert((at, w.clone()));
        }
        // A symptom older than the RestartStorm window may end by itself.
        if !assessment.symptoms.is_empty() {
            st.timers.insert((
                now.checked_add(Duration::from_secs(30)).unwrap_or(now),
                w.clone(),
            ));
        }

        let fp = w.fingerprint();
        let in_namespace = (self.lookup)(&w.namespace);
        // Every Incident about this workload (hand-declared ones too) is
        // told when the detection changes.
        let concerned: Vec<Arc<Incident>> = in_namespace
            .iter()
            .filter(|i| workload_of(i).as_ref() == Some(&w))
            .cloned()
            .collect();
        // The detector's own episodes, by fingerprint.
        let mut incidents: Vec<Arc<Incident>> = in_namespace
            .into_iter()
            .filter(|i| i.labels().get(FINGERPRINT_LABEL).map(String::as_str) == Some(fp.as_str()))
            .collect();
        incidents.sort_by_key(|i| episode(i));
        st.created.settle(
            &fp,
            incidents.iter().filter_map(|i| i.metadata.name.as_deref()),
            now,
        );
        let open = incidents
            .iter()
            .find(|i| i.status.as_ref().is_none_or(|s| s.resolved_at.is_none()))
            .cloned();
        let latest = incidents.last().cloned();
        // Decide first, publish the detection, then act: the Incident's
        // first reconcile must already see what the detector saw.
        enum Act {
            Nothing,
            Reopen(Arc<Incident>),
            Create(u32),
        }
        let mut act = Act::Nothing;
        let mut recurrence = None;
        if !assessment.symptoms.is_empty() {
            if let Some(rb) = &runbook {
                st.last_triggered.insert(key_of(rb), now);
                st.runbooks_dirty = true;
            }
            act = match (&open, &latest) {
                (Some(_), _) => Act::Nothing,
                (None, Some(last)) if within_reopen(last, policy.reopen_window, now) => {
                    recurrence = Some(truncate_to_seconds(now));
                    Act::Reopen(last.clone())
                }
                _ if policy.paused => {
                    debug!(workload = ?w, "runbook paused: no new incident");
                    Act::Nothing
                }
                _ => Act::Create(latest.as_ref().map_or(0, |l| episode(l)) + 1),
            };
        }
        let summary_assessment = assessment.clone();
        let detection = Detection {
            assessment,
            recurrence: recurrence.or_else(|| {
                self.detections
                    .get(&w)
                    .and_then(|d| d.recurrence)
                    .filter(|_| open.is_none())
            }),
        };
        let changed = self.detections.set(w.clone(), Some(detection));
        if !self.cfg.leadership.is_leader() {
            // Followers keep detections warm but never write.
            act = Act::Nothing;
        }
        match act {
            Act::Nothing => {}
            Act::Reopen(last) => {
                if let Err(e) = self.clear_resolution(&last).await {
                    warn!(error = %e, "cannot reopen incident");
                    self.metrics.reconcile_error("Reopen");
                }
            }
            Act::Create(n) => {
                let name = w.incident_name(n);
                if !st.created.pending(&fp, &name) {
                    match self
                        .create(&w, n, &name, &summary_assessment, &policy)
                        .await
                    {
                        Ok(()) => st.created.record(&fp, &name, now),
                        Err(e) => {
                            warn!(error = %e, "cannot open incident");
                            self.metrics.reconcile_error("Create");
                        }
                    }
                }
            }
        }
        if changed {
            for inc in concerned
                .iter()
                .filter(|i| i.status.as_ref().is_none_or(|s| s.resolved_at.is_none()))
                .chain(latest.iter())
            {
                let _ = self.reconcile.send(ObjectRef::from_obj(&**inc));
            }
        }
    }

    fn forget(&self, w: &WorkloadKey) {
        self.detections.set(w.clone(), None);
    }

    async fn create(
        &self,
        w: &WorkloadKey,
        n: u32,
        name: &str,
        a: &Assessment,
        policy: &DetectionPolicy,
    ) -> Result<(), DetectorError> {
        let severity = a.impact_severity.unwrap_or(policy.default_severity);
        let kind = if w.kind == "Pod" {
            TargetKind::Pod
        } else {
            TargetKind::Deployment
        };
        let title = a.title(&w.name);
        let mut inc = Incident::new(
            name,
            IncidentSpec {
                title,
                severity,
                source: IncidentSource::Detector,
                target: Some(TargetRef {
                    kind,
                    name: w.name.clone(),
                }),
                runbook_ref: policy
                    .runbook
                    .clone()
                    .map(|name| LocalObjectReference { name }),
                commander: None,
                acknowledged_by: None,
                root_cause: None,
                mitigations: policy.mitigations.clone(),
                resolution: None,
            },
        );
        inc.metadata.namespace = Some(w.namespace.clone());
        inc.metadata.labels = Some(BTreeMap::from([
            (FINGERPRINT_LABEL.to_string(), w.fingerprint()),
            (EPISODE_LABEL.to_string(), n.to_string()),
        ]));
        let api: Api<Incident> = Api::namespaced(self.client.clone(), &w.namespace);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match api.create(&pp, &inc).await {
            Ok(_) => {
                info!(incident = name, namespace = %w.namespace, "opened incident: {}", a.summary());
                Ok(())
            }
            // Another replica, a restarted us, or a retry got there first.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!(incident = name, "incident already exists");
                Ok(())
            }
            Err(source) => Err(DetectorError::Create {
                name: name.to_string(),
                source,
            }),
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
        match api
            .patch(
                &inc.name_any(),
                &PatchParams::default().fields_manager(),
                &Patch::<()>::Json(patch),
            )
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

    async fn write_runbook_statuses(&self, st: &State) {
        if !self.cfg.leadership.is_leader() {
            return;
        }
        // One pass over the Deployments: which Runbook governs each.
        let mut matched_by: HashMap<Key, usize> = HashMap::new();
        for d in st.deployments.values() {
            let w = d.key();
            if let Some(rb) = st.runbook_for(&w, self.cfg.operator_namespace.as_deref()) {
                *matched_by.entry(key_of(rb)).or_default() += 1;
            }
        }
        for ((ns, name), rb) in &st.runbooks {
            let errors = validate_runbook(&rb.spec);
            let matched = matched_by
                .get(&(ns.clone(), name.clone()))
                .copied()
                .unwrap_or(0);
            let old = rb.status.clone().unwrap_or_default();
            let mut status = RunbookStatus {
                observed_generation: rb.metadata.generation,
                matched_workloads: Some(i32::try_from(matched).unwrap_or(i32::MAX)),
                last_triggered_at: st
                    .last_triggered
                    .get(&(ns.clone(), name.clone()))
                    .map(|t| Time(truncate_to_seconds(*t)))
                    .or(old.last_triggered_at.clone()),
                conditions: old.conditions.clone(),
            };
            let now = truncate_to_seconds((self.cfg.clock)());
            if errors.is_empty() {
                let ignored = selector::ignored_namespace_selector(
                    rb,
                    self.cfg.operator_namespace.as_deref(),
                );
                let mut msg = if rb.spec.paused {
                    "valid; paused: opens no incidents".to_string()
                } else {
                    "valid".to_string()
                };
                let reason = match (&ignored, rb.spec.paused) {
                    (_, true) => "Paused",
                    (Some(_), false) => "NamespaceSelectorIgnored",
                    (None, false) => "Valid",
                };
                if let Some(why) = &ignored {
                    msg.push_str("; ");
                    msg.push_str(why);
                }
                set_condition(
                    &mut status.conditions,
                    "Ready",
                    "True",
                    reason,
                    msg,
                    rb.metadata.generation,
                    now,
                );
            } else {
                set_condition(
                    &mut status.conditions,
                    "Ready",
                    "False",
                    "InvalidSpec",
                    summarize(&errors),
                    rb.metadata.generation,
                    now,
                );
            }
            if status == old {
                continue;
            }
            let api: Api<Runbook> = Api::namespaced(self.client.clone(), ns);
            let patch = json!({
                "apiVersion": Runbook::api_version(&()),
                "kind": Runbook::kind(&()),
                "status": status,
            });
            if let Err(source) = api
                .patch_status(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                let e = DetectorError::RunbookStatus {
                    name: format!("{ns}/{name}"),
                    source,
                };
                warn!(error = %e, "runbook status");
                self.metrics.reconcile_error("RunbookStatus");
            }
        }
    }
}

fn within_reopen(inc: &Incident, window: Duration, now: Timestamp) -> bool {
    inc.status
        .as_ref()
        .and_then(|s| s.resolved_at.as_ref())
        .and_then(|r| r.0.checked_add(window).ok())
        .is_some_and(|end| now < end)
}

trait FieldsManager {
    fn fields_manager(self) -> Self;
}
impl FieldsManager for PatchParams {
    fn fields_manager(mut self) -> Self {
        self.field_manager = Some(FIELD_MANAGER.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + s).unwrap()
    }

    #[test]
    fn a_created_incident_is_forgotten_once_the_cache_shows_it() {
        let mut f = InFlight::default();
        f.record("fp", "web-1234abcd-1", at(0));
        // Not in the cache yet: no second create.
        f.settle("fp", [], at(1));
        assert!(f.pending("fp", "web-1234abcd-1"));
        // The cache shows it: from now on the cache decides.
        f.settle("fp", ["web-1234abcd-1"], at(2));
        assert!(!f.pending("fp", "web-1234abcd-1"));
        // Deleted (the cache no longer has it): the same name is created again.
        f.settle("fp", [], at(3));
        assert!(!f.pending("fp", "web-1234abcd-1"));
    }

    #[test]
    fn an_incident_deleted_before_the_cache_saw_it_is_not_blocked_forever() {
        let mut f = InFlight::default();
        f.record("fp", "web-1234abcd-1", at(0));
        f.record("other", "api-99999999-1", at(0));
        f.settle("fp", [], at(9));
        assert!(f.pending("fp", "web-1234abcd-1"));
        f.settle("fp", [], at(10));
        assert!(!f.pending("fp", "web-1234abcd-1"));
        // Entries are per workload.
        assert!(f.pending("other", "api-99999999-1"));
        assert!(!f.pending("other", "api-99999999-2"));
    }
}

#[cfg(test)]
mod relist_tests {
    use super::*;

    #[test]
    fn a_relist_of_one_namespace_keeps_the_objects_of_the_others() {
        let mut st = State {
            scopes: vec![Some("shop".into()), Some("bank".into())],
            operator_namespace: Some("ops".into()),
            ..Default::default()
        };
        let k = |ns: &str, n: &str| (ns.to_string(), n.to_string());
        let map: HashMap<Key, ()> = [k("shop", "a"), k("bank", "b"), k("ops", "c")]
            .into_iter()
            .map(|k| (k, ()))
            .collect();
        // The operator namespace's Runbook watch lists nothing: only its
        // own namespace's objects are gone.
        assert_eq!(
            st.vanished(OPERATOR_STREAM, &map, &HashSet::new()),
            vec![k("ops", "c")]
        );
        let seen: HashSet<Key> = [k("shop", "x")].into_iter().collect();
        assert_eq!(st.vanished(0, &map, &seen), vec![k("shop", "a")]);
        // One stream for all namespaces: everything it did not list is gone.
        st.scopes = vec![None];
        let mut all = st.vanished(0, &map, &seen);
        all.sort();
        assert_eq!(all, vec![k("bank", "b"), k("ops", "c"), k("shop", "a")]);
    }
}

//! The object store: one monotonic resourceVersion across all kinds, objects
//! kept once as serialized JSON (plus what selectors need), per-resource
//! watch history of shared events, and the write semantics of kube-apiserver
//! (optimistic concurrency, generation, status subresource isolation,
//! finalizers, ownerReference garbage collection, namespace deletion).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::crd;
use super::defaults;
use super::logs::PodLogs;
use super::managed;
use super::pagination::{self, Continue};
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{qualified, ApiError, Cause};
use super::validation;

/// `(group, plural)` of a resource.
pub type ResKey = (String, String);
/// `(namespace, name)` of an object (`""` namespace for cluster scoped).
pub type ObjKey = (String, String);

/// The store key of an object: cluster-scoped objects have an empty namespace.
fn object_key(namespaced: bool, ns: &str, name: &str) -> ObjKey {
    let ns = if namespaced { ns } else { "" };
    (ns.to_string(), name.to_string())
}

/// The manager recorded for writes done by the emulator's own controllers.
pub const INTERNAL_MANAGER: &str = "kube-controller-manager";

/// The current time as RFC 3339 with second precision (`metav1.Time`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// One stored object version. Shared (`Arc`) by the object map and events.
#[derive(Debug)]
pub struct Stored {
    /// The serialized object.
    pub json: Bytes,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Values of the resource's selectable fields, in `ResourceDef::selectable_fields` order.
    pub fields: Vec<String>,
    /// `metadata.resourceVersion`.
    pub rv: u64,
    /// `metadata.uid`.
    pub uid: String,
    /// uids of `metadata.ownerReferences`.
    pub owners: Vec<String>,
}

impl Stored {
    /// Parse the object.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// ADDED
    Added,
    /// MODIFIED
    Modified,
    /// DELETED
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, shared by every watcher.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Type.
    pub etype: EventType,
    /// The object key.
    pub key: ObjKey,
    /// The object after the change (for DELETED: the last state, with the deletion rv).
    pub obj: Arc<Stored>,
    /// The object before the change.
    pub prev: Option<Arc<Stored>>,
    /// The serialized `WatchEvent` line (`{"type":..,"object":..}\n`).
    pub line: Bytes,
}

/// Build a watch event line.
pub fn event_line(etype: &str, obj: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(obj.len() + 32);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(etype.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(obj);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

/// A successful mutating request, recorded for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRecord {
    /// When it happened.
    pub time: SystemTime,
    /// `create`, `update`, `patch`, `apply` or `delete`.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource, e.g. `deployments`.
    pub resource: String,
    /// `status`, `scale`, or `None`.
    pub subresource: Option<String>,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The field manager of the request (if any).
    pub field_manager: Option<String>,
    /// The resourceVersion after the write.
    pub resource_version: String,
    /// Done by the emulator itself (garbage collector, namespace and CRD controllers).
    pub internal: bool,
}

/// Context of a write request.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// `create`, `update`, `patch`, `apply`, `delete`.
    pub verb: &'static str,
    /// `status`, `scale` or `None`.
    pub subresource: Option<String>,
    /// The field manager (query parameter or derived from the User-Agent).
    pub field_manager: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `group/version` of the request.
    pub api_version: String,
}

/// Selection of objects for list and watch.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Restrict to a namespace.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether an object matches.
    pub fn matches(&self, def: &ResourceDef, key: &ObjKey, s: &Stored) -> bool {
        if let Some(ns) = &self.namespace {
            if &key.0 != ns {
                return false;
            }
        }
        self.labels.matches(&s.labels)
            && self.fields.matches(|f| match f {
                "metadata.name" => key.1.clone(),
                "metadata.namespace" => key.0.clone(),
                other => def
                    .selectable_fields
                    .iter()
                    .position(|x| x == other)
                    .and_then(|i| s.fields.get(i).cloned())
                    .unwrap_or_default(),
            })
    }
}

/// List options.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// Items in key order.
    pub items: Vec<Arc<Stored>>,
    /// List resourceVersion.
    pub rv: u64,
    /// Continue token when more items remain.
    pub continue_token: Option<String>,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete dependents in the background.
    Background,
    /// Delete dependents first (`foregroundDeletion` finalizer).
    Foreground,
    /// Remove owner references from dependents.
    Orphan,
}

/// Delete options.
#[derive(Debug, Clone)]
pub struct DeleteOpts {
    /// Propagation policy.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
}

impl Default for DeleteOpts {
    fn default() -> Self {
        DeleteOpts {
            propagation: Propagation::Background,
            precondition_uid: None,
            precondition_rv: None,
        }
    }
}

/// Result of a delete.
#[derive(Debug)]
pub struct DeleteOutcome {
    /// The object (last state, or with deletionTimestamp when finalizers remain).
    pub obj: Value,
    /// Whether the object is gone now.
    pub gone: bool,
}

/// Result of polling watch history.
#[derive(Debug)]
pub enum Poll {
    /// Events after the cursor and the new cursor.
    Events(Vec<Arc<Event>>, u64),
    /// The cursor left the history: `too old resource version: cursor (floor)`.
    Expired(u64),
    /// The resource is no longer served (CRD deleted).
    Gone,
}

struct Table {
    def: ResourceDef,
    objects: BTreeMap<ObjKey, Arc<Stored>>,
    history: VecDeque<Arc<Event>>,
    /// Every event with rv > floor is in `history`.
    floor: u64,
    /// Fault injection: the next resume (watch from a resourceVersion or
    /// list continue) gets 410 Expired.
    force_expire: bool,
}

struct Inner {
    rv: u64,
    tables: HashMap<ResKey, Table>,
    /// uid -> location.
    uids: HashMap<String, (ResKey, ObjKey)>,
    /// owner uid -> dependents.
    dependents: HashMap<String, HashSet<(ResKey, ObjKey)>>,
    write_log: Vec<WriteRecord>,
    history_cap: usize,
    logs: PodLogs,
}

/// The store. All operations are synchronous and short; watchers wait on
/// [`Store::subscribe`].
pub struct Store {
    inner: Mutex<Inner>,
    rv_tx: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn rk(def: &ResourceDef) -> ResKey {
    (def.group.clone(), def.plural.clone())
}

fn md(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

fn md_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    if !v.is_object() {
        *v = json!({});
    }
    let m = v
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut()
}

fn md_str(v: &Value, key: &str) -> String {
    md(v)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn finalizers(v: &Value) -> Vec<String> {
    md(v)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(v: &Value) -> bool {
    md(v).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|t| !t.is_null()))
}

fn make_stored(def: &ResourceDef, v: &Value, rv: u64) -> Stored {
    let labels = md(v)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let fields = def
        .selectable_fields
        .iter()
        .map(|f| def.field_value(v, f))
        .collect();
    let owners = md(v)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Stored {
        json: Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        labels,
        fields,
        rv,
        uid: md_str(v, "uid"),
        owners,
    }
}

/// Top-level fields outside `metadata` (and `status` when it is a
/// subresource) differ: the generation must be bumped.
fn spec_changed(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    let skip = |k: &str| {
        k == "metadata" || k == "apiVersion" || k == "kind" || (def.has_status && k == "status")
    };
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let keys: HashSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip(k))
        .any(|k| o.get(k) != n.get(k))
}

/// Whether an update bumps `metadata.generation` (the kind's strategy):
/// a spec change, or for Deployments also an annotation change. Setting a
/// pod's `spec.nodeName` is how the simulated scheduler binds (kube-apiserver
/// binds through `pods/binding`, which leaves the generation alone).
fn generation_changes(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    if def.annotations_bump_generation()
        && md(old).and_then(|m| m.get("annotations")) != md(new).and_then(|m| m.get("annotations"))
    {
        return true;
    }
    if def.builtin && def.group.is_empty() && def.kind == "Pod" {
        let unbound = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unbound && new.pointer("/spec/nodeName").is_some() {
            let mut bound = old.clone();
            if let (Some(spec), Some(node)) = (
                bound.get_mut("spec").and_then(Value::as_object_mut),
                new.pointer("/spec/nodeName"),
            ) {
                spec.insert("nodeName".into(), node.clone());
            }
            return spec_changed(def, &bound, new);
        }
    }
    spec_changed(def, old, new)
}

/// The etcd key of an object as kube-apiserver names it in storage errors.
fn storage_key(def: &ResourceDef, ns: &str, name: &str) -> String {
    let prefix = if def.builtin && def.group != "apiextensions.k8s.io" {
        def.plural.clone()
    } else {
        format!("{}/{}", def.group, def.plural)
    };
    if def.namespaced {
        format!("/registry/{prefix}/{ns}/{name}")
    } else {
        format!("/registry/{prefix}/{name}")
    }
}

fn namespace_key() -> ResKey {
    (String::new(), "namespaces".to_string())
}

fn crd_key() -> ResKey {
    (
        "apiextensions.k8s.io".to_string(),
        "customresourcedefinitions".to_string(),
    )
}

impl Store {
    /// A store serving the built-in resources, with the namespaces
    /// `default`, `kube-system`, `kube-public` (and `kube-node-lease`).
    pub fn new(history_cap: usize, logs: PodLogs) -> Self {
        let mut tables = HashMap::new();
        for def in resources::builtin() {
            tables.insert(
                rk(&def),
                Table {
                    def,
                    objects: BTreeMap::new(),
                    history: VecDeque::new(),
                    floor: 0,
                    force_expire: false,
                },
            );
        }
        let (rv_tx, _) = tokio::sync::watch::channel(0);
        let store = Store {
            inner: Mutex::new(Inner {
                rv: 0,
                tables,
                uids: HashMap::new(),
                dependents: HashMap::new(),
                write_log: Vec::new(),
                history_cap: history_cap.max(1),
                logs,
            }),
            rv_tx,
        };
        {
            let mut g = store.lock();
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                if let Err(e) = g.create(&namespace_key(), "", obj, &internal_ctx("create"), true) {
                    tracing::error!(error = %e, "creating namespace {ns}");
                }
            }
        }
        store.notify();
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        let rv = self.lock().rv;
        self.rv_tx.send_replace(rv);
    }

    /// A receiver woken on every change (value: current resourceVersion).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rv_tx.subscribe()
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The definition of a served resource.
    pub fn def(&self, group: &str, plural: &str) -> Option<ResourceDef> {
        self.lock()
            .tables
            .get(&(group.to_string(), plural.to_string()))
            .map(|t| t.def.clone())
    }

    /// All served resources.
    pub fn defs(&self) -> Vec<ResourceDef> {
        let mut v: Vec<ResourceDef> = self.lock().tables.values().map(|t| t.def.clone()).collect();
        v.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
        v
    }

    /// Get one object.
    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Arc<Stored>, ApiError> {
        let g = self.lock();
        g.tables
            .get(&rk(def))
            .and_then(|t| t.objects.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, name))
    }

    /// List objects.
    pub fn list(
        &self,
        def: &ResourceDef,
        filter: &Filter,
        opts: &ListOpts,
    ) -> Result<ListPage, ApiError> {
        let mut g = self.lock();
        let has_token = opts
            .continue_token
            .as_deref()
            .is_some_and(|t| !t.is_empty());
        let forced = match g.tables.get_mut(&rk(def)) {
            Some(t) if has_token && t.force_expire => {
                t.force_expire = false;
                true
            }
            _ => false,
        };
        let table = g
            .tables
            .get(&rk(def))
            .ok_or_else(ApiError::path_not_found)?;
        let mut start: Option<ObjKey> = None;
        let mut snapshot_rv: Option<u64> = None;
        if let Some(tok) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let c = pagination::decode(tok).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if c.rv < table.floor || forced {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            let key = if def.namespaced {
                match c.start.split_once('/') {
                    Some((a, b)) => (a.to_string(), b.to_string()),
                    None => (String::new(), c.start.clone()),
                }
            } else {
                (String::new(), c.start.clone())
            };
            start = Some(key);
            snapshot_rv = Some(c.rv);
        } else if opts.resource_version_match.as_deref() == Some("Exact") {
            let rv: u64 = opts
                .resource_version
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|_| {
                    ApiError::bad_request("resourceVersionMatch=Exact requires a resourceVersion")
                })?;
            if rv < table.floor {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    table.floor
                )));
            }
            if rv < g.rv {
                snapshot_rv = Some(rv);
            }
        }
        let list_rv = snapshot_rv.unwrap_or(g.rv);
        // Changes after the snapshot, undone: key -> state at snapshot.
        let mut overlay: BTreeMap<ObjKey, Option<Arc<Stored>>> = BTreeMap::new();
        if let Some(srv) = snapshot_rv {
            for ev in table.history.iter().rev() {
                if ev.rv <= srv {
                    break;
                }
                overlay.insert(ev.key.clone(), ev.prev.clone());
            }
        }
        let lower: Bound<ObjKey> = match (&start, &filter.namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.clone(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut base = table
            .objects
            .range((lower.clone(), Bound::Unbounded))
            .peekable();
        let mut ov = overlay.range((lower, Bound::Unbounded)).peekable();
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last: Option<ObjKey> = None;
        let mut more = false;
        loop {
            let next: Option<(ObjKey, Option<Arc<Stored>>)> = match (base.peek(), ov.peek()) {
                (None, None) => None,
                (Some((bk, bv)), None) => {
                    let r = ((*bk).clone(), Some(Arc::clone(bv)));
                    base.next();
                    Some(r)
                }
                (None, Some((ok, ovv))) => {
                    let r = ((*ok).clone(), (*ovv).clone());
                    ov.next();
                    Some(r)
                }
                (Some((bk, bv)), Some((ok, ovv))) => {
                    if bk < ok {
                        let r = ((*bk).clone(), Some(Arc::clone(bv)));
                        base.next();
                        Some(r)
                    } else if ok < bk {
                        let r = ((*ok).clone(), (*ovv).clone());
                        ov.next();
                        Some(r)
                    } else {
                        let r = ((*ok).clone(), (*ovv).clone());
                        base.next();
                        ov.next();
                        Some(r)
                    }
                }
            };
            let Some((key, val)) = next else { break };
            if let Some(ns) = &filter.namespace {
                if &key.0 != ns {
                    break;
                }
            }
            let Some(s) = val else { continue };
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            if filter.matches(def, &key, &s) {
                items.push(s);
                last = Some(key);
            } else if limit.is_some() {
                last = Some(key);
            }
        }
        let continue_token = match (more, last) {
            (true, Some((ns, name))) => Some(pagination::encode(&Continue {
                rv: list_rv,
                start: if def.namespaced {
                    format!("{ns}/{name}")
                } else {
                    name
                },
            })),
            _ => None,
        };
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
        })
    }

    /// Current objects matching a filter, and the resourceVersion they are at
    /// (the start of a watch without resourceVersion).
    pub fn snapshot(
        &self,
        def: &ResourceDef,
        filter: &Filter,
    ) -> Result<(Vec<Arc<Stored>>, u64), ApiError> {
        let g = self.lock();
        let table = g
            .tables
            .get(&rk(def))
            .ok_or_else(ApiError::path_not_found)?;
        let items = match &filter.namespace {
            Some(ns) => table
                .objects
                .range((ns.clone(), String::new())..)
                .take_while(|(k, _)| &k.0 == ns)
                .filter(|(k, s)| filter.matches(def, k, s))
                .map(|(_, s)| Arc::clone(s))
                .collect(),
            None => table
                .objects
                .iter()
                .filter(|(k, s)| filter.matches(def, k, s))
                .map(|(_, s)| Arc::clone(s))
                .collect(),
        };
        Ok((items, g.rv))
    }

    /// Check that a watch may resume at `rv`: `Err(floor)` when it is too
    /// old (or a forced expiry is pending, which this consumes).
    pub fn check_resume(&self, def: &ResourceDef, rv: u64) -> Result<(), u64> {
        let mut g = self.lock();
        match g.tables.get_mut(&rk(def)) {
            Some(t) if t.force_expire => {
                t.force_expire = false;
                Err(t.floor)
            }
            Some(t) if rv < t.floor => Err(t.floor),
            _ => Ok(()),
        }
    }

    /// Events of a resource after `cursor` (at most `max`).
    pub fn poll(&self, def: &ResourceDef, cursor: u64, max: usize) -> Poll {
        let g = self.lock();
        let Some(t) = g.tables.get(&rk(def)) else {
            return Poll::Gone;
        };
        if t.def.kind != def.kind {
            return Poll::Gone;
        }
        if cursor < t.floor {
            return Poll::Expired(t.floor);
        }
        let start = t.history.partition_point(|e| e.rv <= cursor);
        let end = (start + max).min(t.history.len());
        let events: Vec<Arc<Event>> = t.history.range(start..end).cloned().collect();
        let new_cursor = if end == t.history.len() {
            cursor.max(g.rv)
        } else {
            events.last().map_or(cursor, |e| e.rv)
        };
        Poll::Events(events, new_cursor)
    }

    /// Drop the watch history of one resource (or all): watches and
    /// continue tokens older than now get 410 Expired.
    pub fn expire_history(&self, plural: Option<&str>) {
        let mut g = self.lock();
        let rv = g.rv;
        for (key, t) in g.tables.iter_mut() {
            if plural.is_none_or(|p| key.1 == p) {
                t.history.clear();
                t.floor = rv;
                t.force_expire = true;
            }
        }
    }

    /// All recorded writes.
    pub fn write_log(&self) -> Vec<WriteRecord> {
        self.lock().write_log.clone()
    }

    /// Create an object.
    pub fn create(
        &self,
        def: &ResourceDef,
        ns: &str,
        obj: Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        let r = self.lock().create(&rk(def), ns, obj, ctx, false);
        self.notify();
        r
    }

    /// Update (PUT/PATCH/apply) an object: `f` computes the new object from
    /// the current one (`None` when absent; then the result is created if
    /// `create_if_missing`). Returns the stored object and whether it was created.
    pub fn update<F>(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        ctx: &WriteCtx,
        create_if_missing: bool,
        f: F,
    ) -> Result<(Value, bool), ApiError>
    where
        F: FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    {
        let r = self
            .lock()
            .update(&rk(def), ns, name, ctx, create_if_missing, f);
        self.notify();
        r
    }

    /// Delete an object.
    pub fn delete(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        ctx: &WriteCtx,
    ) -> Result<DeleteOutcome, ApiError> {
        let r = self.lock().delete(&rk(def), ns, name, opts, ctx, false);
        self.notify();
        r
    }
}

/// The version of a write request (the storage version when unknown).
fn request_version<'a>(def: &'a ResourceDef, ctx: &'a WriteCtx) -> &'a str {
    ctx.api_version
        .rsplit('/')
        .next()
        .filter(|v| def.serves(v))
        .unwrap_or(def.storage_version())
}

fn internal_ctx(verb: &'static str) -> WriteCtx {
    WriteCtx {
        verb,
        subresource: None,
        field_manager: Some(INTERNAL_MANAGER.to_string()),
        dry_run: false,
        api_version: String::new(),
    }
}

impl Inner {
    fn def(&self, key: &ResKey) -> Result<ResourceDef, ApiError> {
        self.tables
            .get(key)
            .map(|t| t.def.clone())
            .ok_or_else(ApiError::path_not_found)
    }

    fn record(&mut self, def: &ResourceDef, ctx: &WriteCtx, key: &ObjKey, rv: u64, internal: bool) {
        self.write_log.push(WriteRecord {
            time: SystemTime::now(),
            verb: ctx.verb.to_string(),
            group: def.group.clone(),
            resource: def.plural.clone(),
            subresource: ctx.subresource.clone(),
            namespace: (!key.0.is_empty()).then(|| key.0.clone()),
            name: key.1.clone(),
            field_manager: ctx.field_manager.clone(),
            resource_version: rv.to_string(),
            internal,
        });
    }

    fn push_event(&mut self, rkey: &ResKey, ev: Event) {
        let cap = self.history_cap;
        if let Some(t) = self.tables.get_mut(rkey) {
            t.history.push_back(Arc::new(ev));
            while t.history.len() > cap {
                if let Some(e) = t.history.pop_front() {
                    t.floor = e.rv;
                }
            }
        }
    }

    /// Store a new version (ADDED or MODIFIED).
    fn commit_put(
        &mut self,
        rkey: &ResKey,
        def: &ResourceDef,
        key: &ObjKey,
        mut v: Value,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(m) = md_mut(&mut v) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let stored = Arc::new(make_stored(def, &v, rv));
        let prev = self
            .tables
            .get_mut(rkey)
            .and_then(|t| t.objects.insert(key.clone(), Arc::clone(&stored)));
        if let Some(p) = &prev {
            for o in &p.owners {
                if let Some(set) = self.dependents.get_mut(o) {
                    set.remove(&(rkey.clone(), key.clone()));
                    if set.is_empty() {
                        self.dependents.remove(o);
                    }
                }
            }
        }
        for o in &stored.owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert((rkey.clone(), key.clone()));
        }
        self.uids
            .insert(stored.uid.clone(), (rkey.clone(), key.clone()));
        let etype = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let line = event_line(etype.as_str(), &stored.json);
        self.push_event(
            rkey,
            Event {
                rv,
                etype,
                key: key.clone(),
                obj: stored,
                prev,
                line,
            },
        );
        v
    }

    /// Remove an object now (DELETED), then run garbage collection.
    fn commit_remove(&mut self, rkey: &ResKey, def: &ResourceDef, key: &ObjKey) -> Option<Value> {
        let old = self.tables.get_mut(rkey)?.objects.remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        let mut v = old.value();
        if let Some(m) = md_mut(&mut v) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let stored = Arc::new(make_stored(def, &v, rv));
        let line = event_line("DELETED", &stored.json);
        self.push_event(
            rkey,
            Event {
                rv,
                etype: EventType::Deleted,
                key: key.clone(),
                obj: Arc::clone(&stored),
                prev: Some(Arc::clone(&old)),
                line,
            },
        );
        self.uids.remove(&old.uid);
        for o in &old.owners {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(&(rkey.clone(), key.clone()));
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
        self.after_remove(rkey, def, key, &old);
        Some(v)
    }

    fn after_remove(&mut self, rkey: &ResKey, def: &ResourceDef, key: &ObjKey, old: &Stored) {
        if def.group.is_empty() && def.plural == "pods" {
            self.logs.remove_pod(&key.0, &key.1);
        }
        // Background garbage collection of dependents.
        if let Some(deps) = self.dependents.remove(&old.uid) {
            let mut deps: Vec<_> = deps.into_iter().collect();
            deps.sort();
            for (drk, dkey) in deps {
                self.drop_owner_ref(&drk, &dkey, &old.uid, true);
            }
        }
        // Owners waiting in foreground deletion.
        for owner in &old.owners {
            self.maybe_finish_foreground(owner);
        }
        if *rkey == crd_key() {
            self.unregister_crd(&old.value());
        }
        if def.namespaced {
            self.maybe_finish_namespace(&key.0);
        }
    }

    /// Remove the owner reference `uid` from a dependent; delete it when no
    /// owner remains and `delete_orphans`.
    fn drop_owner_ref(&mut self, drk: &ResKey, dkey: &ObjKey, uid: &str, delete_orphans: bool) {
        let Ok(ddef) = self.def(drk) else { return };
        let Some(cur) = self
            .tables
            .get(drk)
            .and_then(|t| t.objects.get(dkey))
            .cloned()
        else {
            return;
        };
        let mut v = cur.value();
        let refs = md(&v)
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let remaining: Vec<Value> = refs
            .iter()
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid))
            .cloned()
            .collect();
        if remaining.is_empty() && delete_orphans {
            let opts = DeleteOpts::default();
            if let Err(e) = self.delete(drk, &dkey.0, &dkey.1, &opts, &internal_ctx("delete"), true)
            {
                tracing::debug!(error = %e, "garbage collecting {}/{}", dkey.0, dkey.1);
            }
            return;
        }
        let Some(m) = md_mut(&mut v) else {
            return;
        };
        if remaining.is_empty() {
            m.remove("ownerReferences");
        } else {
            m.insert("ownerReferences".into(), Value::Array(remaining));
        }
        let stored = self.commit_put(drk, &ddef, dkey, v);
        let rv = md_str(&stored, "resourceVersion")
            .parse()
            .unwrap_or(self.rv);
        self.record(&ddef, &internal_ctx("patch"), dkey, rv, true);
    }

    fn maybe_finish_foreground(&mut self, owner_uid: &str) {
        let Some((ork, okey)) = self.uids.get(owner_uid).cloned() else {
            return;
        };
        let has_deps = self
            .dependents
            .get(owner_uid)
            .is_some_and(|d| !d.is_empty());
        if has_deps {
            return;
        }
        let Some(cur) = self
            .tables
            .get(&ork)
            .and_then(|t| t.objects.get(&okey))
            .cloned()
        else {
            return;
        };
        let v = cur.value();
        if !finalizers(&v).iter().any(|f| f == "foregroundDeletion") {
            return;
        }
        self.remove_finalizer(&ork, &okey, "foregroundDeletion");
    }

    fn remove_finalizer(&mut self, rkey: &ResKey, key: &ObjKey, fin: &str) {
        let Ok(def) = self.def(rkey) else { return };
        let Some(cur) = self
            .tables
            .get(rkey)
            .and_then(|t| t.objects.get(key))
            .cloned()
        else {
            return;
        };
        let mut v = cur.value();
        let fins: Vec<String> = finalizers(&v).into_iter().filter(|f| f != fin).collect();
        let Some(m) = md_mut(&mut v) else {
            return;
        };
        if fins.is_empty() {
            m.remove("finalizers");
        } else {
            m.insert("finalizers".into(), json!(fins));
        }
        let ctx = internal_ctx("update");
        if fins.is_empty() && is_deleting(&v) {
            self.commit_remove(rkey, &def, key);
            self.record(&def, &internal_ctx("delete"), key, self.rv, true);
        } else {
            self.commit_put(rkey, &def, key, v);
            self.record(&def, &ctx, key, self.rv, true);
        }
    }

    fn maybe_finish_namespace(&mut self, ns: &str) {
        let nkey = (String::new(), ns.to_string());
        let Some(nsobj) = self
            .tables
            .get(&namespace_key())
            .and_then(|t| t.objects.get(&nkey))
            .cloned()
        else {
            return;
        };
        if !is_deleting(&nsobj.value()) {
            return;
        }
        let empty = self.tables.values().filter(|t| t.def.namespaced).all(|t| {
            t.objects
                .range((ns.to_string(), String::new())..)
                .next()
                .is_none_or(|(k, _)| k.0 != ns)
        });
        if empty {
            let Ok(def) = self.def(&namespace_key()) else {
                return;
            };
            if let Some(v) = self.commit_remove(&namespace_key(), &def, &nkey) {
                let rv = md_str(&v, "resourceVersion").parse().unwrap_or(self.rv);
                self.record(&def, &internal_ctx("delete"), &nkey, rv, true);
            }
        }
    }

    fn unregister_crd(&mut self, crd_obj: &Value) {
        let group = crd_obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd_obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = (group.to_string(), plural.to_string());
        let builtin = self.tables.get(&key).is_some_and(|t| t.def.builtin);
        if builtin {
            return;
        }
        if let Some(t) = self.tables.get(&key) {
            let keys: Vec<ObjKey> = t.objects.keys().cloned().collect();
            let def = t.def.clone();
            for k in keys {
                self.commit_remove(&key, &def, &k);
            }
        }
        self.tables.remove(&key);
    }

    fn register_crd(&mut self, crd_obj: &Value) {
        let def = crd::resource_def(crd_obj);
        let key = rk(&def);
        match self.tables.get_mut(&key) {
            Some(t) if t.def.builtin => {
                tracing::warn!(
                    "CRD {}/{} shadows a built-in resource; ignored",
                    key.0,
                    key.1
                );
            }
            Some(t) => t.def = def,
            None => {
                let floor = self.rv;
                self.tables.insert(
                    key,
                    Table {
                        def,
                        objects: BTreeMap::new(),
                        history: VecDeque::new(),
                        floor,
                        force_expire: false,
                    },
                );
            }
        }
    }

    /// Apply defaults (built-in or CRD schema, with pruning) and validate.
    fn default_and_validate(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        ctx: &WriteCtx,
    ) -> Result<(), ApiError> {
        let name = md_str(obj, "name");
        let causes: Vec<Cause> = if def.builtin {
            defaults::apply(&def.group, &def.kind, obj);
            if (def.group.as_str(), def.plural.as_str())
                == ("apiextensions.k8s.io", "customresourcedefinitions")
            {
                crd::default_crd(obj);
                crd::validate_crd(obj)
            } else {
                validation::validate_builtin(&def.group, &def.kind, obj)
            }
        } else {
            let version = ctx
                .api_version
                .rsplit('/')
                .next()
                .filter(|v| def.serves(v))
                .unwrap_or(def.storage_version())
                .to_string();
            match def.schema(&version) {
                Some(schema) => {
                    crd::prune(obj, schema, true);
                    crd::apply_defaults(obj, schema);
                    let mut causes = Vec::new();
                    crd::validate(obj, schema, "", &mut causes);
                    causes
                }
                None => Vec::new(),
            }
        };
        let mut causes = causes;
        causes.extend(validation::validate_metadata(obj));
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(&def.kind, &def.group, &name, &causes))
        }
    }

    fn create(
        &mut self,
        rkey: &ResKey,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
        internal: bool,
    ) -> Result<Value, ApiError> {
        let def = self.def(rkey)?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str) {
            if !k.is_empty() && k != def.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind of the provided object ({k}) does not match the kind of the request ({})",
                    def.kind
                )));
            }
        }
        let body_ns = md_str(&obj, "namespace");
        if def.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            if let Some(m) = md_mut(&mut obj) {
                m.insert("namespace".into(), json!(ns));
            }
        } else {
            if let Some(m) = md_mut(&mut obj) {
                m.remove("namespace");
            }
        }
        let mut name = md_str(&obj, "name");
        let generate = md_str(&obj, "generateName");
        if name.is_empty() {
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    &def.group,
                    "",
                    &[Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            let objects = self.tables.get(rkey).map(|t| &t.objects);
            for _ in 0..8 {
                name = format!("{generate}{}", validation::generate_suffix());
                if !objects.is_some_and(|o| o.contains_key(&(ns.to_string(), name.clone()))) {
                    break;
                }
            }
            if let Some(m) = md_mut(&mut obj) {
                m.insert("name".into(), json!(name));
            }
        }
        let rule = if def.builtin {
            validation::name_rule(&def.group, &def.kind)
        } else {
            validation::NameRule::Subdomain
        };
        if let Some(c) = validation::validate_name(&name, rule) {
            return Err(ApiError::invalid(&def.kind, &def.group, &name, &[c]));
        }
        if def.namespaced {
            let nsobj = self
                .tables
                .get(&namespace_key())
                .and_then(|t| t.objects.get(&(String::new(), ns.to_string())))
                .cloned();
            match nsobj {
                None => return Err(ApiError::not_found("namespaces", "", ns)),
                Some(n) if is_deleting(&n.value()) => {
                    return Err(ApiError::forbidden(format!(
                        "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        qualified(&def.plural, &def.group)
                    )))
                }
                _ => {}
            }
        }
        let now = now_rfc3339();
        {
            let api_version = def.api_version(def.storage_version());
            let o = obj
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("object expected"))?;
            o.insert("apiVersion".into(), json!(api_version));
            o.insert("kind".into(), json!(def.kind));
        }
        {
            let Some(m) = md_mut(&mut obj) else {
                return Err(ApiError::bad_request("object expected"));
            };
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now));
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
            if def.tracks_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if def.has_status {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
                if def.builtin && def.group.is_empty() && def.kind == "Pod" {
                    o.insert(
                        "status".into(),
                        json!({"phase": "Pending", "qosClass": "BestEffort"}),
                    );
                }
            }
        }
        self.default_and_validate(&def, &mut obj, ctx)?;
        if ctx.verb != "apply" {
            if let Some(mgr) = &ctx.field_manager {
                let schema = managed::schema_for(&def, request_version(&def, ctx));
                obj = managed::track_update(
                    None,
                    &obj,
                    mgr,
                    ctx.subresource.as_deref(),
                    &schema,
                    &now,
                );
            }
        }
        let key = object_key(def.namespaced, ns, &name);
        if self
            .tables
            .get(rkey)
            .is_some_and(|t| t.objects.contains_key(&key))
        {
            return Err(ApiError::already_exists(&def.plural, &def.group, &name));
        }
        if ctx.dry_run {
            return Ok(obj);
        }
        let out = self.commit_put(rkey, &def, &key, obj);
        let rv = self.rv;
        self.record(&def, ctx, &key, rv, internal);
        // Controllers reacting to creations.
        if *rkey == crd_key() {
            self.register_crd(&out);
            let mut established = out.clone();
            established["status"] = crd::established_status(&out, &now);
            let out2 = self.commit_put(rkey, &def, &key, established);
            self.record(
                &def,
                &WriteCtx {
                    subresource: Some("status".into()),
                    ..internal_ctx("update")
                },
                &key,
                self.rv,
                true,
            );
            let _ = out2;
        }
        if *rkey == namespace_key() {
            self.populate_namespace(&name);
        }
        Ok(out)
    }

    fn populate_namespace(&mut self, ns: &str) {
        let sa =
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt",
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIBkube-incident-emulator\n-----END CERTIFICATE-----\n"}});
        for (plural, obj) in [("serviceaccounts", sa), ("configmaps", cm)] {
            let key = (String::new(), plural.to_string());
            if let Err(e) = self.create(&key, ns, obj, &internal_ctx("create"), true) {
                tracing::debug!(error = %e, "populating namespace {ns}");
            }
        }
    }

    fn update<F>(
        &mut self,
        rkey: &ResKey,
        ns: &str,
        name: &str,
        ctx: &WriteCtx,
        create_if_missing: bool,
        f: F,
    ) -> Result<(Value, bool), ApiError>
    where
        F: FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    {
        let def = self.def(rkey)?;
        let key = object_key(def.namespaced, ns, name);
        let cur = self
            .tables
            .get(rkey)
            .and_then(|t| t.objects.get(&key))
            .cloned();
        let Some(cur) = cur else {
            if !create_if_missing || ctx.subresource.is_some() {
                return Err(ApiError::not_found(&def.plural, &def.group, name));
            }
            let mut obj = f(None)?;
            let body_name = md_str(&obj, "name");
            if !body_name.is_empty() && body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            if let Some(m) = md_mut(&mut obj) {
                m.insert("name".into(), json!(name));
            }
            let rv = md_str(&obj, "resourceVersion");
            if !rv.is_empty() {
                return Err(ApiError::not_found(&def.plural, &def.group, name));
            }
            return self.create(rkey, ns, obj, ctx, false).map(|v| (v, true));
        };
        let old = cur.value();
        let candidate = f(Some(&old))?;
        if !candidate.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let body_name = md_str(&candidate, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced {
            let body_ns = md_str(&candidate, "namespace");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let want_rv = md_str(&candidate, "resourceVersion");
        if !want_rv.is_empty() && want_rv != cur.rv.to_string() {
            return Err(ApiError::conflict(&def.plural, &def.group, name));
        }
        // A uid in the body of a PUT is a precondition (409); a patch that
        // changes it is invalid (422), as in kube-apiserver.
        let want_uid = md_str(&candidate, "uid");
        if !want_uid.is_empty() && want_uid != cur.uid {
            if ctx.verb == "update" {
                return Err(ApiError::conflict_msg(
                    &def.plural,
                    &def.group,
                    name,
                    &format!(
                        "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {want_uid}, UID in object meta: {}",
                        storage_key(&def, ns, name),
                        cur.uid
                    ),
                ));
            }
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                name,
                &[Cause::invalid(
                    "metadata.uid",
                    &json!(want_uid),
                    "field is immutable",
                )],
            ));
        }
        // Status subresource isolation: a status write changes `status` and
        // the metadata the kind's status strategy lets through.
        let mut new = match ctx.subresource.as_deref() {
            Some("status") => {
                let mut n = candidate;
                let keep_top: Vec<String> = old
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                if let Some(o) = n.as_object_mut() {
                    o.retain(|k, _| k == "metadata" || k == "status");
                    for k in keep_top {
                        if k != "metadata" && k != "status" {
                            if let Some(v) = old.get(&k) {
                                o.insert(k, v.clone());
                            }
                        }
                    }
                }
                let om = md(&old).cloned().unwrap_or_default();
                if let Some(m) = md_mut(&mut n) {
                    for k in def.status_keeps_metadata() {
                        match om.get(*k) {
                            Some(v) => {
                                m.insert((*k).into(), v.clone());
                            }
                            None => {
                                m.remove(*k);
                            }
                        }
                    }
                }
                n
            }
            _ => {
                let mut n = candidate;
                if def.has_status {
                    match old.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(o) = n.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                n
            }
        };
        // Server-owned metadata.
        {
            let om = md(&old).cloned().unwrap_or_default();
            if let Some(o) = new.as_object_mut() {
                o.insert(
                    "apiVersion".into(),
                    json!(def.api_version(def.storage_version())),
                );
                o.insert("kind".into(), json!(def.kind));
            }
            let Some(nm) = md_mut(&mut new) else {
                return Err(ApiError::bad_request("object expected"));
            };
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "generateName",
            ] {
                match om.get(k) {
                    Some(v) => {
                        nm.insert(k.into(), v.clone());
                    }
                    None => {
                        nm.remove(k);
                    }
                }
            }
            nm.insert("resourceVersion".into(), json!(cur.rv.to_string()));
            nm.remove("selfLink");
        }
        if is_deleting(&old) {
            let oldf = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !oldf.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    &def.group,
                    name,
                    &[Cause::forbidden(
                        "metadata.finalizers",
                        &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")),
                    )],
                ));
            }
        }
        self.default_and_validate(&def, &mut new, ctx)?;
        // apps/v1 selectors are immutable.
        if def.builtin
            && def.group == "apps"
            && old.pointer("/spec/selector") != new.pointer("/spec/selector")
        {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                name,
                &[Cause::invalid(
                    "spec.selector",
                    new.pointer("/spec/selector").unwrap_or(&Value::Null),
                    "field is immutable",
                )],
            ));
        }
        if def.tracks_generation
            && ctx.subresource.as_deref() != Some("status")
            && generation_changes(&def, &old, &new)
        {
            let g = md(&old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if let Some(m) = md_mut(&mut new) {
                m.insert("generation".into(), json!(g + 1));
            }
        }
        let now = now_rfc3339();
        if ctx.verb != "apply" {
            match &ctx.field_manager {
                Some(mgr) => {
                    let schema = managed::schema_for(&def, request_version(&def, ctx));
                    new = managed::track_update(
                        Some(&old),
                        &new,
                        mgr,
                        ctx.subresource.as_deref(),
                        &schema,
                        &now,
                    );
                }
                None => {
                    if let Some(mf) = md(&old).and_then(|m| m.get("managedFields")).cloned() {
                        if let Some(m) = md_mut(&mut new) {
                            m.entry("managedFields").or_insert(mf);
                        }
                    }
                }
            }
        }
        if new == old {
            self.record(&def, ctx, &key, cur.rv, false);
            return Ok((old, false));
        }
        if ctx.dry_run {
            return Ok((new, false));
        }
        if *rkey == crd_key() {
            if let Err(c) = self.check_crd_update(&old, &new) {
                return Err(ApiError::invalid(&def.kind, &def.group, name, &[c]));
            }
        }
        if is_deleting(&new) && finalizers(&new).is_empty() {
            // Last finalizer removed: the object goes away.
            self.tables.get_mut(rkey).map(|t| {
                t.objects
                    .insert(key.clone(), Arc::new(make_stored(&def, &new, cur.rv)))
            });
            let out = self.commit_remove(rkey, &def, &key).unwrap_or(new);
            self.record(&def, ctx, &key, self.rv, false);
            return Ok((out, false));
        }
        let out = self.commit_put(rkey, &def, &key, new);
        let rv = self.rv;
        self.record(&def, ctx, &key, rv, false);
        if *rkey == crd_key() {
            self.register_crd(&out);
        }
        Ok((out, false))
    }

    fn check_crd_update(&self, old: &Value, new: &Value) -> Result<(), Cause> {
        for p in ["/spec/group", "/spec/names/plural", "/spec/scope"] {
            if old.pointer(p) != new.pointer(p) {
                return Err(Cause::invalid(
                    &p.trim_start_matches('/').replace('/', "."),
                    new.pointer(p).unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        Ok(())
    }

    fn delete(
        &mut self,
        rkey: &ResKey,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        ctx: &WriteCtx,
        internal: bool,
    ) -> Result<DeleteOutcome, ApiError> {
        let def = self.def(rkey)?;
        let key = object_key(def.namespaced, ns, name);
        let cur = self
            .tables
            .get(rkey)
            .and_then(|t| t.objects.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, name))?;
        // kube-apiserver's `BeforeDelete` names the kind, not the resource.
        if let Some(uid) = &opts.precondition_uid {
            if *uid != cur.uid {
                return Err(ApiError::conflict_msg(
                    &def.kind,
                    &def.group,
                    name,
                    &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                        cur.uid
                    ),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            if *rv != cur.rv.to_string() {
                return Err(ApiError::conflict_msg(
                    &def.kind,
                    &def.group,
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        cur.rv
                    ),
                ));
            }
        }
        let mut v = cur.value();
        if ctx.dry_run {
            return Ok(DeleteOutcome {
                obj: v,
                gone: false,
            });
        }
        if is_deleting(&v) {
            return Ok(DeleteOutcome {
                obj: v,
                gone: false,
            });
        }
        if opts.propagation == Propagation::Orphan {
            if let Some(deps) = self.dependents.get(&cur.uid).cloned() {
                let mut deps: Vec<_> = deps.into_iter().collect();
                deps.sort();
                for (drk, dkey) in deps {
                    self.drop_owner_ref(&drk, &dkey, &cur.uid, false);
                }
            }
        }
        let has_deps = self.dependents.get(&cur.uid).is_some_and(|d| !d.is_empty());
        let mut fins = finalizers(&v);
        if opts.propagation == Propagation::Foreground
            && has_deps
            && !fins.iter().any(|f| f == "foregroundDeletion")
        {
            fins.push("foregroundDeletion".into());
        }
        let is_ns = *rkey == namespace_key();
        if fins.is_empty() && !is_ns {
            let out = self.commit_remove(rkey, &def, &key).unwrap_or(v);
            self.record(&def, ctx, &key, self.rv, internal);
            return Ok(DeleteOutcome {
                obj: out,
                gone: true,
            });
        }
        // Graceful: mark deleting, wait for finalizers (or namespace content).
        {
            let gen = md(&v)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64);
            let Some(m) = md_mut(&mut v) else {
                return Err(ApiError::bad_request("object expected"));
            };
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if !fins.is_empty() {
                m.insert("finalizers".into(), json!(fins));
            }
            if def.tracks_generation {
                if let Some(g) = gen {
                    m.insert("generation".into(), json!(g + 1));
                }
            }
        }
        if is_ns {
            v["status"]["phase"] = json!("Terminating");
        }
        let out = self.commit_put(rkey, &def, &key, v);
        self.record(&def, ctx, &key, self.rv, internal);
        if opts.propagation == Propagation::Foreground && has_deps {
            if let Some(deps) = self.dependents.get(&cur.uid).cloned() {
                let mut deps: Vec<_> = deps.into_iter().collect();
                deps.sort();
                for (drk, dkey) in deps {
                    let o = DeleteOpts {
                        propagation: Propagation::Foreground,
                        ..DeleteOpts::default()
                    };
                    if let Err(e) =
                        self.delete(&drk, &dkey.0, &dkey.1, &o, &internal_ctx("delete"), true)
                    {
                        tracing::debug!(error = %e, "foreground deletion of a dependent");
                    }
                }
            }
            self.maybe_finish_foreground(&cur.uid);
        }
        if is_ns {
            self.empty_namespace(name);
        }
        let still = self
            .tables
            .get(rkey)
            .and_then(|t| t.objects.get(&key))
            .cloned();
        match still {
            Some(s) => Ok(DeleteOutcome {
                obj: s.value(),
                gone: false,
            }),
            None => Ok(DeleteOutcome {
                obj: out,
                gone: true,
            }),
        }
    }

    /// The namespace controller: delete everything in a terminating namespace.
    fn empty_namespace(&mut self, ns: &str) {
        let mut victims: Vec<(ResKey, ObjKey)> = Vec::new();
        for (k, t) in &self.tables {
            if !t.def.namespaced {
                continue;
            }
            for (ok, _) in t
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|(ok, _)| ok.0 == ns)
            {
                victims.push((k.clone(), ok.clone()));
            }
        }
        victims.sort();
        for (r, k) in victims {
            if self
                .tables
                .get(&r)
                .is_some_and(|t| t.objects.contains_key(&k))
            {
                if let Err(e) = self.delete(
                    &r,
                    &k.0,
                    &k.1,
                    &DeleteOpts::default(),
                    &internal_ctx("delete"),
                    true,
                ) {
                    tracing::debug!(error = %e, "namespace controller deleting {}/{}", k.0, k.1);
                }
            }
        }
        self.maybe_finish_namespace(ns);
    }
}

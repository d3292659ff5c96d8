//! The object store: one monotonic resourceVersion across all kinds, objects
//! kept once as serialized JSON (plus what selectors need), per-resource
//! watch history of shared events, and the write semantics of kube-apiserver
//! (optimistic concurrency, generation, status subresource isolation,
//! finalizers, ownerReference garbage collection, namespace deletion).
//!
//! Layout: this module holds the store's types and its entry points;
//! `read.rs` lists and polls, `commit.rs` applies a change (resourceVersion,
//! indexes, watch history, write log), `create.rs`, `update.rs` and
//! `delete.rs` are the write verbs, `controllers.rs` the emulator's own
//! controllers (garbage collector, namespace and CRD controllers) and
//! `metadata.rs` the helpers reading and writing `metadata`.

mod commit;
mod controllers;
mod create;
mod delete;
mod metadata;
mod read;
mod update;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{json, Value};

use super::logs::PodLogs;
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;

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

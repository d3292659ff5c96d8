//! Informer-like caches: one kube-runtime watcher per kind, an in-memory
//! store with a controller-owner index, and a callback per change (used to
//! enqueue work). Relists (`Init` .. `InitDone`) replace the store atomically
//! and report objects that vanished as deletions.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// (namespace, name).
pub type ObjKey = (String, String);

/// The key of an object.
pub fn obj_key<K: Resource>(o: &K) -> ObjKey {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

/// The uid of the controlling owner (ownerReference with `controller: true`).
pub fn controller_uid<K: Resource>(o: &K) -> Option<String> {
    o.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// The (kind, name) of the controlling owner.
pub fn controller_ref<K: Resource>(o: &K) -> Option<(String, String)> {
    o.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

#[derive(Debug)]
struct Inner<K> {
    objects: HashMap<ObjKey, Arc<K>>,
    by_owner: HashMap<String, HashSet<ObjKey>>,
    synced: bool,
}

impl<K> Default for Inner<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            by_owner: HashMap::new(),
            synced: false,
        }
    }
}

/// A cache of one kind of object.
#[derive(Debug)]
pub struct Cache<K> {
    inner: RwLock<Inner<K>>,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
        }
    }
}

impl<K: Resource + Clone> Cache<K> {
    /// The cached object.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        let g = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        g.objects.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// Objects whose controlling owner has this uid.
    pub fn owned_by(&self, owner_uid: &str) -> Vec<Arc<K>> {
        let g = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        g.by_owner
            .get(owner_uid)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| g.objects.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All cached objects.
    pub fn all(&self) -> Vec<Arc<K>> {
        let g = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        g.objects.values().cloned().collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .objects
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the initial list completed.
    pub fn synced(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .synced
    }

    fn insert_locked(g: &mut Inner<K>, o: Arc<K>) {
        let key = obj_key(o.as_ref());
        if let Some(old) = g.objects.insert(key.clone(), o.clone()) {
            if let Some(u) = controller_uid(old.as_ref()) {
                if let Some(s) = g.by_owner.get_mut(&u) {
                    s.remove(&key);
                    if s.is_empty() {
                        g.by_owner.remove(&u);
                    }
                }
            }
        }
        if let Some(u) = controller_uid(o.as_ref()) {
            g.by_owner.entry(u).or_default().insert(key);
        }
    }

    /// Stores a newer version of an object (ignored when the cached one has a
    /// higher resourceVersion, e.g. written back from a write response).
    pub fn insert(&self, o: K) {
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let key = obj_key(&o);
        if let (Some(cur), Some(new_rv)) = (g.objects.get(&key), rv_num(&o)) {
            if rv_num(cur.as_ref()).is_some_and(|c| c > new_rv) {
                return;
            }
        }
        Self::insert_locked(&mut g, Arc::new(o));
    }

    /// Removes an object.
    pub fn remove(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let key = (ns.to_string(), name.to_string());
        let old = g.objects.remove(&key)?;
        if let Some(u) = controller_uid(old.as_ref()) {
            if let Some(s) = g.by_owner.get_mut(&u) {
                s.remove(&key);
                if s.is_empty() {
                    g.by_owner.remove(&u);
                }
            }
        }
        Some(old)
    }

    /// Replaces the contents after a relist; returns objects that disappeared.
    pub fn replace(&self, objs: Vec<K>) -> Vec<Arc<K>> {
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let new_keys: HashSet<ObjKey> = objs.iter().map(obj_key).collect();
        let gone: Vec<Arc<K>> = g
            .objects
            .iter()
            .filter(|(k, _)| !new_keys.contains(*k))
            .map(|(_, v)| v.clone())
            .collect();
        g.objects.clear();
        g.by_owner.clear();
        for o in objs {
            Self::insert_locked(&mut g, Arc::new(o));
        }
        g.synced = true;
        gone
    }
}

fn rv_num<K: Resource>(o: &K) -> Option<u64> {
    o.meta().resource_version.as_deref()?.parse().ok()
}

/// A change seen by a watcher.
pub enum Change<'a, K> {
    /// Added or modified.
    Applied(&'a K),
    /// Deleted (or gone after a relist).
    Deleted(&'a K),
}

/// Runs a watcher for `api` forever, keeping `cache` up to date and calling
/// `on_change` for each change.
pub async fn run_watch<K, F>(api: Api<K>, cache: Arc<Cache<K>>, mut on_change: F)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(Change<'_, K>) + Send,
{
    let cfg = watcher::Config::default().page_size(5000);
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut buf: Vec<K> = Vec::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(o)) => {
                cache.insert(o.clone());
                on_change(Change::Applied(&o));
            }
            Ok(Event::Delete(o)) => {
                cache.remove(&o.namespace().unwrap_or_default(), &o.name_any());
                on_change(Change::Deleted(&o));
            }
            Ok(Event::Init) => buf.clear(),
            Ok(Event::InitApply(o)) => buf.push(o),
            Ok(Event::InitDone) => {
                let objs = std::mem::take(&mut buf);
                let gone = cache.replace(objs.clone());
                for o in &gone {
                    on_change(Change::Deleted(o.as_ref()));
                }
                for o in &objs {
                    on_change(Change::Applied(o));
                }
            }
            Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "simulation watch error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(name: &str, owner: &str, rv: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": true}]}}))
        .expect("pod")
    }

    #[test]
    fn owner_index_and_stale_writes() {
        let c: Cache<Pod> = Cache::default();
        c.insert(pod("a", "u1", "5"));
        c.insert(pod("b", "u1", "6"));
        c.insert(pod("c", "u2", "7"));
        assert_eq!(c.owned_by("u1").len(), 2);
        c.insert(pod("a", "u2", "4")); // stale: ignored
        assert_eq!(c.owned_by("u1").len(), 2);
        c.insert(pod("a", "u2", "8")); // re-owned
        assert_eq!(c.owned_by("u1").len(), 1);
        assert_eq!(c.owned_by("u2").len(), 2);
        c.remove("ns", "c");
        assert_eq!(c.owned_by("u2").len(), 1);
        let gone = c.replace(vec![pod("b", "u1", "9")]);
        assert_eq!(gone.len(), 1);
        assert!(c.synced());
        assert!(c.owned_by("u2").is_empty());
        assert_eq!(c.len(), 1);
    }
}

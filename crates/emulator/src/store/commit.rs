//! Applying one change to the store: the next resourceVersion, the object
//! map and its uid/owner indexes, the watch history and the write log.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::metadata::{make_stored, md_mut};
use super::{event_line, Event, EventType, Inner, ObjKey, ResKey, WriteCtx, WriteRecord};
use crate::resources::ResourceDef;
use crate::status::ApiError;

impl Inner {
    pub(super) fn def(&self, key: &ResKey) -> Result<ResourceDef, ApiError> {
        self.tables
            .get(key)
            .map(|t| t.def.clone())
            .ok_or_else(ApiError::path_not_found)
    }

    pub(super) fn record(
        &mut self,
        def: &ResourceDef,
        ctx: &WriteCtx,
        key: &ObjKey,
        rv: u64,
        internal: bool,
    ) {
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

    pub(super) fn push_event(&mut self, rkey: &ResKey, ev: Event) {
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
    pub(super) fn commit_put(
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
    pub(super) fn commit_remove(
        &mut self,
        rkey: &ResKey,
        def: &ResourceDef,
        key: &ObjKey,
    ) -> Option<Value> {
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
}

//! The emulator's own controllers, run inside the write that triggers them:
//! the garbage collector (ownerReferences, foreground deletion), the
//! namespace controller (default content, emptying a terminating namespace)
//! and CRD registration.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use super::metadata::{finalizers, is_deleting, md, md_mut, md_str};
use super::{
    crd_key, internal_ctx, namespace_key, rk, DeleteOpts, Inner, ObjKey, ResKey, Stored, Table,
};
use crate::crd;
use crate::resources::ResourceDef;

impl Inner {
    pub(super) fn after_remove(
        &mut self,
        rkey: &ResKey,
        def: &ResourceDef,
        key: &ObjKey,
        old: &Stored,
    ) {
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
    pub(super) fn drop_owner_ref(
        &mut self,
        drk: &ResKey,
        dkey: &ObjKey,
        uid: &str,
        delete_orphans: bool,
    ) {
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

    pub(super) fn maybe_finish_foreground(&mut self, owner_uid: &str) {
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

    pub(super) fn remove_finalizer(&mut self, rkey: &ResKey, key: &ObjKey, fin: &str) {
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

    pub(super) fn maybe_finish_namespace(&mut self, ns: &str) {
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

    pub(super) fn unregister_crd(&mut self, crd_obj: &Value) {
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

    pub(super) fn register_crd(&mut self, crd_obj: &Value) {
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

    pub(super) fn populate_namespace(&mut self, ns: &str) {
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

    /// The namespace controller: delete everything in a terminating namespace.
    pub(super) fn empty_namespace(&mut self, ns: &str) {
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

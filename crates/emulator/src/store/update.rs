//! Updating an object (PUT, patches, apply): optimistic concurrency, status
//! subresource isolation, server-owned metadata, generation and
//! managedFields.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::metadata::{finalizers, is_deleting, make_stored, md, md_mut, md_str};
use super::{crd_key, now_rfc3339, object_key, request_version, Inner, ResKey, WriteCtx};
use crate::managed;
use crate::resources::ResourceDef;
use crate::status::{ApiError, Cause};

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

impl Inner {
    pub(super) fn update<F>(
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

    pub(super) fn check_crd_update(&self, old: &Value, new: &Value) -> Result<(), Cause> {
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
}

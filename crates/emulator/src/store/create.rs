//! Creating an object: admission (defaults, validation), name generation,
//! server-owned metadata and managedFields.

use serde_json::{json, Value};

use super::metadata::{is_deleting, md_mut, md_str};
use super::{
    crd_key, internal_ctx, namespace_key, now_rfc3339, object_key, request_version, Inner, ResKey,
    WriteCtx,
};
use crate::crd;
use crate::defaults;
use crate::managed;
use crate::resources::ResourceDef;
use crate::status::{qualified, ApiError, Cause};
use crate::validation;

impl Inner {
    /// Apply defaults (built-in or CRD schema, with pruning) and validate.
    pub(super) fn default_and_validate(
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

    pub(super) fn create(
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
}

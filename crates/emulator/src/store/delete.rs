//! Deleting an object: preconditions, propagation (background, foreground,
//! orphan), finalizers and namespace termination.

use serde_json::{json, Value};

use super::metadata::{finalizers, is_deleting, md, md_mut};
use super::{
    internal_ctx, namespace_key, now_rfc3339, object_key, DeleteOpts, DeleteOutcome, Inner,
    Propagation, ResKey, WriteCtx,
};
use crate::status::ApiError;

impl Inner {
    pub(super) fn delete(
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
}

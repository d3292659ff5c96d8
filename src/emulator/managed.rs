//! Adapter between the server and the patch engine (`super::patch`):
//! strategic merge patch, server-side apply and managedFields bookkeeping.
//!
//! PATCH-ENGINE: while the patch engineer's `strategic_merge_patch`,
//! `server_side_apply` and `track_update` are not available, this module
//! implements simplified fallbacks (SMP as JSON merge patch with `$patch`
//! directives stripped; apply as merge of the applied configuration without
//! conflict detection; managedFields entries listing the fields set).

use serde_json::{json, Map, Value};

use super::patch::{self, PatchError};

/// Strategic merge patch of a built-in object.
pub fn strategic_merge_patch(
    target: &Value,
    patch_body: &Value,
    _group: &str,
    _version: &str,
    _kind: &str,
) -> Result<Value, PatchError> {
    if !patch_body.is_object() {
        return Err(PatchError::Invalid(
            "strategic merge patch must be a JSON object".into(),
        ));
    }
    let mut out = target.clone();
    let mut p = patch_body.clone();
    strip_directives(&mut p);
    merge_named_lists(&mut out, &p);
    Ok(out)
}

fn strip_directives(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|k, _| !k.starts_with("$setElementOrder") && k != "$patch" && !k.starts_with("$deleteFromPrimitiveList") && k != "$retainKeys");
        for c in m.values_mut() {
            strip_directives(c);
        }
    } else if let Value::Array(a) = v {
        for c in a {
            strip_directives(c);
        }
    }
}

/// Merge like RFC 7386, except lists of objects with a `name` key are merged
/// by name (the merge key of containers, env, ports, volumes...).
fn merge_named_lists(target: &mut Value, patch_v: &Value) {
    match (target, patch_v) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) => merge_named_lists(tv, pv),
                    None => {
                        let mut nv = Value::Null;
                        merge_named_lists(&mut nv, pv);
                        t.insert(k.clone(), nv);
                    }
                }
            }
        }
        (t @ Value::Array(_), Value::Array(pa)) => {
            let named = pa.iter().all(|x| x.get("name").is_some_and(Value::is_string));
            let Value::Array(ta) = t else { return };
            if named && !pa.is_empty() && ta.iter().all(|x| x.get("name").is_some()) {
                for pe in pa {
                    match ta.iter_mut().find(|te| te.get("name") == pe.get("name")) {
                        Some(te) => merge_named_lists(te, pe),
                        None => ta.push(pe.clone()),
                    }
                }
            } else {
                *ta = pa.clone();
            }
        }
        (t, p) => {
            if p.is_object() {
                *t = json!({});
                merge_named_lists(t, p);
            } else {
                *t = p.clone();
            }
        }
    }
}

/// Server-side apply: the new object (with managedFields updated).
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    _force: bool,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
) -> Result<Value, PatchError> {
    let mut out = live.cloned().unwrap_or_else(|| json!({}));
    let mut body = applied.clone();
    if let Some(md) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("managedFields");
    }
    merge_named_lists(&mut out, &body);
    set_entry(&mut out, &body, manager, "Apply", subresource, api_version, now);
    Ok(out)
}

/// managedFields bookkeeping for create/update/patch.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
) -> Value {
    let mut out = new.clone();
    let changed = match old {
        None => new.clone(),
        Some(o) => diff(o, new).unwrap_or(Value::Null),
    };
    if changed.is_null() || changed.as_object().is_some_and(Map::is_empty) {
        // nothing changed: keep the previous managedFields
        if let Some(prev) = old.and_then(|o| o.pointer("/metadata/managedFields")).cloned() {
            if let Some(md) = out.get_mut("metadata").and_then(Value::as_object_mut) {
                md.insert("managedFields".into(), prev);
            }
        }
        return out;
    }
    if let Some(prev) = old.and_then(|o| o.pointer("/metadata/managedFields")).cloned() {
        if let Some(md) = out.get_mut("metadata").and_then(Value::as_object_mut) {
            md.insert("managedFields".into(), prev);
        }
    }
    set_entry(&mut out, &changed, manager, "Update", subresource, api_version, now);
    out
}

fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut m = Map::new();
            for (k, nv) in n {
                if k == "managedFields" || k == "resourceVersion" {
                    continue;
                }
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = diff(ov, nv) {
                            m.insert(k.clone(), d);
                        }
                    }
                    None => {
                        m.insert(k.clone(), nv.clone());
                    }
                }
            }
            (!m.is_empty()).then_some(Value::Object(m))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

fn fields_of(v: &Value, top: bool) -> Value {
    let mut m = Map::new();
    if let Value::Object(o) = v {
        for (k, c) in o {
            if top && (k == "apiVersion" || k == "kind") {
                continue;
            }
            if k == "managedFields" || k == "resourceVersion" || k == "uid" || k == "creationTimestamp" || k == "generation" {
                continue;
            }
            if top && k == "metadata" {
                let sub = fields_of(c, false);
                if sub.as_object().is_some_and(|s| !s.is_empty()) {
                    m.insert("f:metadata".into(), sub);
                }
                continue;
            }
            m.insert(format!("f:{k}"), fields_of(c, false));
        }
    }
    Value::Object(m)
}

fn set_entry(
    obj: &mut Value,
    fields_src: &Value,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
) {
    let fields = fields_of(fields_src, true);
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if let Some(s) = subresource {
        entry["subresource"] = json!(s);
    }
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = md.entry("managedFields").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(arr) = list.as_array_mut() {
        let same = |e: &Value| {
            e["manager"] == manager
                && e["operation"] == operation
                && e.get("subresource").and_then(Value::as_str) == subresource
        };
        match arr.iter_mut().find(|e| same(e)) {
            Some(e) => {
                if let (Some(old), Some(new)) = (e["fieldsV1"].as_object().cloned(), entry["fieldsV1"].as_object()) {
                    let mut merged = Value::Object(old);
                    patch::json_merge_patch(&mut merged, &Value::Object(new.clone()));
                    entry["fieldsV1"] = merged;
                }
                *e = entry;
            }
            None => arr.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smp_merges_containers_by_name() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "3"}]}, "$setElementOrder/x": []});
        let out = strategic_merge_patch(&t, &p, "", "v1", "Pod").unwrap_or_default();
        assert_eq!(out["spec"]["containers"][0]["image"], "1");
        assert_eq!(out["spec"]["containers"][1]["image"], "3");
    }

    #[test]
    fn managed_entries() {
        let old = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
        let new = json!({"metadata": {"name": "x"}, "data": {"a": "2"}});
        let out = track_update(Some(&old), &new, "m", None, "v1", "t");
        assert_eq!(out["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
        let same = track_update(Some(&out), &out.clone(), "m2", None, "v1", "t");
        assert_eq!(same["metadata"]["managedFields"].as_array().map(Vec::len), Some(1));
    }
}

//! Server-side apply and managedFields tracking, following
//! structured-merge-diff (`typed/merge.go`, `merge/update.go`; the field set
//! operations of `typed/tofieldset.go`, `typed/remove.go` and
//! `typed/compare.go` are in `typed.rs`) and kube-apiserver's field manager
//! chain (`stripMetaManager`, `managedFieldsUpdater`, `capManagersManager`,
//! `buildManagerInfoManager`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::managed_fields::{
    field_pe, path_string, strip_meta, FieldSet, ManagerEntry, ManagerKey, Managers,
};
use super::schema::{ListNode, MergeSchema, Node};
use super::typed::{compare_objects, ensure_named, field_set_of, item_pe, remove_items, to_set};
use super::{ApplyConflict, PatchError};

/// kube-apiserver's `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;

/// A copy of a configuration value without its nulls (what the typed decode
/// of the merged object keeps).
fn clone_no_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, c)| !c.is_null())
                .map(|(k, c)| (k.clone(), clone_no_nulls(c)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clone_no_nulls).collect()),
        other => other.clone(),
    }
}

/// `Merge` with `ruleKeepRHS`: merge configuration `r` into `t` in place.
fn merge_into(t: &mut Value, r: &Value, node: &Node) -> Result<(), PatchError> {
    if node.is_scalar() {
        *t = clone_no_nulls(r);
        return Ok(());
    }
    match r {
        Value::Object(rm) => {
            let Some(tm) = t.as_object_mut().filter(|_| !node.atomic_map()) else {
                *t = clone_no_nulls(r);
                return Ok(());
            };
            for (k, rv) in rm {
                let child = node.field(k).0;
                if rv.is_null() {
                    // A null keeps a non-empty granular map or list (the
                    // walker visits the live items only); otherwise the
                    // field becomes null, which the typed decode drops.
                    let keep = tm.get(k).is_some_and(|tv| keeps_on_null(tv, child));
                    if !keep {
                        tm.remove(k);
                    }
                    continue;
                }
                match tm.get_mut(k) {
                    Some(tv) => merge_into(tv, rv, child)?,
                    None => {
                        tm.insert(k.clone(), clone_no_nulls(rv));
                    }
                }
            }
        }
        Value::Array(ra) => match (node.list(), t) {
            (Some(l), Value::Array(ta)) if !(ta.is_empty() && ra.is_empty()) => {
                merge_list(ta, ra, l)?
            }
            (_, t) => *t = clone_no_nulls(r),
        },
        other => *t = other.clone(),
    }
    Ok(())
}

fn keeps_on_null(tv: &Value, node: &Node) -> bool {
    if node.is_scalar() {
        return false;
    }
    match tv {
        Value::Object(m) => !m.is_empty() && !node.atomic_map(),
        Value::Array(a) => !a.is_empty() && node.list().is_some(),
        _ => false,
    }
}

/// `visitListItems` of the merging walker: the merged order keeps the live
/// order, with the configuration's items placed in the configuration's order.
fn merge_list(ta: &mut Vec<Value>, ra: &[Value], l: &ListNode) -> Result<(), PatchError> {
    let mut rhs_pes = Vec::with_capacity(ra.len());
    for (i, item) in ra.iter().enumerate() {
        rhs_pes.push(
            item_pe(l, item).map_err(|e| PatchError::Unprocessable(format!("element {i}: {e}")))?,
        );
    }
    let lhs_pes: Vec<String> = match ta.iter().map(|x| item_pe(l, x)).collect() {
        Ok(v) => v,
        Err(_) => {
            *ta = ra.iter().map(clone_no_nulls).collect();
            return Ok(());
        }
    };
    let mut observed_rhs: HashMap<&str, usize> = HashMap::with_capacity(rhs_pes.len());
    for (i, pe) in rhs_pes.iter().enumerate() {
        if observed_rhs.insert(pe.as_str(), i).is_some() {
            return Err(PatchError::Unprocessable(format!(
                "duplicate entries for key {}",
                &pe[2..]
            )));
        }
    }
    let mut observed_lhs: HashMap<&str, usize> = HashMap::with_capacity(lhs_pes.len());
    for (i, pe) in lhs_pes.iter().enumerate() {
        observed_lhs.entry(pe.as_str()).or_insert(i);
    }
    let mut shared_order: VecDeque<&str> = rhs_pes
        .iter()
        .map(String::as_str)
        .filter(|pe| observed_lhs.contains_key(pe))
        .collect();
    let mut next_shared = shared_order.pop_front();
    let mut lhs_items: Vec<Option<Value>> = std::mem::take(ta).into_iter().map(Some).collect();
    let mut merged_rhs: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(lhs_items.len().max(ra.len()));
    let (ll, rl) = (lhs_pes.len(), rhs_pes.len());
    let (mut li, mut ri) = (0, 0);
    let merge_item = |lchild: Option<Value>, r: &Value| -> Result<Value, PatchError> {
        match lchild {
            Some(mut v) => {
                merge_into(&mut v, r, &l.elem)?;
                Ok(v)
            }
            None => Ok(clone_no_nulls(r)),
        }
    };
    while li < ll || ri < rl {
        if li < ll && ri < rl {
            let pe = lhs_pes[li].as_str();
            if pe == rhs_pes[ri] {
                merged_rhs.insert(pe);
                let lchild = observed_lhs.get(pe).and_then(|&i| lhs_items[i].take());
                out.push(merge_item(lchild, &ra[ri])?);
                li += 1;
                ri += 1;
                next_shared = shared_order.pop_front();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < ll {
            let pe = lhs_pes[li].as_str();
            if !observed_rhs.contains_key(pe) {
                if let Some(v) = lhs_items[li].take() {
                    out.push(v);
                }
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rl {
            let pe = rhs_pes[ri].as_str();
            merged_rhs.insert(pe);
            let lchild = observed_lhs.get(pe).and_then(|&i| lhs_items[i].take());
            out.push(merge_item(lchild, &ra[ri])?);
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared_order.pop_front();
            }
        }
    }
    *ta = out;
    Ok(())
}

/// Reset fields of the strategy (`GetResetFields`), as a filter on a set.
fn filter_ignored(set: FieldSet, schema: &MergeSchema, subresource: Option<&str>) -> FieldSet {
    match subresource {
        Some("status") => {
            let mut out = FieldSet::default();
            if let Some(s) = set.children.get("f:status") {
                out.children.insert("f:status".into(), s.clone());
            }
            out
        }
        None if schema.status_subresource => {
            let mut ignored = FieldSet::default();
            ignored.insert(&[field_pe("status")]);
            set.recursive_difference(&ignored)
        }
        _ => set,
    }
}

fn remove_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

/// What part of an applied configuration is merged: on the status
/// subresource only `.status` (plus identity), on the main resource of a kind
/// with a status subresource everything but `.status`.
fn effective_config<'a>(
    applied: &'a Value,
    schema: &MergeSchema,
    subresource: Option<&str>,
) -> Cow<'a, Value> {
    let Some(am) = applied.as_object() else {
        return Cow::Borrowed(applied);
    };
    match subresource {
        Some("status") => {
            let mut m = Map::new();
            for k in ["apiVersion", "kind", "status"] {
                if let Some(v) = am.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            if let Some(meta) = am.get("metadata").and_then(Value::as_object) {
                let mut mm = Map::new();
                for k in ["name", "namespace"] {
                    if let Some(v) = meta.get(k) {
                        mm.insert(k.into(), v.clone());
                    }
                }
                m.insert("metadata".into(), Value::Object(mm));
            }
            Cow::Owned(Value::Object(m))
        }
        None if schema.status_subresource && am.contains_key("status") => {
            let mut m = am.clone();
            m.remove("status");
            Cow::Owned(Value::Object(m))
        }
        _ => Cow::Borrowed(applied),
    }
}

/// `Updater.prune` with `addBackOwnedItems` and `addBackDanglingItems`:
/// remove what the applier owned last time, no longer applies, and nobody
/// else owns.
fn prune(merged: Value, managers: &Managers, last: &FieldSet, root: &Node) -> Value {
    let last_e = ensure_named(last, root);
    let mut pruned = merged.clone();
    remove_items(&mut pruned, &last_e, root);

    let mut managed = FieldSet::default();
    for e in &managers.entries {
        managed.union_with(&e.set);
    }
    let managed_e = ensure_named(&managed, root);
    let merged_set = ensure_named(&field_set_of(&merged, root), root);
    let mut keep = ensure_named(&field_set_of(&pruned, root), root);
    keep.union_with(&managed_e);
    let mut pruned2 = merged.clone();
    remove_items(&mut pruned2, &merged_set.difference(&keep), root);

    let pruned2_set = ensure_named(&field_set_of(&pruned2, root), root);
    let dangling = merged_set.difference(&pruned2_set).intersection(&last_e);
    let mut out = merged;
    remove_items(&mut out, &dangling, root);
    out
}

/// Server-side apply (`application/apply-patch+yaml`, body already parsed
/// to JSON); `live` is `None` on create, `now` an RFC 3339 time.
///
/// Follows structured-merge-diff's `Updater.Apply` and kube-apiserver's field
/// manager chain: merges the configuration into the live object per the
/// schema (list-maps by keys, sets by value, atomic lists/maps replaced),
/// prunes what this manager applied before and omits now unless another
/// manager owns it, reports conflicts with fields of other managers whose
/// value changes (`Err(Conflicts)` unless `force`, which moves ownership),
/// and returns the new object with `metadata.managedFields` rewritten (one
/// entry per manager/operation/subresource, empty entries dropped, entries
/// sorted like kube-apiserver, the applier's `time` moved to `now` only when
/// the object changed, at most 10 Update entries).
///
/// `subresource = Some("status")` applies only `.status`; on the main
/// resource `.status` is ignored when [`MergeSchema::has_status_subresource`].
/// Errors: `Invalid` when `apiVersion`/`kind` are missing or the body carries
/// `metadata.managedFields`; `Unprocessable` for list items missing their
/// keys or duplicated. The server checks that `metadata.name` matches the
/// URL and that the apiVersion/kind match the resource.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    schema: &MergeSchema,
    now: &str,
) -> Result<Value, PatchError> {
    let Some(am) = applied.as_object() else {
        return Err(PatchError::Invalid(
            "apply patch must be a JSON/YAML object".into(),
        ));
    };
    let api_version = match am.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => {
            return Err(PatchError::Invalid(
                "apiVersion must be set in apply patch".into(),
            ))
        }
    };
    if !matches!(am.get("kind").and_then(Value::as_str), Some(k) if !k.is_empty()) {
        return Err(PatchError::Invalid(
            "kind must be set in apply patch".into(),
        ));
    }
    if am
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(PatchError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let root: &Node = &schema.root;
    let config = effective_config(applied, schema, subresource);

    let mut live_obj = match live {
        Some(v) => v.clone(),
        None => Value::Object(Map::new()),
    };
    remove_managed_fields(&mut live_obj);
    let mut managers = live.map(Managers::decode).unwrap_or_default();

    let mut new = live_obj.clone();
    merge_into(&mut new, &config, root)?;
    let mut config_set = FieldSet::default();
    to_set(&config, root, &mut config_set, &mut Vec::new(), true)?;
    let config_set = filter_ignored(config_set, schema, subresource);

    let key = ManagerKey {
        manager: manager.to_string(),
        operation: "Apply".into(),
        subresource: subresource.unwrap_or("").to_string(),
        api_version: String::new(),
    };
    let (idx, last) = match managers.find(&key) {
        Some(i) => {
            let last = std::mem::replace(&mut managers.entries[i].set, config_set.clone());
            managers.entries[i].api_version = api_version.clone();
            (i, Some(last))
        }
        None => {
            managers.entries.push(ManagerEntry {
                key: key.clone(),
                api_version: api_version.clone(),
                time: None,
                set: config_set.clone(),
            });
            (managers.entries.len() - 1, None)
        }
    };
    if let Some(last) = &last {
        if !last.difference(&config_set).is_empty() {
            new = prune(new, &managers, last, root);
        }
    }

    // Updater.update: other managers lose what changed (conflicts unless
    // forced) and what was removed.
    let cmp = compare_objects(live.map(|_| &live_obj), &new, schema);
    let mut changed = cmp.modified;
    changed.union_with(&cmp.added);
    let changed = filter_ignored(changed, schema, subresource);
    let mut conflicts: Vec<(usize, FieldSet)> = Vec::new();
    for (i, e) in managers.entries.iter().enumerate() {
        if i == idx {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((i, c));
        }
    }
    if !force && !conflicts.is_empty() {
        let mut list: Vec<(String, ApplyConflict)> = Vec::new();
        for (i, c) in &conflicts {
            let e = &managers.entries[*i];
            for p in c.paths() {
                list.push((
                    e.key.manager.clone(),
                    ApplyConflict {
                        manager: e.key.manager.clone(),
                        field: path_string(&p),
                        printed_manager: Managers::print_manager(&e.key, &e.api_version),
                    },
                ));
            }
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        return Err(PatchError::Conflicts(
            list.into_iter().map(|(_, c)| c).collect(),
        ));
    }
    for (i, c) in &conflicts {
        managers.entries[*i].set = managers.entries[*i].set.difference(c);
    }
    if !cmp.removed.is_empty() {
        for (i, e) in managers.entries.iter_mut().enumerate() {
            if i != idx {
                e.set = e.set.difference(&cmp.removed);
            }
        }
    }
    strip_meta(&mut managers.entries[idx].set);
    // managedFieldsUpdater: the time moves only when the object changed.
    if new != live_obj {
        managers.entries[idx].time = Some(now.to_string());
    }
    managers.drop_empty();
    managers.cap_updates(MAX_UPDATE_MANAGERS);
    managers.encode_into(&mut new);
    Ok(new)
}

/// managedFields bookkeeping for non-apply writes (create, update, JSON /
/// merge / strategic patches): call it with the object before (`None` on
/// create) and the object about to be stored. The fields that changed
/// become owned by `manager` with operation `Update` (apiVersion taken from
/// the object) and are taken away from every other entry, Apply entries
/// included (kube-apiserver forces Updates). Removed fields leave every
/// entry. The manager's `time` moves to `now` only when it took fields.
/// The managedFields sent in `new` are used as the starting point when
/// non-empty (clients may rewrite them); `[{}]` clears them all. With a
/// status subresource, `.status` changes on the main resource are not
/// recorded and `subresource = Some("status")` records only `.status`.
/// Creates are compared with the kind's Go zero value, so "." markers match
/// what kube-apiserver writes.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    schema: &MergeSchema,
    now: &str,
) -> Value {
    let mut out = new.clone();
    let new_mf = new.get("metadata").and_then(|m| m.get("managedFields"));
    // `[{}]` resets managedFields (documented way to strip them).
    if let Some(Value::Array(a)) = new_mf {
        if a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty) {
            remove_managed_fields(&mut out);
            return out;
        }
    }
    let use_new = subresource.is_none() && matches!(new_mf, Some(Value::Array(a)) if !a.is_empty());
    let mut managers = if use_new {
        Managers::decode(new)
    } else {
        old.map(Managers::decode).unwrap_or_default()
    };
    remove_managed_fields(&mut out);

    let cmp = compare_objects(old, &out, schema);
    let removed = filter_ignored(cmp.removed, schema, subresource);
    let mut changed = cmp.modified;
    changed.union_with(&cmp.added);
    let mut changed = filter_ignored(changed, schema, subresource);
    for e in managers.entries.iter_mut() {
        e.set = e.set.difference(&changed);
        if !removed.is_empty() {
            e.set = e.set.difference(&removed);
        }
    }
    strip_meta(&mut changed);
    if !changed.is_empty() {
        let api_version = new
            .get("apiVersion")
            .or_else(|| old.and_then(|o| o.get("apiVersion")))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = ManagerKey {
            manager: manager.to_string(),
            operation: "Update".into(),
            subresource: subresource.unwrap_or("").to_string(),
            api_version: api_version.clone(),
        };
        match managers.find(&key) {
            Some(i) => {
                managers.entries[i].set.union_with(&changed);
                managers.entries[i].time = Some(now.to_string());
            }
            None => managers.entries.push(ManagerEntry {
                key,
                api_version,
                time: Some(now.to_string()),
                set: changed,
            }),
        }
    }
    managers.drop_empty();
    managers.cap_updates(MAX_UPDATE_MANAGERS);
    managers.encode_into(&mut out);
    out
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

//! Server-side apply and managedFields tracking, following
//! structured-merge-diff (`typed/merge.go`, `typed/tofieldset.go`,
//! `typed/remove.go`, `typed/compare.go`, `merge/update.go`) and
//! kube-apiserver's field manager chain (`stripMetaManager`,
//! `managedFieldsUpdater`, `capManagersManager`, `buildManagerInfoManager`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::managed_fields::{
    field_pe, path_string, strip_meta, FieldSet, ManagerEntry, ManagerKey, Managers,
};
use super::schema::{ListNode, ListType, MergeSchema, Node};
use super::{ApplyConflict, PatchError};

/// kube-apiserver's `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;

/// Path element of a list item (`listItemToPathElement`): `k:{..}` for
/// list-maps (with key defaults), `v:..` for sets.
pub(crate) fn item_pe(l: &ListNode, item: &Value) -> Result<String, String> {
    match &l.ssa {
        ListType::Map(keys) => {
            let Value::Object(m) = item else {
                return Err("associative list with keys has an element that is not a map".into());
            };
            let mut k = Map::new();
            for key in keys {
                match m.get(key) {
                    Some(v) if !v.is_null() => {
                        k.insert(key.clone(), v.clone());
                    }
                    _ => match l.key_defaults.iter().find(|(n, _)| n == key) {
                        Some((_, d)) => {
                            k.insert(key.clone(), d.clone());
                        }
                        None => {
                            return Err(format!(
                                "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                            ))
                        }
                    },
                }
            }
            Ok(format!("k:{}", Value::Object(k)))
        }
        ListType::Set => Ok(format!("v:{item}")),
        ListType::Atomic => Err("atomic list items have no path element".into()),
    }
}

/// `ToFieldSet`: the fields a value sets. `strict` fails on list items that
/// lack their keys or are duplicated (as for an applied configuration);
/// otherwise such items are skipped.
pub(crate) fn to_set(
    v: &Value,
    node: &Node,
    out: &mut FieldSet,
    path: &mut Vec<String>,
    strict: bool,
) -> Result<(), PatchError> {
    if node.is_scalar() {
        out.member = true;
        return Ok(());
    }
    match v {
        Value::Object(m) => {
            if node.atomic_map() {
                out.member = true;
                return Ok(());
            }
            for (k, cv) in m {
                let (cn, declared) = node.field(k);
                let pe = field_pe(k);
                path.push(pe.clone());
                let c = out.child_mut(&pe);
                let r = to_set(cv, cn, c, path, strict);
                if !declared {
                    c.member = true;
                }
                let empty = c.is_empty();
                path.pop();
                r?;
                if empty {
                    out.children.remove(&pe);
                }
            }
        }
        Value::Array(a) => match node.list() {
            None => out.member = true,
            Some(l) => {
                for (i, item) in a.iter().enumerate() {
                    let pe = match item_pe(l, item) {
                        Ok(pe) => pe,
                        Err(e) if strict => {
                            return Err(PatchError::Unprocessable(format!(
                                "{}: element {i}: {e}",
                                path_string(path)
                            )))
                        }
                        Err(_) => continue,
                    };
                    if out.children.get(&pe).is_some_and(|c| c.member) {
                        if strict {
                            return Err(PatchError::Unprocessable(format!(
                                "{}: duplicate entries for key {}",
                                path_string(path),
                                &pe[2..]
                            )));
                        }
                        continue;
                    }
                    path.push(pe.clone());
                    let c = out.child_mut(&pe);
                    let r = to_set(item, &l.elem, c, path, strict);
                    c.member = true;
                    path.pop();
                    r?;
                }
            }
        },
        Value::Null => {
            let granular = matches!(node, Node::Map(m) if !m.atomic) || node.list().is_some();
            if !granular {
                out.member = true;
            }
        }
        _ => out.member = true,
    }
    Ok(())
}

fn field_set_of(v: &Value, node: &Node) -> FieldSet {
    let mut s = FieldSet::default();
    // Non-strict never fails.
    let _ = to_set(v, node, &mut s, &mut Vec::new(), false);
    s
}

/// `EnsureNamedFieldsAreMembers`: declared struct fields that have children
/// become members too.
fn ensure_named(s: &FieldSet, node: &Node) -> FieldSet {
    let mut out = FieldSet {
        member: s.member,
        children: Default::default(),
    };
    let struct_like = matches!(node, Node::Map(_) | Node::Loose | Node::JsonSchemaProps);
    for (pe, c) in &s.children {
        let mut cc;
        if let Some(f) = pe.strip_prefix("f:") {
            let (cn, declared) = node.field(f);
            cc = ensure_named(c, cn);
            if struct_like && declared {
                cc.member = true;
            }
        } else {
            cc = ensure_named(c, node.smp_list().1);
        }
        out.children.insert(pe.clone(), cc);
    }
    out
}

/// `RemoveItems`: remove every member path of `set` from `v` (a member
/// removes the whole subtree). Returns true when `v` itself ends up empty
/// (structured-merge-diff returns nil there; the typed decode that follows
/// in kube-apiserver drops such fields, so the caller removes them).
fn remove_items(v: &mut Value, set: &FieldSet, node: &Node) -> bool {
    if node.is_scalar() {
        return false;
    }
    match v {
        Value::Object(m) => {
            if m.is_empty() || node.atomic_map() {
                return true;
            }
            for (pe, c) in &set.children {
                let Some(f) = pe.strip_prefix("f:") else {
                    continue;
                };
                if c.member {
                    m.remove(f);
                    continue;
                }
                if let Some(cv) = m.get_mut(f) {
                    if remove_items(cv, c, node.field(f).0) {
                        m.remove(f);
                    }
                }
            }
            m.is_empty()
        }
        Value::Array(a) => {
            let Some(l) = node.list() else { return true };
            if a.is_empty() {
                return true;
            }
            a.retain_mut(|item| {
                let Ok(pe) = item_pe(l, item) else {
                    return true;
                };
                match set.children.get(&pe) {
                    Some(c) if c.member => false,
                    Some(c) => !remove_items(item, c, &l.elem),
                    None => true,
                }
            });
            a.is_empty()
        }
        Value::Null => true,
        _ => false,
    }
}

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

/// `Compare`'s three sets.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

enum Shape<'a> {
    Leaf,
    Map,
    List(&'a ListNode),
}

fn shape<'a>(l: Option<&Value>, r: Option<&Value>, node: &'a Node) -> Shape<'a> {
    if node.is_scalar() {
        return Shape::Leaf;
    }
    let objish = |v: Option<&Value>| matches!(v, None | Some(Value::Null) | Some(Value::Object(_)));
    let arrish = |v: Option<&Value>| matches!(v, None | Some(Value::Null) | Some(Value::Array(_)));
    let empty = |v: Option<&Value>| match v {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    let any_obj = matches!(l, Some(Value::Object(_))) || matches!(r, Some(Value::Object(_)));
    let any_arr = matches!(l, Some(Value::Array(_))) || matches!(r, Some(Value::Array(_)));
    if any_obj && objish(l) && objish(r) {
        if node.atomic_map() || (empty(l) && empty(r)) {
            return Shape::Leaf;
        }
        return Shape::Map;
    }
    if any_arr && arrish(l) && arrish(r) {
        return match node.list() {
            Some(list) if !(empty(l) && empty(r)) => Shape::List(list),
            _ => Shape::Leaf,
        };
    }
    Shape::Leaf
}

fn compare(
    l: Option<&Value>,
    r: Option<&Value>,
    sk: Option<&Value>,
    node: &Node,
    path: &mut Vec<String>,
    c: &mut Comparison,
) {
    if l.is_none() && r.is_none() {
        return;
    }
    match shape(l, r, node) {
        Shape::Leaf => {
            match (l, r) {
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                (Some(a), Some(b)) if a != b => c.modified.insert(path),
                _ => {}
            }
            return;
        }
        Shape::Map => {
            let empty = Map::new();
            let lm = l.and_then(Value::as_object).unwrap_or(&empty);
            let rm = r.and_then(Value::as_object).unwrap_or(&empty);
            let skm = sk.and_then(Value::as_object);
            let skv = |k: &str| skm.and_then(|m| m.get(k));
            for (k, lv) in lm {
                let rv = rm.get(k).or_else(|| skv(k));
                path.push(field_pe(k));
                compare(Some(lv), rv, skv(k), node.field(k).0, path, c);
                path.pop();
            }
            for (k, rv) in rm {
                if lm.contains_key(k) {
                    continue;
                }
                path.push(field_pe(k));
                compare(skv(k), Some(rv), skv(k), node.field(k).0, path, c);
                path.pop();
            }
        }
        Shape::List(list) => {
            let la: &[Value] = l
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let ra: &[Value] = r
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let lp: Result<Vec<String>, String> = la.iter().map(|x| item_pe(list, x)).collect();
            let rp: Result<Vec<String>, String> = ra.iter().map(|x| item_pe(list, x)).collect();
            let (Ok(lp), Ok(rp)) = (lp, rp) else {
                if l != r {
                    c.modified.insert(path);
                }
                return;
            };
            let mut rindex: HashMap<&str, usize> = HashMap::with_capacity(rp.len());
            for (i, pe) in rp.iter().enumerate() {
                rindex.entry(pe.as_str()).or_insert(i);
            }
            let mut seen: HashSet<&str> = HashSet::with_capacity(lp.len());
            for (i, pe) in lp.iter().enumerate() {
                if !seen.insert(pe.as_str()) {
                    continue;
                }
                path.push(pe.clone());
                let rv = rindex.get(pe.as_str()).map(|&j| &ra[j]);
                compare(Some(&la[i]), rv, None, &list.elem, path, c);
                path.pop();
            }
            for (j, pe) in rp.iter().enumerate() {
                if seen.contains(pe.as_str()) || rindex.get(pe.as_str()) != Some(&j) {
                    continue;
                }
                path.push(pe.clone());
                compare(None, Some(&ra[j]), None, &list.elem, path, c);
                path.pop();
            }
        }
    }
    // postItemHook for non-leaf nodes.
    if !path.is_empty() {
        match (l, r) {
            (None, Some(_)) => c.added.insert(path),
            (Some(_), None) => c.removed.insert(path),
            _ => {}
        }
    }
}

/// Compare two whole objects (old may be None for a create: the kind's zero
/// value is used, as kube-apiserver compares against a new empty object).
pub(crate) fn compare_objects(
    old: Option<&Value>,
    new: &Value,
    schema: &MergeSchema,
) -> Comparison {
    let mut c = Comparison::default();
    let empty: &Value = &schema.empty;
    let old = old.unwrap_or(empty);
    compare(
        Some(old),
        Some(new),
        Some(empty),
        &schema.root,
        &mut Vec::new(),
        &mut c,
    );
    c
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
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2026-11-22T10:00:00Z";
    const T2: &str = "2026-11-22T11:00:00Z";
    const T3: &str = "2026-11-22T12:00:00Z";

    fn deploy() -> MergeSchema {
        MergeSchema::builtin("apps", "v1", "Deployment")
    }

    fn dep(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn ok<T>(r: Result<T, PatchError>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn entry(obj: &Value, manager: &str) -> Value {
        entries(obj)
            .into_iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or(Value::Null)
    }

    fn simple_config() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                                             "ports": [{"containerPort": 80}]}]}}}})
    }

    #[test]
    fn apply_creates_with_real_fieldsv1_format() {
        let out = ok(server_side_apply(
            None,
            &simple_config(),
            "kube-incident",
            false,
            None,
            &deploy(),
            T1,
        ));
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.25"
        );
        let mf = entries(&out);
        assert_eq!(mf.len(), 1);
        // The shape kube-apiserver returns for `kubectl apply --server-side`
        // of this manifest: declared struct fields carry no ".", list-map
        // items do, labels entries are leaves, LabelSelector is atomic and the
        // port key includes the defaulted protocol.
        assert_eq!(
            mf[0],
            json!({"manager": "kube-incident", "operation": "Apply", "apiVersion": "apps/v1",
                "time": T1, "fieldsType": "FieldsV1", "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}}}}}}}}}})
        );
    }

    #[test]
    fn reapply_same_config_is_a_noop_and_keeps_the_time() {
        let first = ok(server_side_apply(
            None,
            &simple_config(),
            "op",
            false,
            None,
            &deploy(),
            T1,
        ));
        let second = ok(server_side_apply(
            Some(&first),
            &simple_config(),
            "op",
            false,
            None,
            &deploy(),
            T2,
        ));
        // managedFieldsUpdater only moves the time when the object changed.
        assert_eq!(second, first);
    }

    #[test]
    fn two_managers_own_different_env_of_the_same_container() {
        let a = dep(json!({"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "X", "value": "1"}]}]}}}));
        let b = dep(json!({"template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": "Y", "value": "2"}]}]}}}));
        let s = deploy();
        let o1 = ok(server_side_apply(None, &a, "a", false, None, &s, T1));
        let o2 = ok(server_side_apply(Some(&o1), &b, "b", false, None, &s, T2));
        assert_eq!(
            o2["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
        );
        let fb = &entry(&o2, "b")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"app\"}"];
        assert_eq!(
            fb,
            &json!({".": {}, "f:env": {"k:{\"name\":\"Y\"}": {".": {}, "f:name": {}, "f:value": {}}}, "f:name": {}})
        );
        // A re-applies without X: X goes, Y (owned by b) stays, the shared
        // container item stays.
        let a2 =
            dep(json!({"template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}));
        let o3 = ok(server_side_apply(Some(&o2), &a2, "a", false, None, &s, T3));
        assert_eq!(
            o3["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "app:1", "env": [{"name": "Y", "value": "2"}]}])
        );
    }

    #[test]
    fn dropped_field_is_removed_unless_another_manager_owns_it() {
        let s = MergeSchema::builtin("", "v1", "ConfigMap");
        let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
        let o1 = ok(server_side_apply(
            None,
            &cm(json!({"a": "1", "b": "2"})),
            "a",
            false,
            None,
            &s,
            T1,
        ));
        let o2 = ok(server_side_apply(
            Some(&o1),
            &cm(json!({"a": "1"})),
            "a",
            false,
            None,
            &s,
            T2,
        ));
        assert_eq!(o2["data"], json!({"a": "1"}));

        // Same, but "b" is co-owned by another applier with the same value.
        let shared = ok(server_side_apply(
            Some(&o1),
            &cm(json!({"b": "2"})),
            "b",
            false,
            None,
            &s,
            T2,
        ));
        assert_eq!(
            entry(&shared, "b")["fieldsV1"],
            json!({"f:data": {"f:b": {}}})
        );
        // b's apply changed nothing: its entry has no time yet (real behaviour).
        assert!(entry(&shared, "b").get("time").is_none());
        let o3 = ok(server_side_apply(
            Some(&shared),
            &cm(json!({"a": "1"})),
            "a",
            false,
            None,
            &s,
            T3,
        ));
        assert_eq!(o3["data"], json!({"a": "1", "b": "2"}));
        assert_eq!(entry(&o3, "a")["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    }

    #[test]
    fn conflict_with_applier_then_force_moves_ownership() {
        let s = deploy();
        let o1 = ok(server_side_apply(
            None,
            &dep(json!({"replicas": 2})),
            "A",
            false,
            None,
            &s,
            T1,
        ));
        let err = server_side_apply(
            Some(&o1),
            &dep(json!({"replicas": 3})),
            "B",
            false,
            None,
            &s,
            T2,
        );
        match err {
            Err(PatchError::Conflicts(c)) => {
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].manager, "A");
                assert_eq!(c[0].field, ".spec.replicas");
                // printManager prints appliers without version.
                assert_eq!(
                    PatchError::Conflicts(c).to_string(),
                    "Apply failed with 1 conflict: conflict with \"A\": .spec.replicas"
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        // Same value: no conflict, shared ownership.
        let shared = ok(server_side_apply(
            Some(&o1),
            &dep(json!({"replicas": 2})),
            "B",
            false,
            None,
            &s,
            T2,
        ));
        assert_eq!(
            entry(&shared, "A")["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            entry(&shared, "B")["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        // Force: B takes the field, A's entry (now empty) disappears.
        let forced = ok(server_side_apply(
            Some(&o1),
            &dep(json!({"replicas": 3})),
            "B",
            true,
            None,
            &s,
            T2,
        ));
        assert_eq!(forced["spec"]["replicas"], 3);
        assert_eq!(entry(&forced, "A"), Value::Null);
        assert_eq!(
            entry(&forced, "B")["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn conflict_with_updater_names_its_api_version_and_lists_all_fields() {
        let s = deploy();
        let o1 = ok(server_side_apply(
            None,
            &dep(json!({"replicas": 2, "paused": false})),
            "op",
            false,
            None,
            &s,
            T1,
        ));
        // kubectl scale / edit (an Update) changes fields the applier owns...
        let mut edited = o1.clone();
        edited["spec"]["replicas"] = json!(5);
        edited["spec"]["paused"] = json!(true);
        let o2 = track_update(Some(&o1), &edited, "kubectl-edit", None, &s, T2);
        // ...and silently takes them over.
        assert_eq!(entry(&o2, "op"), Value::Null);
        assert_eq!(entry(&o2, "kubectl-edit")["operation"], "Update");
        assert_eq!(
            entry(&o2, "kubectl-edit")["fieldsV1"],
            json!({"f:spec": {"f:paused": {}, "f:replicas": {}}})
        );
        // Our next apply of other values conflicts.
        let err = server_side_apply(
            Some(&o2),
            &dep(json!({"replicas": 2})),
            "op",
            false,
            None,
            &s,
            T3,
        );
        let Err(PatchError::Conflicts(c)) = err else {
            panic!("expected a conflict")
        };
        assert_eq!(
            PatchError::Conflicts(c).to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
        );
        let err = server_side_apply(
            Some(&o2),
            &dep(json!({"replicas": 2, "paused": false})),
            "op",
            false,
            None,
            &s,
            T3,
        );
        let Err(PatchError::Conflicts(c)) = err else {
            panic!("expected conflicts")
        };
        assert_eq!(
            PatchError::Conflicts(c).to_string(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using apps/v1:\n- .spec.paused\n- .spec.replicas"
        );
    }

    #[test]
    fn status_subresource_apply_only_touches_status() {
        let s = deploy();
        let o1 = ok(server_side_apply(
            None,
            &dep(json!({"replicas": 2})),
            "op",
            false,
            None,
            &s,
            T1,
        ));
        let mut body = dep(json!({"replicas": 9}));
        body["status"] =
            json!({"readyReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
        let o2 = ok(server_side_apply(
            Some(&o1),
            &body,
            "ctrl",
            false,
            Some("status"),
            &s,
            T2,
        ));
        assert_eq!(o2["spec"]["replicas"], 2);
        assert_eq!(o2["status"]["readyReplicas"], 2);
        let e = entry(&o2, "ctrl");
        assert_eq!(e["subresource"], "status");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
                                "f:readyReplicas": {}}})
        );
        // A main-resource apply ignores .status for kinds with a status subresource.
        let mut main = dep(json!({"replicas": 2}));
        main["status"] = json!({"readyReplicas": 7});
        let o3 = ok(server_side_apply(
            Some(&o2),
            &main,
            "op",
            false,
            None,
            &s,
            T3,
        ));
        assert_eq!(o3["status"]["readyReplicas"], 2);
        assert_eq!(
            entry(&o3, "op")["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn apply_validation_errors() {
        let s = deploy();
        let mut c = simple_config();
        c["metadata"]["managedFields"] = json!([]);
        assert!(matches!(
            server_side_apply(None, &c, "m", false, None, &s, T1),
            Err(PatchError::Invalid(_))
        ));
        let no_kind = json!({"apiVersion": "apps/v1", "metadata": {"name": "web"}});
        assert!(matches!(
            server_side_apply(None, &no_kind, "m", false, None, &s, T1),
            Err(PatchError::Invalid(_))
        ));
        let no_key = dep(json!({"template": {"spec": {"containers": [{"image": "x"}]}}}));
        let err = server_side_apply(None, &no_key, "m", false, None, &s, T1);
        match err {
            Err(PatchError::Unprocessable(m)) => {
                assert!(m.contains("omits key field \"name\""), "{m}")
            }
            other => panic!("expected Unprocessable, got {other:?}"),
        }
        let dup =
            dep(json!({"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}));
        assert!(server_side_apply(None, &dup, "m", false, None, &s, T1).is_err());
    }

    #[test]
    fn track_update_on_create_matches_kubectl_create_fields() {
        let s = deploy();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
        let out = track_update(None, &obj, "kubectl-create", None, &s, T1);
        let e = entry(&out, "kubectl-create");
        assert_eq!(e["operation"], "Update");
        assert_eq!(e["apiVersion"], "apps/v1");
        assert_eq!(e["time"], T1);
        // Compared with the Go zero value of a Deployment: maps absent from it
        // (labels, rollingUpdate, list items) get ".", those present in it
        // (spec, strategy, template.metadata) do not.
        assert_eq!(
            e["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                    "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        // An update that changes nothing keeps entries and time.
        let same = track_update(Some(&out), &out, "kubectl-create", None, &s, T2);
        assert_eq!(same, out);
        // The real reset: managedFields: [{}] strips them.
        let mut reset = out.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        let r = track_update(Some(&out), &reset, "kubectl-patch", None, &s, T2);
        assert!(r["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn kubectl_rollout_undo_json_patch_is_tracked_as_update() {
        let s = deploy();
        let live = ok(server_side_apply(
            None,
            &simple_config(),
            "op",
            false,
            None,
            &s,
            T1,
        ));
        // kubectl rollout undo sends a JSON patch replacing the template and
        // the annotations (getDeploymentPatch in kubectl's rollback.go).
        let undo = json!([
            {"op": "replace", "path": "/spec/template", "value": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.24", "ports": [{"containerPort": 80}]}]}}},
            {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "1"}}
        ]);
        let mut patched = live.clone();
        // /metadata/annotations does not exist yet: "replace" fails like in
        // kube-apiserver, kubectl then gets a 422.
        assert!(super::super::json_patch(&mut patched, &undo).is_err());
        patched = live.clone();
        patched["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        ok(super::super::json_patch(&mut patched, &undo));
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.24"
        );
        let out = track_update(Some(&live), &patched, "kubectl-rollout", None, &s, T2);
        let e = entry(&out, "kubectl-rollout");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}},
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}})
        );
        // The applier lost only the image.
        let op = entry(&out, "op");
        assert!(
            op["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
                ["k:{\"name\":\"app\"}"]
                .get("f:image")
                .is_none()
        );
        assert_eq!(op["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    }

    #[test]
    fn crd_schema_list_map_merges_items_across_managers() {
        let schema = MergeSchema::from_openapi_v3(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "steps": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {
                              "name": {"type": "string"}, "action": {"type": "string"}}}},
                "tags": {"type": "array", "items": {"type": "string"}}}}}}));
        let cr = |spec: Value| {
            json!({"apiVersion": "ops.example.com/v1alpha1", "kind": "Runbook",
                                      "metadata": {"name": "r"}, "spec": spec})
        };
        let o1 = ok(server_side_apply(
            None,
            &cr(json!({"steps": [{"name": "a", "action": "x"}], "tags": ["t1"]})),
            "m1",
            false,
            None,
            &schema,
            T1,
        ));
        let o2 = ok(server_side_apply(
            Some(&o1),
            &cr(json!({"steps": [{"name": "b", "action": "y"}]})),
            "m2",
            false,
            None,
            &schema,
            T2,
        ));
        assert_eq!(
            o2["spec"]["steps"],
            json!([{"name": "a", "action": "x"}, {"name": "b", "action": "y"}])
        );
        assert_eq!(
            entry(&o2, "m1")["fieldsV1"],
            json!({"f:spec": {"f:steps": {"k:{\"name\":\"a\"}": {".": {}, "f:action": {}, "f:name": {}}}, "f:tags": {}}})
        );
        // Atomic list: another manager replacing it conflicts.
        let err = server_side_apply(
            Some(&o2),
            &cr(json!({"tags": ["t2"]})),
            "m2",
            false,
            None,
            &schema,
            T3,
        );
        let Err(PatchError::Conflicts(c)) = err else {
            panic!("expected conflict")
        };
        assert_eq!(c[0].field, ".spec.tags");
    }

    #[test]
    fn merge_list_keeps_live_order_and_places_config_items() {
        // structured-merge-diff merge.go: live-only items keep their place,
        // new config items follow the config order.
        let l = ListNode {
            ssa: ListType::Set,
            smp: super::super::schema::SmpList::Replace,
            elem: std::sync::Arc::new(Node::Scalar),
            key_defaults: Vec::new(),
        };
        let mut live = vec![json!("a"), json!("b"), json!("c")];
        ok(merge_list(&mut live, &[json!("d"), json!("b")], &l));
        assert_eq!(live, vec![json!("a"), json!("d"), json!("b"), json!("c")]);
    }
}

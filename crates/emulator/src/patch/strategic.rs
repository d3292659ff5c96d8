//! Strategic merge patch, transcribed from
//! `k8s.io/apimachinery/pkg/util/strategicpatch/patch.go` (`mergeMap`,
//! `mergeSlice`, `mergePatchIntoOriginal`, `normalizeElementOrder`...) with
//! the options kube-apiserver uses (`MergeParallelList` and
//! `IgnoreUnmatchedNulls`).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::schema::{MergeSchema, Node, SmpList};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Strategic merge patch (`application/strategic-merge-patch+json`).
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    schema: &MergeSchema,
) -> Result<Value, PatchError> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Invalid("invalid JSON document".into()));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::Invalid("invalid JSON document".into())),
    };
    merge_map(original, p.clone(), &schema.root)
}

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::Invalid(msg.into())
}

fn unprocessable(msg: impl Into<String>) -> PatchError {
    PatchError::Unprocessable(msg.into())
}

/// A patch value inserted where the original has nothing. kube-apiserver
/// inserts it verbatim and then decodes into the Go type, which drops nulls
/// and unknown `$`-directive keys; we do that cleanup here (and drop list
/// items that only ask for their own deletion).
fn sanitize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(sanitize_map(m)),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|x| x.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
                .map(sanitize)
                .collect(),
        ),
        other => other,
    }
}

fn sanitize_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !k.starts_with('$'))
        .map(|(k, v)| (k, sanitize(v)))
        .collect()
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: &Node,
) -> Result<Value, PatchError> {
    if let Some(d) = patch.remove(DIRECTIVE) {
        return match d.as_str() {
            Some("replace") => Ok(Value::Object(sanitize_map(patch))),
            Some("delete") => Ok(Value::Object(Map::new())),
            _ => Err(unprocessable(format!(
                "Unknown patch type: {d} in map: {}",
                Value::Object(patch)
            ))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_patch_into_original(&mut original, &mut patch, node)?;

    for (k, pv) in patch {
        let (is_delete_list, key) = match k.strip_prefix(DELETE_FROM_PRIMITIVE) {
            Some(f) => (true, f.to_string()),
            None => (false, k),
        };
        if pv.is_null() {
            original.remove(&key);
            continue;
        }
        let child = node.field(&key).0;
        let Some(ov) = original.remove(&key) else {
            if !is_delete_list {
                original.insert(key, sanitize(pv));
            }
            continue;
        };
        let merged = match (ov, pv) {
            (Value::Object(om), Value::Object(pm)) => merge_map(om, pm, child)?,
            (Value::Array(oa), Value::Array(pa)) => {
                Value::Array(merge_slice_handler(oa, pa, child, is_delete_list)?)
            }
            (_, pv) => sanitize(pv),
        };
        original.insert(key, merged);
    }
    Ok(Value::Object(original))
}

/// `applyRetainKeysDirective`.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(rk) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = rk else {
        return Err(bad("invalid patch format of retainKeys"));
    };
    let keep: HashSet<&str> = list.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !keep.contains(k.as_str()) {
            return Err(bad("invalid patch format of retainKeys"));
        }
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

fn merge_key_of(child: &Node) -> (bool, Option<String>) {
    match child.smp_list().0 {
        SmpList::Merge(k) => (true, k.clone()),
        SmpList::Replace => (false, None),
    }
}

/// `mergePatchIntoOriginal`: process `$setElementOrder/<field>` lists.
fn merge_patch_into_original(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: &Node,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad("invalid patch format of setElementOrder list"));
        };
        let field = key[SET_ELEMENT_ORDER.len()..].to_string();
        if field.is_empty() {
            return Err(bad("invalid patch format of setElementOrder list"));
        }
        let child = node.field(&field).0;
        let (_, merge_key) = merge_key_of(child);
        let mk = merge_key.as_deref();
        let original_list = match original.get(&field) {
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err(unprocessable(format!("expected a list for {field}"))),
            None => None,
        };
        let patch_list = match patch.remove(&field) {
            Some(Value::Array(a)) => Some(a),
            Some(_) => return Err(unprocessable(format!("expected a list for {field}"))),
            None => None,
        };
        validate_patch_with_set_order_list(patch_list.as_deref().unwrap_or(&[]), &order, mk)?;
        let server_order = match (&original_list, &patch_list, mk) {
            (Some(o), Some(p), Some(k))
                if merge_key_of(child).0 && o.iter().all(Value::is_object) =>
            {
                aliased_original_view(o, p, k)
            }
            (Some(o), _, _) => o.clone(),
            (None, _, _) => Vec::new(),
        };
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => match sanitize(Value::Array(p)) {
                Value::Array(a) => a,
                _ => Vec::new(),
            },
            (Some(o), Some(p)) => merge_slice_handler(o, p, child, false)?,
            (None, None) => continue,
        };
        let is_map = merged
            .first()
            .map(Value::is_object)
            .unwrap_or_else(|| order.first().is_some_and(Value::is_object));
        let (patch_items, server_only) = partition(merged, &order, mk, is_map)?;
        let both =
            normalize_element_order(patch_items, server_only, &order, &server_order, mk, is_map)?;
        original.insert(field, Value::Array(both));
    }
    Ok(())
}

/// The server order `mergePatchIntoOriginal` ends up using. In Go,
/// `originalFieldValue` shares its backing array with the list that
/// `mergeSlice` edits in place: `deleteMatchingEntries` shifts items left
/// (`append(s[:i], s[i+1:]...)`) and new items are appended into the freed
/// slots, so the "original" order seen afterwards is that edited array (the
/// upstream tests' expected results depend on it, e.g. "add map and delete
/// map from merging list" in `patch_test.go`).
fn aliased_original_view(original: &[Value], patch: &[Value], mk: &str) -> Vec<Value> {
    let n = original.len();
    let mut buf = original.to_vec();
    let mut len = n;
    let mut replace = false;
    for p in patch {
        match p.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                let Some(mv) = p.get(mk) else { continue };
                while let Some(i) = buf[..len].iter().position(|o| o.get(mk) == Some(mv)) {
                    // copy(s[i:], s[i+1:len]); the old last element stays.
                    for j in i..len - 1 {
                        buf[j] = buf[j + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some(_) => replace = true,
            None => {}
        }
    }
    if !replace {
        for p in patch.iter().filter(|p| p.get(DIRECTIVE).is_none()) {
            let Some(mv) = p.get(mk) else { continue };
            if !buf[..len].iter().any(|o| o.get(mk) == Some(mv)) {
                if len < n {
                    buf[len] = p.clone();
                }
                len += 1;
            }
        }
    }
    buf
}

/// `validatePatchWithSetOrderList`.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    mk: Option<&str>,
) -> Result<(), PatchError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match mk {
        Some(_) => {
            let mut nd = Vec::new();
            for v in patch_list {
                let Value::Object(m) = v else {
                    return Err(unprocessable(format!(
                        "expected a map in the patch list, got {v}"
                    )));
                };
                if m.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
                    nd.push(v);
                }
            }
            nd
        }
        None => patch_list.iter().collect(),
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[pi], &order[si], mk)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(unprocessable(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn merge_key_value_equal(l: &Value, r: &Value, mk: Option<&str>) -> Result<bool, PatchError> {
    let Some(k) = mk else { return Ok(l == r) };
    let lv = l.get(k).ok_or_else(|| no_merge_key(l, k))?;
    let rv = r.get(k).ok_or_else(|| no_merge_key(r, k))?;
    Ok(lv == rv)
}

fn no_merge_key(v: &Value, k: &str) -> PatchError {
    unprocessable(format!("map: {v} does not contain declared merge key: {k}"))
}

/// `mergeSliceHandler`.
fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    child: &Node,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    let (merge, mk) = merge_key_of(child);
    if merge {
        merge_slice(
            original,
            patch,
            child.smp_list().1,
            mk.as_deref(),
            is_delete_list,
        )
    } else {
        Ok(match sanitize(Value::Array(patch)) {
            Value::Array(a) => a,
            _ => Vec::new(),
        })
    }
}

/// `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: &Node,
    mk: Option<&str>,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    // sliceElementType: every element of both lists has the same JSON type.
    let kind = |v: &Value| match v {
        Value::Object(_) => 0,
        Value::Array(_) => 1,
        Value::String(_) => 2,
        Value::Number(_) => 3,
        Value::Bool(_) => 4,
        Value::Null => 5,
    };
    let first = original
        .iter()
        .chain(patch.iter())
        .map(kind)
        .next()
        .unwrap_or(5);
    if first == 1 {
        return Err(unprocessable("lists of lists are not supported"));
    }
    if original
        .iter()
        .chain(patch.iter())
        .any(|v| kind(v) != first)
    {
        return Err(unprocessable(format!(
            "list element types are not identical: [{} {}]",
            Value::Array(original.clone()),
            Value::Array(patch.clone())
        )));
    }
    let is_map = first == 0;
    let (original, patch, merged) = if !is_map {
        if is_delete_list {
            let del: Vec<&Value> = patch.iter().collect();
            return Ok(original.into_iter().filter(|v| !del.contains(&v)).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        let Some(k) = mk else {
            return Err(unprocessable(
                "cannot merge lists without merge key for type map",
            ));
        };
        let (original, patch) = merge_slice_with_special_elements(original, patch, k)?;
        let merged = merge_slice_without_special_elements(original.clone(), &patch, k, elem)?;
        (original, patch, merged)
    };
    let (patch_items, server_only) = partition(merged, &patch, mk, is_map)?;
    normalize_element_order(patch_items, server_only, &patch, &original, mk, is_map)
}

/// `mergeSliceWithSpecialElements`: `$patch: delete|replace` list items.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    mk: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut without = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Some(d) = v.get(DIRECTIVE).cloned() else {
            without.push(v);
            continue;
        };
        match d.as_str() {
            Some("delete") => {
                let Some(mv) = v.get(mk).cloned() else {
                    return Err(no_merge_key(&v, mk));
                };
                for (i, o) in original.iter().enumerate() {
                    if !o.is_object() {
                        return Err(unprocessable(format!("value for key {i} is not a map.")));
                    }
                }
                original.retain(|o| o.get(mk) != Some(&mv));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(unprocessable(
                    "merging lists cannot yet be specified in the patch",
                ))
            }
            _ => {
                return Err(unprocessable(format!(
                    "Unknown patch type: {d} in map: {v}"
                )))
            }
        }
    }
    if replace {
        let replaced = match sanitize(Value::Array(without)) {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        return Ok((replaced, Vec::new()));
    }
    Ok((original, without))
}

/// `mergeSliceWithoutSpecialElements`: merge items by merge key.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    mk: &str,
    elem: &Node,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let Value::Object(pm) = v else {
            return Err(unprocessable(format!(
                "expected a map in the patch list, got {v}"
            )));
        };
        let Some(mv) = pm.get(mk) else {
            return Err(no_merge_key(v, mk));
        };
        let mut found = None;
        for (i, o) in original.iter().enumerate() {
            let Value::Object(om) = o else {
                return Err(unprocessable(format!("value for key {i} is not a map.")));
            };
            if om.get(mk) == Some(mv) {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => {
                let om = match std::mem::take(&mut original[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                original[i] = merge_map(om, pm.clone(), elem)?;
            }
            None => original.push(sanitize(v.clone())),
        }
    }
    Ok(original)
}

/// `partitionMapsByPresentInList` / `partitionPrimitivesByPresentInList`.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    mk: Option<&str>,
    is_map: bool,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut patch_items = Vec::with_capacity(merged.len());
    let mut server_only = Vec::with_capacity(merged.len());
    for v in merged {
        let present = if is_map {
            let k = mk.ok_or_else(|| {
                unprocessable("cannot merge lists without merge key for type map")
            })?;
            let mv = v.get(k).ok_or_else(|| no_merge_key(&v, k))?;
            let mut found = false;
            for (i, b) in by.iter().enumerate() {
                if !b.is_object() {
                    return Err(unprocessable(format!("value for key {i} is not a map.")));
                }
                if b.get(k) == Some(mv) {
                    found = true;
                    break;
                }
            }
            found
        } else {
            by.contains(&v)
        };
        if present {
            patch_items.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((patch_items, server_only))
}

/// `index`: position of `v` in `l`, by merge key for maps.
fn index_of(l: &[Value], v: &Value, mk: Option<&str>, is_map: bool) -> Option<usize> {
    if is_map {
        let k = mk?;
        let want = v.get(k);
        l.iter().position(|x| x.get(k) == want)
    } else {
        l.iter().position(|x| x == v)
    }
}

/// `normalizeSliceOrder`: sort by `order`, `$patch: delete` items last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    mk: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let mut items = to_sort;
    let mut to_delete = Vec::new();
    if is_map {
        let k =
            mk.ok_or_else(|| unprocessable("cannot merge lists without merge key for type map"))?;
        for v in items.iter().chain(order.iter()) {
            if v.get(k).is_none() {
                return Err(no_merge_key(v, k));
            }
        }
        let (keep, del): (Vec<Value>, Vec<Value>) = items
            .into_iter()
            .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"));
        items = keep;
        to_delete = del;
    }
    let mut keyed: Vec<(Option<usize>, Value)> = items
        .into_iter()
        .map(|v| (index_of(order, &v, mk, is_map), v))
        .collect();
    // Stable; items missing from `order` sort first, as Go's `less`
    // answers true whenever one side is missing.
    keyed.sort_by_key(|(i, _)| i.map_or(0, |i| i + 1));
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    out.extend(to_delete);
    Ok(out)
}

/// `normalizeElementOrder` + `mergeSortedSlice`.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    mk: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let right = normalize_slice_order(patch, patch_order, mk, is_map)?;
    let left = normalize_slice_order(server_only, server_order, mk, is_map)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (None, Some(_)) => out.extend(right.next()),
            (Some(_), None) => out.extend(left.next()),
            (Some(l), Some(r)) => {
                let li = index_of(server_order, l, mk, is_map);
                let ri = index_of(server_order, r, mk, is_map);
                let left_first = matches!((li, ri), (Some(a), Some(b)) if a < b);
                if left_first {
                    out.extend(left.next());
                } else {
                    out.extend(right.next());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;

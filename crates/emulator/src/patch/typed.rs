//! Operations on typed values, following structured-merge-diff's `typed`
//! package: the field set a value sets (`typed/tofieldset.go`), removing
//! a field set from a value (`typed/remove.go`) and comparing two values
//! (`typed/compare.go`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::managed_fields::{field_pe, path_string, FieldSet};
use super::schema::{ListNode, ListType, MergeSchema, Node};
use super::PatchError;

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

pub(super) fn field_set_of(v: &Value, node: &Node) -> FieldSet {
    let mut s = FieldSet::default();
    // Non-strict never fails.
    let _ = to_set(v, node, &mut s, &mut Vec::new(), false);
    s
}

/// `EnsureNamedFieldsAreMembers`: declared struct fields that have children
/// become members too.
pub(super) fn ensure_named(s: &FieldSet, node: &Node) -> FieldSet {
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
pub(super) fn remove_items(v: &mut Value, set: &FieldSet, node: &Node) -> bool {
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

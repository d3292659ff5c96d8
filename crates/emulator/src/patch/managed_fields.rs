//! Field sets (structured-merge-diff `fieldpath.Set`), their `FieldsV1`
//! encoding, and the `metadata.managedFields` entries kube-apiserver keeps
//! (`k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager` and
//! `k8s.io/apimachinery/pkg/util/managedfields/internal`).
//!
//! A path element is stored in its `FieldsV1` spelling: `f:<field>`,
//! `k:<json of the key fields>`, `v:<json value>`, `i:<index>`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A set of field paths, as a trie. `member` says whether the path leading to
/// this node is itself in the set (unused at the root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// The child node for path element `pe`, created when missing.
    pub fn child_mut(&mut self, pe: &str) -> &mut FieldSet {
        if !self.children.contains_key(pe) {
            self.children.insert(pe.to_string(), FieldSet::default());
        }
        // The key was inserted just above.
        self.children.entry(pe.to_string()).or_default()
    }

    /// Insert a path (sequence of path elements).
    pub fn insert(&mut self, path: &[String]) {
        let mut n = self;
        for pe in path {
            n = n.child_mut(pe);
        }
        n.member = true;
    }

    /// Whether `path` is a member.
    #[cfg(test)]
    pub fn has(&self, path: &[&str]) -> bool {
        let mut n = self;
        for pe in path {
            match n.children.get(*pe) {
                Some(c) => n = c,
                None => return false,
            }
        }
        n.member
    }

    /// Set union, in place.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, o) in &other.children {
            match self.children.get_mut(k) {
                Some(c) => c.union_with(o),
                None => {
                    self.children.insert(k.clone(), o.clone());
                }
            }
        }
    }

    /// Paths of `self` that are not paths of `other` (exact paths only).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Paths of `self` that are neither in `other` nor below a member of
    /// `other` (`Set.RecursiveDifference`).
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let d = match other.children.get(k) {
                Some(o) if o.member => continue,
                Some(o) => c.recursive_difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        self.collect(&mut cur, &mut out);
        out
    }

    fn collect(&self, cur: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !cur.is_empty() {
            out.push(cur.clone());
        }
        for (k, c) in &self.children {
            cur.push(k.clone());
            c.collect(cur, out);
            cur.pop();
        }
    }

    /// Remove empty nodes.
    pub fn prune_empty(&mut self) {
        self.children.retain(|_, c| {
            c.prune_empty();
            !c.is_empty()
        });
    }

    /// Decode a `FieldsV1` object.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut out = FieldSet::default();
        if let Value::Object(m) = v {
            for (k, c) in m {
                if k == "." {
                    out.member = true;
                    continue;
                }
                let mut child = FieldSet::from_fields_v1(c);
                if matches!(c, Value::Object(cm) if cm.is_empty()) {
                    child.member = true;
                }
                if !child.is_empty() {
                    out.children.insert(k.clone(), child);
                }
            }
        }
        out
    }

    /// Encode as `FieldsV1`: `{}` for a leaf member, `".": {}` for a member
    /// that also has children (structured-merge-diff `serialize.go`).
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1_child());
        }
        Value::Object(m)
    }

    fn to_fields_v1_child(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1_child());
        }
        Value::Object(m)
    }
}

/// Path element for field `name`.
pub(crate) fn field_pe(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push_str("f:");
    s.push_str(name);
    s
}

/// Go's `%q` for a string (close enough: JSON quoting).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// structured-merge-diff `value.ToString`.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Render a path the way `fieldpath.Path.String()` does, e.g.
/// `.spec.template.spec.containers[name="app"].image`.
pub(crate) fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m
                    .iter()
                    .map(|(n, v)| format!("{n}={}", value_to_string(v)))
                    .collect(),
                _ => vec![k.to_string()],
            };
            out.push('[');
            out.push_str(&parts.join(","));
            out.push(']');
        } else if let Some(v) = pe.strip_prefix("v:") {
            let shown = serde_json::from_str::<Value>(v)
                .map(|v| value_to_string(&v))
                .unwrap_or_else(|_| v.to_string());
            out.push_str(&format!("[={shown}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(pe);
        }
    }
    out
}

/// Identity of a managedFields entry (`BuildManagerIdentifier`: apiVersion
/// is part of it for Update entries only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ManagerKey {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    /// Empty for Apply entries.
    pub api_version: String,
}

/// One decoded managedFields entry.
#[derive(Debug, Clone)]
pub(crate) struct ManagerEntry {
    pub key: ManagerKey,
    pub api_version: String,
    pub time: Option<String>,
    pub set: FieldSet,
}

/// The managers of an object.
#[derive(Debug, Clone, Default)]
pub(crate) struct Managers {
    pub entries: Vec<ManagerEntry>,
}

impl Managers {
    /// Decode `metadata.managedFields` (entries that are not FieldsV1 or not
    /// objects are dropped). Entries with the same identity are merged.
    pub fn decode(obj: &Value) -> Managers {
        let mut out = Managers::default();
        let Some(list) = obj
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array)
        else {
            return out;
        };
        for e in list {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let operation = s("operation");
            let api_version = s("apiVersion");
            if let Some(ft) = e.get("fieldsType").and_then(Value::as_str) {
                if ft != "FieldsV1" {
                    continue;
                }
            }
            let key = ManagerKey {
                manager: s("manager"),
                api_version: if operation == "Apply" {
                    String::new()
                } else {
                    api_version.clone()
                },
                operation,
                subresource: s("subresource"),
            };
            let set = FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null));
            let time = e.get("time").and_then(Value::as_str).map(str::to_string);
            match out.entries.iter_mut().find(|x| x.key == key) {
                Some(x) => x.set.union_with(&set),
                None => out.entries.push(ManagerEntry {
                    key,
                    api_version,
                    time,
                    set,
                }),
            }
        }
        out
    }

    /// Position of the entry with identity `key`.
    pub fn find(&self, key: &ManagerKey) -> Option<usize> {
        self.entries.iter().position(|e| &e.key == key)
    }

    /// Drop entries whose field set is empty.
    pub fn drop_empty(&mut self) {
        self.entries.retain(|e| !e.set.is_empty());
    }

    /// `capManagersManager`: at most `max` Update entries; the oldest are
    /// merged into an `ancient-changes` entry per apiVersion.
    pub fn cap_updates(&mut self, max: usize) {
        let mut updaters: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].key.operation != "Apply")
            .collect();
        if updaters.len() <= max {
            return;
        }
        updaters.sort_by(|&a, &b| {
            let (ea, eb) = (&self.entries[a], &self.entries[b]);
            time_secs(ea.time.as_deref())
                .cmp(&time_secs(eb.time.as_deref()))
                .then_with(|| ea.key.cmp(&eb.key))
        });
        let mut length = updaters.len();
        let mut first_for_version: BTreeMap<String, ManagerKey> = BTreeMap::new();
        let keys: Vec<ManagerKey> = updaters
            .iter()
            .map(|&i| self.entries[i].key.clone())
            .collect();
        for key in keys {
            if length <= max {
                break;
            }
            let Some(idx) = self.find(&key) else { continue };
            let entry = self.entries[idx].clone();
            let version = entry.api_version.clone();
            let bucket = ManagerKey {
                manager: "ancient-changes".into(),
                operation: "Update".into(),
                subresource: String::new(),
                api_version: version.clone(),
            };
            if let Some(first) = first_for_version.get(&version).cloned() {
                if self.find(&bucket).is_none() {
                    if let Some(fi) = self.find(&first) {
                        self.entries[fi].key = bucket.clone();
                    }
                }
                if let Some(bi) = self.find(&bucket) {
                    self.entries[bi].set.union_with(&entry.set);
                    self.entries[bi].time = entry.time.clone();
                }
                if let Some(i) = self.find(&key) {
                    self.entries.remove(i);
                }
                length -= 1;
            } else {
                first_for_version.insert(version, key);
            }
        }
    }

    /// Encode into `metadata.managedFields` of `obj`, sorted like
    /// `sortEncodedManagedFields` (operation, time, manager, apiVersion,
    /// subresource). With no entries the field is removed.
    pub fn encode_into(&self, obj: &mut Value) {
        let mut entries: Vec<&ManagerEntry> =
            self.entries.iter().filter(|e| !e.set.is_empty()).collect();
        entries.sort_by(|a, b| {
            a.key
                .operation
                .cmp(&b.key.operation)
                .then_with(|| time_secs(a.time.as_deref()).cmp(&time_secs(b.time.as_deref())))
                .then_with(|| a.key.manager.cmp(&b.key.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| a.key.subresource.cmp(&b.key.subresource))
        });
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), Value::String(e.key.manager.clone()));
                m.insert("operation".into(), Value::String(e.key.operation.clone()));
                m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
                if let Some(t) = &e.time {
                    m.insert("time".into(), Value::String(t.clone()));
                }
                m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !e.key.subresource.is_empty() {
                    m.insert(
                        "subresource".into(),
                        Value::String(e.key.subresource.clone()),
                    );
                }
                Value::Object(m)
            })
            .collect();
        let Some(obj) = obj.as_object_mut() else {
            return;
        };
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Some(meta) = meta.as_object_mut() {
            if list.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), Value::Array(list));
            }
        }
    }

    /// `printManager` of kube-apiserver's conflict error.
    pub fn print_manager(key: &ManagerKey, api_version: &str) -> String {
        let mut s = go_quote(&key.manager);
        if !key.subresource.is_empty() {
            s = format!("{s} with subresource {}", go_quote(&key.subresource));
        }
        if key.operation == "Update" {
            // The identifier the message is built from never carries a time.
            s = format!("{s} using {api_version}");
        }
        s
    }
}

fn time_secs(t: Option<&str>) -> i64 {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(0)
}

/// The paths kube-apiserver never records (`stripMetaManager`).
pub(crate) fn strip_meta(set: &mut FieldSet) {
    for top in ["f:apiVersion", "f:kind"] {
        if let Some(c) = set.children.get_mut(top) {
            c.member = false;
        }
    }
    if let Some(meta) = set.children.get_mut("f:metadata") {
        meta.member = false;
        for f in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            if let Some(c) = meta.children.get_mut(&field_pe(f)) {
                c.member = false;
            }
        }
    }
    set.prune_empty();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trip_uses_dot_for_members_with_children() {
        let mut s = FieldSet::default();
        s.insert(&p(&["f:spec", "f:replicas"]));
        s.insert(&p(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"app\"}",
        ]));
        s.insert(&p(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"app\"}",
            "f:image",
        ]));
        let v = s.to_fields_v1();
        assert_eq!(
            v,
            json!({"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
                "k:{\"name\":\"app\"}":{".":{},"f:image":{}}}}}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&v), s);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&p(&["f:a", "f:b"]));
        a.insert(&p(&["f:a", "f:c"]));
        a.insert(&p(&["f:d"]));
        let mut b = FieldSet::default();
        b.insert(&p(&["f:a", "f:b"]));
        b.insert(&p(&["f:d"]));
        let d = a.difference(&b);
        assert!(d.has(&["f:a", "f:c"]) && !d.has(&["f:a", "f:b"]) && !d.has(&["f:d"]));
        let i = a.intersection(&b);
        assert!(i.has(&["f:a", "f:b"]) && i.has(&["f:d"]) && !i.has(&["f:a", "f:c"]));
        let mut c = FieldSet::default();
        c.insert(&p(&["f:a"]));
        let r = a.recursive_difference(&c);
        assert_eq!(r.paths(), vec![p(&["f:d"])]);
    }

    #[test]
    fn path_strings_match_fieldpath_format() {
        assert_eq!(path_string(&p(&["f:spec", "f:replicas"])), ".spec.replicas");
        assert_eq!(
            path_string(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"app\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"app\"].image"
        );
        assert_eq!(
            path_string(&p(&[
                "f:ports",
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
            ])),
            ".ports[containerPort=80,protocol=\"TCP\"]"
        );
        assert_eq!(
            path_string(&p(&["f:metadata", "f:finalizers", "v:\"a\""])),
            ".metadata.finalizers[=\"a\"]"
        );
    }

    #[test]
    fn managers_decode_encode_sorts_apply_before_update() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
            {"manager": "op", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2024-01-02T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]}});
        let m = Managers::decode(&obj);
        assert_eq!(m.entries.len(), 2);
        let mut out = json!({});
        m.encode_into(&mut out);
        let mf = out["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(mf[0]["manager"], "op");
        assert_eq!(mf[1]["manager"], "kubectl");
        assert!(mf[0].get("subresource").is_none());
    }

    #[test]
    fn cap_updates_merges_oldest_into_ancient_changes() {
        let mut m = Managers::default();
        for i in 0..12 {
            let mut set = FieldSet::default();
            set.insert(&p(&["f:data", &format!("f:k{i}")]));
            m.entries.push(ManagerEntry {
                key: ManagerKey {
                    manager: format!("m{i:02}"),
                    operation: "Update".into(),
                    subresource: String::new(),
                    api_version: "v1".into(),
                },
                api_version: "v1".into(),
                time: Some(format!("2024-01-01T00:00:{i:02}Z")),
                set,
            });
        }
        m.cap_updates(10);
        assert_eq!(m.entries.len(), 10);
        let anc = m
            .entries
            .iter()
            .find(|e| e.key.manager == "ancient-changes")
            .map(|e| e.set.paths().len());
        // m00, m01, m02 merged into the bucket (12 - 10 + 1 entries).
        assert_eq!(anc, Some(3));
    }

    #[test]
    fn strip_meta_removes_identity_fields_only() {
        let mut s = FieldSet::default();
        s.insert(&p(&["f:apiVersion"]));
        s.insert(&p(&["f:metadata", "f:name"]));
        s.insert(&p(&["f:metadata", "f:labels", "f:app"]));
        strip_meta(&mut s);
        assert_eq!(s.paths(), vec![p(&["f:metadata", "f:labels", "f:app"])]);
    }
}

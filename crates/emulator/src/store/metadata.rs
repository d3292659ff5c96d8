//! Helpers reading and writing an object's `metadata`, and the stored form
//! of an object (labels, selectable fields and owners picked out).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Stored;
use crate::resources::ResourceDef;

pub(super) fn md(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

pub(super) fn md_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    if !v.is_object() {
        *v = json!({});
    }
    let m = v
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut()
}

pub(super) fn md_str(v: &Value, key: &str) -> String {
    md(v)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn finalizers(v: &Value) -> Vec<String> {
    md(v)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn is_deleting(v: &Value) -> bool {
    md(v).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|t| !t.is_null()))
}

pub(super) fn make_stored(def: &ResourceDef, v: &Value, rv: u64) -> Stored {
    let labels = md(v)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let fields = def
        .selectable_fields
        .iter()
        .map(|f| def.field_value(v, f))
        .collect();
    let owners = md(v)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Stored {
        json: Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        labels,
        fields,
        rv,
        uid: md_str(v, "uid"),
        owners,
    }
}

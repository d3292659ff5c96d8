//! Stored objects rendered for the API version a request asked for (a CRD's
//! non-storage versions get their `apiVersion` rewritten).

use axum::body::Bytes;
use serde_json::{json, Value};

use super::resources::ResourceDef;
use super::store::Stored;

/// Serialize a stored object for a request version (rewrites `apiVersion`
/// for non-storage versions of a CRD).
pub fn object_bytes(s: &Stored, def: &ResourceDef, version: &str) -> Bytes {
    if version == def.storage_version() {
        return s.json.clone();
    }
    let mut v = s.value();
    v["apiVersion"] = json!(def.api_version(version));
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Set `apiVersion` of an object value to the request version (non-storage
/// versions of a CRD).
pub fn with_version(mut v: Value, def: &ResourceDef, version: &str) -> Value {
    if version != def.storage_version() && v.is_object() {
        v["apiVersion"] = json!(def.api_version(version));
    }
    v
}

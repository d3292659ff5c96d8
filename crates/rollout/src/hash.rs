//! Pod-template hashing, as `controller.ComputeHash` in kube-controller-manager:
//! FNV-32a over the template (plus the little-endian collision count), printed
//! in decimal and mapped through `rand.SafeEncodeString`'s alphabet; and
//! template equality ignoring the hash label (`EqualIgnoreHash`).
//!
//! Real Kubernetes hashes a `spew` dump of the Go struct, which cannot be
//! reproduced outside Go; this hashes a canonical JSON rendering instead. The
//! shape (alphabet, length, stability, collision-count handling) is the same.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::annotations::POD_TEMPLATE_HASH_LABEL;

/// The alphabet of `k8s.io/apimachinery/pkg/util/rand.SafeEncodeString`
/// (no vowels, no `0`, `1`, `3`, so no bad words and no ambiguity).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// `rand.SafeEncodeString`: each byte is mapped to `SAFE_ALPHABET[byte % 27]`.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// Writes `v` with object keys sorted, so the bytes do not depend on map order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(val) = m.get(*k) {
                    canonical(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Removes nulls, empty objects and empty arrays, recursively: the API
/// server treats them like absent fields, and Go's semantic equality treats
/// nil and empty alike.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                let n = normalize(x);
                let empty = match &n {
                    Value::Null => true,
                    Value::Object(o) => o.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// `controller.ComputeHash(template, collisionCount)`.
pub fn compute_hash(template: &Value, collision_count: Option<i32>) -> String {
    let mut s = String::new();
    canonical(&normalize(&strip_hash_label(template)), &mut s);
    let mut bytes = s.into_bytes();
    if let Some(c) = collision_count {
        // Go: binary.LittleEndian.PutUint32(buf, uint32(*collisionCount))
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// A copy of a pod template (as JSON) without the `pod-template-hash` label.
pub fn strip_hash_label(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    t
}

/// A typed pod template as JSON (`null` when absent).
pub fn template_value(template: Option<&PodTemplateSpec>) -> Value {
    template
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or(Value::Null)
}

/// A typed pod template as JSON without the `pod-template-hash` label: what
/// `kubectl rollout undo` writes back into the Deployment.
pub fn template_without_hash(template: Option<&PodTemplateSpec>) -> Value {
    strip_hash_label(&template_value(template))
}

/// `deploymentutil.EqualIgnoreHash` (and kubectl's `equalIgnoreHash`):
/// templates equal once the `pod-template-hash` label is removed from both.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    normalize(&strip_hash_label(a)) == normalize(&strip_hash_label(b))
}

/// [`equal_ignore_hash`] of typed templates.
pub fn templates_equal_ignore_hash(
    a: Option<&PodTemplateSpec>,
    b: Option<&PodTemplateSpec>,
) -> bool {
    equal_ignore_hash(&template_value(a), &template_value(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv_known_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_maps_digits_like_go() {
        // '0'..'9' are bytes 48..57 -> indices 21..26, 0..3.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_is_stable_and_ignores_key_order_and_hash_label() {
        let a = json!({"metadata":{"labels":{"app":"web","tier":"fe"}},"spec":{"containers":[{"name":"app","image":"nginx:1"}]}});
        let b = json!({"spec":{"containers":[{"image":"nginx:1","name":"app"}]},"metadata":{"labels":{"tier":"fe","app":"web","pod-template-hash":"xyz"}}});
        let h = compute_hash(&a, None);
        assert_eq!(h, compute_hash(&b, None));
        assert!(h.len() >= 6 && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|c| SAFE_ALPHABET.contains(&c)));
        let c = json!({"metadata":{"labels":{"app":"web","tier":"fe"}},"spec":{"containers":[{"name":"app","image":"nginx:2"}]}});
        assert_ne!(h, compute_hash(&c, None));
    }

    #[test]
    fn collision_count_changes_hash() {
        let a = json!({"spec":{"containers":[{"name":"app","image":"nginx:1"}]}});
        let h0 = compute_hash(&a, None);
        let h1 = compute_hash(&a, Some(1));
        let h2 = compute_hash(&a, Some(2));
        assert_ne!(h0, h1);
        assert_ne!(h1, h2);
        assert_eq!(h1, compute_hash(&a, Some(1)));
    }

    #[test]
    fn equal_ignore_hash_semantics() {
        let a = json!({"metadata":{"labels":{"app":"web","pod-template-hash":"abc"},"annotations":{}},"spec":{"containers":[{"name":"app","image":"x"}]}});
        let b = json!({"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x"}]}});
        assert!(equal_ignore_hash(&a, &b));
        let c = json!({"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"y"}]}});
        assert!(!equal_ignore_hash(&a, &c));
    }

    #[test]
    fn typed_templates_compare_ignoring_hash_and_empty_fields() {
        let t = |v: Value| -> PodTemplateSpec { serde_json::from_value(v).unwrap() };
        let with_hash = t(
            json!({"metadata":{"labels":{"app":"web","pod-template-hash":"abc"}},"spec":{"containers":[{"name":"app","image":"x","env":[]}]}}),
        );
        let plain = t(
            json!({"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x"}]}}),
        );
        assert!(templates_equal_ignore_hash(Some(&with_hash), Some(&plain)));
        let other = t(
            json!({"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"y"}]}}),
        );
        assert!(!templates_equal_ignore_hash(Some(&with_hash), Some(&other)));
        assert!(!templates_equal_ignore_hash(None, Some(&plain)));
        assert!(templates_equal_ignore_hash(None, None));
        let stripped = template_without_hash(Some(&with_hash));
        assert_eq!(stripped["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(stripped["spec"]["containers"][0]["image"], "x");
        assert!(template_without_hash(None).is_null());
    }
}

//! Building blocks of the JSON patches (RFC 6902): the preconditions,
//! annotation ops and the last-action mark.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use super::Write;
use crate::api::MitigationAction;

/// The precondition op: the object's spec generation is still the one the
/// plan was computed from. (Status writes by controllers do not bump the
/// generation, so unlike a resourceVersion precondition this does not fail
/// on every status update of a rolling Deployment.) A failed `test` is a
/// 422 from kube-apiserver.
pub(super) fn precondition(generation: Option<i64>) -> Value {
    json!({"op": "test", "path": "/metadata/generation", "value": generation.unwrap_or(0)})
}

/// The precondition op of objects without a generation (HPAs): the patched
/// object carries the resourceVersion the plan was computed from, which
/// kube-apiserver enforces as an optimistic-concurrency precondition (409
/// Conflict when the object changed since). A `test` op on the
/// resourceVersion would fail with the same 422 as an invalid change.
pub(super) fn rv_precondition(resource_version: &str) -> Value {
    json!({"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version})
}

/// A digest of an HPA's spec: what "unchanged since the intent was
/// recorded" compares for HPAs (their status changes all the time, their
/// resourceVersion with it, and they carry no generation).
pub fn hpa_spec_digest(h: &HorizontalPodAutoscaler) -> String {
    use sha2::{Digest, Sha256};
    let spec = h
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .map(|v| rollout::hash::normalize(&v))
        .unwrap_or(Value::Null);
    let d = Sha256::digest(spec.to_string().as_bytes());
    hex::encode(&d[..8])
}

/// The generation a write's precondition expects.
pub fn expected_generation(write: &Write) -> Option<i64> {
    write
        .patch
        .get(0)
        .filter(|op| op["op"] == "test" && op["path"] == "/metadata/generation")
        .and_then(|op| op["value"].as_i64())
}

/// JSON pointer escaping of one path segment.
fn esc(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The `kubeincident.io/last-action` value.
pub fn last_action(incident: &str, step: &str, action: MitigationAction) -> String {
    format!("{incident}/{step}: {action}")
}

/// Op setting one annotation on the object (creating the map if absent).
pub(super) fn annotate(meta: &ObjectMeta, base: &str, k: &str, v: &str) -> Value {
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        json!({"op": "add", "path": format!("{base}/annotations/{}", esc(k)), "value": v})
    } else {
        json!({"op": "add", "path": format!("{base}/annotations"), "value": {k: v}})
    }
}

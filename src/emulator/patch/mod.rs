//! Patch semantics of the Kubernetes API server, as pure functions over
//! `serde_json::Value`: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
//! strategic merge patch and server-side apply with managedFields.

use serde_json::Value;

/// Errors from applying a patch. Each maps to a `metav1.Status` in the server.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch body is malformed (HTTP 400 BadRequest).
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// A JSON patch `test` op failed or a path does not exist (HTTP 422 Invalid).
    #[error("the patch could not be applied: {0}")]
    Unprocessable(String),
    /// Server-side apply found fields owned by other managers (HTTP 409 Conflict).
    #[error("Apply failed with {} conflict(s)", .0.len())]
    Conflicts(Vec<ApplyConflict>),
}

/// One server-side apply conflict: `field` (e.g. `.spec.replicas`) is owned by `manager`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    pub manager: String,
    pub field: String,
}

/// RFC 7386 JSON merge patch (`application/merge-patch+json`).
pub fn json_merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch (`application/json-patch+json`).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::Invalid(e.to_string()))?;
    json_patch::patch(target, &p).map_err(|e| PatchError::Unprocessable(e.to_string()))
}

//! Patch semantics of the Kubernetes API server, as pure functions over
//! `serde_json::Value`: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
//! strategic merge patch and server-side apply with managedFields.
//!
//! * [`json_merge_patch`] and [`json_patch`] for `application/merge-patch+json`,
//!   `application/json-patch+json`.
//! * [`strategic_merge_patch`] for `application/strategic-merge-patch+json`
//!   (kube-apiserver rejects it for custom resources with 415; that check is
//!   the server's).
//! * [`server_side_apply`] for `application/apply-patch+yaml`.
//! * [`track_update`] for managedFields bookkeeping of every other write.
//! * [`MergeSchema`] tells which list/map semantics each path has.
//!
//! Status subresource convention: the server tells whether the kind has a
//! `/status` subresource through the schema ([`MergeSchema::builtin`] knows
//! it for built-in kinds; use [`MergeSchema::with_status_subresource`] for
//! CRDs). With a status subresource, main-resource applies ignore `.status`
//! and neither apply nor update record ownership of `.status`; with
//! `subresource = Some("status")` only `.status` is applied and owned, and
//! the managedFields entry carries `subresource: status`. The server still
//! has to reset `.status` (main resource) or everything but `.status`
//! (status subresource) for updates and non-apply patches, as the real
//! strategies' `PrepareForUpdate` do.

mod apply;
mod managed_fields;
mod schema;
mod strategic;
mod typed;

pub use apply::{server_side_apply, track_update};
pub use schema::MergeSchema;
pub use strategic::strategic_merge_patch;

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
    /// Server-side apply found fields owned by other managers (HTTP 409
    /// Conflict, reason `Conflict`, one `FieldManagerConflict` cause per
    /// entry). The message is kube-apiserver's, e.g.
    /// `Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas`.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<ApplyConflict>),
}

/// One server-side apply conflict: `field` (e.g. `.spec.replicas`) is owned by `manager`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// The manager's name (`metadata.managedFields[].manager`).
    pub manager: String,
    /// The field path in structured-merge-diff's notation, e.g.
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
    /// The manager as kube-apiserver prints it: `"A"` for an applier,
    /// `"kubectl" using apps/v1` for an updater, with
    /// ` with subresource "status"` when relevant. The cause message of the
    /// Status is `conflict with <printed_manager>`.
    pub printed_manager: String,
}

/// kube-apiserver's conflict message (`getConflictMessage`).
pub fn conflict_message(conflicts: &[ApplyConflict]) -> String {
    if conflicts.len() == 1 {
        let c = &conflicts[0];
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.printed_manager, c.field
        );
    }
    let mut managers: Vec<&str> = conflicts
        .iter()
        .map(|c| c.printed_manager.as_str())
        .collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.printed_manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
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

/// kube-apiserver's field manager name when a non-apply request has no
/// `fieldManager` (`prefixFromUserAgent`): the user agent up to the first
/// `/`, non-printable characters dropped, at most 128 bytes. kubectl sends
/// its own names (`kubectl-client-side-apply`, `kubectl-edit`,
/// `kubectl-rollout`, `kubectl-scale`...), kube-rs clients send none, so
/// their writes are tracked under e.g. `kube-incident` for a user agent
/// `kube-incident/0.1.0`.
// Not wired into the write path yet: writes without `fieldManager` are
// recorded without a manager (docs/emulator.md, known divergences).
#[cfg_attr(not(test), allow(dead_code))]
pub fn default_field_manager(user_agent: &str) -> String {
    const FIELD_MANAGER_MAX_LENGTH: usize = 128;
    let prefix = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            continue;
        }
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_deletes_nested_merges_lists_replace() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2, 3]});
        json_merge_patch(&mut t, &json!({"a": null, "b": {"c": 4, "e": 5}, "l": [9]}));
        assert_eq!(t, json!({"b": {"c": 4, "d": 3, "e": 5}, "l": [9]}));
    }

    #[test]
    fn json_patch_ops_and_failed_test_is_unprocessable() {
        let mut t =
            json!({"spec": {"replicas": 1, "paused": false}, "metadata": {"labels": {"a": "1"}}});
        let ops = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/spec/paused"},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/c"},
            {"op": "move", "from": "/metadata/labels/b", "path": "/metadata/labels/d"}
        ]);
        json_patch(&mut t, &ops).expect("valid patch");
        assert_eq!(
            t,
            json!({"spec": {"replicas": 3}, "metadata": {"labels": {"a": "1", "c": "1", "d": "2"}}})
        );
        let failed = json_patch(
            &mut t,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 1}]),
        );
        assert!(matches!(failed, Err(PatchError::Unprocessable(_))));
        let bad = json_patch(&mut t, &json!([{"op": "frob", "path": "/x"}]));
        assert!(matches!(bad, Err(PatchError::Invalid(_))));
    }

    #[test]
    fn default_field_manager_is_user_agent_prefix() {
        assert_eq!(
            default_field_manager("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(
            default_field_manager("kube-incident/0.1.0"),
            "kube-incident"
        );
        assert_eq!(
            default_field_manager("Go-http-client/1.1"),
            "Go-http-client"
        );
        assert_eq!(default_field_manager("no-slash"), "no-slash");
        assert_eq!(default_field_manager("a\u{7}b/1"), "ab");
        assert_eq!(default_field_manager(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn conflict_message_groups_by_manager() {
        let c = |m: &str, p: &str, f: &str| ApplyConflict {
            manager: m.into(),
            field: f.into(),
            printed_manager: p.into(),
        };
        let msg = conflict_message(&[
            c("b", "\"b\"", ".spec.x"),
            c("a", "\"a\" using v1", ".data.k"),
            c("b", "\"b\"", ".spec.y"),
        ]);
        assert_eq!(
            msg,
            "Apply failed with 3 conflicts: conflicts with \"a\" using v1:\n- .data.k\nconflicts with \"b\":\n- .spec.x\n- .spec.y"
        );
    }
}

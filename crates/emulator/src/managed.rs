//! Adapter between the server and the patch engine (`super::patch`): picks
//! the [`MergeSchema`] of a served resource for strategic merge patch,
//! server-side apply and managedFields bookkeeping.

use serde_json::{json, Value};

use super::patch::{self, MergeSchema, PatchError};
use super::resources::ResourceDef;

/// The merge schema of a resource at a version (built-in knowledge, or the
/// CRD's `openAPIV3Schema` plus its status subresource).
pub fn schema_for(def: &ResourceDef, version: &str) -> MergeSchema {
    if def.builtin {
        return MergeSchema::builtin(&def.group, version, &def.kind);
    }
    let schema = def
        .schema(version)
        .or_else(|| def.schema(def.storage_version()))
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    MergeSchema::from_openapi_v3(&schema).with_status_subresource(def.has_status)
}

/// Strategic merge patch of a built-in object (`group`/`version`/`kind`
/// select the merge keys and patch strategies).
pub fn strategic_merge_patch(
    target: &Value,
    patch_body: &Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    patch::strategic_merge_patch(
        target,
        patch_body,
        &MergeSchema::builtin(group, version, kind),
    )
}

/// Server-side apply: the new object with managedFields updated.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    schema: &MergeSchema,
    now: &str,
) -> Result<Value, PatchError> {
    patch::server_side_apply(live, applied, manager, force, subresource, schema, now)
}

/// managedFields bookkeeping for create/update/patch.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    schema: &MergeSchema,
    now: &str,
) -> Value {
    patch::track_update(old, new, manager, subresource, schema, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smp_merges_containers_by_name() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "3"}]}});
        let out = strategic_merge_patch(&t, &p, "", "v1", "Pod");
        let out = out.unwrap_or_default();
        assert_eq!(out["spec"]["containers"][0]["image"], "1");
        assert_eq!(out["spec"]["containers"][1]["image"], "3");
    }

    #[test]
    fn crd_schema_has_status_subresource() {
        let crd = json!({"metadata": {"name": "ws.x.io"}, "spec": {"group": "x.io", "scope": "Namespaced",
            "names": {"plural": "ws", "kind": "W"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let def = super::super::crd::resource_def(&crd);
        assert!(schema_for(&def, "v1").has_status_subresource());
        let pods = super::super::resources::builtin();
        let pod = pods.iter().find(|d| d.plural == "pods");
        assert!(pod.is_some_and(|p| schema_for(p, "v1").has_status_subresource()));
    }
}

//! API discovery documents: the group list and a group version's resource list.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::json_value;
use crate::resources::{self, ResourceDef};
use crate::status::ApiError;
use crate::store::Store;

pub(super) fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = resources::builtin_groups()
        .into_iter()
        .map(|(g, vs)| (g.to_string(), vs.into_iter().map(str::to_string).collect()))
        .collect();
    for d in store.defs() {
        if d.builtin {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == d.group) {
            Some((_, vs)) => {
                for v in &d.versions {
                    if !vs.contains(v) {
                        vs.push(v.clone());
                    }
                }
            }
            None => groups.push((d.group.clone(), d.versions.clone())),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().unwrap_or(Value::Null);
            json!({"name": g, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(super) fn resource_list(
    store: &Store,
    group: &str,
    version: &str,
) -> Result<Response, ApiError> {
    let defs: Vec<ResourceDef> = store
        .defs()
        .into_iter()
        .filter(|d| d.group == group && d.serves(version))
        .collect();
    if defs.is_empty() && !(group.is_empty() && version == "v1") {
        return Err(ApiError::path_not_found());
    }
    let resources: Vec<Value> = defs
        .iter()
        .flat_map(ResourceDef::discovery_entries)
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_value(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}

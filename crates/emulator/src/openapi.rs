//! A minimal OpenAPI v3 discovery (`/openapi/v3` and one document per
//! group-version): the paths of every resource with their
//! `x-kubernetes-group-version-kind` and the `fieldValidation`/`dryRun`/
//! `fieldManager` query parameters. This is what kubectl inspects to decide
//! that the server validates fields itself (`--validate=strict` with
//! server-side field validation); schemas are not served, so kubectl falls
//! back to its compiled-in types for strategic merge patch and to JSON merge
//! patch for custom resources, as it does against a real server without
//! OpenAPI.

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))[..16].to_uppercase()
}

/// `/openapi/v3`: the group-version documents.
pub fn root(defs: &[ResourceDef]) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in defs {
        for v in &d.versions {
            let gv = (d.group.clone(), v.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        let doc = document(defs, &g, &v).to_string();
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "description": name, "schema": {"type": "string"}, "required": false})
}

/// The document of one group-version (`/openapi/v3/apis/<g>/<v>`), `Null` if not served.
pub fn document(defs: &[ResourceDef], group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut found = false;
    for d in defs
        .iter()
        .filter(|d| d.group == group && d.serves(version))
    {
        found = true;
        let base = format!("/{}", gv_path(group, version));
        let collection = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": d.kind});
        let write_params = json!([
            param("dryRun"),
            param("fieldManager"),
            param("fieldValidation")
        ]);
        let mut patch_types = vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ];
        if d.builtin {
            patch_types.push("application/strategic-merge-patch+json");
        }
        let content: Map<String, Value> = patch_types
            .into_iter()
            .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
            .collect();
        let op = |verb: &str, extra: Option<Value>| {
            let mut o = json!({
                "operationId": format!("{verb}{}", d.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": write_params,
                "responses": {"200": {"description": "OK"}},
            });
            if let Some(b) = extra {
                o["requestBody"] = b;
            }
            o
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": {"operationId": format!("list{}", d.kind), "x-kubernetes-action": "list",
                        "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
                "post": op("post", Some(json!({"content": {"application/json": {"schema": {"type": "object"}}}}))),
            }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": {"operationId": format!("read{}", d.kind), "x-kubernetes-action": "get",
                        "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
                "put": op("put", Some(json!({"content": {"application/json": {"schema": {"type": "object"}}}}))),
                "patch": op("patch", Some(json!({"content": content}))),
                "delete": op("delete", None),
            }),
        );
    }
    if !found {
        return Value::Null;
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_list_field_validation() {
        let defs = super::super::resources::builtin();
        let r = root(&defs);
        assert!(r["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1?hash=")));
        let d = document(&defs, "apps", "v1");
        let p = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(p["parameters"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == "fieldValidation")));
        assert!(document(&defs, "nope", "v1").is_null());
    }
}

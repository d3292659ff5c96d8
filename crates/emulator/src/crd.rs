//! CustomResourceDefinitions: turning a CRD into a served resource, and the
//! structural-schema behaviour of kube-apiserver for custom resources:
//! pruning of unknown fields, defaulting and validation.

use serde_json::{json, Map, Value};

use super::resources::{ResourceDef, ScaleDef};
use super::status::Cause;

/// Why a CRD cannot be served (422 on the CRD itself).
pub fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = crd.get("spec");
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let group = s("/spec/group");
    let plural = s("/spec/names/plural");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if s("/spec/names/kind").is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    }
    let scope = s("/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause::not_supported(
            "spec.scope",
            &Value::String(scope.to_string()),
            &[json!("Cluster"), json!("Namespaced")],
        ));
    }
    let name = s("/metadata/name");
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &Value::String(name.to_string()),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = spec
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required("spec.versions"));
    } else {
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if storage != 1 {
            causes.push(Cause::invalid(
                "spec.versions",
                &Value::Array(versions.clone()),
                "must have exactly one version marked as storage version",
            ));
        }
    }
    causes
}

/// Apply the CRD defaults kube-apiserver sets (`spec.conversion`).
pub fn default_crd(crd: &mut Value) {
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("conversion")
            .or_insert_with(|| json!({"strategy": "None"}));
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let plural_singular = kind.to_lowercase();
            names
                .entry("singular")
                .or_insert(Value::String(plural_singular));
            names
                .entry("listKind")
                .or_insert(Value::String(format!("{kind}List")));
        }
    }
}

/// The status kube-apiserver's CRD controllers set once names are accepted.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": stored,
    })
}

fn strip_dot(p: &str) -> String {
    p.trim_start_matches('.').to_string()
}

/// The served resource of a (valid) CRD.
pub fn resource_def(crd: &Value) -> ResourceDef {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let strs = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .cloned()
        .unwrap_or(Value::Null);
    let mut names: Vec<String> = vec![];
    if let Some(n) = storage.get("name").and_then(Value::as_str) {
        names.push(n.to_string());
    }
    for v in &versions {
        let served = v.get("served").and_then(Value::as_bool).unwrap_or(true);
        if let Some(n) = v.get("name").and_then(Value::as_str) {
            if served && !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
    }
    let subs = storage.get("subresources");
    let scale = subs.and_then(|s| s.get("scale")).map(|sc| ScaleDef {
        spec_replicas_path: strip_dot(sc["specReplicasPath"].as_str().unwrap_or(".spec.replicas")),
        status_replicas_path: strip_dot(
            sc["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas"),
        ),
        label_selector_path: sc["labelSelectorPath"].as_str().map(strip_dot),
    });
    let selectable = storage
        .get("selectableFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.get("jsonPath").and_then(Value::as_str).map(strip_dot))
                .collect()
        })
        .unwrap_or_default();
    let schemas = versions
        .iter()
        .filter_map(|v| {
            Some((
                v.get("name")?.as_str()?.to_string(),
                v.pointer("/schema/openAPIV3Schema").cloned()?,
            ))
        })
        .collect();
    let kind = s("/spec/names/kind");
    let singular = {
        let x = s("/spec/names/singular");
        if x.is_empty() {
            kind.to_lowercase()
        } else {
            x
        }
    };
    ResourceDef {
        group: s("/spec/group"),
        versions: names,
        kind,
        plural: s("/spec/names/plural"),
        singular,
        namespaced: s("/spec/scope") != "Cluster",
        short_names: strs("/spec/names/shortNames"),
        categories: strs("/spec/names/categories"),
        has_status: subs.and_then(|s| s.get("status")).is_some(),
        scale,
        builtin: false,
        tracks_generation: true,
        selectable_fields: selectable,
        schemas,
        printer_columns: storage
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        || schema
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true)
}

/// Prune fields not declared in the structural schema (unless
/// `x-kubernetes-preserve-unknown-fields`), and drop `null`s of
/// non-nullable fields. Top-level `apiVersion`, `kind`, `metadata` are kept.
pub fn prune(v: &mut Value, schema: &Value, root: bool) {
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties");
            let keep_all = preserves_unknown(schema);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if root && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(&k))
                    .or(addl.filter(|a| a.is_object()));
                match sub {
                    Some(sub) => {
                        let nullable = sub.get("nullable").and_then(Value::as_bool) == Some(true);
                        if map.get(&k).is_some_and(Value::is_null) && !nullable {
                            map.remove(&k);
                        } else if let Some(child) = map.get_mut(&k) {
                            prune(child, sub, false);
                        }
                    }
                    None => {
                        let addl_true = addl.and_then(Value::as_bool) == Some(true);
                        if !keep_all && !addl_true {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for it in items {
                    prune(it, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// Apply `default`s of the schema to absent fields whose parent is present.
pub fn apply_defaults(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if !map.contains_key(k) {
                        if let Some(d) = sub.get("default") {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                    if let Some(child) = map.get_mut(k) {
                        apply_defaults(child, sub);
                    }
                }
            }
            if let Some(addl) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(child, addl);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for it in items {
                    apply_defaults(it, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Validate an object against an OpenAPI v3 structural schema; appends causes.
pub fn validate(v: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && !path.is_empty() {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    schema
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if int_or_string {
        if !(v.is_string() || type_name(v) == "integer") {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: {v}: {path} in body must be of type integer-or-string"),
            ));
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            causes.push(Cause::not_supported(path, v, allowed));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                causes.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be greater than or equal to {min}"),
                ));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                causes.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be less than or equal to {max}"),
                ));
            }
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                causes.push(Cause::new(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                causes.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be at least {min} chars long"),
                ));
            }
        }
    }
    match v {
        Value::Object(map) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        causes.push(Cause::required(&join(path, r)));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties").filter(|a| a.is_object());
            validate_children(map, props, addl, path, causes);
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if items.len() as u64 > max {
                    causes.push(Cause::new(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {}: must have at most {max} items", items.len()),
                    ));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    causes.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should have at least {min} items"),
                    ));
                }
            }
            if let Some(is) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    validate(it, is, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

fn validate_children(
    map: &Map<String, Value>,
    props: Option<&Map<String, Value>>,
    addl: Option<&Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for (k, child) in map {
        if path.is_empty() && (k == "metadata" || k == "apiVersion" || k == "kind") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)).or(addl) {
            validate(child, sub, &join(path, k), causes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["title"], "properties": {
                "title": {"type": "string", "maxLength": 10},
                "severity": {"type": "string", "enum": ["SEV1", "SEV2"], "default": "SEV2"},
                "replicas": {"type": "integer", "minimum": 0},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "approval": {"type": "string", "default": "Manual"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true}
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }})
    }

    #[test]
    fn prune_and_default() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"title": "t", "unknown": 1, "items": [{"name": "a", "junk": true}],
                     "free": {"anything": {"goes": 1}}},
            "extra": "gone"});
        prune(&mut obj, &schema(), true);
        apply_defaults(&mut obj, &schema());
        assert_eq!(
            obj,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"title": "t", "severity": "SEV2",
                     "items": [{"name": "a", "approval": "Manual"}],
                     "free": {"anything": {"goes": 1}}}})
        );
        // Defaults only apply under a present parent.
        let mut no_spec = json!({"metadata": {}});
        apply_defaults(&mut no_spec, &schema());
        assert_eq!(no_spec, json!({"metadata": {}}));
    }

    #[test]
    fn validation_causes() {
        let obj = json!({"spec": {"severity": "SEV9", "replicas": "x", "port": 80}});
        let mut causes = vec![];
        validate(&obj, &schema(), "", &mut causes);
        let got: Vec<(String, String)> = causes
            .iter()
            .map(|c| (c.field.clone(), c.reason.clone()))
            .collect();
        assert!(got.contains(&("spec.title".into(), "FieldValueRequired".into())));
        assert!(got.contains(&("spec.severity".into(), "FieldValueNotSupported".into())));
        assert!(got.contains(&("spec.replicas".into(), "FieldValueTypeInvalid".into())));
        assert_eq!(got.len(), 3);
        let msg = causes
            .iter()
            .find(|c| c.field == "spec.severity")
            .map(|c| c.message.clone());
        assert_eq!(
            msg.as_deref(),
            Some("Unsupported value: \"SEV9\": supported values: \"SEV1\", \"SEV2\"")
        );
        let mut c2 = vec![];
        validate(
            &json!({"spec": {"title": "waytoolongtitle", "replicas": -1}}),
            &schema(),
            "",
            &mut c2,
        );
        assert_eq!(c2.len(), 2);
    }

    #[test]
    fn crd_to_resource() {
        let crd = json!({"metadata": {"name": "incidents.kubeincident.io"}, "spec": {
            "group": "kubeincident.io", "scope": "Namespaced",
            "names": {"plural": "incidents", "kind": "Incident", "shortNames": ["inc"], "categories": ["kube-incident"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": schema()},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}}]}});
        assert!(validate_crd(&crd).is_empty());
        let d = resource_def(&crd);
        assert_eq!(d.plural, "incidents");
        assert_eq!(d.singular, "incident");
        assert!(d.has_status && d.namespaced && !d.builtin);
        assert_eq!(
            d.scale.as_ref().map(|s| s.spec_replicas_path.clone()),
            Some("spec.replicas".to_string())
        );
        assert!(d.schema("v1alpha1").is_some());
        let mut bad = crd.clone();
        bad["metadata"]["name"] = json!("wrong");
        assert_eq!(validate_crd(&bad).len(), 1);
    }
}

//! The CRDs in crds/ are generated from the Rust types, and their schemas
//! accept the contract's examples and reject invalid objects.

use kube::CustomResourceExt;
use kube_incident::api::{crds_yaml, Incident, Runbook};
use serde_json::{json, Value};

const CRDS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/kube-incident.yaml");

#[test]
fn crds_dir_matches_generated_yaml() {
    let on_disk = std::fs::read_to_string(CRDS_FILE).expect("crds/kube-incident.yaml exists");
    let generated = crds_yaml().unwrap();
    assert!(
        on_disk == generated,
        "crds/kube-incident.yaml is out of date: run `cargo run -- crds > crds/kube-incident.yaml`"
    );
}

#[test]
fn chart_crds_match_top_level_crds() {
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/kube-incident/crds/kube-incident.yaml"
    );
    if let Ok(chart_crds) = std::fs::read_to_string(chart) {
        let top = std::fs::read_to_string(CRDS_FILE).unwrap();
        assert_eq!(
            chart_crds, top,
            "charts/kube-incident/crds/ differs from crds/"
        );
    }
}

/// The openAPIV3Schema of a CRD, made checkable by a JSON-Schema validator:
/// `nullable: true` becomes "or null" (OpenAPI 3.0 vs JSON Schema).
fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let v = serde_json::to_value(crd).unwrap();
    let mut schema = v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    fn fix(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.remove("nullable") == Some(Value::Bool(true)) {
                    if let Some(Value::String(t)) = map.get("type").cloned() {
                        map.insert("type".into(), json!([t, "null"]));
                    }
                    if let Some(Value::Array(e)) = map.get_mut("enum") {
                        e.push(Value::Null);
                    }
                }
                for (_, child) in map.iter_mut() {
                    fix(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(fix),
            _ => {}
        }
    }
    fix(&mut schema);
    schema
}

fn yaml_file(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn errors(schema: &Value, obj: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    validator
        .iter_errors(obj)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn contract_examples_are_valid_and_parse() {
    let inc_schema = schema_of(&Incident::crd());
    let rb_schema = schema_of(&Runbook::crd());
    let inc = yaml_file("docs/examples/incident.yaml");
    let rb = yaml_file("docs/examples/runbook.yaml");
    assert_eq!(errors(&inc_schema, &inc), Vec::<String>::new());
    assert_eq!(errors(&rb_schema, &rb), Vec::<String>::new());
    let parsed: Incident = serde_json::from_value(inc).unwrap();
    assert_eq!(parsed.spec.mitigations.len(), 3);
    let parsed: Runbook = serde_json::from_value(rb).unwrap();
    assert_eq!(parsed.spec.triggers.len(), 9);
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = base.pointer_mut(parent).unwrap();
    match target {
        Value::Object(m) => {
            if value.is_null() {
                m.remove(key);
            } else {
                m.insert(key.to_string(), value);
            }
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        _ => panic!("bad pointer {pointer}"),
    }
    base
}

#[test]
fn schema_rejects_invalid_incidents() {
    let schema = schema_of(&Incident::crd());
    let base = yaml_file("docs/examples/incident.yaml");
    for (pointer, value, why) in [
        ("/spec/severity", json!("SEV5"), "unknown severity"),
        ("/spec/severity", Value::Null, "missing severity"),
        ("/spec/title", Value::Null, "missing title"),
        ("/spec/source", json!("Pager"), "unknown source"),
        (
            "/spec/target/kind",
            json!("ReplicaSet"),
            "unsupported target kind",
        ),
        (
            "/spec/mitigations/0/action",
            json!("Reboot"),
            "unknown action",
        ),
        (
            "/spec/mitigations/0/approval",
            json!("Sometimes"),
            "unknown approval",
        ),
        (
            "/spec/mitigations/1/replicas",
            json!("six"),
            "replicas not an integer",
        ),
        (
            "/spec/mitigations/1/replicas",
            json!(-1),
            "negative replicas",
        ),
        (
            "/spec/mitigations/0/toRevision",
            json!(-2),
            "negative revision",
        ),
        ("/spec/mitigations/0/name", Value::Null, "step without name"),
    ] {
        let bad = with(base.clone(), pointer, value);
        assert!(
            !errors(&schema, &bad).is_empty(),
            "schema accepted an incident with {why}"
        );
    }
}

#[test]
fn schema_rejects_invalid_runbooks() {
    let schema = schema_of(&Runbook::crd());
    let base = yaml_file("docs/examples/runbook.yaml");
    for (pointer, value, why) in [
        (
            "/spec/triggers/0/type",
            json!("Meltdown"),
            "unknown trigger",
        ),
        ("/spec/triggers/1/for", json!("one minute"), "bad duration"),
        ("/spec/triggers/1/for", json!("5"), "duration without unit"),
        (
            "/spec/triggers/5/minUnavailableRatio",
            json!("1.5"),
            "ratio above 1",
        ),
        (
            "/spec/triggers/5/minUnavailableRatio",
            json!(0.5),
            "ratio as a number",
        ),
        (
            "/spec/severity/rules/0/severity",
            json!("SEV0"),
            "unknown severity",
        ),
        (
            "/spec/notify/0/format",
            json!("Email"),
            "unknown sink format",
        ),
        (
            "/spec/notify/0/urlSecretRef",
            Value::Null,
            "sink without secret",
        ),
        ("/spec/selector", Value::Null, "missing selector"),
        ("/spec/monitoring/window", json!("10 minutes"), "bad window"),
        (
            "/spec/limits/maxActionsPerHour",
            json!(-1),
            "negative limit",
        ),
    ] {
        let bad = with(base.clone(), pointer, value);
        assert!(
            !errors(&schema, &bad).is_empty(),
            "schema accepted a runbook with {why}"
        );
    }
}

#[test]
fn crd_metadata() {
    let inc = Incident::crd();
    assert_eq!(inc.spec.names.short_names, Some(vec!["inc".to_string()]));
    assert_eq!(
        inc.spec.names.categories,
        Some(vec!["kube-incident".to_string()])
    );
    let v = &inc.spec.versions[0];
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let cols: Vec<_> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        cols,
        vec![
            "Severity",
            "Phase",
            "Target",
            "Acknowledged",
            "Age",
            "Title"
        ]
    );
    let rb = Runbook::crd();
    assert_eq!(rb.spec.names.short_names, Some(vec!["rb".to_string()]));
    let cols: Vec<_> = rb.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, vec!["Ready", "Matched", "Age"]);
    // Defaults the API server fills in.
    let yaml = crds_yaml().unwrap();
    assert!(yaml.contains("default: Manual"));
}

//! Server-side printing: `meta.k8s.io/v1` Table responses for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get` asks for).

use serde_json::{json, Value};

use super::resources::ResourceDef;

/// kubectl's `ShortHumanDuration`-like rendering of an age in seconds.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(v: &Value, field: &str) -> String {
    let ts = v
        .pointer(field)
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match ts {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".to_string(),
    }
}

fn s(v: &Value, p: &str) -> String {
    match v.pointer(p) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn n(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// Evaluate a simple JSONPath (`.spec.a.b`, `.status.conditions[0].type`).
fn json_path(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (key, idx) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = match cur.get(key) {
            Some(x) => x,
            None => return Value::Null,
        };
        if let Some(i) = idx {
            cur = match cur.get(i) {
                Some(x) => x,
                None => return Value::Null,
            };
        }
    }
    cur.clone()
}

fn col(name: &str, ty: &str, format: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

fn pod_row(v: &Value) -> Vec<Value> {
    let statuses = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = v
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut status = s(v, "/status/phase");
    if let Some(r) = v.pointer("/status/reason").and_then(Value::as_str) {
        status = r.to_string();
    }
    for c in &statuses {
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            status = r.to_string();
        } else if let Some(r) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            status = r.to_string();
        }
    }
    if v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        status = "Terminating".into();
    }
    vec![
        json!(s(v, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(v, "/metadata/creationTimestamp")),
        json!(s(v, "/status/podIP")),
        json!(s(v, "/spec/nodeName")),
    ]
}

/// Columns and cells of a resource.
fn columns(def: &ResourceDef) -> Vec<Value> {
    let name = col("Name", "string", "name", 0);
    let agec = col("Age", "string", "", 0);
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => vec![
            name,
            col("Ready", "string", "", 0),
            col("Status", "string", "", 0),
            col("Restarts", "string", "", 0),
            agec,
            col("IP", "string", "", 1),
            col("Node", "string", "", 1),
        ],
        ("apps", "deployments") => vec![
            name,
            col("Ready", "string", "", 0),
            col("Up-to-date", "integer", "", 0),
            col("Available", "integer", "", 0),
            agec,
        ],
        ("apps", "replicasets") => vec![
            name,
            col("Desired", "integer", "", 0),
            col("Current", "integer", "", 0),
            col("Ready", "integer", "", 0),
            agec,
        ],
        ("", "namespaces") => vec![name, col("Status", "string", "", 0), agec],
        ("", "configmaps") => vec![name, col("Data", "integer", "", 0), agec],
        ("", "secrets") => vec![
            name,
            col("Type", "string", "", 0),
            col("Data", "integer", "", 0),
            agec,
        ],
        ("", "events") => vec![
            col("Last Seen", "string", "", 0),
            col("Type", "string", "", 0),
            col("Reason", "string", "", 0),
            col("Object", "string", "", 0),
            col("Message", "string", "", 0),
        ],
        _ if !def.builtin => {
            let mut cols = vec![name];
            let mut has_age = false;
            for c in &def.printer_columns {
                let cname = c["name"].as_str().unwrap_or_default();
                if cname.eq_ignore_ascii_case("age") {
                    has_age = true;
                }
                cols.push(json!({"name": cname, "type": c["type"].as_str().unwrap_or("string"),
                    "format": c["format"].as_str().unwrap_or(""), "description": c["description"].as_str().unwrap_or(""),
                    "priority": c["priority"].as_i64().unwrap_or(0)}));
            }
            if !has_age {
                cols.push(agec);
            }
            cols
        }
        _ => vec![name, agec],
    }
}

fn cells(def: &ResourceDef, v: &Value) -> Vec<Value> {
    let name = json!(s(v, "/metadata/name"));
    let a = json!(age(v, "/metadata/creationTimestamp"));
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => pod_row(v),
        ("apps", "deployments") => vec![
            name,
            json!(format!(
                "{}/{}",
                n(v, "/status/readyReplicas"),
                n(v, "/spec/replicas")
            )),
            json!(n(v, "/status/updatedReplicas")),
            json!(n(v, "/status/availableReplicas")),
            a,
        ],
        ("apps", "replicasets") => vec![
            name,
            json!(n(v, "/spec/replicas")),
            json!(n(v, "/status/replicas")),
            json!(n(v, "/status/readyReplicas")),
            a,
        ],
        ("", "namespaces") => vec![name, json!(s(v, "/status/phase")), a],
        ("", "configmaps") => {
            let d = v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + v.get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(d), a]
        }
        ("", "secrets") => vec![
            name,
            json!(s(v, "/type")),
            json!(v
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())),
            a,
        ],
        ("", "events") => {
            let last = if v.pointer("/lastTimestamp").is_some_and(|x| !x.is_null()) {
                "/lastTimestamp"
            } else {
                "/eventTime"
            };
            vec![
                json!(age(v, last)),
                json!(s(v, "/type")),
                json!(s(v, "/reason")),
                json!(format!(
                    "{}/{}",
                    s(v, "/involvedObject/kind").to_lowercase(),
                    s(v, "/involvedObject/name")
                )),
                json!(s(v, "/message")),
            ]
        }
        _ if !def.builtin => {
            let mut out = vec![name];
            let mut has_age = false;
            for c in &def.printer_columns {
                let path = c["jsonPath"].as_str().unwrap_or_default();
                let val = json_path(v, path);
                let ty = c["type"].as_str().unwrap_or("string");
                if c["name"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case("age"))
                {
                    has_age = true;
                }
                out.push(if ty == "date" {
                    match val.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
                        Some(t) => json!(human_duration(
                            jiff::Timestamp::now().as_second() - t.as_second()
                        )),
                        None => Value::Null,
                    }
                } else {
                    val
                });
            }
            if !has_age {
                out.push(a);
            }
            out
        }
        _ => vec![name, a],
    }
}

/// A Table for the given objects.
pub fn table(
    def: &ResourceDef,
    items: &[Value],
    rv: u64,
    cont: Option<&str>,
    include: Option<&str>,
) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|v| {
            let object = match include {
                Some("None") => Value::Null,
                Some("Object") => v.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": v["metadata"]}),
            };
            json!({"cells": cells(def, v), "object": object})
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": columns(def), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 60), "4h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn jsonpath() {
        let v = json!({"status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&v, ".status.conditions[0].type"), json!("Ready"));
        assert_eq!(json_path(&v, ".spec.x"), Value::Null);
    }
}

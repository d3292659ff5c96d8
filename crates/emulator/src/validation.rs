//! Object name rules and the validation of built-in kinds that clients
//! commonly trip over (422 Invalid with `details.causes`).

use serde_json::Value;

use super::status::Cause;

/// DNS-1123 label: at most 63 lower-case alphanumerics or `-`, starting and
/// ending alphanumeric.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label_lenient)
}

fn is_dns1123_label_lenient(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The name rule a kind uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 label (namespaces, services).
    Label,
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// Path segment only (events, CRs of some kinds): no `/`, `%`, `.`, `..`.
    /// Names that are one URL path segment (no kind served today uses it).
    #[allow(dead_code)]
    PathSegment,
}

/// Validate `metadata.name`; returns the cause on failure.
pub fn validate_name(name: &str, rule: NameRule) -> Option<Cause> {
    let value = Value::String(name.to_string());
    match rule {
        NameRule::Label if !is_dns1123_label(name) => Some(Cause::invalid(
            "metadata.name",
            &value,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )),
        NameRule::Subdomain if !is_dns1123_subdomain(name) => Some(Cause::invalid(
            "metadata.name",
            &value,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )),
        NameRule::PathSegment
            if name == "." || name == ".." || name.contains('/') || name.contains('%') =>
        {
            Some(Cause::invalid("metadata.name", &value, "may not contain '/' or '%'"))
        }
        _ => None,
    }
}

/// Random 5-character suffix for `generateName` (the alphabet of
/// `k8s.io/apimachinery/pkg/util/rand.String`).
pub fn generate_suffix() -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char)
        .collect()
}

fn labels_of(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    v.get("metadata")?.get("labels")?.as_object()
}

fn validate_pod_spec(spec: Option<&Value>, prefix: &str, causes: &mut Vec<Cause>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(&format!("{prefix}.containers"))),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(&format!("{prefix}.containers"))),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    causes.push(Cause::required(&format!("{prefix}.containers[{i}].name")));
                } else if !is_dns1123_label(name) {
                    causes.push(Cause::invalid(
                        &format!("{prefix}.containers[{i}].name"),
                        &Value::String(name.to_string()),
                        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                    ));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .is_empty()
                {
                    causes.push(Cause::required(&format!("{prefix}.containers[{i}].image")));
                }
            }
        }
    }
}

fn validate_workload(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec");
    if let Some(r) = spec.and_then(|s| s.get("replicas")) {
        if r.as_i64().is_some_and(|n| n < 0) {
            causes.push(Cause::invalid(
                "spec.replicas",
                r,
                "must be greater than or equal to 0",
            ));
        }
    }
    let selector = spec.and_then(|s| s.get("selector"));
    match selector {
        None | Some(Value::Null) => causes.push(Cause::required("spec.selector")),
        Some(sel) => {
            let tmpl = spec.and_then(|s| s.get("template"));
            let tl = tmpl.and_then(labels_of);
            let sel_parsed = super::selectors::LabelSelector::from_label_selector_json(sel);
            if sel_parsed.is_empty() {
                causes.push(Cause::invalid(
                    "spec.selector",
                    sel,
                    "empty selector is invalid for deployment",
                ));
            }
            let tl_map: std::collections::BTreeMap<String, String> = tl
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if !sel_parsed.matches(&tl_map) {
                causes.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    &serde_json::to_value(&tl_map).unwrap_or(Value::Null),
                    "`selector` does not match template `labels`",
                ));
            }
            validate_pod_spec(
                tmpl.and_then(|t| t.get("spec")),
                "spec.template.spec",
                causes,
            );
        }
    }
}

/// Validate a built-in object of `kind` (`group` `""` for core); returns the causes.
pub fn validate_builtin(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (group, kind) {
        ("", "Pod") => validate_pod_spec(obj.get("spec"), "spec", &mut causes),
        ("apps", "Deployment") | ("apps", "ReplicaSet") => validate_workload(obj, &mut causes),
        ("", "ConfigMap") | ("", "Secret") => {
            for field in ["data", "stringData", "binaryData"] {
                if let Some(m) = obj.get(field).and_then(Value::as_object) {
                    for k in m.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k.chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                        if !ok {
                            causes.push(Cause::invalid(
                                &format!("{field}[{k}]"),
                                &Value::String(k.clone()),
                                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                            ));
                        }
                    }
                }
            }
        }
        ("coordination.k8s.io", "Lease") => {
            if let Some(n) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
            {
                if n <= 0 {
                    causes.push(Cause::invalid(
                        "spec.leaseDurationSeconds",
                        &Value::from(n),
                        "must be greater than 0",
                    ));
                }
            }
        }
        _ => {}
    }
    causes
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// A qualified name (`[prefix/]name`) as used by label and annotation keys
/// and finalizers.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// kube-apiserver's limit on the total size of an object's annotations
/// (the sum of key and value lengths): `TotalAnnotationSizeLimitB`.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Validate `metadata.labels` (keys and values), the total size of
/// `metadata.annotations` and finalizer names.
pub fn validate_metadata(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let md = obj.get("metadata");
    if let Some(annotations) = md
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let total: usize = annotations
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "metadata.annotations",
                format!("Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
            ));
        }
    }
    if let Some(labels) = md.and_then(|m| m.get("labels")).and_then(Value::as_object) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            let val = v.as_str().unwrap_or_default();
            if !val.is_empty() && !is_label_name(val) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(fins) = md
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
    {
        for (i, f) in fins.iter().enumerate() {
            if !f.as_str().is_some_and(is_qualified_name) {
                causes.push(Cause::invalid(
                    &format!("metadata.finalizers[{i}]"),
                    f,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    causes
}

/// The name rule of a built-in kind.
pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Label,
        ("", "Event") | ("events.k8s.io", "Event") => NameRule::Subdomain,
        _ => NameRule::Subdomain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("a.b-c.d1"));
        assert!(!is_dns1123_subdomain("Upper"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_label("abc-1"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(validate_name("bad_name", NameRule::Subdomain).is_some());
        assert!(validate_name("a.b", NameRule::Label).is_some());
        assert!(validate_name("ok", NameRule::Label).is_none());
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("kubernetes"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("-x"));
        let c = validate_metadata(
            &serde_json::json!({"metadata": {"labels": {"ok": "v", "k": "bad value"},
            "finalizers": ["example.com/f", "no spaces"]}}),
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.labels", "metadata.finalizers[1]"]);
        // kube-apiserver: "metadata.annotations: Too long: may not be more than 262144 bytes".
        let fits = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 3);
        assert!(validate_metadata(&json!({"metadata": {"annotations": {"big": fits}}})).is_empty());
        let over = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 2);
        let c = validate_metadata(&json!({"metadata": {"annotations": {"big": over}}}));
        assert_eq!(
            c.iter().map(Cause::text).collect::<Vec<_>>(),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        let s = generate_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn workloads() {
        let ok = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(validate_builtin("apps", "Deployment", &ok).is_empty());
        let bad = json!({"spec": {"selector": {"matchLabels": {"app": "b"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}}});
        let c = validate_builtin("apps", "Deployment", &bad);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.template.metadata.labels",
                "spec.template.spec.containers"
            ]
        );
        assert_eq!(
            validate_builtin("", "Pod", &json!({"spec": {}}))[0].field,
            "spec.containers"
        );
    }
}

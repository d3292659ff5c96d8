//! Label selectors (`metav1.LabelSelector`) and Runbook selection with tenancy.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::Runbook;

/// A selector that cannot be evaluated (an unknown operator).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    pub field: String,
    pub message: String,
}

/// Check a selector's operators (`In`, `NotIn`, `Exists`, `DoesNotExist`)
/// and value counts as the API server does for built-in selectors.
pub fn validate_selector(sel: &LabelSelector, field: &str) -> Result<(), SelectorError> {
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_ref().map_or(0, Vec::len);
        let err = |message: String| SelectorError {
            field: format!("{field}.matchExpressions[{i}]"),
            message,
        };
        match e.operator.as_str() {
            "In" | "NotIn" if values == 0 => {
                return Err(err(format!(
                    "operator {} needs at least one value",
                    e.operator
                )))
            }
            "Exists" | "DoesNotExist" if values > 0 => {
                return Err(err(format!("operator {} takes no values", e.operator)))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(err(format!(
                    "unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                )))
            }
        }
    }
    Ok(())
}

/// Whether `labels` match the selector. An empty selector matches everything;
/// an invalid one matches nothing.
pub fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if validate_selector(sel, "selector").is_err() {
        return false;
    }
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// The Runbook that governs a Deployment, honouring tenancy:
/// - a Runbook applies to Deployments in its own namespace whose labels
///   match its `selector`;
/// - a Runbook in the operator's own namespace with a `namespaceSelector`
///   also applies to Deployments of the namespaces it selects;
/// - `namespaceSelector` on a Runbook in any other namespace is ignored.
///
/// A same-namespace Runbook wins over an operator-namespace one; among
/// equals, the first by name (deterministic).
pub fn runbook_for<'a>(
    runbooks: impl IntoIterator<Item = &'a Runbook>,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    workload_labels: &BTreeMap<String, String>,
    operator_namespace: Option<&str>,
) -> Option<&'a Runbook> {
    let mut local: Vec<&Runbook> = Vec::new();
    let mut global: Vec<&Runbook> = Vec::new();
    for rb in runbooks {
        let rb_ns = rb.metadata.namespace.as_deref().unwrap_or_default();
        if !matches(&rb.spec.selector, workload_labels) {
            continue;
        }
        if rb_ns == namespace {
            local.push(rb);
        } else if Some(rb_ns) == operator_namespace {
            if let Some(ns_sel) = &rb.spec.namespace_selector {
                if matches(ns_sel, namespace_labels) {
                    global.push(rb);
                }
            }
        }
    }
    let by_name = |a: &&Runbook, b: &&Runbook| a.metadata.name.cmp(&b.metadata.name);
    local.sort_by(by_name);
    global.sort_by(by_name);
    local.into_iter().chain(global).next()
}

/// Why a Runbook's `namespaceSelector` is not used, when it is not: only a
/// Runbook in the operator's own namespace covers other namespaces (see
/// [`runbook_for`]). `None`: no `namespaceSelector`, or it is honoured.
pub fn ignored_namespace_selector(
    rb: &Runbook,
    operator_namespace: Option<&str>,
) -> Option<String> {
    rb.spec.namespace_selector.as_ref()?;
    let rb_ns = rb.metadata.namespace.as_deref().unwrap_or_default();
    match operator_namespace {
        Some(op) if op == rb_ns => None,
        Some(op) => Some(format!(
            "namespaceSelector is ignored: only Runbooks in the operator's namespace {op:?} cover other namespaces; this Runbook covers Deployments of namespace {rb_ns:?} only"
        )),
        None => Some(format!(
            "namespaceSelector is ignored: the operator's namespace is not known (set --operator-namespace or POD_NAMESPACE); this Runbook covers Deployments of namespace {rb_ns:?} only"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn runbook(ns: &str, name: &str, spec: serde_json::Value) -> Runbook {
        serde_json::from_value(json!({
            "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
            "metadata": {"name": name, "namespace": ns}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn selector_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(matches(&sel(json!({})), &l));
        assert!(matches(&sel(json!({"matchLabels": {"app": "web"}})), &l));
        assert!(!matches(&sel(json!({"matchLabels": {"app": "db"}})), &l));
        assert!(matches(
            &sel(
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]})
            ),
            &l
        ));
        assert!(matches(
            &sel(
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]})
            ),
            &l
        ));
        assert!(matches(
            &sel(
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]})
            ),
            &l
        ));
        assert!(matches(
            &sel(json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})),
            &l
        ));
        assert!(!matches(
            &sel(json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]})),
            &l
        ));
        let bad =
            sel(json!({"matchExpressions": [{"key": "app", "operator": "Like", "values": ["w"]}]}));
        assert!(!matches(&bad, &l));
        let err = validate_selector(&bad, "spec.selector").unwrap_err();
        assert_eq!(err.field, "spec.selector.matchExpressions[0]");
        assert!(validate_selector(
            &sel(json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
            "s"
        )
        .is_err());
    }

    #[test]
    fn an_ignored_namespace_selector_is_said_so() {
        let sneaky = runbook(
            "other",
            "all",
            json!({"selector": {}, "namespaceSelector": {}}),
        );
        let m = ignored_namespace_selector(&sneaky, Some("kube-incident")).unwrap();
        assert!(m.starts_with("namespaceSelector is ignored"), "{m}");
        assert!(
            m.contains("\"kube-incident\"") && m.contains("\"other\" only"),
            "{m}"
        );
        let m = ignored_namespace_selector(&sneaky, None).unwrap();
        assert!(m.contains("--operator-namespace"), "{m}");
        let platform = runbook(
            "kube-incident",
            "platform",
            json!({"selector": {}, "namespaceSelector": {}}),
        );
        assert_eq!(
            ignored_namespace_selector(&platform, Some("kube-incident")),
            None
        );
        let plain = runbook("other", "web", json!({"selector": {}}));
        assert_eq!(
            ignored_namespace_selector(&plain, Some("kube-incident")),
            None
        );
    }

    #[test]
    fn tenancy() {
        let web = labels(&[("app", "web")]);
        let shop_rb = runbook(
            "shop",
            "web",
            json!({"selector": {"matchLabels": {"app": "web"}}}),
        );
        let other_rb = runbook(
            "other",
            "web",
            json!({"selector": {"matchLabels": {"app": "web"}}}),
        );
        // A Runbook in another namespace never applies, even with a namespaceSelector.
        let sneaky = runbook(
            "other",
            "all",
            json!({"selector": {}, "namespaceSelector": {}}),
        );
        let platform = runbook(
            "kube-incident",
            "platform",
            json!({"selector": {}, "namespaceSelector": {"matchLabels": {"team": "shop"}}}),
        );
        let rbs = [other_rb.clone(), sneaky.clone()];
        assert!(runbook_for(
            &rbs,
            "shop",
            &labels(&[("team", "shop")]),
            &web,
            Some("kube-incident")
        )
        .is_none());
        let rbs = [other_rb, sneaky, platform.clone(), shop_rb.clone()];
        // Same-namespace Runbook first.
        let got = runbook_for(
            &rbs,
            "shop",
            &labels(&[("team", "shop")]),
            &web,
            Some("kube-incident"),
        )
        .unwrap();
        assert_eq!(got.metadata.namespace.as_deref(), Some("shop"));
        // The operator-namespace Runbook applies through its namespaceSelector.
        let rbs = [platform.clone()];
        let got = runbook_for(
            &rbs,
            "shop",
            &labels(&[("team", "shop")]),
            &web,
            Some("kube-incident"),
        )
        .unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("platform"));
        // ... only to the namespaces it selects.
        assert!(runbook_for(
            &rbs,
            "bank",
            &labels(&[("team", "bank")]),
            &web,
            Some("kube-incident")
        )
        .is_none());
        // ... and only while it sits in the operator's namespace.
        assert!(runbook_for(
            &rbs,
            "shop",
            &labels(&[("team", "shop")]),
            &web,
            Some("elsewhere")
        )
        .is_none());
        // Selectors still apply to the workload.
        let rbs = [shop_rb];
        assert!(runbook_for(
            &rbs,
            "shop",
            &BTreeMap::new(),
            &labels(&[("app", "db")]),
            None
        )
        .is_none());
    }
}

//! Label selectors (`metav1.LabelSelector`) and Runbook selection with tenancy.
//!
//! Matching and list parameters use [`kube::core::Selector`]; this module
//! adds the API server's checks of a selector (with the field that is
//! wrong) and the tenancy rules of Runbooks.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::api::{Runbook, RunbookSpec, TargetKind};

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

/// The selector as a [`Selector`] (for [`SelectorExt::matches`] and, through
/// its `Display`, for list parameters), once it passes [`validate_selector`].
pub fn label_selector(sel: &LabelSelector, field: &str) -> Result<Selector, SelectorError> {
    validate_selector(sel, field)?;
    Selector::try_from(sel.clone()).map_err(|e| SelectorError {
        field: field.to_string(),
        message: e.to_string(),
    })
}

/// Whether `labels` match the selector. An empty selector matches everything;
/// an invalid one matches nothing.
pub fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    label_selector(sel, "selector").is_ok_and(|s| s.matches(labels))
}

/// The selector of a Deployment's pods and ReplicaSets: its whole
/// `spec.selector`, matchLabels and matchExpressions. It selects everything
/// when the selector is empty (or the Deployment has no spec), which the
/// API server does not accept for a Deployment; callers decide what that means.
pub fn deployment_selector(d: &Deployment) -> Result<Selector, SelectorError> {
    let sel = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    label_selector(&sel, "spec.selector")
}

/// Whether a Runbook applies to workloads of `kind`: its `targetKinds`,
/// or `[Deployment, Pod]` when it lists none (the v1alpha1 behaviour).
pub fn covers_kind(spec: &RunbookSpec, kind: TargetKind) -> bool {
    if spec.target_kinds.is_empty() {
        TargetKind::DEFAULT_RUNBOOK_KINDS.contains(&kind)
    } else {
        spec.target_kinds.contains(&kind)
    }
}

/// The Runbook that governs a workload of `kind`, honouring tenancy:
/// - a Runbook applies to Deployments in its own namespace whose labels
///   match its `selector`;
/// - a Runbook in the operator's own namespace with a `namespaceSelector`
///   also applies to Deployments of the namespaces it selects;
/// - `namespaceSelector` on a Runbook in any other namespace is ignored.
///
/// A cluster-wide Runbook (operator namespace) wins over one in the
/// workload's namespace: a tenant's Runbook never overrides the platform's
/// policy. Among equals, the first by name (deterministic).
pub fn runbook_for<'a>(
    runbooks: impl IntoIterator<Item = &'a Runbook>,
    namespace: &str,
    kind: TargetKind,
    namespace_labels: &BTreeMap<String, String>,
    workload_labels: &BTreeMap<String, String>,
    operator_namespace: Option<&str>,
) -> Option<&'a Runbook> {
    let mut local: Vec<&Runbook> = Vec::new();
    let mut global: Vec<&Runbook> = Vec::new();
    for rb in runbooks {
        let rb_ns = rb.metadata.namespace.as_deref().unwrap_or_default();
        if !covers_kind(&rb.spec, kind) || !matches(&rb.spec.selector, workload_labels) {
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
    global.into_iter().chain(local).next()
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
    fn deployment_selector_keeps_match_expressions() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]},
                                     {"key": "debug", "operator": "DoesNotExist"}]},
                "template": {}}
        }))
        .unwrap();
        let s = deployment_selector(&d).unwrap();
        assert_eq!(s.to_string(), "app=web,track in (canary,stable),!debug");
        assert!(s.matches(&labels(&[("app", "web"), ("track", "canary")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("track", "beta")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("track", "stable"),
            ("debug", "1")
        ])));
        assert!(!s.matches(&labels(&[("track", "stable")])));
        // No spec: selects everything; an invalid selector names its field.
        let bare: Deployment = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert!(deployment_selector(&bare).unwrap().selects_all());
        let mut bad = d.clone();
        bad.spec
            .as_mut()
            .unwrap()
            .selector
            .match_expressions
            .as_mut()
            .unwrap()[0]
            .values = Some(vec![]);
        let e = deployment_selector(&bad).unwrap_err();
        assert_eq!(e.field, "spec.selector.matchExpressions[0]");
        let mut unknown = d;
        unknown
            .spec
            .as_mut()
            .unwrap()
            .selector
            .match_expressions
            .as_mut()
            .unwrap()[1]
            .operator = "Absent".into();
        assert!(deployment_selector(&unknown).is_err());
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
            TargetKind::Deployment,
            &labels(&[("team", "shop")]),
            &web,
            Some("kube-incident")
        )
        .is_none());
        let rbs = [other_rb, sneaky, platform.clone(), shop_rb.clone()];
        // The cluster-wide Runbook first: a tenant's own Runbook never overrides it.
        let got = runbook_for(
            &rbs,
            "shop",
            TargetKind::Deployment,
            &labels(&[("team", "shop")]),
            &web,
            Some("kube-incident"),
        )
        .unwrap();
        assert_eq!(got.metadata.namespace.as_deref(), Some("kube-incident"));
        // Without a matching cluster-wide one, the namespace's Runbook governs.
        let got = runbook_for(
            &rbs,
            "shop",
            TargetKind::Deployment,
            &labels(&[("team", "other")]),
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
            TargetKind::Deployment,
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
            TargetKind::Deployment,
            &labels(&[("team", "bank")]),
            &web,
            Some("kube-incident")
        )
        .is_none());
        // ... and only while it sits in the operator's namespace.
        assert!(runbook_for(
            &rbs,
            "shop",
            TargetKind::Deployment,
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
            TargetKind::Deployment,
            &BTreeMap::new(),
            &labels(&[("app", "db")]),
            None
        )
        .is_none());
    }

    #[test]
    fn target_kinds_default_to_deployments_and_bare_pods() {
        let plain = runbook("shop", "web", json!({"selector": {}}));
        let sts = runbook(
            "shop",
            "db",
            json!({"selector": {}, "targetKinds": ["StatefulSet", "CronJob"]}),
        );
        for k in TargetKind::ALL {
            let want = matches!(k, TargetKind::Deployment | TargetKind::Pod);
            assert_eq!(covers_kind(&plain.spec, k), want, "{k}");
            let want = matches!(k, TargetKind::StatefulSet | TargetKind::CronJob);
            assert_eq!(covers_kind(&sts.spec, k), want, "{k}");
        }
        // The kind filters before the name order: web (plain) is skipped for a StatefulSet.
        let rbs = [plain, sts];
        let got = runbook_for(
            &rbs,
            "shop",
            TargetKind::StatefulSet,
            &BTreeMap::new(),
            &BTreeMap::new(),
            None,
        )
        .unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("db"));
    }
}

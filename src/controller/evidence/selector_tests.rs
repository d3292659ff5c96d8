//! The pods (and ReplicaSets) the evidence is gathered from: the
//! Deployment's whole selector, as the API server reads `labelSelector`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use super::{list_params_of, SelectedBy};

fn deployment(selector: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": selector, "template": {}}
    }))
    .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn list_params(d: &Deployment) -> kube::api::ListParams {
    match list_params_of(d) {
        SelectedBy::Selector(lp) => lp,
        other => panic!("expected list parameters, got {other:?}"),
    }
}

#[test]
fn match_expressions_select_exactly_the_deployments_pods() {
    let d = deployment(json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "track", "operator": "In", "values": ["stable", "canary"]},
            {"key": "tier", "operator": "NotIn", "values": ["debug"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"}
        ]
    }));
    let pods = [
        (
            "web-stable-1",
            labels(&[("app", "web"), ("track", "stable"), ("team", "a")]),
        ),
        (
            "web-canary-1",
            labels(&[
                ("app", "web"),
                ("track", "canary"),
                ("team", "a"),
                ("tier", "front"),
            ]),
        ),
        (
            "web-beta-1",
            labels(&[("app", "web"), ("track", "beta"), ("team", "a")]),
        ),
        (
            "web-debug-1",
            labels(&[
                ("app", "web"),
                ("track", "stable"),
                ("team", "a"),
                ("tier", "debug"),
            ]),
        ),
        (
            "web-noteam-1",
            labels(&[("app", "web"), ("track", "stable")]),
        ),
        (
            "web-legacy-1",
            labels(&[
                ("app", "web"),
                ("track", "stable"),
                ("team", "a"),
                ("legacy", "1"),
            ]),
        ),
        (
            "api-stable-1",
            labels(&[("app", "api"), ("track", "stable"), ("team", "a")]),
        ),
    ];
    let lp = list_params(&d);
    let text = lp.label_selector.clone().unwrap_or_default();
    let sel = emulator::LabelSelector::parse(&text).unwrap();
    let selected: Vec<&str> = pods
        .iter()
        .filter(|(_, l)| sel.matches(l))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(selected, vec!["web-stable-1", "web-canary-1"]);
}

#[test]
fn selectors_that_select_everything_or_nothing_list_nothing() {
    // Only matchExpressions: still a selector (it used to be ignored).
    let exprs = deployment(json!({
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
    }));
    assert_eq!(
        list_params(&exprs).label_selector.as_deref(),
        Some("app in (web)")
    );
    // An empty selector would gather every pod of the namespace.
    assert!(matches!(
        list_params_of(&deployment(json!({}))),
        SelectedBy::Everything
    ));
    let invalid = deployment(json!({
        "matchExpressions": [{"key": "app", "operator": "In", "values": []}]
    }));
    match list_params_of(&invalid) {
        SelectedBy::Invalid(e) => assert_eq!(e.field, "spec.selector.matchExpressions[0]"),
        other => panic!("{other:?}"),
    }
}

//! The ReplicaSets the executor lists: the Deployment's whole selector,
//! as the API server reads the `labelSelector` parameter.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use super::replica_set_list_params;

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

/// The names of `objects` the list parameters select, as the (emulated)
/// API server parses and applies `labelSelector`.
fn selected<'a>(
    lp: &kube::api::ListParams,
    objects: &'a [(&'a str, BTreeMap<String, String>)],
) -> Vec<&'a str> {
    let text = lp.label_selector.clone().unwrap_or_default();
    let sel = emulator::LabelSelector::parse(&text).unwrap();
    objects
        .iter()
        .filter(|(_, l)| sel.matches(l))
        .map(|(n, _)| *n)
        .collect()
}

#[test]
fn match_expressions_select_exactly_the_deployments_replica_sets() {
    let d = deployment(json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "track", "operator": "In", "values": ["stable", "canary"]},
            {"key": "tier", "operator": "NotIn", "values": ["debug"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"}
        ]
    }));
    let objects = [
        (
            "web-stable",
            labels(&[("app", "web"), ("track", "stable"), ("team", "a")]),
        ),
        (
            "web-canary",
            labels(&[
                ("app", "web"),
                ("track", "canary"),
                ("team", "a"),
                ("tier", "front"),
            ]),
        ),
        (
            "web-beta",
            labels(&[("app", "web"), ("track", "beta"), ("team", "a")]),
        ),
        (
            "web-debug",
            labels(&[
                ("app", "web"),
                ("track", "stable"),
                ("team", "a"),
                ("tier", "debug"),
            ]),
        ),
        ("web-noteam", labels(&[("app", "web"), ("track", "stable")])),
        (
            "web-legacy",
            labels(&[
                ("app", "web"),
                ("track", "stable"),
                ("team", "a"),
                ("legacy", "1"),
            ]),
        ),
        (
            "api-stable",
            labels(&[("app", "api"), ("track", "stable"), ("team", "a")]),
        ),
    ];
    let lp = replica_set_list_params(&d);
    assert_eq!(selected(&lp, &objects), vec!["web-stable", "web-canary"]);
    // matchLabels alone still select by them.
    let plain = deployment(json!({"matchLabels": {"app": "web"}}));
    assert_eq!(
        replica_set_list_params(&plain).label_selector.as_deref(),
        Some("app=web")
    );
    // A selector the API server would reject lists the namespace (the core
    // keeps the Deployment's own ReplicaSets by owner reference).
    let invalid = deployment(json!({
        "matchExpressions": [{"key": "track", "operator": "Like", "values": ["s"]}]
    }));
    assert_eq!(replica_set_list_params(&invalid).label_selector, None);
}

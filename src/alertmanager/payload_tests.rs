use axum::http::StatusCode;
use serde_json::json;

use super::*;

fn payload(status: &str, alerts: serde_json::Value) -> Vec<u8> {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"CheckoutDown\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "kube-incident",
        "groupLabels": {"alertname": "CheckoutDown"},
        "commonLabels": {"alertname": "CheckoutDown"},
        "commonAnnotations": {"summary": "checkout 5xx above 5%"},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
    .to_string()
    .into_bytes()
}

fn alert(status: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"status": status, "labels": labels, "annotations": {}, "startsAt": "2026-01-01T00:00:00Z",
           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "abc"})
}

#[test]
fn firing_maps_namespace_target_and_highest_severity() {
    let body = payload(
        "firing",
        json!([
            alert(
                "firing",
                json!({"namespace": "shop", "deployment": "checkout", "severity": "warning"})
            ),
            alert(
                "firing",
                json!({"namespace": "shop", "pod": "checkout-1", "severity": "critical"})
            ),
        ]),
    );
    let a = plan(&body, &Mapping::default(), &[]).unwrap();
    assert_eq!(a.len(), 1);
    match &a[0] {
        Action::Fire {
            namespace,
            name,
            severity,
            target,
            title,
            ..
        } => {
            assert_eq!(namespace, "shop");
            assert!(name.starts_with("am-") && name.len() == 19, "{name}");
            assert_eq!(*severity, Severity::SEV1);
            assert_eq!(target, &Some((TargetKind::Deployment, "checkout".into())));
            assert_eq!(title, "CheckoutDown: checkout 5xx above 5%");
        }
        other => panic!("{other:?}"),
    }
    // Same group, same namespace: same name.
    let again = plan(&body, &Mapping::default(), &[]).unwrap();
    assert_eq!(a, again);
}

#[test]
fn all_resolved_resolves_and_namespaces_split() {
    let body = payload(
        "resolved",
        json!([
            alert("resolved", json!({"namespace": "shop"})),
            alert("firing", json!({"namespace": "pay"})),
        ]),
    );
    let a = plan(&body, &Mapping::default(), &[]).unwrap();
    assert_eq!(a.len(), 2);
    assert!(matches!(&a[0], Action::Fire { namespace, .. } if namespace == "pay"));
    assert!(matches!(&a[1], Action::Resolve { namespace, .. } if namespace == "shop"));
}

#[test]
fn mapping_is_configurable() {
    let mut m = Mapping::default()
        .with_severity_overrides(&["P1=SEV1".into(), "warning=SEV2".into()])
        .unwrap();
    m.namespace_label = "k8s_namespace".into();
    m.severity_label = "priority".into();
    let body = payload(
        "firing",
        json!([alert(
            "firing",
            json!({"k8s_namespace": "shop", "priority": "p1"})
        )]),
    );
    match &plan(&body, &m, &[]).unwrap()[0] {
        Action::Fire {
            severity, target, ..
        } => {
            assert_eq!(*severity, Severity::SEV1);
            assert_eq!(*target, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(Mapping::default()
        .with_severity_overrides(&["nonsense".into()])
        .is_err());
    assert!(Mapping::default()
        .with_severity_overrides(&["x=SEV9".into()])
        .is_err());
}

#[test]
fn malformed_payloads_are_refused_with_the_right_status() {
    let m = Mapping::default();
    let e = plan(b"{not json", &m, &[]).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    let mut v: serde_json::Value = serde_json::from_slice(&payload(
        "firing",
        json!([alert("firing", json!({"namespace": "shop"}))]),
    ))
    .unwrap();
    v["version"] = json!("3");
    let e = plan(v.to_string().as_bytes(), &m, &[]).unwrap_err();
    assert_eq!(e, IntakeError::Version("3".into()));
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    v["version"] = json!("4");
    v["groupKey"] = json!("");
    assert_eq!(
        plan(v.to_string().as_bytes(), &m, &[])
            .unwrap_err()
            .status(),
        StatusCode::BAD_REQUEST
    );
    v["groupKey"] = json!("g");
    v["alerts"] = json!([]);
    assert_eq!(
        plan(v.to_string().as_bytes(), &m, &[])
            .unwrap_err()
            .status(),
        StatusCode::BAD_REQUEST
    );
    v["alerts"] = json!([alert("weird", json!({"namespace": "shop"}))]);
    assert_eq!(
        plan(v.to_string().as_bytes(), &m, &[])
            .unwrap_err()
            .status(),
        StatusCode::BAD_REQUEST
    );
    // No namespace label, or an unwatched namespace: 422.
    let body = payload("firing", json!([alert("firing", json!({"job": "x"}))]));
    assert_eq!(
        plan(&body, &m, &[]).unwrap_err().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let body = payload(
        "firing",
        json!([alert("firing", json!({"namespace": "other"}))]),
    );
    assert_eq!(
        plan(&body, &m, &["shop".into()]).unwrap_err().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

//! The generated objects: typed, naming the operator, digest per rules,
//! and the Helm template.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde_json::json;

use super::*;
use crate::admission::rules::{exempt_user, rules_digest};
use crate::admission::{INCIDENTS_POLICY, RUNBOOKS_POLICY};

#[test]
fn manifests_parse_as_typed_objects_and_name_the_operator() {
    let docs = policy_manifests("system:serviceaccount:ops:kube-incident");
    assert_eq!(docs.len(), 4);
    for d in &docs {
        match d["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => {
                let p: ValidatingAdmissionPolicy = serde_json::from_value(d.clone()).unwrap();
                let spec = p.spec.unwrap();
                assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
                assert_eq!(
                    spec.match_conditions.unwrap()[0].expression,
                    "request.userInfo.username != \"system:serviceaccount:ops:kube-incident\""
                );
                for v in spec.validations.unwrap() {
                    assert!(v.message_expression.is_some(), "{}", v.expression);
                    assert_eq!(v.reason.as_deref(), Some("Forbidden"));
                }
            }
            Some("ValidatingAdmissionPolicyBinding") => {
                let b: ValidatingAdmissionPolicyBinding =
                    serde_json::from_value(d.clone()).unwrap();
                let spec = b.spec.unwrap();
                assert_eq!(spec.validation_actions.unwrap(), ["Deny"]);
                assert!(spec.match_resources.is_none(), "cluster-wide");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains('@'), "no placeholder left: {text}");
    assert!(text.contains("bind ClusterRole kube-incident-approver"));
}

#[test]
fn digest_names_the_rules_not_the_installation() {
    let a = policy_manifests("a");
    let b = policy_manifests_with(&PolicyOptions {
        name_prefix: "other".into(),
        namespaces: vec!["shop".into()],
        ..PolicyOptions::new("b")
    });
    assert_eq!(
        a[0]["metadata"]["annotations"][DIGEST_ANNOTATION],
        b[0]["metadata"]["annotations"][DIGEST_ANNOTATION]
    );
    assert_ne!(
        rules_digest(INCIDENTS_POLICY),
        rules_digest(RUNBOOKS_POLICY)
    );
    assert_eq!(exempt_user(&a[0]["spec"]).as_deref(), Some("a"));
    assert_eq!(
        b[1]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["shop"])
    );
}

#[test]
fn the_helm_template_carries_the_rules() {
    let t = helm_template().unwrap();
    assert!(t.contains("{{ $operator }}") && t.contains("{{ $fullname }}-approver"));
    assert!(!t.contains('@'));
    assert_eq!(t.matches("kind: ValidatingAdmissionPolicy\n").count(), 2);
}

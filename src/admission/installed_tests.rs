//! Comparing what the server holds with what this code generates.

use serde_json::json;

use super::*;
use crate::admission::rules::policy_spec;
use crate::admission::INCIDENTS_POLICY;

#[test]
fn differences_ignore_server_defaults_but_not_edits() {
    let want = policy_spec(INCIDENTS_POLICY, "p", "op");
    let mut got = want.clone();
    got["matchConstraints"]["matchPolicy"] = json!("Equivalent");
    got["matchConstraints"]["resourceRules"][0]["scope"] = json!("*");
    assert_eq!(first_difference(&want, &got, "spec"), None);
    got["validations"][2]["expression"] = json!("true");
    assert_eq!(
        first_difference(&want, &got, "spec").as_deref(),
        Some("spec.validations[2].expression differs")
    );
    got["validations"].as_array_mut().unwrap().pop();
    assert!(first_difference(&want, &got, "spec")
        .unwrap()
        .starts_with("spec.validations has 6 entries, expected 7"));
}

//! The rules of the policies in CEL (`authorizer` library), written with
//! placeholders for the installation's name prefix and operator username;
//! their digest names a version of the rules, not an installation.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{APPROVER_ROLE_SUFFIX, APPROVE_VERB, INCIDENTS_POLICY};

/// Stand-ins for the installation's parameters in the rules; the digest is
/// computed over the rules with these, so it names a version of the rules,
/// not an installation. The Helm template replaces them with its values.
pub(super) const PREFIX_PLACEHOLDER: &str = "@PREFIX@";
pub(super) const OPERATOR_PLACEHOLDER: &str = "@OPERATOR@";

/// The default-step approval mode of a step `s` in CEL (the CRD defaults it
/// to Manual; this reads the same for objects stored before the default).
fn mode(s: &str) -> String {
    format!("(has({s}.approval) ? {s}.approval : 'Manual')")
}

/// The `spec` of policy `role`, with the placeholders in place of the
/// installation's prefix and operator username.
pub(super) fn template_spec(role: &str) -> Value {
    let user = "variables.user";
    let ns = "object.metadata.namespace";
    let names = |list: &str| format!("{list}.map(s, s.name).join(', ')");
    let var = |name: &str, expression: String| json!({"name": name, "expression": expression});
    let rule = |expression: String, message_expression: String| {
        json!({
            "expression": expression,
            "messageExpression": message_expression,
            "reason": "Forbidden",
        })
    };
    let may_patch_deployments_here = format!(
        "authorizer.group('apps').resource('deployments').namespace({ns}).check('patch').allowed()"
    );
    let (resources, variables, validations) = match role {
        INCIDENTS_POLICY => (
            "incidents",
            vec![
                var("user", "request.userInfo.username".into()),
                var(
                    "newSteps",
                    "has(object.spec.mitigations) ? object.spec.mitigations : []".into(),
                ),
                var(
                    "oldSteps",
                    "oldObject != null && has(oldObject.spec.mitigations) ? oldObject.spec.mitigations : []".into(),
                ),
                var(
                    "newAck",
                    "has(object.spec.acknowledgedBy) ? object.spec.acknowledgedBy : ''".into(),
                ),
                var(
                    "oldAck",
                    "oldObject != null && has(oldObject.spec.acknowledgedBy) ? oldObject.spec.acknowledgedBy : ''".into(),
                ),
                var(
                    "newResolvedBy",
                    "has(object.spec.resolution) && has(object.spec.resolution.by) ? object.spec.resolution.by : ''".into(),
                ),
                var(
                    "oldResolvedBy",
                    "oldObject != null && has(oldObject.spec.resolution) && has(oldObject.spec.resolution.by) ? oldObject.spec.resolution.by : ''".into(),
                ),
                // steps whose approvedBy is new or different from the stored one
                var(
                    "newApprovals",
                    "variables.newSteps.filter(m, has(m.approvedBy) && m.approvedBy != '' && !variables.oldSteps.exists(o, o.name == m.name && has(o.approvedBy) && o.approvedBy == m.approvedBy))".into(),
                ),
                // approved steps (in oldObject) that this request changes
                var(
                    "changedApproved",
                    "variables.oldSteps.filter(o, has(o.approvedBy) && o.approvedBy != '' && variables.newSteps.exists(m, m.name == o.name && m != o))".into(),
                ),
                // existing steps whose approval mode this request changes
                var(
                    "modeChanged",
                    format!(
                        "variables.newSteps.filter(m, variables.oldSteps.exists(o, o.name == m.name && {} != {}))",
                        mode("o"),
                        mode("m")
                    ),
                ),
                // Automatic steps this request adds
                var(
                    "newAutomatic",
                    format!(
                        "variables.newSteps.filter(m, {} == 'Automatic' && !variables.oldSteps.exists(o, o.name == m.name))",
                        mode("m")
                    ),
                ),
                var(
                    "mayApprove",
                    format!(
                        "authorizer.group('kubeincident.io').resource('incidents').namespace({ns}).name(object.metadata.name).check('{APPROVE_VERB}').allowed()"
                    ),
                ),
                var("mayPatchDeployments", may_patch_deployments_here.clone()),
            ],
            vec![
                rule(
                    "variables.newAck == '' || variables.newAck == variables.oldAck || variables.newAck == variables.user".into(),
                    format!(
                        "'cannot acknowledge: spec.acknowledgedBy must be your own username \"' + {user} + '\", not \"' + variables.newAck + '\"'"
                    ),
                ),
                rule(
                    "variables.newResolvedBy == '' || variables.newResolvedBy == variables.oldResolvedBy || variables.newResolvedBy == variables.user".into(),
                    format!(
                        "'cannot resolve: spec.resolution.by must be your own username \"' + {user} + '\", not \"' + variables.newResolvedBy + '\"'"
                    ),
                ),
                rule(
                    format!("variables.newApprovals.all(m, m.approvedBy == {user})"),
                    format!(
                        "'cannot approve: spec.mitigations[].approvedBy must be your own username \"' + {user} + '\" (step ' + {} + ')'",
                        names(&format!("variables.newApprovals.filter(m, m.approvedBy != {user})"))
                    ),
                ),
                rule(
                    "variables.newApprovals.size() == 0 || variables.mayApprove".into(),
                    format!(
                        "'cannot approve: user ' + {user} + ' lacks verb {APPROVE_VERB} on incidents.kubeincident.io in namespace ' + {ns} + ' (bind ClusterRole {PREFIX_PLACEHOLDER}-{APPROVER_ROLE_SUFFIX}); spec.mitigations[].approvedBy of step ' + {} + ' was not accepted'",
                        names("variables.newApprovals")
                    ),
                ),
                rule(
                    "variables.changedApproved.size() == 0".into(),
                    format!(
                        "'cannot change step ' + {} + ' of spec.mitigations: it was approved and an approved step can no longer be changed'",
                        names("variables.changedApproved")
                    ),
                ),
                rule(
                    "variables.modeChanged.size() == 0".into(),
                    format!(
                        "'cannot change spec.mitigations[].approval of step ' + {} + ': the approval mode of a step cannot change once the step exists'",
                        names("variables.modeChanged")
                    ),
                ),
                rule(
                    "variables.newAutomatic.size() == 0 || variables.mayPatchDeployments".into(),
                    format!(
                        "'cannot add the Automatic step ' + {} + ' to spec.mitigations: user ' + {user} + ' lacks verb patch on deployments.apps in namespace ' + {ns} + ' (an Automatic step patches Deployments without approval)'",
                        names("variables.newAutomatic")
                    ),
                ),
            ],
        ),
        _ => (
            "runbooks",
            vec![
                var("user", "request.userInfo.username".into()),
                var(
                    "specChanged",
                    "request.operation == 'CREATE' || !has(oldObject.spec) || !has(object.spec) || object.spec != oldObject.spec".into(),
                ),
            ],
            vec![
                rule(
                    format!("!variables.specChanged || {may_patch_deployments_here}"),
                    format!(
                        "'cannot write Runbook ' + object.metadata.name + ': user ' + {user} + ' lacks verb patch on deployments.apps in namespace ' + {ns} + ' (a Runbook mitigates by patching Deployments, so writing one needs that permission)'"
                    ),
                ),
                rule(
                    "!variables.specChanged || !has(object.spec.namespaceSelector) || authorizer.group('apps').resource('deployments').check('patch').allowed()".into(),
                    format!(
                        "'cannot write Runbook ' + object.metadata.name + ': spec.namespaceSelector extends it to other namespaces, and user ' + {user} + ' lacks verb patch on deployments.apps cluster-wide'"
                    ),
                ),
                rule(
                    "!has(object.spec.mitigations) || object.spec.mitigations.all(m, !has(m.approvedBy) || m.approvedBy == '')".into(),
                    format!(
                        "'cannot write Runbook ' + object.metadata.name + ': spec.mitigations[].approvedBy cannot be set on a Runbook (step ' + {} + '); approvals are given on each Incident'",
                        names("object.spec.mitigations.filter(m, has(m.approvedBy) && m.approvedBy != '')")
                    ),
                ),
            ],
        ),
    };
    json!({
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [{
                "apiGroups": [crate::api::GROUP],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [resources],
            }],
        },
        "matchConditions": [{
            "name": "not-the-operator",
            "expression": format!("request.userInfo.username != \"{OPERATOR_PLACEHOLDER}\""),
        }],
        "variables": variables,
        "validations": validations,
    })
}

/// Replace the placeholders in every string of `v`.
fn substitute(v: &Value, prefix: &str, operator: &str) -> Value {
    match v {
        Value::String(s) => Value::String(
            s.replace(PREFIX_PLACEHOLDER, prefix)
                .replace(OPERATOR_PLACEHOLDER, operator),
        ),
        Value::Array(a) => {
            Value::Array(a.iter().map(|x| substitute(x, prefix, operator)).collect())
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute(x, prefix, operator)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A version of the rules of policy `role`: the SHA-256 of its spec with
/// the installation's parameters left out (hex, first 16 characters).
pub fn rules_digest(role: &str) -> String {
    // serde_json's maps are sorted: the text is canonical.
    let text = template_spec(role).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// The spec of policy `role` as installed with `prefix` and `operator`.
pub fn policy_spec(role: &str, prefix: &str, operator: &str) -> Value {
    substitute(&template_spec(role), prefix, operator)
}

/// The operator username a policy on the server exempts (parsed back from
/// the match condition this module writes).
pub(super) fn exempt_user(spec: &Value) -> Option<String> {
    let expr = spec["matchConditions"][0]["expression"].as_str()?;
    let rest = expr.strip_prefix("request.userInfo.username != \"")?;
    Some(rest.strip_suffix('"')?.to_string())
}

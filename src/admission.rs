//! Verified approvals: the ValidatingAdmissionPolicies (Kubernetes >= 1.30,
//! `admissionregistration.k8s.io/v1`, CEL with the `authorizer` library)
//! that make acknowledging, resolving and approving an Incident acts of the
//! user the API server authenticated, and writing a Runbook an act of a user
//! who may patch the Deployments it would act on.
//!
//! One source of truth: [`policy_manifests`] (and [`policy_manifests_with`])
//! build the objects; `kube-incident install-manifests` prints them; the
//! Helm chart's `templates/admissionpolicy.yaml` is generated from
//! [`helm_template`] (a test fails when it drifts); [`check_installed`]
//! compares what the API server holds with what this code generates.
//!
//! See docs/security.md for the threat model.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Label naming which of our policies an object is (`verified-approvals`
/// or `runbook-escalation`); [`check_installed`] finds them by it.
pub const POLICY_LABEL: &str = "kubeincident.io/policy";
/// Label naming the installation (the name prefix): several may coexist.
pub const INSTANCE_LABEL: &str = "kubeincident.io/policy-instance";
/// Annotation holding [`rules_digest`] of the rules the object was made from.
pub const DIGEST_ANNOTATION: &str = "kubeincident.io/policy-digest";

/// The policy on Incidents: acknowledgements, resolutions and approvals.
pub const INCIDENTS_POLICY: &str = "verified-approvals";
/// The policy on Runbooks: no escalation through a Runbook's plan.
pub const RUNBOOKS_POLICY: &str = "runbook-escalation";
/// Both, in the order they are generated.
pub const POLICIES: [&str; 2] = [INCIDENTS_POLICY, RUNBOOKS_POLICY];

/// The RBAC verb on `incidents` that allows setting `approvedBy`.
pub const APPROVE_VERB: &str = "approve";
/// Suffix of the ClusterRole that may read, acknowledge and comment on Incidents.
pub const RESPONDER_ROLE_SUFFIX: &str = "responder";
/// Suffix of the ClusterRole that may also approve mitigation steps.
pub const APPROVER_ROLE_SUFFIX: &str = "approver";

/// The default name prefix (the chart's default full name).
pub const DEFAULT_PREFIX: &str = "kube-incident";

/// Stand-ins for the installation's parameters in the rules; the digest is
/// computed over the rules with these, so it names a version of the rules,
/// not an installation. The Helm template replaces them with its values.
const PREFIX_PLACEHOLDER: &str = "@PREFIX@";
const OPERATOR_PLACEHOLDER: &str = "@OPERATOR@";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Prefix of every object's name (`<prefix>-verified-approvals`, ...)
    /// and of the ClusterRoles the denial messages name.
    pub name_prefix: String,
    /// The operator's username, exempt from the policies (it copies a
    /// Runbook's plan into the Incidents it opens and reopens Incidents).
    /// In the chart: `system:serviceaccount:<namespace>:<serviceaccount>`.
    pub operator_username: String,
    /// Namespaces the bindings apply to; empty: every namespace.
    pub namespaces: Vec<String>,
    /// The bindings' `validationActions` (`Deny`, or `Warn`/`Audit` to try
    /// the policy out first).
    pub validation_actions: Vec<String>,
}

impl PolicyOptions {
    /// Cluster-wide, denying, with the default prefix.
    pub fn new(operator_username: &str) -> Self {
        PolicyOptions {
            name_prefix: DEFAULT_PREFIX.to_string(),
            operator_username: operator_username.to_string(),
            namespaces: Vec::new(),
            validation_actions: vec!["Deny".to_string()],
        }
    }
}

/// The name of the ClusterRole `<prefix>-approver`.
pub fn approver_role(prefix: &str) -> String {
    format!("{prefix}-{APPROVER_ROLE_SUFFIX}")
}

/// The name of the ClusterRole `<prefix>-responder`.
pub fn responder_role(prefix: &str) -> String {
    format!("{prefix}-{RESPONDER_ROLE_SUFFIX}")
}

/// The name of policy `role` (and of its binding) for `prefix`.
pub fn policy_name(prefix: &str, role: &str) -> String {
    format!("{prefix}-{role}")
}

/// The default-step approval mode of a step `s` in CEL (the CRD defaults it
/// to Manual; this reads the same for objects stored before the default).
fn mode(s: &str) -> String {
    format!("(has({s}.approval) ? {s}.approval : 'Manual')")
}

/// The `spec` of policy `role`, with the placeholders in place of the
/// installation's prefix and operator username.
fn template_spec(role: &str) -> Value {
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

fn labels(role: &str, prefix: &str) -> Value {
    json!({
        "app.kubernetes.io/part-of": "kube-incident",
        POLICY_LABEL: role,
        INSTANCE_LABEL: prefix,
    })
}

fn binding_spec(opts: &PolicyOptions, role: &str) -> Value {
    let mut spec = json!({
        "policyName": policy_name(&opts.name_prefix, role),
        "validationActions": opts.validation_actions,
    });
    if !opts.namespaces.is_empty() {
        spec["matchResources"] = json!({
            "namespaceSelector": {
                "matchExpressions": [{
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": opts.namespaces,
                }],
            },
        });
    }
    spec
}

/// The ValidatingAdmissionPolicies and their bindings, cluster-wide and
/// denying, with the default prefix, exempting `operator_username`.
pub fn policy_manifests(operator_username: &str) -> Vec<Value> {
    policy_manifests_with(&PolicyOptions::new(operator_username))
}

/// The ValidatingAdmissionPolicies and their bindings for `opts`: for each
/// policy, the policy then its binding.
pub fn policy_manifests_with(opts: &PolicyOptions) -> Vec<Value> {
    let mut out = Vec::new();
    for role in POLICIES {
        let name = policy_name(&opts.name_prefix, role);
        out.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {
                "name": name,
                "labels": labels(role, &opts.name_prefix),
                "annotations": {DIGEST_ANNOTATION: rules_digest(role)},
            },
            "spec": policy_spec(role, &opts.name_prefix, &opts.operator_username),
        }));
        out.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {
                "name": name,
                "labels": labels(role, &opts.name_prefix),
                "annotations": {DIGEST_ANNOTATION: rules_digest(role)},
            },
            "spec": binding_spec(opts, role),
        }));
    }
    out
}

/// The rules of the ClusterRole `<prefix>-responder`: read Incidents and
/// patch them (acknowledge, comment, resolve).
pub fn responder_rules() -> Value {
    json!([{
        "apiGroups": [crate::api::GROUP],
        "resources": ["incidents"],
        "verbs": ["get", "list", "watch", "patch"],
    }])
}

/// The rules of the ClusterRole `<prefix>-approver`: the responder's, plus
/// the verb `approve` on Incidents that the policy checks.
pub fn approver_rules() -> Value {
    json!([{
        "apiGroups": [crate::api::GROUP],
        "resources": ["incidents"],
        "verbs": ["get", "list", "watch", "patch", APPROVE_VERB],
    }])
}

/// The ClusterRoles `<prefix>-responder` and `<prefix>-approver`, to bind
/// to people (a RoleBinding grants them in one namespace).
pub fn user_cluster_roles(prefix: &str) -> Vec<Value> {
    [
        (responder_role(prefix), responder_rules()),
        (approver_role(prefix), approver_rules()),
    ]
    .into_iter()
    .map(|(name, rules)| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kube-incident"}},
            "rules": rules,
        })
    })
    .collect()
}

/// `kube-incident install-manifests`: the policies, bindings and user
/// ClusterRoles as multi-document YAML.
pub fn manifests_yaml(opts: &PolicyOptions) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for doc in policy_manifests_with(opts)
        .into_iter()
        .chain(user_cluster_roles(&opts.name_prefix))
    {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc)?);
    }
    Ok(out)
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}

/// The chart's `templates/admissionpolicy.yaml`, generated from the same
/// rules (`KUBE_INCIDENT_REGENERATE=1 cargo test --test suite admission::`
/// rewrites it; a test fails when it drifts).
pub fn helm_template() -> Result<String, serde_yaml::Error> {
    let mut out = String::from(
        "{{- /*\nGENERATED from src/admission.rs: do not edit. After changing src/admission.rs run\n  KUBE_INCIDENT_REGENERATE=1 cargo test --test suite admission::\n*/ -}}\n",
    );
    out.push_str("{{- $fullname := include \"kube-incident.fullname\" . }}\n");
    out.push_str("{{- if .Values.admissionPolicy.enabled }}\n");
    out.push_str("{{- $operator := printf \"system:serviceaccount:%s:%s\" .Release.Namespace (include \"kube-incident.serviceAccountName\" .) }}\n");
    let helm = |v: &Value| -> Result<String, serde_yaml::Error> {
        Ok(serde_yaml::to_string(v)?
            .replace(PREFIX_PLACEHOLDER, "{{ $fullname }}")
            .replace(OPERATOR_PLACEHOLDER, "{{ $operator }}"))
    };
    let meta = |role: &str| {
        format!(
            "metadata:\n  name: {{{{ $fullname }}}}-{role}\n  labels:\n    {{{{- include \"kube-incident.labels\" . | nindent 4 }}}}\n    {POLICY_LABEL}: {role}\n    {INSTANCE_LABEL}: {{{{ $fullname }}}}\n  annotations:\n    {DIGEST_ANNOTATION}: {:?}\n",
            rules_digest(role)
        )
    };
    for (i, role) in POLICIES.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let about = match *role {
            INCIDENTS_POLICY => "# Kubernetes >= 1.30: acknowledging, resolving and approving an Incident are\n# acts of the authenticated user; approving needs the verb approve on incidents.\n",
            _ => "# Kubernetes >= 1.30: writing a Runbook needs patch on the Deployments it acts on.\n",
        };
        out.push_str(about);
        out.push_str(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n",
        );
        out.push_str(&meta(role));
        out.push_str("spec:\n");
        out.push_str(&indent(&helm(&template_spec(role))?, 2));
        out.push_str("---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n");
        out.push_str(&meta(role));
        out.push_str(&format!(
            "spec:\n  policyName: {{{{ $fullname }}}}-{role}\n  validationActions:\n    {{{{- toYaml .Values.admissionPolicy.validationActions | nindent 4 }}}}\n  {{{{- with .Values.watchNamespaces }}}}\n  matchResources:\n    namespaceSelector:\n      matchExpressions:\n        - key: kubernetes.io/metadata.name\n          operator: In\n          values:\n            {{{{- toYaml . | nindent 12 }}}}\n  {{{{- end }}}}\n"
        ));
    }
    out.push_str("{{- end }}\n");
    out.push_str("{{- if .Values.userRoles.create }}\n");
    for (suffix, rules, about) in [
        (
            RESPONDER_ROLE_SUFFIX,
            responder_rules(),
            "# For people: read Incidents, acknowledge, comment and resolve them (bind with a RoleBinding per namespace).\n",
        ),
        (
            APPROVER_ROLE_SUFFIX,
            approver_rules(),
            "# For people: a responder who may also approve Manual mitigation steps (verb approve, checked by the policy).\n",
        ),
    ] {
        out.push_str("---\n");
        out.push_str(about);
        out.push_str(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{{{ $fullname }}}}-{suffix}\n  labels:\n    {{{{- include \"kube-incident.labels\" . | nindent 4 }}}}\nrules:\n"
        ));
        out.push_str(&serde_yaml::to_string(&rules)?);
    }
    out.push_str("{{- end }}\n");
    Ok(out)
}

/// Apply the policies and bindings of `opts` (server-side apply, forced,
/// field manager `kube-incident`; items that other managers added to a
/// binding's `validationActions` set stay).
pub async fn apply(client: &Client, opts: &PolicyOptions) -> Result<(), kube::Error> {
    let pp = PatchParams::apply("kube-incident").force();
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    for doc in policy_manifests_with(opts) {
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if doc["kind"] == "ValidatingAdmissionPolicy" {
            policies.patch(&name, &pp, &Patch::Apply(&doc)).await?;
        } else {
            bindings.patch(&name, &pp, &Patch::Apply(&doc)).await?;
        }
    }
    Ok(())
}

/// Whether the API server enforces the policies this code generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyState {
    /// Every policy is on the server as generated, with a denying binding.
    Installed,
    /// Something is not there (or the API itself is missing: Kubernetes
    /// older than 1.30).
    Missing {
        /// What, and how to install it.
        what: String,
    },
    /// On the server, but not as this version generates it (edited, or from
    /// another version of kube-incident), or not denying.
    Stale {
        /// The first difference found.
        what: String,
    },
    /// The server could not be asked (no permission, unreachable).
    Unknown {
        /// Why.
        reason: String,
    },
}

impl PolicyState {
    /// True only when approvals are verified by the API server.
    pub fn is_enforced(&self) -> bool {
        matches!(self, PolicyState::Installed)
    }
}

impl std::fmt::Display for PolicyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyState::Installed => write!(f, "admission policies installed"),
            PolicyState::Missing { what } => write!(f, "admission policy missing: {what}"),
            PolicyState::Stale { what } => write!(f, "admission policy stale: {what}"),
            PolicyState::Unknown { reason } => {
                write!(f, "admission policy state unknown: {reason}")
            }
        }
    }
}

const INSTALL_HINT: &str =
    "install it with the Helm chart (admissionPolicy.enabled) or `kube-incident install-manifests | kubectl apply -f -`";

/// The first path where `got` lacks or differs from `want`; keys of `got`
/// that `want` does not have (server defaults) are ignored; lists must have
/// the same length.
pub fn first_difference(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, wv)| {
            let p = format!("{path}.{k}");
            match g.get(k) {
                Some(gv) => first_difference(wv, gv, &p),
                None => Some(format!("{p} is missing")),
            }
        }),
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Some(format!(
                    "{path} has {} entries, expected {}",
                    g.len(),
                    w.len()
                ));
            }
            w.iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (wv, gv))| first_difference(wv, gv, &format!("{path}[{i}]")))
        }
        _ if want == got => None,
        _ => Some(format!("{path} differs")),
    }
}

/// The operator username a policy on the server exempts (parsed back from
/// the match condition this module writes).
fn exempt_user(spec: &Value) -> Option<String> {
    let expr = spec["matchConditions"][0]["expression"].as_str()?;
    let rest = expr.strip_prefix("request.userInfo.username != \"")?;
    Some(rest.strip_suffix('"')?.to_string())
}

fn api_error(e: kube::Error, what: &str) -> PolicyState {
    match e {
        kube::Error::Api(s) if s.code == 404 => PolicyState::Missing {
            what: format!(
                "the API server does not serve {what} (admissionregistration.k8s.io/v1: Kubernetes >= 1.30)"
            ),
        },
        other => PolicyState::Unknown {
            reason: format!("cannot list {what}: {other}"),
        },
    }
}

/// Compare the policies on the server with what this code generates: any
/// installation (any prefix) of each policy counts.
pub async fn check_installed(client: &Client) -> PolicyState {
    check_installed_instance(client, None).await
}

/// Like [`check_installed`], only the installation labelled
/// `kubeincident.io/policy-instance=<instance>` (when given).
pub async fn check_installed_instance(client: &Client, instance: Option<&str>) -> PolicyState {
    check_installed_for(client, instance, None).await
}

/// Like [`check_installed_instance`], and the denying binding must cover
/// `namespaces` (`Some(&[])`: every namespace, as a cluster-wide operator
/// needs; `None`: coverage not checked). A binding scoped to other
/// namespaces does not verify approvals where this operator acts.
pub async fn check_installed_for(
    client: &Client,
    instance: Option<&str>,
    namespaces: Option<&[String]>,
) -> PolicyState {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    for role in POLICIES {
        let mut selector = format!("{POLICY_LABEL}={role}");
        if let Some(i) = instance {
            selector.push_str(&format!(",{INSTANCE_LABEL}={i}"));
        }
        let lp = ListParams::default().labels(&selector);
        let found = match policies.list(&lp).await {
            Ok(l) => l.items,
            Err(e) => return api_error(e, "validatingadmissionpolicies"),
        };
        let bound = match bindings.list(&lp).await {
            Ok(l) => l.items,
            Err(e) => return api_error(e, "validatingadmissionpolicybindings"),
        };
        if found.is_empty() {
            return PolicyState::Missing {
                what: format!("no ValidatingAdmissionPolicy labelled {selector}; {INSTALL_HINT}"),
            };
        }
        // The first installation that is current and bound wins; else report
        // the first problem found.
        let mut problem: Option<PolicyState> = None;
        let mut ok = false;
        for p in &found {
            let name = p.metadata.name.clone().unwrap_or_default();
            let got = serde_json::to_value(&p.spec).unwrap_or(Value::Null);
            let Some(operator) = exempt_user(&got) else {
                problem.get_or_insert(PolicyState::Stale {
                    what: format!(
                        "ValidatingAdmissionPolicy {name}: spec.matchConditions[0] is not the operator exemption"
                    ),
                });
                continue;
            };
            let prefix = name
                .strip_suffix(&format!("-{role}"))
                .unwrap_or(DEFAULT_PREFIX)
                .to_string();
            let want = policy_spec(role, &prefix, &operator);
            if let Some(diff) = first_difference(&want, &got, "spec") {
                problem.get_or_insert(PolicyState::Stale {
                    what: format!(
                        "ValidatingAdmissionPolicy {name}: {diff} (this kube-incident generates rules {}; {INSTALL_HINT})",
                        rules_digest(role)
                    ),
                });
                continue;
            }
            let binding = bound.iter().find(|b| {
                b.spec.as_ref().and_then(|s| s.policy_name.as_deref()) == Some(name.as_str())
            });
            let Some(binding) = binding else {
                problem.get_or_insert(PolicyState::Missing {
                    what: format!(
                        "ValidatingAdmissionPolicyBinding for {name} (without it the policy does nothing); {INSTALL_HINT}"
                    ),
                });
                continue;
            };
            let actions = binding
                .spec
                .as_ref()
                .and_then(|s| s.validation_actions.clone())
                .unwrap_or_default();
            if !actions.iter().any(|a| a == "Deny") {
                problem.get_or_insert(PolicyState::Stale {
                    what: format!(
                        "ValidatingAdmissionPolicyBinding {}: validationActions {actions:?} do not deny",
                        binding.metadata.name.clone().unwrap_or_default()
                    ),
                });
                continue;
            }
            if let Some(missing) = namespaces.and_then(|ns| uncovered(binding, ns)) {
                problem.get_or_insert(PolicyState::Missing {
                    what: format!(
                        "ValidatingAdmissionPolicyBinding {} does not cover {missing}; {INSTALL_HINT}",
                        binding.metadata.name.clone().unwrap_or_default()
                    ),
                });
                continue;
            }
            ok = true;
            break;
        }
        if !ok {
            return problem.unwrap_or(PolicyState::Missing {
                what: format!("{role}; {INSTALL_HINT}"),
            });
        }
    }
    PolicyState::Installed
}

/// What of `namespaces` (empty: every namespace) the binding's
/// `matchResources.namespaceSelector` leaves out, if anything. Namespaces
/// are matched by their `kubernetes.io/metadata.name` label, which the API
/// server sets on every namespace.
fn uncovered(binding: &ValidatingAdmissionPolicyBinding, namespaces: &[String]) -> Option<String> {
    let sel = binding
        .spec
        .as_ref()
        .and_then(|s| s.match_resources.as_ref())
        .and_then(|m| m.namespace_selector.as_ref());
    let sel = sel.filter(|s| {
        s.match_labels.as_ref().is_some_and(|l| !l.is_empty())
            || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
    })?;
    if namespaces.is_empty() {
        return Some("every namespace (it has a namespaceSelector)".into());
    }
    let missing: Vec<&str> = namespaces
        .iter()
        .filter(|ns| {
            let labels = std::collections::BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                ns.to_string(),
            )]);
            !crate::core::selector::matches(sel, &labels)
        })
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| format!("namespaces {}", missing.join(", ")))
}

/// Check now, then every `interval`, publishing each change of the state;
/// the task ends when every receiver is dropped.
pub async fn watch_state(
    client: Client,
    interval: Duration,
) -> tokio::sync::watch::Receiver<PolicyState> {
    watch_state_instance(client, interval, None).await
}

/// [`watch_state`] of one installation (see [`check_installed_instance`]).
pub async fn watch_state_instance(
    client: Client,
    interval: Duration,
    instance: Option<String>,
) -> tokio::sync::watch::Receiver<PolicyState> {
    watch_state_for(client, interval, instance, None).await
}

/// [`watch_state_instance`] requiring the binding to cover `namespaces`
/// (see [`check_installed_for`]): what the operator uses, with the
/// namespaces it watches.
pub async fn watch_state_for(
    client: Client,
    interval: Duration,
    instance: Option<String>,
    namespaces: Option<Vec<String>>,
) -> tokio::sync::watch::Receiver<PolicyState> {
    let first = check_installed_for(&client, instance.as_deref(), namespaces.as_deref()).await;
    let (tx, rx) = tokio::sync::watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let state =
                check_installed_for(&client, instance.as_deref(), namespaces.as_deref()).await;
            tx.send_if_modified(|current| {
                if *current == state {
                    false
                } else {
                    tracing::info!(%state, "admission policy state changed");
                    *current = state;
                    true
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_helm_template_carries_the_rules() {
        let t = helm_template().unwrap();
        assert!(t.contains("{{ $operator }}") && t.contains("{{ $fullname }}-approver"));
        assert!(!t.contains('@'));
        assert_eq!(t.matches("kind: ValidatingAdmissionPolicy\n").count(), 2);
    }
}

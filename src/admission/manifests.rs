//! The objects generated from the rules: the policies and their bindings,
//! the user ClusterRoles, as multi-document YAML (`install-manifests`), as
//! the Helm chart's template, and applied to a cluster.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use super::rules::{
    policy_spec, rules_digest, template_spec, OPERATOR_PLACEHOLDER, PREFIX_PLACEHOLDER,
};
use super::{
    approver_role, policy_name, responder_role, PolicyOptions, APPROVER_ROLE_SUFFIX, APPROVE_VERB,
    DIGEST_ANNOTATION, INCIDENTS_POLICY, INSTANCE_LABEL, POLICIES, POLICY_LABEL,
    RESPONDER_ROLE_SUFFIX,
};

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
        "{{- /*\nGENERATED from src/admission/: do not edit. After changing src/admission/ run\n  KUBE_INCIDENT_REGENERATE=1 cargo test --test suite admission::\n*/ -}}\n",
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

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;

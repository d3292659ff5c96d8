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
//!
//! Layout:
//! - `rules`: the policies' CEL rules, with placeholders for the
//!   installation's prefix and operator, and their digest.
//! - `manifests`: the policies, bindings and user ClusterRoles as objects,
//!   as YAML and as the Helm template; applying them.
//! - `installed`: [`PolicyState`], what the API server holds compared with
//!   what this code generates.
//! - `watch`: that check repeated, published on a watch channel.

mod installed;
mod manifests;
mod rules;
mod watch;

pub use installed::{
    check_installed, check_installed_for, check_installed_instance, first_difference, PolicyState,
};
pub use manifests::{
    apply, approver_rules, helm_template, manifests_yaml, policy_manifests, policy_manifests_with,
    responder_rules, user_cluster_roles,
};
pub use rules::{policy_spec, rules_digest};
pub use watch::{watch_state, watch_state_for, watch_state_instance};

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

//! Whether the API server enforces the policies as this code generates
//! them: [`PolicyState`] and the check that produces it.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::Value;

use super::rules::{exempt_user, policy_spec, rules_digest};
use super::{DEFAULT_PREFIX, INSTANCE_LABEL, POLICIES, POLICY_LABEL};

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

#[cfg(test)]
#[path = "installed_tests.rs"]
mod tests;

//! Least privilege, proven: the chart's RBAC rules are generated from the
//! one permission list in `src/rbac.rs` (`charts/kube-incident/templates/_rules.tpl`,
//! checked for drift like the CRDs), and the rendered chart grants exactly
//! those permissions, in cluster-wide and in namespaced mode.
//! `tests/suite/leader.rs` records the operator's real API traffic and
//! checks every call against the same list.

use crate::render;

use std::collections::{BTreeMap, BTreeSet};

use crate::render::{kind, name, namespace, RELEASE_NAMESPACE};
use kube_incident::rbac::{
    Permission, CLUSTER, GITOPS, LEADER_ELECTION, NAMESPACED, OPERATOR_RUNBOOKS, POLICY_READ,
};

const RULES_TPL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/kube-incident/templates/_rules.tpl"
);

/// The chart's named rule templates, one per list of `src/rbac.rs`.
const LISTS: &[(&str, &[Permission])] = &[
    ("namespaced", NAMESPACED),
    ("cluster", CLUSTER),
    ("leaderElection", LEADER_ELECTION),
    ("operatorRunbooks", OPERATOR_RUNBOOKS),
    ("policyRead", POLICY_READ),
    ("gitops", GITOPS),
];

fn quoted(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(", "))
}

/// `_rules.tpl` as generated from `src/rbac.rs`.
fn generated_rules_tpl() -> String {
    let mut out = String::from(
        "{{- /*\nGENERATED from src/rbac.rs: do not edit. After changing src/rbac.rs run\n  KUBE_INCIDENT_REGENERATE=1 cargo test --test suite rbac::\n*/ -}}\n",
    );
    for (tpl, list) in LISTS {
        out.push_str(&format!(
            "\n{{{{- define \"kube-incident.rules.{tpl}\" }}}}\n"
        ));
        for p in *list {
            out.push_str(&format!("# {}\n", p.why.replace('\n', " ")));
            out.push_str(&format!("- apiGroups: [{:?}]\n", p.group));
            out.push_str(&format!("  resources: [{:?}]\n", p.resource));
            out.push_str(&format!("  verbs: {}\n", quoted(p.verbs)));
        }
        out.push_str("{{- end }}\n");
    }
    out
}

#[test]
fn chart_rules_are_generated_from_src_rbac() {
    let generated = generated_rules_tpl();
    if std::env::var("KUBE_INCIDENT_REGENERATE").is_ok_and(|v| v == "1") {
        std::fs::write(RULES_TPL, &generated).expect("write _rules.tpl");
        eprintln!("regenerated {RULES_TPL}");
    }
    let on_disk = std::fs::read_to_string(RULES_TPL).expect("_rules.tpl exists");
    assert!(
        on_disk == generated,
        "charts/kube-incident/templates/_rules.tpl is out of date with src/rbac.rs: run `KUBE_INCIDENT_REGENERATE=1 cargo test --test suite rbac::`"
    );
}

#[test]
fn permission_lists_are_well_formed() {
    const VERBS: &[&str] = &[
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];
    for (tpl, list) in LISTS {
        let mut seen = BTreeSet::new();
        for p in *list {
            assert!(
                seen.insert((p.group, p.resource)),
                "{tpl}: {}/{} listed twice (merge the verbs)",
                p.group,
                p.resource
            );
            assert!(!p.verbs.is_empty(), "{tpl}: {} grants no verb", p.resource);
            for v in p.verbs {
                assert!(
                    VERBS.contains(v),
                    "{tpl}: unknown verb {v} on {}",
                    p.resource
                );
            }
            assert!(
                !p.resource.contains('*') && !p.group.contains('*'),
                "{tpl}: no wildcards"
            );
            assert!(
                !p.why.trim().is_empty(),
                "{tpl}: {} needs a why",
                p.resource
            );
        }
    }
}

type Grants = BTreeSet<(String, String, String)>;

fn grants(lists: &[&[Permission]]) -> Grants {
    lists
        .iter()
        .flat_map(|l| l.iter())
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (p.group.to_string(), p.resource.to_string(), v.to_string()))
        })
        .collect()
}

/// The (group, resource, verb) triples of a rendered Role or ClusterRole.
fn rule_grants(role: &serde_yaml::Value) -> Grants {
    let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
        serde_yaml::from_value(role["rules"].clone()).expect("rules parse as PolicyRules");
    let mut out = Grants::new();
    for r in rules {
        assert!(r.resource_names.is_none() && r.non_resource_urls.is_none());
        for g in r.api_groups.unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                for v in &r.verbs {
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

/// Every Role/ClusterRole, keyed by (kind, namespace, name), and a check
/// that each is bound to the operator's service account.
fn roles(docs: &[serde_yaml::Value], sa: &str) -> BTreeMap<(String, String, String), Grants> {
    let mut out: BTreeMap<(String, String, String), Grants> = BTreeMap::new();
    for d in docs {
        // the ClusterRoles for people (responder, approver) are bound by admins
        if kind(d) == "ClusterRole" && is_user_role(name(d)) {
            continue;
        }
        if matches!(kind(d), "Role" | "ClusterRole") {
            out.insert(
                (kind(d).into(), namespace(d).into(), name(d).into()),
                rule_grants(d),
            );
        }
    }
    for (k, ns, n) in out.keys() {
        let binding_kind = if k == "Role" {
            "RoleBinding"
        } else {
            "ClusterRoleBinding"
        };
        let bound = docs.iter().any(|d| {
            kind(d) == binding_kind
                && namespace(d) == ns
                && d["roleRef"]["kind"].as_str() == Some(k)
                && d["roleRef"]["name"].as_str() == Some(n)
                && d["subjects"].as_sequence().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["kind"] == "ServiceAccount"
                            && s["name"].as_str() == Some(sa)
                            && s["namespace"].as_str() == Some(RELEASE_NAMESPACE)
                    })
                })
        });
        assert!(
            bound,
            "{k} {ns}/{n} is not bound to the service account {sa}"
        );
    }
    out
}

/// `<fullname>-responder` and `<fullname>-approver` (src/admission/manifests.rs).
fn is_user_role(name: &str) -> bool {
    name.ends_with(&format!(
        "-{}",
        kube_incident::admission::RESPONDER_ROLE_SUFFIX
    )) || name.ends_with(&format!(
        "-{}",
        kube_incident::admission::APPROVER_ROLE_SUFFIX
    ))
}

fn key(kind: &str, ns: &str, name: &str) -> (String, String, String) {
    (kind.into(), ns.into(), name.into())
}

#[test]
fn cluster_wide_mode_grants_exactly_the_listed_permissions() {
    let Some(docs) = render::render(&[], None) else {
        return;
    };
    let got = roles(&docs, "kube-incident");
    let want = BTreeMap::from([
        (
            key("ClusterRole", "", "kube-incident"),
            grants(&[NAMESPACED, CLUSTER]),
        ),
        (
            key("Role", RELEASE_NAMESPACE, "kube-incident-self"),
            grants(&[LEADER_ELECTION]),
        ),
    ]);
    assert_eq!(got, want);
}

#[test]
fn namespaced_mode_grants_exactly_the_listed_permissions_per_namespace() {
    let Some(docs) = render::render(&["ci/namespaced-values.yaml"], None) else {
        return;
    };
    let got = roles(&docs, "responder");
    let want = BTreeMap::from([
        (key("Role", "shop", "kube-incident"), grants(&[NAMESPACED])),
        (
            key("Role", "payments", "kube-incident"),
            grants(&[NAMESPACED]),
        ),
        (
            key("ClusterRole", "", "kube-incident-policy-read"),
            grants(&[POLICY_READ]),
        ),
        (
            key("Role", RELEASE_NAMESPACE, "kube-incident-self"),
            grants(&[LEADER_ELECTION, OPERATOR_RUNBOOKS]),
        ),
    ]);
    assert_eq!(
        got, want,
        "in namespaced mode the only ClusterRole reads the admission policies"
    );
}

#[test]
fn without_leader_election_there_is_no_lease_permission() {
    let Some(docs) = render::render(&["ci/cluster-single-values.yaml"], None) else {
        return;
    };
    let got = roles(&docs, "existing-sa");
    let want = BTreeMap::from([(
        key("ClusterRole", "", "kube-incident"),
        grants(&[NAMESPACED, CLUSTER]),
    )]);
    assert_eq!(got, want);
    // Namespaced, the operator's namespace watched, no election: no extra Role.
    let set = format!(
        r#"{{"watchNamespaces": ["{RELEASE_NAMESPACE}", "shop"], "replicaCount": 1, "leaderElection": {{"enabled": false}}}}"#
    );
    let docs = render::render(&[], Some(&set)).expect("rendered");
    let got = roles(&docs, "kube-incident");
    let want = BTreeMap::from([
        (
            key("Role", RELEASE_NAMESPACE, "kube-incident"),
            grants(&[NAMESPACED]),
        ),
        (key("Role", "shop", "kube-incident"), grants(&[NAMESPACED])),
        (
            key("ClusterRole", "", "kube-incident-policy-read"),
            grants(&[POLICY_READ]),
        ),
    ]);
    assert_eq!(got, want);
}

/// Values that turn GitOps support on (`argocdNamespace` at its default).
const GITOPS_ON: &str = r#"{"gitops": {"enabled": true}}"#;

/// The (group, resource) pairs of GITOPS that any Role or ClusterRole of
/// the chart (the people's roles included) grants.
fn gitops_rules(docs: &[serde_yaml::Value]) -> BTreeSet<(String, String)> {
    let owners: BTreeSet<(String, String)> = GITOPS
        .iter()
        .map(|p| (p.group.to_string(), p.resource.to_string()))
        .collect();
    docs.iter()
        .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
        .flat_map(rule_grants)
        .map(|(g, r, _)| (g, r))
        .filter(|gr| owners.contains(gr))
        .collect()
}

#[test]
fn gitops_disabled_grants_nothing_on_gitops_owners() {
    for values in [
        &[][..],
        &["ci/namespaced-values.yaml"][..],
        &["ci/cluster-single-values.yaml"][..],
    ] {
        let Some(docs) = render::render(values, None) else {
            return;
        };
        assert_eq!(
            gitops_rules(&docs),
            BTreeSet::new(),
            "{values:?}: gitops.enabled is false by default"
        );
        assert!(
            !docs.iter().any(|d| name(d).ends_with("-gitops")),
            "{values:?}: nothing of the GitOps grant is rendered"
        );
    }
    let Some(docs) = render::render(&[], Some(r#"{"gitops": {"enabled": false}}"#)) else {
        return;
    };
    assert_eq!(gitops_rules(&docs), BTreeSet::new());
}

#[test]
fn gitops_enabled_grants_exactly_gitops_cluster_wide_in_both_modes() {
    let Some(docs) = render::render(&[], Some(GITOPS_ON)) else {
        return;
    };
    let got = roles(&docs, "kube-incident");
    let want = BTreeMap::from([
        (
            key("ClusterRole", "", "kube-incident"),
            grants(&[NAMESPACED, CLUSTER]),
        ),
        (
            key("ClusterRole", "", "kube-incident-gitops"),
            grants(&[GITOPS]),
        ),
        (
            key("Role", RELEASE_NAMESPACE, "kube-incident-self"),
            grants(&[LEADER_ELECTION]),
        ),
    ]);
    assert_eq!(got, want, "cluster-wide mode: a ClusterRole of its own");
    // Namespaced mode: the owners live outside the watched namespaces (Argo
    // CD Applications in the Argo CD namespace), so the grant is cluster-wide too.
    let Some(docs) = render::render(&["ci/namespaced-values.yaml"], Some(GITOPS_ON)) else {
        return;
    };
    let got = roles(&docs, "responder");
    let want = BTreeMap::from([
        (key("Role", "shop", "kube-incident"), grants(&[NAMESPACED])),
        (
            key("Role", "payments", "kube-incident"),
            grants(&[NAMESPACED]),
        ),
        (
            key("ClusterRole", "", "kube-incident-policy-read"),
            grants(&[POLICY_READ]),
        ),
        (
            key("ClusterRole", "", "kube-incident-gitops"),
            grants(&[GITOPS]),
        ),
        (
            key("Role", RELEASE_NAMESPACE, "kube-incident-self"),
            grants(&[LEADER_ELECTION, OPERATOR_RUNBOOKS]),
        ),
    ]);
    assert_eq!(got, want, "namespaced mode: the same ClusterRole");
    // rbac.create: false renders no RBAC at all, GitOps or not.
    let Some(docs) = render::render(
        &[],
        Some(r#"{"gitops": {"enabled": true}, "rbac": {"create": false}}"#),
    ) else {
        return;
    };
    assert_eq!(roles(&docs, "kube-incident"), BTreeMap::new());
}

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
const TABLE_BEGIN: &str = "<!-- permissions:begin";
const TABLE_END: &str = "<!-- permissions:end -->";

/// The README's permission table, generated from the same lists.
fn permission_table() -> String {
    let scopes: [(&str, &[Permission]); 6] = [
        ("each watched namespace", NAMESPACED),
        ("cluster (cluster-wide mode only)", CLUSTER),
        ("cluster (namespaced mode)", POLICY_READ),
        (
            "operator namespace (with `--leader-elect`)",
            LEADER_ELECTION,
        ),
        (
            "operator namespace (namespaced mode, if not watched)",
            OPERATOR_RUNBOOKS,
        ),
        ("cluster (`gitops.enabled`, both modes)", GITOPS),
    ];
    let mut out = String::from(
        "| where | API group | resource | verbs | what for |\n|---|---|---|---|---|\n",
    );
    for (scope, list) in scopes {
        for p in list {
            let group = if p.group.is_empty() { "core" } else { p.group };
            out.push_str(&format!(
                "| {scope} | `{group}` | `{}` | {} | {} |\n",
                p.resource,
                p.verbs.join(", "),
                p.why.replace('|', "\\|")
            ));
        }
    }
    out
}

#[test]
fn readme_permission_table_matches_src_rbac() {
    let readme = std::fs::read_to_string(README).expect("README.md");
    let begin = readme
        .find(TABLE_BEGIN)
        .expect("README has the permissions markers");
    let body_start = begin + readme[begin..].find("-->\n").expect("marker end") + 4;
    let end = readme.find(TABLE_END).expect("README has the end marker");
    let want = permission_table();
    if std::env::var("KUBE_INCIDENT_REGENERATE").is_ok_and(|v| v == "1") {
        let updated = format!("{}{}{}", &readme[..body_start], want, &readme[end..]);
        std::fs::write(README, updated).expect("write README.md");
        return;
    }
    assert!(
        readme[body_start..end] == want,
        "README.md's permission table is out of date with src/rbac.rs: run `KUBE_INCIDENT_REGENERATE=1 cargo test --test suite rbac::`"
    );
}

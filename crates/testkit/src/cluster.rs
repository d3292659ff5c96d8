//! A cluster for one test: clients, namespaces, CRDs, RBAC, write counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use emulator::{Emulator, EmulatorConfig};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, CustomResourceExt};
use kube_incident::api::{Incident, Runbook};
use kube_incident::rbac::{
    Permission, CLUSTER, GITOPS, LEADER_ELECTION, NAMESPACED, OPERATOR_RUNBOOKS,
};
use serde_json::json;

use crate::backend::{Backend, RealEnv};
use crate::wait::wait_for;

/// The field manager of the test kit's own writes.
const MANAGER: &str = "kube-incident-tests";
/// The ClusterRole (and binding) the test kit grants the operator's user.
const OPERATOR_ROLE: &str = "kube-incident-testkit-operator";

/// One write by the operator, as the API server recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub verb: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
}

/// A cluster for one test.
pub struct Cluster {
    /// An administrator's client: fixtures and assertions.
    pub client: Client,
    /// The operator's client: on a real back end the least-privilege user
    /// `kube-incident-operator`; on the emulator the same as `client`.
    pub operator_client: Client,
    /// The emulated API server (absent on a real back end).
    pub emulator: Option<Emulator>,
    real: Option<RealEnv>,
    namespaces: Mutex<Vec<String>>,
}

impl Cluster {
    /// A cluster without our CRDs, or `None` (with one line saying why)
    /// where the chosen back end is not available.
    pub async fn bare(simulate: bool) -> Option<Cluster> {
        Cluster::start(EmulatorConfig {
            simulate,
            time_scale: 20.0,
            ..Default::default()
        })
        .await
    }

    /// A cluster with the CRDs installed and established, and (on a real
    /// back end) the operator's RBAC.
    pub async fn with_crds(simulate: bool) -> Option<Cluster> {
        let c = Cluster::bare(simulate).await?;
        install_crds(&c.client).await;
        c.grant_operator().await;
        Some(c)
    }

    /// A cluster whose emulator (if that is the back end) has `cfg`.
    pub async fn start(cfg: EmulatorConfig) -> Option<Cluster> {
        crate::init_tracing();
        match Backend::get() {
            Backend::Skip(why) => {
                eprintln!("skipped: {why}");
                None
            }
            Backend::Emulator => {
                let emulator = Emulator::start(cfg).await.expect("emulator starts");
                let client = emulator.client();
                Some(Cluster {
                    operator_client: client.clone(),
                    client,
                    emulator: Some(emulator),
                    real: None,
                    namespaces: Mutex::new(Vec::new()),
                })
            }
            Backend::Real(env) => {
                let client = admin_client(env).await;
                let operator_client = match &env.operator_kubeconfig {
                    Some(path) => client_from(path).await,
                    None => client.clone(),
                };
                Some(Cluster {
                    client,
                    operator_client,
                    emulator: None,
                    real: Some(env.clone()),
                    namespaces: Mutex::new(Vec::new()),
                })
            }
        }
    }

    /// True on the emulated API server.
    pub fn is_emulator(&self) -> bool {
        self.emulator.is_some()
    }

    /// The emulator for an emulator-only facility (fault injection, its
    /// clock), or `None` with one line saying the test is skipped.
    pub fn emulator_only(&self, test: &str) -> Option<&Emulator> {
        if self.emulator.is_none() {
            eprintln!("skipped {test}: needs the emulator's fault injection (emulator-only)");
        }
        self.emulator.as_ref()
    }

    /// Whether the workload controllers run (a real back end): StatefulSet,
    /// DaemonSet, Job and CronJob scenarios need them. On the emulator
    /// (which stores those kinds without a controller) says in one line
    /// that `test` is skipped.
    pub fn has_workload_controllers(&self, test: &str) -> bool {
        if self.emulator.is_some() {
            eprintln!(
                "skipped {test}: needs the StatefulSet/DaemonSet/Job/CronJob controllers (real back end only)"
            );
        }
        self.emulator.is_none()
    }

    /// A fresh namespace, deleted when the cluster is dropped (real back
    /// end; keep them with `KUBE_INCIDENT_KEEP_NAMESPACES=1`). On a real
    /// back end the operator's user also gets the leader-election and
    /// operator-namespace Role there, as the chart grants in its own
    /// namespace, so a test may use it as the operator's namespace.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace object");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        if let Ok(mut list) = self.namespaces.lock() {
            list.push(name.clone());
        }
        if self.has_operator_user() {
            let rules = rules(&[LEADER_ELECTION, OPERATOR_RUNBOOKS]);
            let role: Role = serde_json::from_value(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "kube-incident-self", "namespace": name},
                "rules": rules,
            }))
            .expect("role");
            let binding = self.binding("RoleBinding", "Role", "kube-incident-self", Some(&name));
            let roles: Api<Role> = Api::namespaced(self.client.clone(), &name);
            let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), &name);
            let pp = PatchParams::apply(MANAGER).force();
            roles
                .patch("kube-incident-self", &pp, &Patch::Apply(&role))
                .await
                .expect("operator Role in the test namespace");
            bindings
                .patch(
                    "kube-incident-self",
                    &pp,
                    &Patch::Apply(&serde_json::from_value::<RoleBinding>(binding).expect("rb")),
                )
                .await
                .expect("operator RoleBinding in the test namespace");
        }
        name
    }

    /// Write an administrator's kubeconfig for this cluster to `path`
    /// (for `kubectl` and `kubectl-incident` run as processes).
    pub fn write_kubeconfig(&self, path: &Path) {
        if let Some(e) = &self.emulator {
            e.write_kubeconfig(path).expect("kubeconfig written");
            return;
        }
        let src = self
            .real
            .as_ref()
            .and_then(|r| r.admin_kubeconfig.clone())
            .or_else(|| std::env::var_os("KUBECONFIG").map(std::path::PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
            .expect("a kubeconfig");
        std::fs::copy(src, path).expect("kubeconfig copied");
    }

    fn has_operator_user(&self) -> bool {
        self.real
            .as_ref()
            .is_some_and(|r| r.operator_kubeconfig.is_some())
    }

    fn binding(
        &self,
        kind: &str,
        role_kind: &str,
        role: &str,
        ns: Option<&str>,
    ) -> serde_json::Value {
        let user = self
            .real
            .as_ref()
            .map(|r| r.operator_user.clone())
            .unwrap_or_default();
        let mut meta = json!({"name": role});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        })
    }

    /// Grant the operator's user the chart's cluster-wide RBAC with
    /// `gitops.enabled` (`rbac::NAMESPACED` + `rbac::CLUSTER` +
    /// `rbac::GITOPS`: the scenarios run the operator with `--gitops`), and
    /// nothing else.
    async fn grant_operator(&self) {
        if !self.has_operator_user() {
            return;
        }
        let role: ClusterRole = serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": OPERATOR_ROLE},
            "rules": rules(&[NAMESPACED, CLUSTER, GITOPS]),
        }))
        .expect("cluster role");
        let binding: ClusterRoleBinding = serde_json::from_value(self.binding(
            "ClusterRoleBinding",
            "ClusterRole",
            OPERATOR_ROLE,
            None,
        ))
        .expect("cluster role binding");
        let pp = PatchParams::apply(MANAGER).force();
        Api::<ClusterRole>::all(self.client.clone())
            .patch(OPERATOR_ROLE, &pp, &Patch::Apply(&role))
            .await
            .expect("operator ClusterRole");
        Api::<ClusterRoleBinding>::all(self.client.clone())
            .patch(OPERATOR_ROLE, &pp, &Patch::Apply(&binding))
            .await
            .expect("operator ClusterRoleBinding");
    }

    /// Successful writes by the operator in `ns`, from the emulator's write
    /// log or the real API server's audit log; `None` where they cannot be
    /// counted (a real cluster without an audit log or an operator user).
    pub fn operator_writes(&self, ns: &str) -> Option<Vec<Write>> {
        if let Some(e) = &self.emulator {
            return Some(
                e.write_log()
                    .into_iter()
                    .filter(|w| {
                        !w.internal
                            && w.namespace.as_deref() == Some(ns)
                            && w.field_manager.as_deref() == Some("kube-incident")
                    })
                    .map(|w| Write {
                        verb: w.verb,
                        resource: w.resource,
                        subresource: w.subresource,
                        namespace: w.namespace,
                        name: w.name,
                    })
                    .collect(),
            );
        }
        let real = self.real.as_ref()?;
        real.operator_kubeconfig.as_ref()?;
        let log = real.audit_log.as_ref()?;
        Some(audit_writes(log, &real.operator_user, ns))
    }

    /// The real API server's audit log, where it is known.
    pub fn audit_log(&self) -> Option<&Path> {
        self.real.as_ref()?.audit_log.as_deref()
    }

    /// How many times the operator wrote `resource` (not a subresource) in `ns`.
    pub fn writes(&self, ns: &str, resource: &str) -> Option<usize> {
        self.operator_writes(ns).map(|ws| {
            ws.iter()
                .filter(|w| w.resource == resource && w.subresource.is_none())
                .count()
        })
    }

    /// Exactly one spec write of `resource` by the operator in `ns`: from
    /// the audit log where its policy records that resource (the emulator's
    /// write log on the emulator); where it does not (the shared control
    /// plane audits Deployments, HPAs, ConfigMaps and Incidents only), the
    /// server's own generation is the witness, and the test says so in one
    /// line. Either way the generation must have gone from `gen_before` to
    /// `gen_after = gen_before + 1` (a repeated write of the same spec
    /// would not bump it, a different one would bump it again).
    #[track_caller]
    pub fn assert_one_spec_write(&self, ns: &str, resource: &str, gen_before: i64, gen_after: i64) {
        let audited = self
            .audit_log()
            .is_some_and(|log| audit_records(log, ns, resource));
        if audited || self.is_emulator() {
            self.assert_writes(ns, resource, 1);
        } else {
            eprintln!(
                "not counted from the audit log: its policy does not record {resource}; checked the generation instead ({gen_before} -> {gen_after})"
            );
        }
        assert_eq!(
            gen_after,
            gen_before + 1,
            "one spec write of {resource} in {ns}"
        );
    }

    /// Assert the operator wrote `resource` in `ns` exactly `expected`
    /// times (audit log on a real server), or say why it cannot be counted.
    #[track_caller]
    pub fn assert_writes(&self, ns: &str, resource: &str, expected: usize) {
        match self.writes(ns, resource) {
            Some(n) => assert_eq!(
                n,
                expected,
                "operator writes of {resource} in {ns}: {:#?}",
                self.operator_writes(ns)
            ),
            None => eprintln!(
                "not counted: writes of {resource} (no audit log or operator user on this cluster)"
            ),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let Some(real) = &self.real else { return };
        if std::env::var("KUBE_INCIDENT_KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
            return;
        }
        let Ok(list) = self.namespaces.lock() else {
            return;
        };
        if list.is_empty() {
            return;
        }
        let mut cmd = std::process::Command::new(&real.kubectl);
        if let Some(k) = &real.admin_kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        let _ = cmd
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(list.iter())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// An administrator's client for a real back end.
pub async fn admin_client(env: &RealEnv) -> Client {
    match &env.admin_kubeconfig {
        Some(path) => client_from(path).await,
        None => Client::try_default()
            .await
            .expect("KUBE_INCIDENT_E2E=1 needs a kubeconfig"),
    }
}

async fn client_from(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig readable");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(cfg).expect("client")
}

/// RBAC rules for permission lists, merged per (group, resource).
fn rules(lists: &[&[Permission]]) -> Vec<PolicyRule> {
    let mut by: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for p in lists.iter().flat_map(|l| l.iter()) {
        let verbs = by.entry((p.group, p.resource)).or_default();
        for v in p.verbs {
            if !verbs.contains(v) {
                verbs.push(v);
            }
        }
    }
    by.into_iter()
        .map(|((group, resource), verbs)| PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(vec![resource.to_string()]),
            verbs: verbs.into_iter().map(String::from).collect(),
            ..Default::default()
        })
        .collect()
}

/// Successful writes by `user` in `ns` in a kube-apiserver audit log.
fn audit_writes(log: &Path, user: &str, ns: &str) -> Vec<Write> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    let needle = format!("\"namespace\":\"{ns}\"");
    text.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["stage"] == "ResponseComplete"
                && e["user"]["username"] == user
                && e["objectRef"]["namespace"] == ns
                && matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete")
                )
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| (200..300).contains(&c))
        })
        .map(|e| Write {
            verb: e["verb"].as_str().unwrap_or_default().to_string(),
            resource: e["objectRef"]["resource"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            subresource: e["objectRef"]["subresource"].as_str().map(String::from),
            namespace: Some(ns.to_string()),
            name: e["objectRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect()
}

/// Apply the CRDs (server-side, forced) and wait until they are served.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Incident::crd(), Runbook::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applied");
        wait_for(Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let c = crds.get(&name).await.ok()?;
                let established = c
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await
        .expect("CRD established");
    }
    // Discovery may lag the Established condition a little on real servers.
    wait_for(Duration::from_secs(30), || {
        let client = client.clone();
        async move { kube_incident::operator::check_crds(&client).await.ok() }
    })
    .await
    .expect("CRDs served");
}

/// Whether the audit log holds any write of `resource` in `ns` (a test's
/// own create is one, when the policy records the resource).
fn audit_records(log: &Path, ns: &str, resource: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| {
        text.lines().any(|l| {
            l.contains(&format!("\"resource\":\"{resource}\""))
                && l.contains(&format!("\"namespace\":\"{ns}\""))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_rules_per_resource() {
        let r = rules(&[NAMESPACED, OPERATOR_RUNBOOKS]);
        let runbooks: Vec<_> = r
            .iter()
            .filter(|r| r.resources.as_deref() == Some(&["runbooks".to_string()][..]))
            .collect();
        assert_eq!(runbooks.len(), 1, "one rule per resource");
    }

    #[test]
    fn counts_only_the_users_successful_writes_in_the_namespace() {
        let dir = std::env::temp_dir().join(format!("audit-{}", uuid::Uuid::new_v4()));
        let line = |user: &str, ns: &str, verb: &str, code: u16, sub: Option<&str>| {
            let mut obj = json!({"resource": "deployments", "namespace": ns, "name": "web"});
            if let Some(s) = sub {
                obj["subresource"] = json!(s);
            }
            json!({"stage": "ResponseComplete", "verb": verb, "user": {"username": user},
                   "objectRef": obj, "responseStatus": {"code": code}})
            .to_string()
        };
        let text = [
            line("op", "a", "patch", 200, None),
            line("op", "a", "patch", 422, None),
            line("admin", "a", "patch", 200, None),
            line("op", "b", "patch", 200, None),
            line("op", "a", "get", 200, None),
            line("op", "a", "patch", 200, Some("scale")),
        ]
        .join("\n");
        std::fs::write(&dir, text).unwrap();
        let ws = audit_writes(&dir, "op", "a");
        assert_eq!(ws.len(), 2);
        assert_eq!(ws[1].subresource.as_deref(), Some("scale"));
        let _ = std::fs::remove_file(dir);
    }
}

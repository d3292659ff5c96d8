//! The Helm chart, rendered with Helm's own Go SDK (see `.ci/render-chart.py`)
//! with default and non-default values: every object parses as its
//! Kubernetes type (and survives a typed round trip unchanged, so no field
//! is misspelt or misplaced), the Deployment is locked down, and the
//! operator flags it passes are the ones `kube-incident run` accepts.

use crate::render;

use std::process::Command;
use std::time::Duration;

use crate::render::{kind, name, namespace, RELEASE_NAMESPACE};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube_incident::operator::RunArgs;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

/// The Prometheus Operator's ServiceMonitor, as far as the chart uses it
/// (no k8s-openapi type exists for it).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    namespace_selector: NamespaceSelector,
    endpoints: Vec<Endpoint>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    match_names: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    port: String,
    path: String,
    interval: String,
    scrape_timeout: String,
}

/// Parse as `T`, serialize back, and compare with the original.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &serde_yaml::Value) -> Value {
    let original: Value = serde_json::to_value(doc).expect("YAML to JSON");
    let typed: T = serde_json::from_value(original.clone()).unwrap_or_else(|e| {
        panic!(
            "{} {} does not parse as its type: {e}",
            kind(doc),
            name(doc)
        )
    });
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(
        back,
        original,
        "{} {} changes in a typed round trip (unknown or misplaced field?)",
        kind(doc),
        name(doc)
    );
    back
}

fn check_types(docs: &[serde_yaml::Value]) {
    for d in docs {
        let api_version = d["apiVersion"].as_str().unwrap_or_default();
        match (api_version, kind(d)) {
            ("v1", "ServiceAccount") => drop(round_trip::<ServiceAccount>(d)),
            ("v1", "Service") => drop(round_trip::<Service>(d)),
            ("apps/v1", "Deployment") => drop(round_trip::<Deployment>(d)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => drop(round_trip::<ClusterRole>(d)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                drop(round_trip::<ClusterRoleBinding>(d))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => drop(round_trip::<Role>(d)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => drop(round_trip::<RoleBinding>(d)),
            ("policy/v1", "PodDisruptionBudget") => drop(round_trip::<PodDisruptionBudget>(d)),
            ("networking.k8s.io/v1", "NetworkPolicy") => drop(round_trip::<NetworkPolicy>(d)),
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
                drop(round_trip::<ValidatingAdmissionPolicy>(d))
            }
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
                drop(round_trip::<ValidatingAdmissionPolicyBinding>(d))
            }
            ("monitoring.coreos.com/v1", "ServiceMonitor") => drop(round_trip::<ServiceMonitor>(d)),
            other => panic!("unexpected object {other:?} in the chart"),
        }
        let cluster_scoped = matches!(
            kind(d),
            "ClusterRole"
                | "ClusterRoleBinding"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
        );
        assert_eq!(
            namespace(d).is_empty(),
            cluster_scoped,
            "{} {}: namespace {:?}",
            kind(d),
            name(d),
            namespace(d)
        );
        if !matches!(kind(d), "Role" | "RoleBinding") && !cluster_scoped {
            assert_eq!(namespace(d), RELEASE_NAMESPACE, "{} {}", kind(d), name(d));
        }
    }
}

fn kinds(docs: &[serde_yaml::Value]) -> Vec<String> {
    let mut k: Vec<String> = docs.iter().map(|d| kind(d).to_string()).collect();
    k.sort();
    k.dedup();
    k
}

fn the_deployment(docs: &[serde_yaml::Value]) -> Deployment {
    let d: Vec<_> = docs.iter().filter(|d| kind(d) == "Deployment").collect();
    assert_eq!(d.len(), 1);
    serde_yaml::from_value(d[0].clone()).expect("Deployment parses")
}

fn container(d: &Deployment) -> Container {
    let spec = d.spec.as_ref().expect("spec");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.containers.len(), 1);
    pod.containers[0].clone()
}

/// The Deployment runs as a locked-down non-root container with probes
/// and resources.
fn check_hardened(d: &Deployment) {
    let c = container(d);
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let res = c.resources.as_ref().expect("resources");
    assert!(res
        .requests
        .as_ref()
        .is_some_and(|r| r.contains_key("memory")));
    assert!(res
        .limits
        .as_ref()
        .is_some_and(|r| r.contains_key("memory")));
    let env: Vec<String> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
    assert!(env.contains(&"POD_NAME".into()) && env.contains(&"POD_NAMESPACE".into()));
}

/// Parse the container's args as `kube-incident run` does (flags after
/// `run`; `--log-format` is the global flag), with the downward-API env
/// the pod gets.
fn parsed_args(c: &Container) -> RunArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Run {
        #[arg(long)]
        log_format: Option<String>,
        #[command(flatten)]
        args: RunArgs,
    }
    let args = c.args.clone().expect("args");
    assert_eq!(args.first().map(String::as_str), Some("run"));
    let argv = std::iter::once("kube-incident-run".to_string()).chain(args[1..].iter().cloned());
    let parsed = Run::try_parse_from(argv).unwrap_or_else(|e| panic!("chart args {args:?}: {e}"));
    assert!(matches!(
        parsed.log_format.as_deref(),
        Some("json") | Some("text")
    ));
    let mut run = parsed.args;
    run.instance
        .get_or_insert_with(|| "kube-incident-abc".into());
    run.operator_namespace
        .get_or_insert_with(|| RELEASE_NAMESPACE.into());
    run.severity_targets().expect("targets parse");
    run.election().expect("leader election settings are valid");
    run
}

/// The real binary accepts the chart's args: it gets past argument parsing
/// (exit status 2 is clap's) to the point of contacting the API server.
fn binary_accepts(c: &Container) {
    let dir = std::env::temp_dir().join(format!(
        "kube-incident-chart-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .expect("write kubeconfig");
    let args = c.args.clone().expect("args");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-incident"));
    cmd.args(&args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("POD_NAME", "kube-incident-abc")
        .env("POD_NAMESPACE", RELEASE_NAMESPACE)
        .env_remove("KUBECONFIG");
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kube-incident");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kube-incident did not exit with an unreachable API server");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(status.code(), Some(2), "clap rejected {args:?}: {stderr}");
    assert!(
        stderr.contains("cannot reach the Kubernetes API server"),
        "kube-incident {args:?} stopped before contacting the API server: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every flag and env var the chart sets is one `kube-incident run --help` documents.
fn help_documents(c: &Container) {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-incident"))
        .args(["run", "--help"])
        .output()
        .expect("kube-incident run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for a in c.args.iter().flatten().skip(1) {
        let flag = a.split('=').next().unwrap_or_default();
        assert!(
            help.contains(&format!("{flag} "))
                || help.contains(&format!("{flag}="))
                || help.contains(&format!("{flag}\n"))
                || help.contains(&format!("{flag} <"))
                || help.contains(&format!("{flag} [")),
            "`kube-incident run --help` does not document {flag}"
        );
    }
    for e in c.env.iter().flatten() {
        if e.value_from.is_some() {
            assert!(
                help.contains(&format!("[env: {}=", e.name)),
                "`kube-incident run --help` does not read {}",
                e.name
            );
        }
    }
}

#[test]
fn default_values_render_valid_locked_down_objects() {
    let Some(docs) = render::render(&[], None) else {
        return;
    };
    check_types(&docs);
    assert_eq!(
        kinds(&docs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]
    );
    let d = the_deployment(&docs);
    check_hardened(&d);
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let c = container(&d);
    let run = parsed_args(&c);
    assert!(run.namespaces.is_empty(), "cluster-wide by default");
    assert!(
        run.lease.leader_elect,
        "leader election on by default in the chart"
    );
    assert_eq!(run.lease.lease_name, "kube-incident");
    assert_eq!(run.lease.lease_duration, Duration::from_secs(15));
    assert!(
        !run.dry_run
            && run.detect
            && run.builtin_policy
            && run.response.notify
            && run.response.evidence
    );
    assert_eq!(run.metrics_addr.port(), 8080);
    help_documents(&c);
    binary_accepts(&c);
    let svc: Vec<_> = docs.iter().filter(|d| kind(d) == "Service").collect();
    assert_eq!(
        svc[0]["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
}

#[test]
fn non_default_values_reach_the_operator_flags() {
    let Some(docs) = render::render(&["ci/namespaced-values.yaml"], None) else {
        return;
    };
    check_types(&docs);
    for k in [
        "ServiceMonitor",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds(&docs).contains(&k.to_string()), "{k} rendered");
    }
    // cluster-scoped in namespaced mode: only reading the admission policies
    // (the operator) and the responder/approver roles for people
    let mut cluster_roles: Vec<&str> = docs
        .iter()
        .filter(|d| kind(d) == "ClusterRole")
        .map(name)
        .collect();
    cluster_roles.sort();
    assert_eq!(
        cluster_roles,
        [
            "kube-incident-approver",
            "kube-incident-policy-read",
            "kube-incident-responder"
        ]
    );
    let d = the_deployment(&docs);
    check_hardened(&d);
    let c = container(&d);
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/kube-incident:v9.9.9")
    );
    let run = parsed_args(&c);
    assert_eq!(run.namespaces, ["shop", "payments"]);
    assert!(run.dry_run);
    assert!(!run.builtin_policy);
    assert!(!run.response.notify && !run.response.evidence);
    assert_eq!(run.response_targets, ["SEV1=10m"]);
    assert_eq!(run.resolution_targets, ["SEV2=8h"]);
    assert_eq!(run.monitoring_windows, ["SEV3=5m"]);
    assert_eq!(run.lease.lease_name, "incident-leader");
    assert_eq!(run.lease.lease_duration, Duration::from_secs(20));
    assert_eq!(run.lease.lease_renew_deadline, Duration::from_secs(12));
    assert_eq!(run.lease.lease_retry_period, Duration::from_secs(3));
    assert_eq!(run.metrics_addr.port(), 9090);
    help_documents(&c);
    binary_accepts(&c);
    // The admission policy exempts exactly the operator's service account.
    let vap = docs
        .iter()
        .find(|d| kind(d) == "ValidatingAdmissionPolicy")
        .expect("policy");
    let cond = vap["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .unwrap_or_default();
    assert!(
        cond.contains("system:serviceaccount:kube-incident-system:responder"),
        "{cond}"
    );
}

#[test]
fn single_replica_without_election_and_disabled_detection() {
    let Some(docs) = render::render(&["ci/cluster-single-values.yaml"], None) else {
        return;
    };
    check_types(&docs);
    assert!(!kinds(&docs).contains(&"ServiceAccount".to_string()));
    let d = the_deployment(&docs);
    let c = container(&d);
    let run = parsed_args(&c);
    assert!(!run.lease.leader_elect && !run.detect);
    assert_eq!(
        d.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.service_account_name.clone())
            .as_deref(),
        Some("existing-sa")
    );
    binary_accepts(&c);
}

/// The container's args after `run`.
fn args(docs: &[serde_yaml::Value]) -> Vec<String> {
    container(&the_deployment(docs))
        .args
        .expect("args")
        .into_iter()
        .skip(1)
        .collect()
}

#[test]
fn gitops_values_reach_the_operator_flags() {
    for values in [
        &[][..],
        &["ci/namespaced-values.yaml"][..],
        &["ci/cluster-single-values.yaml"][..],
    ] {
        let Some(docs) = render::render(values, None) else {
            return;
        };
        let a = args(&docs);
        assert!(
            !a.iter()
                .any(|a| a == "--gitops" || a.starts_with("--argocd-namespace")),
            "{values:?}: GitOps support is off by default: {a:?}"
        );
    }
    let Some(docs) = render::render(&[], Some(r#"{"gitops": {"enabled": true}}"#)) else {
        return;
    };
    check_types(&docs);
    let a = args(&docs);
    assert_eq!(a.iter().filter(|a| *a == "--gitops").count(), 1, "{a:?}");
    assert!(
        a.contains(&"--argocd-namespace=argocd".to_string()),
        "{a:?}"
    );
    let Some(docs) = render::render(
        &["ci/namespaced-values.yaml"],
        Some(r#"{"gitops": {"enabled": true, "argocdNamespace": "argo-apps"}}"#),
    ) else {
        return;
    };
    check_types(&docs);
    let a = args(&docs);
    assert!(a.contains(&"--gitops".to_string()), "{a:?}");
    assert!(
        a.contains(&"--argocd-namespace=argo-apps".to_string()),
        "{a:?}"
    );
    // The operator parses them, documents them and accepts them.
    let c = container(&the_deployment(&docs));
    let run = parsed_args(&c);
    assert!(run.gitops);
    assert_eq!(run.argocd_namespace, "argo-apps");
    help_documents(&c);
    binary_accepts(&c);
}

#[test]
fn invalid_values_are_rejected_with_a_clear_message() {
    let cases = [
        (r#"{"replicaCount": "two"}"#, "replicaCount"),
        (
            r#"{"watchNamespaces": ["Not_A_Namespace"]}"#,
            "watchNamespaces",
        ),
        (
            r#"{"operator": {"responseTargets": ["SEV9=1m"]}}"#,
            "responseTargets",
        ),
        (
            r#"{"leaderElection": {"leaseDuration": "1500ms"}}"#,
            "leaseDuration",
        ),
        (r#"{"unknownKey": true}"#, "unknownKey"),
        (
            r#"{"leaderElection": {"enabled": false}}"#,
            "leaderElection.enabled",
        ),
        (
            r#"{"serviceAccount": {"create": false}}"#,
            "serviceAccount.name is required",
        ),
        (
            r#"{"gitops": {"argocdNamespace": "Not_A_Namespace"}}"#,
            "argocdNamespace",
        ),
        (r#"{"gitops": {"enabled": "yes"}}"#, "enabled"),
    ];
    for (set, expect) in cases {
        let Some(err) = render::render_error(&[], Some(set)) else {
            return;
        };
        assert!(
            err.contains(expect),
            "values {set}: error {err:?} should name {expect}"
        );
    }
}

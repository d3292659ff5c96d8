//! Verified approvals (`src/admission/`, docs/security.md): the chart's
//! policy template is generated from the code and renders to exactly the
//! objects the code generates; and, on a real API server (the emulator has
//! no admission policies, users or RBAC; those tests skip there with one
//! line), the policies admit an acknowledgement, resolution or approval
//! only as the authenticated user, an approval only with the verb
//! `approve`, never a change of an approved step or of a step's approval
//! mode, a Runbook only from a user who may patch its Deployments, and
//! every write of the operator's own identity.
//!
//! Each real-server test installs its own copy of the policies bound to
//! its own namespace only (the control plane is shared by parallel tests)
//! and removes it at the end.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};
use testkit::{wait_for, Backend, Cluster};

use crate::render::{self, kind, name, RELEASE_NAMESPACE};
use kube_incident::admission::{
    self, check_installed_instance, helm_template, policy_manifests_with, PolicyOptions,
    PolicyState, INSTANCE_LABEL, POLICY_LABEL,
};
use kube_incident::api::{
    Approval, Incident, IncidentSpec, MitigationAction, MitigationStep, Runbook, Severity,
};

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/kube-incident/templates/admissionpolicy.yaml"
);

#[test]
fn chart_template_is_generated_from_src_admission() {
    let generated = helm_template().expect("template renders");
    if std::env::var("KUBE_INCIDENT_REGENERATE").is_ok_and(|v| v == "1") {
        std::fs::write(TEMPLATE, &generated).expect("write admissionpolicy.yaml");
        eprintln!("regenerated {TEMPLATE}");
    }
    let on_disk = std::fs::read_to_string(TEMPLATE).expect("admissionpolicy.yaml exists");
    assert!(
        on_disk == generated,
        "charts/kube-incident/templates/admissionpolicy.yaml is out of date with src/admission/: run `KUBE_INCIDENT_REGENERATE=1 cargo test --test suite admission::`"
    );
}

/// The rendered chart's policies, bindings and user ClusterRoles equal what
/// the code generates for the same parameters (names, rules, digests,
/// bindings' scope and actions).
fn assert_chart_matches_code(docs: &[serde_yaml::Value], opts: &PolicyOptions) {
    let rendered: Vec<Value> = docs
        .iter()
        .filter(|d| {
            matches!(
                kind(d),
                "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding"
            )
        })
        .map(|d| serde_json::to_value(d).expect("YAML to JSON"))
        .collect();
    let want = policy_manifests_with(opts);
    assert_eq!(rendered.len(), want.len(), "{rendered:#?}");
    for w in &want {
        let n = w["metadata"]["name"].as_str().unwrap();
        let k = w["kind"].as_str().unwrap();
        let got = rendered
            .iter()
            .find(|r| r["kind"] == k && r["metadata"]["name"] == n)
            .unwrap_or_else(|| panic!("the chart renders no {k} {n}"));
        assert_eq!(got["spec"], w["spec"], "{k} {n}: spec");
        assert_eq!(
            got["metadata"]["annotations"], w["metadata"]["annotations"],
            "{k} {n}: digest"
        );
        for (label, value) in w["metadata"]["labels"].as_object().unwrap() {
            assert_eq!(&got["metadata"]["labels"][label], value, "{k} {n}: {label}");
        }
    }
    let roles: Vec<&str> = docs
        .iter()
        .filter(|d| kind(d) == "ClusterRole")
        .map(name)
        .collect();
    for role in admission::user_cluster_roles(&opts.name_prefix) {
        let n = role["metadata"]["name"].as_str().unwrap();
        assert!(roles.contains(&n), "{n} rendered: {roles:?}");
        let got = docs.iter().find(|d| name(d) == n).unwrap();
        assert_eq!(
            serde_json::to_value(&got["rules"]).unwrap(),
            role["rules"],
            "{n}"
        );
    }
}

#[test]
fn chart_renders_the_policies_the_code_generates() {
    // on by default, cluster-wide, exempting the chart's service account
    let Some(docs) = render::render(&[], None) else {
        return;
    };
    assert_chart_matches_code(
        &docs,
        &PolicyOptions::new(&format!(
            "system:serviceaccount:{RELEASE_NAMESPACE}:kube-incident"
        )),
    );
    // namespaced mode: bound to the watched namespaces only
    let docs = render::render(&["ci/namespaced-values.yaml"], None).expect("rendered");
    assert_chart_matches_code(
        &docs,
        &PolicyOptions {
            namespaces: vec!["shop".into(), "payments".into()],
            validation_actions: vec!["Deny".into(), "Audit".into()],
            ..PolicyOptions::new(&format!(
                "system:serviceaccount:{RELEASE_NAMESPACE}:responder"
            ))
        },
    );
    // off when asked
    let docs = render::render(
        &[],
        Some(r#"{"admissionPolicy": {"enabled": false}, "userRoles": {"create": false}}"#),
    )
    .expect("rendered");
    assert!(docs
        .iter()
        .all(|d| !kind(d).starts_with("ValidatingAdmission")));
    assert!(docs.iter().all(|d| !name(d).ends_with("-approver")));
}

// ---------------------------------------------------------------------
// Real API server

/// The kubeconfig of `user` on the `../shared/k8s` control plane.
pub(crate) fn user_kubeconfig(user: &str) -> Option<PathBuf> {
    let Backend::Real(env) = Backend::get() else {
        return None;
    };
    let path = env
        .admin_kubeconfig
        .as_deref()?
        .parent()?
        .join(format!("{user}.kubeconfig"));
    path.is_file().then_some(path)
}

pub(crate) async fn client_for(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("kubeconfig readable");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(cfg).expect("client")
}

/// A real cluster with the CRDs, a namespace, the users alice and mallory,
/// and this test's copy of the policies (bound to the namespace only, in
/// force); `None` after one line where that is not available.
struct Setup {
    cluster: Cluster,
    ns: String,
    opts: PolicyOptions,
    alice: PathBuf,
    mallory: PathBuf,
    _cleanup: Cleanup,
}

/// Removes this test's cluster-scoped objects (its policies, bindings and
/// ClusterRoles) when the test ends, passed or not.
struct Cleanup {
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Backend::Real(env) = Backend::get() else {
            return;
        };
        let mut cmd = std::process::Command::new(&env.kubectl);
        if let Some(k) = &env.admin_kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        let _ = cmd
            .args([
                "delete",
                "validatingadmissionpolicies,validatingadmissionpolicybindings",
                "-l",
                &format!("{INSTANCE_LABEL}={}", self.prefix),
                "--ignore-not-found",
                "--wait=false",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let mut cmd = std::process::Command::new(&env.kubectl);
        if let Some(k) = &env.admin_kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        let _ = cmd
            .args([
                "delete",
                "clusterrole",
                "--ignore-not-found",
                "--wait=false",
            ])
            .arg(admission::responder_role(&self.prefix))
            .arg(admission::approver_role(&self.prefix))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

async fn setup(test: &str) -> Option<Setup> {
    let cluster = Cluster::with_crds(false).await?;
    if cluster.is_emulator() {
        eprintln!(
            "skipped {test}: needs a real API server's ValidatingAdmissionPolicies, users and RBAC (the emulator has none of them)"
        );
        return None;
    }
    let (Some(alice), Some(mallory)) = (user_kubeconfig("alice"), user_kubeconfig("mallory"))
    else {
        eprintln!("skipped {test}: needs the alice and mallory kubeconfigs of ../shared/k8s");
        return None;
    };
    let ns = cluster.namespace("vap").await;
    let operator = match Backend::get() {
        Backend::Real(env) => env.operator_user.clone(),
        _ => unreachable!(),
    };
    let opts = PolicyOptions {
        name_prefix: format!("kit-{ns}"),
        namespaces: vec![ns.clone()],
        ..PolicyOptions::new(&operator)
    };
    let cleanup = Cleanup {
        prefix: opts.name_prefix.clone(),
    };
    admission::apply(&cluster.client, &opts)
        .await
        .expect("policies applied");
    let pp = PatchParams::apply("kube-incident-tests").force();
    for role in admission::user_cluster_roles(&opts.name_prefix) {
        let n = role["metadata"]["name"].as_str().unwrap().to_string();
        let role: ClusterRole = serde_json::from_value(role).unwrap();
        Api::<ClusterRole>::all(cluster.client.clone())
            .patch(&n, &pp, &Patch::Apply(&role))
            .await
            .expect("user ClusterRole applied");
    }
    // in force once the API server refuses the admin to acknowledge as someone else
    let incidents: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    incidents
        .create(
            &PostParams::default(),
            &Incident::new("probe", spec(vec![])),
        )
        .await
        .expect("probe created");
    wait_for(Duration::from_secs(60), || {
        let incidents = incidents.clone();
        async move {
            let r = incidents
                .patch(
                    "probe",
                    &PatchParams::default().dry_run(),
                    &Patch::Merge(json!({"spec": {"acknowledgedBy": "nobody-at-all"}})),
                )
                .await;
            r.is_err().then_some(())
        }
    })
    .await
    .expect("the policy takes effect");
    Some(Setup {
        cluster,
        ns,
        opts,
        alice,
        mallory,
        _cleanup: cleanup,
    })
}

fn spec(mitigations: Vec<MitigationStep>) -> IncidentSpec {
    IncidentSpec {
        title: "checkout down".into(),
        severity: Severity::SEV2,
        source: Default::default(),
        target: None,
        runbook_ref: None,
        commander: None,
        acknowledged_by: None,
        root_cause: None,
        mitigations,
        resolution: None,
        resume_git_ops: None,
    }
}

fn step(name: &str, approval: Approval) -> MitigationStep {
    let mut s = MitigationStep::new(name, MitigationAction::Scale);
    s.replicas = Some(3);
    s.approval = approval;
    s
}

/// Bind `user` in `ns` to a Role with `rules` (named after the user and `what`).
async fn grant(client: &Client, ns: &str, user: &str, what: &str, rules: Value) {
    let n = format!("{user}-{what}");
    let pp = PatchParams::apply("kube-incident-tests").force();
    let role: Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": n, "namespace": ns}, "rules": rules,
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .patch(&n, &pp, &Patch::Apply(&role))
        .await
        .expect("Role applied");
    bind(client, ns, user, &n, "Role").await;
}

async fn bind(client: &Client, ns: &str, user: &str, role: &str, role_kind: &str) {
    let n = format!("{user}-{role}");
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": n, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch(
            &n,
            &PatchParams::apply("kube-incident-tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .expect("RoleBinding applied");
}

/// The message of a refused request (panics when it was admitted).
fn refused<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) => format!("{} {}", s.code, s.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Retry `f` until RBAC has caught up (the answer is not an RBAC refusal).
async fn after_rbac<T, F, Fut>(f: F) -> Result<T, kube::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut last = f().await;
    for _ in 0..60 {
        match &last {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(" cannot ") => {
                tokio::time::sleep(Duration::from_millis(250)).await;
                last = f().await;
            }
            _ => break,
        }
    }
    last
}

async fn run_binary(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-incident"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("run kubectl-incident")
}

fn json_patch(ops: Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).unwrap())
}

fn merge(spec: Value) -> Patch<Value> {
    Patch::Merge(json!({ "spec": spec }))
}

#[tokio::test]
async fn approvals_are_acts_of_the_authenticated_user() {
    let Some(s) = setup("approvals_are_acts_of_the_authenticated_user").await else {
        return;
    };
    let ns = s.ns.as_str();
    let admin: Api<Incident> = Api::namespaced(s.cluster.client.clone(), ns);
    admin
        .create(
            &PostParams::default(),
            &Incident::new(
                "inc",
                spec(vec![
                    step("scale", Approval::Manual),
                    step("more", Approval::Manual),
                    step("auto", Approval::Automatic),
                ]),
            ),
        )
        .await
        .expect("the admin may create a plan with an Automatic step");
    let pp = PatchParams::default();
    let approver = admission::approver_role(&s.opts.name_prefix);

    // mallory may read and patch Incidents (a responder) but not approve
    bind(
        &s.cluster.client,
        ns,
        "mallory",
        &admission::responder_role(&s.opts.name_prefix),
        "ClusterRole",
    )
    .await;
    let mallory: Api<Incident> = Api::namespaced(client_for(&s.mallory).await, ns);
    let approve_as = |who: &str, index: usize| {
        json_patch(json!([
            {"op": "add", "path": format!("/spec/mitigations/{index}/approvedBy"), "value": who},
        ]))
    };
    let m = refused(
        after_rbac(|| {
            let (api, pp, patch) = (mallory.clone(), pp.clone(), approve_as("alice", 0));
            async move { api.patch("inc", &pp, &patch).await }
        })
        .await,
    );
    assert!(
        m.starts_with("403 ") && m.contains("cannot approve: spec.mitigations[].approvedBy must be your own username \"mallory\" (step scale)"),
        "{m}"
    );
    let m = refused(mallory.patch("inc", &pp, &approve_as("mallory", 0)).await);
    assert!(
        m.contains(&format!(
            "cannot approve: user mallory lacks verb approve on incidents.kubeincident.io in namespace {ns} (bind ClusterRole {approver})"
        )),
        "{m}"
    );
    // ... through the CLI: one line naming the missing permission
    let out = run_binary(&s.mallory, &["-n", ns, "approve", "inc", "scale"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot approve: user mallory lacks verb approve on incidents.kubeincident.io in namespace {ns} (bind ClusterRole {approver})"
        )),
        "{stderr}"
    );
    // she may acknowledge as herself, not as anyone else
    let m = refused(
        mallory
            .patch("inc", &pp, &merge(json!({"acknowledgedBy": "alice"})))
            .await,
    );
    assert!(
        m.contains("cannot acknowledge: spec.acknowledgedBy must be your own username \"mallory\", not \"alice\""),
        "{m}"
    );
    let m = refused(
        mallory
            .patch(
                "inc",
                &pp,
                &merge(json!({"resolution": {"by": "alice", "summary": "x"}})),
            )
            .await,
    );
    assert!(
        m.contains("cannot resolve: spec.resolution.by must be your own username \"mallory\", not \"alice\""),
        "{m}"
    );
    let out = run_binary(&s.mallory, &["-n", ns, "ack", "inc", "--as", "alice"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: cannot acknowledge: spec.acknowledgedBy must be your own username \"mallory\""
        ),
        "{stderr}"
    );
    let out = run_binary(&s.mallory, &["-n", ns, "ack", "inc"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "incident.kubeincident.io/inc acknowledged by mallory\n"
    );
    // a responder cannot add an Automatic step (it would patch Deployments unapproved)
    let m = refused(
        mallory
            .patch(
                "inc",
                &pp,
                &json_patch(json!([{"op": "add", "path": "/spec/mitigations/-", "value": {"name": "evil", "action": "Scale", "replicas": 0, "approval": "Automatic"}}])),
            )
            .await,
    );
    assert!(
        m.contains(&format!("cannot add the Automatic step evil to spec.mitigations: user mallory lacks verb patch on deployments.apps in namespace {ns}")),
        "{m}"
    );

    // alice, an approver, approves as herself (the CLI records the name the server authenticated)
    bind(&s.cluster.client, ns, "alice", &approver, "ClusterRole").await;
    let out = wait_for(Duration::from_secs(20), || async {
        let out = run_binary(&s.alice, &["-n", ns, "approve", "inc", "scale"]).await;
        out.status.success().then_some(out)
    })
    .await
    .expect("alice approves once her binding takes effect");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "step \"scale\" of incident.kubeincident.io/inc approved by alice\n"
    );
    // but not in someone else's name
    let alice: Api<Incident> = Api::namespaced(client_for(&s.alice).await, ns);
    let m = refused(alice.patch("inc", &pp, &approve_as("bob", 1)).await);
    assert!(
        m.contains("must be your own username \"alice\" (step more)"),
        "{m}"
    );
    let out = run_binary(
        &s.alice,
        &["-n", ns, "resolve", "inc", "--summary", "ok", "--as", "bob"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot resolve: spec.resolution.by must be your own username \"alice\", not \"bob\""),
        "{stderr}"
    );

    // nobody, not even the admin, changes an approved step or a step's approval mode
    for (who, api) in [("admin", &admin), ("alice", &alice)] {
        let m = refused(
            api.patch(
                "inc",
                &pp,
                &json_patch(
                    json!([{"op": "replace", "path": "/spec/mitigations/0/replicas", "value": 50}]),
                ),
            )
            .await,
        );
        assert!(
            m.contains("cannot change step scale of spec.mitigations: it was approved"),
            "{who}: {m}"
        );
        let m = refused(
            api.patch(
                "inc",
                &pp,
                &json_patch(json!([{"op": "remove", "path": "/spec/mitigations/0/approvedBy"}])),
            )
            .await,
        );
        assert!(m.contains("cannot change step scale"), "{who}: {m}");
        let m = refused(
            api.patch(
                "inc",
                &pp,
                &json_patch(json!([{"op": "replace", "path": "/spec/mitigations/1/approval", "value": "Automatic"}])),
            )
            .await,
        );
        assert!(
            m.contains("cannot change spec.mitigations[].approval of step more"),
            "{who}: {m}"
        );
    }
    // other edits of the Incident still pass, keeping the approval as it is
    admin
        .patch("inc", &pp, &merge(json!({"rootCause": "bad deploy"})))
        .await
        .expect("an unrelated edit is admitted");

    // the operator's own identity is not checked (it copies Runbook plans, reopens)
    if let Some(op_kc) = match Backend::get() {
        Backend::Real(env) => env.operator_kubeconfig.clone(),
        _ => None,
    } {
        let operator: Api<Incident> = Api::namespaced(client_for(&op_kc).await, ns);
        operator
            .patch(
                "inc",
                &pp,
                &json_patch(json!([
                    {"op": "replace", "path": "/spec/mitigations/1/approval", "value": "Automatic"},
                    {"op": "add", "path": "/spec/mitigations/1/approvedBy", "value": "someone"},
                ])),
            )
            .await
            .expect("the operator's writes are not checked");
    } else {
        eprintln!("not checked: the operator exemption (no operator kubeconfig on this cluster)");
    }
    let inc = admin.get("inc").await.unwrap();
    assert_eq!(
        inc.spec.mitigations[0].approved_by.as_deref(),
        Some("alice")
    );
    assert_eq!(inc.spec.acknowledged_by.as_deref(), Some("mallory"));
}

fn runbook(name: &str, namespace_selector: bool, approved: bool) -> Value {
    let mut step = json!({"name": "scale", "action": "Scale", "replicas": 3});
    if approved {
        step["approvedBy"] = json!("mallory");
    }
    let mut spec = json!({"selector": {}, "mitigations": [step]});
    if namespace_selector {
        spec["namespaceSelector"] = json!({"matchLabels": {"team": "shop"}});
    }
    json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": name}, "spec": spec,
    })
}

#[tokio::test]
async fn runbooks_need_patch_on_the_deployments_they_act_on() {
    let Some(s) = setup("runbooks_need_patch_on_the_deployments_they_act_on").await else {
        return;
    };
    let ns = s.ns.as_str();
    grant(
        &s.cluster.client,
        ns,
        "mallory",
        "runbooks",
        json!([{"apiGroups": ["kubeincident.io"], "resources": ["runbooks"], "verbs": ["get", "create", "update", "patch"]}]),
    )
    .await;
    let mallory: Api<Runbook> = Api::namespaced(client_for(&s.mallory).await, ns);
    let create = |v: Value| {
        let mallory = mallory.clone();
        async move {
            let rb: Runbook = serde_json::from_value(v).unwrap();
            mallory.create(&PostParams::default(), &rb).await
        }
    };
    // A new policy takes a moment to be in force for a resource: until the
    // policy refuses, an admitted Runbook is removed and the write retried.
    let admin: Api<Runbook> = Api::namespaced(s.cluster.client.clone(), ns);
    let m = wait_for(Duration::from_secs(30), || async {
        match create(runbook("rb", false, false)).await {
            Err(kube::Error::Api(e)) if e.message.contains("cannot write Runbook") => {
                Some(format!("{} {}", e.code, e.message))
            }
            Ok(_) => {
                let _ = admin.delete("rb", &Default::default()).await;
                None
            }
            _ => None,
        }
    })
    .await
    .expect("the policy refuses a Runbook from a user who may not patch Deployments");
    assert!(
        m.contains(&format!(
            "cannot write Runbook rb: user mallory lacks verb patch on deployments.apps in namespace {ns}"
        )),
        "{m}"
    );
    // with patch on Deployments there, she may
    grant(
        &s.cluster.client,
        ns,
        "mallory",
        "deployments",
        json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}]),
    )
    .await;
    wait_for(Duration::from_secs(20), || async {
        create(runbook("rb", false, false)).await.ok()
    })
    .await
    .expect("admitted once she may patch Deployments in the namespace");
    // a namespaceSelector reaches other namespaces: cluster-wide patch needed
    let m = refused(create(runbook("wide", true, false)).await);
    assert!(
        m.contains("cannot write Runbook wide: spec.namespaceSelector extends it to other namespaces, and user mallory lacks verb patch on deployments.apps cluster-wide"),
        "{m}"
    );
    // and a Runbook never carries an approval
    let m = refused(create(runbook("pre", false, true)).await);
    assert!(
        m.contains("spec.mitigations[].approvedBy cannot be set on a Runbook (step scale)"),
        "{m}"
    );
}

#[tokio::test]
async fn check_installed_compares_the_server_with_the_code() {
    let Some(s) = setup("check_installed_compares_the_server_with_the_code").await else {
        return;
    };
    let client = &s.cluster.client;
    let prefix = Some(s.opts.name_prefix.as_str());
    assert_eq!(
        check_installed_instance(client, prefix).await,
        PolicyState::Installed
    );
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    // the API server type-checked every expression without a warning
    for role in admission::POLICIES {
        let name = admission::policy_name(&s.opts.name_prefix, role);
        let status = wait_for(Duration::from_secs(20), || {
            let policies = policies.clone();
            let name = name.clone();
            async move {
                let p = policies.get(&name).await.ok()?;
                let st = p.status?;
                (st.observed_generation == p.metadata.generation).then_some(st)
            }
        })
        .await
        .expect("the policy is type-checked");
        let warnings = status
            .type_checking
            .and_then(|t| t.expression_warnings)
            .unwrap_or_default();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
    }
    let incidents_policy = admission::policy_name(&s.opts.name_prefix, admission::INCIDENTS_POLICY);
    // a binding that only warns does not verify anything
    bindings
        .patch(
            &incidents_policy,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"validationActions": ["Warn"]}})),
        )
        .await
        .unwrap();
    let state = check_installed_instance(client, prefix).await;
    assert!(
        matches!(&state, PolicyState::Stale { what } if what.contains("do not deny")),
        "{state:?}"
    );
    // an edited rule is stale
    bindings
        .patch(
            &incidents_policy,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"validationActions": ["Deny"]}})),
        )
        .await
        .unwrap();
    policies
        .patch(
            &incidents_policy,
            &PatchParams::default(),
            &json_patch(json!([{"op": "replace", "path": "/spec/validations/3/expression", "value": "true"}])),
        )
        .await
        .unwrap();
    let state = check_installed_instance(client, prefix).await;
    assert!(
        matches!(&state, PolicyState::Stale { what } if what.contains("spec.validations[3].expression differs")),
        "{state:?}"
    );
    // a missing binding or policy is missing
    admission::apply(client, &s.opts).await.unwrap();
    assert_eq!(
        check_installed_instance(client, prefix).await,
        PolicyState::Installed
    );
    bindings
        .delete(&incidents_policy, &Default::default())
        .await
        .unwrap();
    let state = check_installed_instance(client, prefix).await;
    assert!(
        matches!(&state, PolicyState::Missing { what } if what.contains("ValidatingAdmissionPolicyBinding")),
        "{state:?}"
    );
    policies
        .delete(&incidents_policy, &Default::default())
        .await
        .unwrap();
    let state = check_installed_instance(client, prefix).await;
    assert!(
        matches!(&state, PolicyState::Missing { what } if what.contains(POLICY_LABEL)),
        "{state:?}"
    );
    // the watcher publishes the state and its changes
    let mut rx = admission::watch_state_instance(
        client.clone(),
        Duration::from_millis(200),
        Some(s.opts.name_prefix.clone()),
    )
    .await;
    assert!(matches!(
        *rx.borrow_and_update(),
        PolicyState::Missing { .. }
    ));
    admission::apply(client, &s.opts).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|st| st.is_enforced()))
        .await
        .expect("the watcher sees the policy installed again")
        .unwrap();
}

//! `kubectl incident` on the test kit's cluster (the emulated API server,
//! or a real control plane with `KUBE_INCIDENT_BACKEND=real` /
//! `KUBE_INCIDENT_E2E=1`): the command library functions over a `Session`,
//! and the real `kubectl-incident` binary over a kubeconfig. Every test
//! works in its own namespace; tests that need an emulator-only facility
//! (a missing CRD, a stopped server) or a real server's users and RBAC skip
//! on the other back end with one line saying why.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use testkit::CreateGranted;
use testkit::{install_crds, wait_for, Backend, Cluster};

use kube_incident::api::{
    Approval, Incident, IncidentSource, IncidentSpec, MitigationAction, MitigationStep, Severity,
    TargetKind,
};
use kube_incident::cli::commands::{
    approve_patch, write_acknowledgement, write_approval, write_resolution,
};
use kube_incident::cli::identity::{server_identity, ServerIdentity, ANONYMOUS};
use kube_incident::cli::{connect, run, Cli, CliError, GlobalArgs, Session};

/// A cluster with the CRDs and a fresh namespace `cli-<prefix>-…`, or
/// `None` (after one line saying why) where the back end is unavailable.
async fn setup(prefix: &str) -> Option<(Cluster, String, Client)> {
    let cluster = Cluster::with_crds(false).await?;
    let ns = cluster.namespace(&format!("cli-{prefix}")).await;
    let client = cluster.client.clone();
    Some((cluster, ns, client))
}

/// Parse a command line like the binary does and run it over `client`.
async fn cli(client: &Client, args: &[&str]) -> Result<String, CliError> {
    let parsed =
        Cli::try_parse_from(std::iter::once("kubectl-incident").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
    let session = Session::new(client.clone(), &parsed.global);
    run(&parsed.command, &session).await
}

/// Run the real `kubectl-incident` binary with `--kubeconfig kubeconfig`.
async fn run_binary(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-incident"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("run kubectl-incident")
}

fn incidents(client: &Client, ns: &str) -> Api<Incident> {
    Api::namespaced(client.clone(), ns)
}

/// Is this the control plane of `../shared/k8s` (whose admin is `admin`
/// and which has kubeconfigs for the users `alice` and `mallory`)?
fn shared_control_plane() -> Option<PathBuf> {
    match Backend::get() {
        Backend::Real(env) => env
            .admin_kubeconfig
            .as_deref()?
            .parent()
            .map(Path::to_path_buf),
        _ => None,
    }
}

/// The kubeconfig of `user` on the `../shared/k8s` control plane
/// (`$CP_RUN/<user>.kubeconfig`), if this is that cluster and it has one.
fn user_kubeconfig(user: &str) -> Option<PathBuf> {
    let path = shared_control_plane()?.join(format!("{user}.kubeconfig"));
    path.is_file().then_some(path)
}

/// What the API server says the admin client is (`SelfSubjectReview`):
/// `None` on the emulator, which has no such API; on a real server the
/// authenticated username (`admin` on `../shared/k8s`).
async fn admin_per_server(cluster: &Cluster) -> Option<String> {
    let server = server_identity(&cluster.client, "the test cluster")
        .await
        .expect("SelfSubjectReview answered or refused");
    if cluster.is_emulator() {
        assert_eq!(server, ServerIdentity::Unavailable, "emulator: {server:?}");
        return None;
    }
    let ServerIdentity::Username(name) = server else {
        panic!("a real API server answers SelfSubjectReview, got {server:?}");
    };
    assert!(!name.is_empty() && name != ANONYMOUS, "{name:?}");
    if shared_control_plane().is_some() {
        assert_eq!(
            name, "admin",
            "the admin kubeconfig's user on ../shared/k8s"
        );
    }
    Some(name)
}

/// An Incident with a plan: `rollback` (Automatic), `more-capacity` and
/// `kill-switch` (Manual); the operator's status marks `more-capacity`
/// AwaitingApproval.
async fn create_with_plan(client: &Client, ns: &str, name: &str) -> Incident {
    let mut rollback = MitigationStep::new("rollback", MitigationAction::RolloutUndo);
    rollback.approval = Approval::Automatic;
    let mut scale = MitigationStep::new("more-capacity", MitigationAction::Scale);
    scale.replicas = Some(6);
    let mut env = MitigationStep::new("kill-switch", MitigationAction::SetEnv);
    env.env = vec![kube_incident::api::EnvVarSetting {
        name: "FEATURE_X".into(),
        value: "false".into(),
    }];
    let spec = IncidentSpec {
        title: "checkout crash-looping".into(),
        severity: Severity::SEV2,
        source: IncidentSource::Detector,
        target: None,
        runbook_ref: None,
        commander: None,
        acknowledged_by: None,
        root_cause: None,
        mitigations: vec![rollback, scale, env],
        resolution: None,
        resume_git_ops: None,
    };
    let api = incidents(client, ns);
    api.create_granted(&PostParams::default(), &Incident::new(name, spec))
        .await
        .expect("create incident");
    let status = json!({"status": {
        "phase": "Investigating",
        "severity": "SEV2",
        "openedAt": "2026-01-01T10:00:00Z",
        "mitigations": [
            {"name": "rollback", "state": "Failed", "message": "no previous revision"},
            {"name": "more-capacity", "state": "AwaitingApproval"},
            {"name": "kill-switch", "state": "Pending"},
        ],
        "timeline": [{"time": "2026-01-01T10:00:00Z", "type": "Opened", "message": "opened"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch status")
}

#[tokio::test]
async fn declare_list_describe() {
    let Some((cluster, ns, client)) = setup("declare").await else {
        return;
    };
    let ns = ns.as_str();
    let out = cli(
        &client,
        &[
            "-n",
            ns,
            "declare",
            "--severity",
            "sev2",
            "--target",
            "deploy/web",
            "--commander",
            "alice",
            "web:",
            "502s",
            "after",
            "deploy",
        ],
    )
    .await
    .unwrap();
    let name = out
        .strip_prefix("incident.kubeincident.io/")
        .and_then(|s| s.strip_suffix(" declared\n"))
        .unwrap_or_else(|| panic!("unexpected output {out:?}"))
        .to_string();
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 6,
        "{name}"
    );

    let inc = incidents(&client, ns).get(&name).await.unwrap();
    assert_eq!(inc.spec.title, "web: 502s after deploy");
    assert_eq!(inc.spec.severity, Severity::SEV2);
    assert_eq!(inc.spec.source, IncidentSource::Manual);
    assert_eq!(inc.spec.commander.as_deref(), Some("alice"));
    let target = inc.spec.target.clone().unwrap();
    assert_eq!(
        (target.kind, target.name.as_str()),
        (TargetKind::Deployment, "web")
    );
    let managers: Vec<String> = inc
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "kubectl-incident"),
        "{managers:?}"
    );

    // a second one, more severe, declared with an explicit name
    cli(
        &client,
        &[
            "-n",
            ns,
            "declare",
            "--severity",
            "SEV1",
            "--name",
            "pay-down",
            "payments failing",
        ],
    )
    .await
    .unwrap();
    let e = cli(
        &client,
        &[
            "-n",
            ns,
            "declare",
            "--severity",
            "SEV1",
            "--name",
            "pay-down",
            "again",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("incident \"pay-down\" already exists in namespace \"{ns}\"")
    );
    let e = cli(
        &client,
        &[
            "-n",
            ns,
            "declare",
            "--severity",
            "SEV1",
            "--name",
            "Bad_Name",
            "x",
        ],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CliError::InvalidName { .. }), "{e:?}");

    let table = cli(&client, &["list", "-n", ns]).await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("NAME "), "{table}");
    for col in ["SEVERITY", "PHASE", "TARGET", "ACK", "AGE", "TITLE"] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(lines[1].starts_with("pay-down "), "SEV1 first: {table}");
    assert!(lines[2].starts_with(&format!("{name} ")), "{table}");
    assert!(lines[2].contains("deployment/web"), "{table}");
    assert!(lines[2].ends_with("web: 502s after deploy"), "{table}");

    // all namespaces (on a shared real cluster, other tests' too)
    let all = cli(&client, &["list", "-A"]).await.unwrap();
    assert!(all.starts_with("NAMESPACE "), "{all}");
    let ours: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&format!("{ns} ")))
        .collect();
    assert_eq!(ours.len(), 2, "{all}");

    let json_out = cli(&client, &["list", "-n", ns, "-o", "json"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    assert_eq!(v["items"][0]["kind"], "Incident");
    assert_eq!(v["items"][0]["metadata"]["name"], "pay-down");
    assert!(v["items"][0]["metadata"].get("managedFields").is_none());
    let yaml_out = cli(&client, &["list", "-n", ns, "-o", "yaml"])
        .await
        .unwrap();
    assert!(yaml_out.contains("kind: List"), "{yaml_out}");

    let empty_ns = cluster.namespace("cli-empty").await;
    let empty = cli(&client, &["list", "-n", &empty_ns]).await.unwrap();
    assert_eq!(
        empty,
        format!("No incidents found in namespace \"{empty_ns}\".\n")
    );

    let page = cli(&client, &["describe", &name, "-n", ns]).await.unwrap();
    for want in [
        format!("Name:                {name}\n"),
        format!("Namespace:           {ns}\n"),
        "Title:               web: 502s after deploy\n".to_string(),
        "Severity:            SEV2\n".to_string(),
        "Source:              Manual\n".to_string(),
        "Target:              deployment/web\n".to_string(),
        "Commander:           alice\n".to_string(),
        "Acknowledged:        no\n".to_string(),
    ] {
        assert!(page.contains(&want), "missing {want:?} in\n{page}");
    }
    assert!(page.contains("\nOpened:              20"), "{page}");

    let e = cli(&client, &["describe", "nope", "-n", ns])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("incident \"nope\" not found in namespace \"{ns}\"")
    );
}

#[tokio::test]
async fn ack_and_resolve_are_idempotent() {
    let Some((_cluster, ns, client)) = setup("ack").await else {
        return;
    };
    let ns = ns.as_str();
    cli(
        &client,
        &["-n", ns, "declare", "-s", "SEV3", "--name", "inc-1", "slow"],
    )
    .await
    .unwrap();

    let out = cli(&client, &["-n", ns, "ack", "inc-1", "--as", "alice"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/inc-1 acknowledged by alice\n"
    );
    let after_ack = incidents(&client, ns).get("inc-1").await.unwrap();
    assert_eq!(after_ack.spec.acknowledged_by.as_deref(), Some("alice"));

    let out = cli(&client, &["-n", ns, "ack", "inc-1", "--as", "bob"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/inc-1 already acknowledged by alice; nothing changed\n"
    );
    let again = incidents(&client, ns).get("inc-1").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, after_ack.metadata.resource_version,
        "a repeated ack must not write"
    );

    let out = cli(
        &client,
        &[
            "-n",
            ns,
            "resolve",
            "inc-1",
            "--as",
            "bob",
            "--summary",
            "restarted the cache",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "incident.kubeincident.io/inc-1 resolved by bob\n");
    let resolved = incidents(&client, ns).get("inc-1").await.unwrap();
    let r = resolved.spec.resolution.clone().unwrap();
    assert_eq!(
        (r.by.as_str(), r.summary.as_str()),
        ("bob", "restarted the cache")
    );

    let out = cli(
        &client,
        &[
            "-n",
            ns,
            "resolve",
            "inc-1",
            "--as",
            "carol",
            "--summary",
            "x",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/inc-1 already resolved by bob; nothing changed\n"
    );
    let unchanged = incidents(&client, ns).get("inc-1").await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version,
        resolved.metadata.resource_version
    );

    let e = cli(&client, &["-n", ns, "ack", "nope", "--as", "alice"])
        .await
        .unwrap_err();
    assert_eq!(
        e.one_line(),
        format!("incident \"nope\" not found in namespace \"{ns}\"")
    );
}

/// Without `--as` the recorded name is the server's answer: a real API
/// server's SelfSubjectReview beats the kubeconfig user; the emulator has
/// no SelfSubjectReview, so the kubeconfig user is used, and with none at
/// all the command refuses.
#[tokio::test]
async fn identity_falls_back_to_kubeconfig_user() {
    let Some((cluster, ns, client)) = setup("identity").await else {
        return;
    };
    let ns = ns.as_str();
    cli(
        &client,
        &["-n", ns, "declare", "-s", "SEV3", "--name", "inc-2", "slow"],
    )
    .await
    .unwrap();
    let per_server = admin_per_server(&cluster).await;
    let global = GlobalArgs {
        namespace: Some(ns.into()),
        ..Default::default()
    };
    let session = Session::new(client.clone(), &global).with_kubeconfig_user(Some("dana".into()));
    let cmd = Cli::try_parse_from(["kubectl-incident", "ack", "inc-2"])
        .unwrap()
        .command;
    let out = run(&cmd, &session).await.unwrap();
    let expected = per_server.clone().unwrap_or_else(|| "dana".to_string());
    assert_eq!(
        out,
        format!("incident.kubeincident.io/inc-2 acknowledged by {expected}\n")
    );
    let inc = incidents(&client, ns).get("inc-2").await.unwrap();
    assert_eq!(inc.spec.acknowledged_by.as_deref(), Some(expected.as_str()));

    cli(
        &client,
        &["-n", ns, "declare", "-s", "SEV3", "--name", "inc-3", "slow"],
    )
    .await
    .unwrap();
    let result = cli(&client, &["-n", ns, "ack", "inc-3"]).await;
    match per_server {
        // the server names the caller even when the kubeconfig does not
        Some(admin) => assert_eq!(
            result.unwrap(),
            format!("incident.kubeincident.io/inc-3 acknowledged by {admin}\n")
        ),
        // nobody at all: a clear error when the server does not say either
        None => {
            let e = result.unwrap_err();
            assert!(matches!(e, CliError::NoIdentity), "{e:?}");
            let inc = incidents(&client, ns).get("inc-3").await.unwrap();
            assert!(inc.spec.acknowledged_by.is_none());
        }
    }
}

#[tokio::test]
async fn approve_steps() {
    let Some((_cluster, ns, client)) = setup("approve").await else {
        return;
    };
    let ns = ns.as_str();
    create_with_plan(&client, ns, "chk").await;

    let e = cli(
        &client,
        &["-n", ns, "approve", "chk", "scale-up", "--as", "alice"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" has no mitigation step \"scale-up\" (valid steps: rollback, more-capacity, kill-switch)"
    );
    let e = cli(
        &client,
        &["-n", ns, "approve", "chk", "rollback", "--as", "alice"],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CliError::NotManual { .. }), "{e:?}");

    // no STEP: the one AwaitingApproval
    let out = cli(&client, &["-n", ns, "approve", "chk", "--as", "alice"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "step \"more-capacity\" of incident.kubeincident.io/chk approved by alice\n"
    );
    let inc = incidents(&client, ns).get("chk").await.unwrap();
    let approved: Vec<Option<&str>> = inc
        .spec
        .mitigations
        .iter()
        .map(|m| m.approved_by.as_deref())
        .collect();
    assert_eq!(approved, vec![None, Some("alice"), None]);

    let out = cli(
        &client,
        &["-n", ns, "approve", "chk", "more-capacity", "--as", "bob"],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "step \"more-capacity\" of incident.kubeincident.io/chk already approved by alice; nothing changed\n"
    );
    let same = incidents(&client, ns).get("chk").await.unwrap();
    assert_eq!(
        same.metadata.resource_version,
        inc.metadata.resource_version
    );

    // a Pending step can be approved ahead of its turn, by name
    let out = cli(
        &client,
        &["-n", ns, "approve", "chk", "kill-switch", "--as", "bob"],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "step \"kill-switch\" of incident.kubeincident.io/chk approved by bob\n"
    );

    // a final step is refused
    let e = cli(
        &client,
        &["-n", ns, "approve", "chk", "rollback", "--as", "bob"],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CliError::NotManual { .. }), "{e:?}");
}

#[tokio::test]
async fn approve_patch_test_guards_against_a_moved_step() {
    let Some((_cluster, ns, client)) = setup("guard").await else {
        return;
    };
    create_with_plan(&client, &ns, "chk").await;
    let api = incidents(&client, &ns);
    let before = api.get("chk").await.unwrap();
    // position 0 holds "rollback", not "more-capacity": the server must refuse
    let patch = approve_patch(0, "more-capacity", "mallory");
    let pp = PatchParams {
        field_manager: Some("kubectl-incident".into()),
        ..Default::default()
    };
    let err = api
        .patch("chk", &pp, &Patch::<()>::Json(patch))
        .await
        .expect_err("a failed test op must fail the patch");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("unexpected error {other:?}"),
    }
    let after = api.get("chk").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert!(after
        .spec
        .mitigations
        .iter()
        .all(|m| m.approved_by.is_none()));
}

#[tokio::test]
async fn postmortem_and_evidence() {
    let Some((_cluster, ns, client)) = setup("postmortem").await else {
        return;
    };
    let ns = ns.as_str();
    create_with_plan(&client, ns, "chk").await;
    let e = cli(&client, &["-n", ns, "postmortem", "chk"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" has no post-mortem draft yet (it is written once the incident is resolved)"
    );

    incidents(&client, ns)
        .patch_status(
            "chk",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "postmortemRef": {"name": "chk-postmortem"},
                "evidenceRef": {"name": "chk-evidence"},
            }})),
        )
        .await
        .unwrap();
    let e = cli(&client, &["-n", ns, "postmortem", "chk"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the post-mortem ConfigMap \"chk-postmortem\" of incident \"chk\" does not exist"
    );

    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "chk-postmortem"},
        "data": {"postmortem.md": "# Post-mortem: checkout\n\n## Timeline\n"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let out = cli(&client, &["-n", ns, "postmortem", "chk"])
        .await
        .unwrap();
    assert_eq!(out, "# Post-mortem: checkout\n\n## Timeline\n");

    let page = cli(&client, &["-n", ns, "describe", "chk"]).await.unwrap();
    let evidence = format!(
        "Evidence:            ConfigMap chk-evidence (read it: kubectl get configmap chk-evidence -n {ns} -o yaml)\n"
    );
    assert!(page.contains(&evidence), "missing {evidence:?} in\n{page}");
    let postmortem = format!(
        "Post-mortem:         ConfigMap chk-postmortem (read it: kubectl incident postmortem chk -n {ns})\n"
    );
    assert!(
        page.contains(&postmortem),
        "missing {postmortem:?} in\n{page}"
    );
    assert!(page.contains("  more-capacity   Scale to 6"), "{page}");
    assert!(page.contains("AwaitingApproval"), "{page}");
    assert!(
        page.contains("  +0s   2026-01-01T10:00:00Z   Opened   opened\n"),
        "{page}"
    );
}

/// Emulator only: the CRDs of a shared real cluster cannot be uninstalled,
/// nor its API server stopped.
#[tokio::test]
async fn missing_crd_and_unreachable_server() {
    let Some(mut cluster) = Cluster::bare(false).await else {
        return;
    };
    if cluster
        .emulator_only(
            "missing_crd_and_unreachable_server (uninstalls the CRDs and stops the API server)",
        )
        .is_none()
    {
        return;
    }
    let client = cluster.client.clone();
    let ns = cluster.namespace("cli-nocrd").await;
    let ns = ns.as_str();
    for args in [&["list", "-n", ns][..], &["describe", "x", "-n", ns][..]] {
        let e = cli(&client, args).await.unwrap_err();
        assert!(matches!(e, CliError::CrdNotInstalled), "{args:?}: {e:?}");
        assert_eq!(
            e.to_string(),
            "the Incident CRD is not installed on this cluster (kubectl apply -f crds/)"
        );
    }
    // missing object once the CRD is there
    install_crds(&client).await;
    let e = cli(&client, &["describe", "x", "-n", ns])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("incident \"x\" not found in namespace \"{ns}\"")
    );

    // nothing listens on the port of a stopped emulator
    let dir = std::env::temp_dir().join(format!("kubectl-incident-cli-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stopped");
    let emu = cluster.emulator.take().expect("checked above");
    emu.write_kubeconfig(&path).unwrap();
    let url = emu.url();
    emu.shutdown().await;
    let global = GlobalArgs {
        kubeconfig: Some(path.clone()),
        ..Default::default()
    };
    let session = connect(&global).await.unwrap();
    let cmd = Cli::try_parse_from(["kubectl-incident", "list"])
        .unwrap()
        .command;
    let e = run(&cmd, &session).await.unwrap_err();
    let line = e.one_line();
    assert!(
        line.starts_with(&format!(
            "cannot reach the Kubernetes API server at {url}: "
        )),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The real binary over a kubeconfig: output on stdout, exit 0; errors as
/// one `error:` line on stderr, exit 1.
#[tokio::test]
async fn binary_end_to_end() {
    let Some((cluster, ns, _client)) = setup("bin").await else {
        return;
    };
    let ns = ns.as_str();
    let dir = std::env::temp_dir().join(format!("kubectl-incident-bin-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    cluster.write_kubeconfig(&kubeconfig);

    let out = run_binary(
        &kubeconfig,
        &[
            "-n",
            ns,
            "declare",
            "--severity",
            "SEV2",
            "--name",
            "bin-1",
            "from the binary",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "incident.kubeincident.io/bin-1 declared\n"
    );

    // no --as: the server's identity (real: "admin" on ../shared/k8s), else
    // the kubeconfig user (the emulator's kubeconfig names "admin")
    let out = run_binary(&kubeconfig, &["-n", ns, "ack", "bin-1"]).await;
    assert!(out.status.success(), "{out:?}");
    let expected = admin_per_server(&cluster)
        .await
        .unwrap_or_else(|| "admin".to_string());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("incident.kubeincident.io/bin-1 acknowledged by {expected}\n")
    );

    let out = run_binary(&kubeconfig, &["list", "-n", ns]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("bin-1"));

    let out = run_binary(&kubeconfig, &["describe", "nope", "-n", ns]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("error: incident \"nope\" not found in namespace \"{ns}\"\n")
    );

    let out = run_binary(&kubeconfig, &["declare", "no severity"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: the following required arguments were not provided: --severity"),
        "{stderr}"
    );

    let out = run_binary(&kubeconfig, &["--help"]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));

    std::fs::remove_dir_all(&dir).ok();
}

/// A write based on a stale read is refused by the server and reported as a
/// conflict; nothing is overwritten.
#[tokio::test]
async fn stale_writes_are_conflicts() {
    let Some((_cluster, ns, client)) = setup("stale").await else {
        return;
    };
    let ns = ns.as_str();
    create_with_plan(&client, ns, "chk").await;
    let global = GlobalArgs {
        namespace: Some(ns.into()),
        ..Default::default()
    };
    let session = Session::new(client.clone(), &global);
    let api = incidents(&client, ns);
    let stale = api.get("chk").await.unwrap();

    // someone acknowledges (and thereby changes the resourceVersion) first
    cli(&client, &["-n", ns, "ack", "chk", "--as", "alice"])
        .await
        .unwrap();
    let e = write_acknowledgement(&session, &stale, "bob")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" changed while acknowledging it; nothing was written, run the command again"
    );
    let e = write_resolution(&session, &stale, "bob", "x")
        .await
        .unwrap_err();
    assert!(matches!(e, CliError::Conflict { .. }), "{e:?}");
    let now = api.get("chk").await.unwrap();
    assert_eq!(now.spec.acknowledged_by.as_deref(), Some("alice"));
    assert!(now.spec.resolution.is_none());

    // the plan is reordered after "more-capacity" was read at position 1
    let reordered = json!({"spec": {"mitigations": [
        now.spec.mitigations[1].clone(),
        now.spec.mitigations[0].clone(),
        now.spec.mitigations[2].clone(),
    ]}});
    api.patch("chk", &PatchParams::default(), &Patch::Merge(&reordered))
        .await
        .unwrap();
    let e = write_approval(&session, "chk", 1, "more-capacity", "bob")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" changed while approving step \"more-capacity\"; nothing was written, run the command again"
    );
    let after = api.get("chk").await.unwrap();
    assert!(after
        .spec
        .mitigations
        .iter()
        .all(|m| m.approved_by.is_none()));
    // at its new position the same write goes through
    write_approval(&session, "chk", 0, "more-capacity", "bob")
        .await
        .unwrap();
    let after = api.get("chk").await.unwrap();
    assert_eq!(after.spec.mitigations[0].name, "more-capacity");
    assert_eq!(
        after.spec.mitigations[0].approved_by.as_deref(),
        Some("bob")
    );
}

/// `list --open` hides Resolved incidents; an incident the operator resolved
/// by itself is "already resolved" for `resolve`, and `approve` refuses it.
#[tokio::test]
async fn resolved_incidents() {
    let Some((_cluster, ns, client)) = setup("resolved").await else {
        return;
    };
    let ns = ns.as_str();
    create_with_plan(&client, ns, "chk").await;
    cli(
        &client,
        &[
            "-n", ns, "declare", "-s", "SEV4", "--name", "open-one", "minor",
        ],
    )
    .await
    .unwrap();
    incidents(&client, ns)
        .patch_status(
            "chk",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Resolved",
                "resolvedAt": "2026-01-01T11:00:00Z",
            }})),
        )
        .await
        .unwrap();
    let all = cli(&client, &["-n", ns, "list"]).await.unwrap();
    assert!(all.contains("\nchk "), "{all}");
    let open = cli(&client, &["-n", ns, "list", "--open"]).await.unwrap();
    assert!(!open.contains("chk"), "{open}");
    assert!(open.contains("\nopen-one "), "{open}");

    let out = cli(
        &client,
        &["-n", ns, "resolve", "chk", "--summary", "x", "--as", "a"],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/chk already resolved at 2026-01-01T11:00:00Z; nothing changed\n"
    );
    let e = cli(&client, &["-n", ns, "approve", "chk", "--as", "a"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" is resolved: its steps will not run any more"
    );
    let inc = incidents(&client, ns).get("chk").await.unwrap();
    assert!(inc.spec.resolution.is_none());
    assert!(inc.spec.mitigations.iter().all(|m| m.approved_by.is_none()));
}

/// Grant `user` exactly `verbs` on Incidents in `ns` (a Role and a
/// RoleBinding named after the user; applied again, it replaces the verbs).
async fn grant_incidents(client: &Client, ns: &str, user: &str, verbs: &[&str]) {
    let name = format!("incidents-{user}");
    let pp = PatchParams::apply("kube-incident-tests").force();
    let role: Role = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": ns},
        "rules": [{"apiGroups": ["kubeincident.io"], "resources": ["incidents"], "verbs": verbs}],
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .patch(&name, &pp, &Patch::Apply(&role))
        .await
        .expect("Role applied");
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .patch(&name, &pp, &Patch::Apply(&binding))
        .await
        .expect("RoleBinding applied");
}

/// Real API server only (the emulator has no users, authentication or
/// RBAC): the name `kubectl incident` records is the one the server
/// authenticated, RBAC decides what each user may do, and a refusal is one
/// `error:` line naming the missing permission.
#[tokio::test]
async fn real_users_and_rbac() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    if cluster.is_emulator() {
        eprintln!(
            "skipped real_users_and_rbac: needs a real API server's users and RBAC (the emulator has neither)"
        );
        return;
    }
    let (Some(alice), Some(mallory)) = (user_kubeconfig("alice"), user_kubeconfig("mallory"))
    else {
        eprintln!(
            "skipped real_users_and_rbac: needs the alice and mallory kubeconfigs of ../shared/k8s"
        );
        return;
    };
    let ns = cluster.namespace("cli-rbac").await;
    let ns = ns.as_str();
    let client = cluster.client.clone();
    cli(
        &client,
        &["-n", ns, "declare", "-s", "SEV2", "--name", "who-1", "down"],
    )
    .await
    .unwrap();

    // SelfSubjectReview answers every authenticated user, RBAC or not
    for (user, kubeconfig) in [("alice", &alice), ("mallory", &mallory)] {
        let global = GlobalArgs {
            kubeconfig: Some(kubeconfig.clone()),
            ..Default::default()
        };
        let session = connect(&global).await.unwrap();
        assert_eq!(session.kubeconfig_user.as_deref(), Some(user));
        let who = server_identity(&session.client, &session.server_url)
            .await
            .unwrap();
        assert_eq!(who, ServerIdentity::Username(user.into()));
    }

    let denied = |user: &str, verb: &str| {
        format!(
            "User \"{user}\" cannot {verb} resource \"incidents\" in API group \"kubeincident.io\" in the namespace \"{ns}\""
        )
    };
    let one_error_line = |out: &Output| -> String {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: forbidden: "), "{stderr}");
        stderr
    };

    // mallory has no RBAC at all: each command names what she lacks
    for (args, verb) in [
        (&["ack", "who-1"][..], "get"),
        (&["list"][..], "list"),
        (
            &["declare", "-s", "SEV1", "--name", "evil", "x"][..],
            "create",
        ),
    ] {
        let mut line = vec!["-n", ns];
        line.extend_from_slice(args);
        let stderr = one_error_line(&run_binary(&mallory, &line).await);
        assert!(stderr.contains(&denied("mallory", verb)), "{stderr}");
    }

    // alice may read Incidents in the namespace but not change them
    grant_incidents(&client, ns, "alice", &["get", "list"]).await;
    let out = wait_for(Duration::from_secs(15), || async {
        let out = run_binary(&alice, &["-n", ns, "ack", "who-1"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        (!stderr.contains(&denied("alice", "get"))).then_some(out)
    })
    .await
    .expect("alice's read grant takes effect");
    let stderr = one_error_line(&out);
    assert!(stderr.contains(&denied("alice", "patch")), "{stderr}");
    let inc = incidents(&client, ns).get("who-1").await.unwrap();
    assert!(inc.spec.acknowledged_by.is_none(), "nothing was written");

    // with patch, her ack goes through under the name the server knows her by
    grant_incidents(&client, ns, "alice", &["get", "list", "patch"]).await;
    let out = wait_for(Duration::from_secs(15), || async {
        let out = run_binary(&alice, &["-n", ns, "ack", "who-1"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        (!stderr.contains(&denied("alice", "patch"))).then_some(out)
    })
    .await
    .expect("alice's patch grant takes effect");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "incident.kubeincident.io/who-1 acknowledged by alice\n"
    );
    let inc = incidents(&client, ns).get("who-1").await.unwrap();
    assert_eq!(inc.spec.acknowledged_by.as_deref(), Some("alice"));

    // her grant is hers and only in this namespace: mallory is still refused
    let stderr = one_error_line(&run_binary(&mallory, &["-n", ns, "ack", "who-1"]).await);
    assert!(stderr.contains(&denied("mallory", "get")), "{stderr}");
}

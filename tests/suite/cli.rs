//! `kubectl incident` against the emulated API server: the command library
//! functions over a `Session`, and the real `kubectl-incident` binary over a
//! kubeconfig.

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::json;

use kube_incident::api::{
    Approval, Incident, IncidentSource, IncidentSpec, MitigationAction, MitigationStep, Runbook,
    Severity, TargetKind,
};
use kube_incident::cli::commands::{
    approve_patch, write_acknowledgement, write_approval, write_resolution,
};
use kube_incident::cli::identity::{server_identity, ServerIdentity};
use kube_incident::cli::{run, Cli, CliError, Session};
use emulator::{Emulator, EmulatorConfig};

const NS: &str = "shop";

async fn start() -> Emulator {
    Emulator::start(EmulatorConfig {
        simulate: false,
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Incident::crd(), Runbook::crd()] {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
    }
    for name in ["incidents.kubeincident.io", "runbooks.kubeincident.io"] {
        let mut established = false;
        for _ in 0..100 {
            let crd = crds.get(name).await.expect("get CRD");
            established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(established, "CRD {name} never became Established");
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

async fn setup() -> (Emulator, Client) {
    let emu = start().await;
    let client = emu.client();
    install_crds(&client).await;
    create_namespace(&client, NS).await;
    (emu, client)
}

/// Parse a command line like the binary does and run it over `client`.
async fn cli(client: &Client, args: &[&str]) -> Result<String, CliError> {
    let parsed =
        Cli::try_parse_from(std::iter::once("kubectl-incident").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
    let session = Session::new(client.clone(), &parsed.global);
    run(&parsed.command, &session).await
}

fn incidents(client: &Client) -> Api<Incident> {
    Api::namespaced(client.clone(), NS)
}

/// An Incident with a plan: `rollback` (Automatic), `more-capacity` and
/// `kill-switch` (Manual); the operator's status marks `more-capacity`
/// AwaitingApproval.
async fn create_with_plan(client: &Client, name: &str) -> Incident {
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
    };
    let api = incidents(client);
    api.create(&PostParams::default(), &Incident::new(name, spec))
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
    let (_emu, client) = setup().await;
    let out = cli(
        &client,
        &[
            "-n",
            NS,
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

    let inc = incidents(&client).get(&name).await.unwrap();
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
            NS,
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
            NS,
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
        "incident \"pay-down\" already exists in namespace \"shop\""
    );
    let e = cli(
        &client,
        &[
            "-n",
            NS,
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

    let table = cli(&client, &["list", "-n", NS]).await.unwrap();
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

    let all = cli(&client, &["list", "-A"]).await.unwrap();
    assert!(all.starts_with("NAMESPACE "), "{all}");
    assert!(all.contains("\nshop "), "{all}");

    let json_out = cli(&client, &["list", "-n", NS, "-o", "json"])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    assert_eq!(v["items"][0]["kind"], "Incident");
    assert_eq!(v["items"][0]["metadata"]["name"], "pay-down");
    assert!(v["items"][0]["metadata"].get("managedFields").is_none());
    let yaml_out = cli(&client, &["list", "-n", NS, "-o", "yaml"])
        .await
        .unwrap();
    assert!(yaml_out.contains("kind: List"), "{yaml_out}");

    let empty = cli(&client, &["list", "-n", "default"]).await.unwrap();
    assert_eq!(empty, "No incidents found in namespace \"default\".\n");

    let page = cli(&client, &["describe", &name, "-n", NS]).await.unwrap();
    for want in [
        format!("Name:                {name}\n"),
        "Namespace:           shop\n".to_string(),
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
}

#[tokio::test]
async fn ack_and_resolve_are_idempotent() {
    let (_emu, client) = setup().await;
    cli(
        &client,
        &["-n", NS, "declare", "-s", "SEV3", "--name", "inc-1", "slow"],
    )
    .await
    .unwrap();

    let out = cli(&client, &["-n", NS, "ack", "inc-1", "--as", "alice"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/inc-1 acknowledged by alice\n"
    );
    let after_ack = incidents(&client).get("inc-1").await.unwrap();
    assert_eq!(after_ack.spec.acknowledged_by.as_deref(), Some("alice"));

    let out = cli(&client, &["-n", NS, "ack", "inc-1", "--as", "bob"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/inc-1 already acknowledged by alice; nothing changed\n"
    );
    let again = incidents(&client).get("inc-1").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, after_ack.metadata.resource_version,
        "a repeated ack must not write"
    );

    let out = cli(
        &client,
        &[
            "-n",
            NS,
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
    let resolved = incidents(&client).get("inc-1").await.unwrap();
    let r = resolved.spec.resolution.clone().unwrap();
    assert_eq!(
        (r.by.as_str(), r.summary.as_str()),
        ("bob", "restarted the cache")
    );

    let out = cli(
        &client,
        &[
            "-n",
            NS,
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
    let unchanged = incidents(&client).get("inc-1").await.unwrap();
    assert_eq!(
        unchanged.metadata.resource_version,
        resolved.metadata.resource_version
    );

    let e = cli(&client, &["-n", NS, "ack", "nope", "--as", "alice"])
        .await
        .unwrap_err();
    assert_eq!(
        e.one_line(),
        "incident \"nope\" not found in namespace \"shop\""
    );
}

#[tokio::test]
async fn identity_falls_back_to_kubeconfig_user() {
    let (_emu, client) = setup().await;
    cli(
        &client,
        &["-n", NS, "declare", "-s", "SEV3", "--name", "inc-2", "slow"],
    )
    .await
    .unwrap();
    let server = server_identity(&client, "emulator").await.unwrap();
    let global = kube_incident::cli::GlobalArgs {
        namespace: Some(NS.into()),
        ..Default::default()
    };
    let session = Session::new(client.clone(), &global).with_kubeconfig_user(Some("dana".into()));
    let cmd = Cli::try_parse_from(["kubectl-incident", "ack", "inc-2"])
        .unwrap()
        .command;
    let out = run(&cmd, &session).await.unwrap();
    let expected = match &server {
        ServerIdentity::Username(u) if !u.is_empty() && u != "system:anonymous" => u.clone(),
        _ => "dana".to_string(),
    };
    assert_eq!(
        out,
        format!("incident.kubeincident.io/inc-2 acknowledged by {expected}\n")
    );

    // nobody at all: a clear error when the server does not say either
    if !matches!(server, ServerIdentity::Username(ref u) if !u.is_empty() && u != "system:anonymous")
    {
        cli(
            &client,
            &["-n", NS, "declare", "-s", "SEV3", "--name", "inc-3", "slow"],
        )
        .await
        .unwrap();
        let e = cli(&client, &["-n", NS, "ack", "inc-3"]).await.unwrap_err();
        assert!(matches!(e, CliError::NoIdentity), "{e:?}");
    }
}

#[tokio::test]
async fn approve_steps() {
    let (_emu, client) = setup().await;
    create_with_plan(&client, "chk").await;

    let e = cli(
        &client,
        &["-n", NS, "approve", "chk", "scale-up", "--as", "alice"],
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" has no mitigation step \"scale-up\" (valid steps: rollback, more-capacity, kill-switch)"
    );
    let e = cli(
        &client,
        &["-n", NS, "approve", "chk", "rollback", "--as", "alice"],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CliError::NotManual { .. }), "{e:?}");

    // no STEP: the one AwaitingApproval
    let out = cli(&client, &["-n", NS, "approve", "chk", "--as", "alice"])
        .await
        .unwrap();
    assert_eq!(
        out,
        "step \"more-capacity\" of incident.kubeincident.io/chk approved by alice\n"
    );
    let inc = incidents(&client).get("chk").await.unwrap();
    let approved: Vec<Option<&str>> = inc
        .spec
        .mitigations
        .iter()
        .map(|m| m.approved_by.as_deref())
        .collect();
    assert_eq!(approved, vec![None, Some("alice"), None]);

    let out = cli(
        &client,
        &["-n", NS, "approve", "chk", "more-capacity", "--as", "bob"],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "step \"more-capacity\" of incident.kubeincident.io/chk already approved by alice; nothing changed\n"
    );
    let same = incidents(&client).get("chk").await.unwrap();
    assert_eq!(
        same.metadata.resource_version,
        inc.metadata.resource_version
    );

    // a Pending step can be approved ahead of its turn, by name
    let out = cli(
        &client,
        &["-n", NS, "approve", "chk", "kill-switch", "--as", "bob"],
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
        &["-n", NS, "approve", "chk", "rollback", "--as", "bob"],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CliError::NotManual { .. }), "{e:?}");
}

#[tokio::test]
async fn approve_patch_test_guards_against_a_moved_step() {
    let (_emu, client) = setup().await;
    create_with_plan(&client, "chk").await;
    let api = incidents(&client);
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
    let (_emu, client) = setup().await;
    create_with_plan(&client, "chk").await;
    let e = cli(&client, &["-n", NS, "postmortem", "chk"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" has no post-mortem draft yet (it is written once the incident is resolved)"
    );

    incidents(&client)
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
    let e = cli(&client, &["-n", NS, "postmortem", "chk"])
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
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let out = cli(&client, &["-n", NS, "postmortem", "chk"])
        .await
        .unwrap();
    assert_eq!(out, "# Post-mortem: checkout\n\n## Timeline\n");

    let page = cli(&client, &["-n", NS, "describe", "chk"]).await.unwrap();
    assert!(
        page.contains("Evidence:            ConfigMap chk-evidence (read it: kubectl get configmap chk-evidence -n shop -o yaml)\n"),
        "{page}"
    );
    assert!(
        page.contains("Post-mortem:         ConfigMap chk-postmortem (read it: kubectl incident postmortem chk -n shop)\n"),
        "{page}"
    );
    assert!(page.contains("  more-capacity   Scale to 6"), "{page}");
    assert!(page.contains("AwaitingApproval"), "{page}");
    assert!(
        page.contains("  +0s   2026-01-01T10:00:00Z   Opened   opened\n"),
        "{page}"
    );
}

#[tokio::test]
async fn missing_crd_and_unreachable_server() {
    let emu = start().await;
    let client = emu.client();
    for args in [
        &["list", "-n", "default"][..],
        &["describe", "x", "-n", "default"][..],
    ] {
        let e = cli(&client, args).await.unwrap_err();
        assert!(matches!(e, CliError::CrdNotInstalled), "{args:?}: {e:?}");
        assert_eq!(
            e.to_string(),
            "the Incident CRD is not installed on this cluster (kubectl apply -f crds/)"
        );
    }
    // missing object once the CRD is there
    install_crds(&client).await;
    let e = cli(&client, &["describe", "x", "-n", "default"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"x\" not found in namespace \"default\""
    );

    // nothing listens on the port of a stopped emulator
    let dir = std::env::temp_dir().join(format!("kubectl-incident-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stopped");
    emu.write_kubeconfig(&path).unwrap();
    let url = emu.url();
    emu.shutdown().await;
    let global = kube_incident::cli::GlobalArgs {
        kubeconfig: Some(path.clone()),
        ..Default::default()
    };
    let session = kube_incident::cli::connect(&global).await.unwrap();
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
    let (emu, client) = setup().await;
    let dir = std::env::temp_dir().join(format!("kubectl-incident-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let bin = env!("CARGO_BIN_EXE_kubectl-incident");
    let run_bin = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::process::Command::new(bin)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .output()
                .await
                .expect("run kubectl-incident")
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = run_bin(args(&[
        "-n",
        NS,
        "declare",
        "--severity",
        "SEV2",
        "--name",
        "bin-1",
        "from the binary",
    ]))
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "incident.kubeincident.io/bin-1 declared\n"
    );

    // no --as: the server's identity, else the kubeconfig user ("admin")
    let out = run_bin(args(&["-n", NS, "ack", "bin-1"])).await;
    assert!(out.status.success(), "{out:?}");
    let expected = match server_identity(&client, "emulator").await.unwrap() {
        ServerIdentity::Username(u) if !u.is_empty() && u != "system:anonymous" => u,
        _ => "admin".to_string(),
    };
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("incident.kubeincident.io/bin-1 acknowledged by {expected}\n")
    );

    let out = run_bin(args(&["list", "-n", NS])).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("bin-1"));

    let out = run_bin(args(&["describe", "nope", "-n", NS])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: incident \"nope\" not found in namespace \"shop\"\n"
    );

    let out = run_bin(args(&["declare", "no severity"])).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: the following required arguments were not provided: --severity"),
        "{stderr}"
    );

    let out = run_bin(args(&["--help"])).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));

    std::fs::remove_dir_all(&dir).ok();
}

/// A write based on a stale read is refused by the server and reported as a
/// conflict; nothing is overwritten.
#[tokio::test]
async fn stale_writes_are_conflicts() {
    let (_emu, client) = setup().await;
    create_with_plan(&client, "chk").await;
    let global = kube_incident::cli::GlobalArgs {
        namespace: Some(NS.into()),
        ..Default::default()
    };
    let session = Session::new(client.clone(), &global);
    let api = incidents(&client);
    let stale = api.get("chk").await.unwrap();

    // someone acknowledges (and thereby changes the resourceVersion) first
    cli(&client, &["-n", NS, "ack", "chk", "--as", "alice"])
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
    let (_emu, client) = setup().await;
    create_with_plan(&client, "chk").await;
    cli(
        &client,
        &[
            "-n", NS, "declare", "-s", "SEV4", "--name", "open-one", "minor",
        ],
    )
    .await
    .unwrap();
    incidents(&client)
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
    let all = cli(&client, &["-n", NS, "list"]).await.unwrap();
    assert!(all.contains("\nchk "), "{all}");
    let open = cli(&client, &["-n", NS, "list", "--open"]).await.unwrap();
    assert!(!open.contains("chk"), "{open}");
    assert!(open.contains("\nopen-one "), "{open}");

    let out = cli(
        &client,
        &["-n", NS, "resolve", "chk", "--summary", "x", "--as", "a"],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "incident.kubeincident.io/chk already resolved at 2026-01-01T11:00:00Z; nothing changed\n"
    );
    let e = cli(&client, &["-n", NS, "approve", "chk", "--as", "a"])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"chk\" is resolved: its steps will not run any more"
    );
    let inc = incidents(&client).get("chk").await.unwrap();
    assert!(inc.spec.resolution.is_none());
    assert!(inc.spec.mitigations.iter().all(|m| m.approved_by.is_none()));
}

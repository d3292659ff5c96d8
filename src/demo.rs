//! `kube-incident demo`: the whole loop on the embedded emulated cluster.
//!
//! Starts the emulated API server with the workload simulation, installs
//! the CRDs, a sample app and Runbook, runs the operator in-process, does a
//! healthy rollout and then a bad one, and prints live what the operator
//! sees and does, until the incident is resolved.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use serde_json::json;

use crate::api::{Incident, Phase, Runbook};
use crate::metrics::Metrics;
use crate::operator::{self, OperatorHandle, RunArgs};
use emulator::{Emulator, EmulatorConfig};

/// Flags of `kube-incident demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Write a kubeconfig for the emulated cluster here, so kubectl can watch along.
    #[arg(long)]
    pub kubeconfig_out: Option<std::path::PathBuf>,
    /// Keep the emulated cluster and the operator running after the scenario (Ctrl-C to stop).
    #[arg(long)]
    pub hold: bool,
    /// Speed of the simulated workloads (20 = twenty times faster than real time).
    #[arg(long, default_value_t = 20.0)]
    pub time_scale: f64,
    /// Give up when the scenario has not completed in this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the emulated cluster: {0}")]
    Emulator(#[from] emulator::EmulatorError),
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write the kubeconfig: {0}")]
    Kubeconfig(#[source] std::io::Error),
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout { what: String, secs: u64 },
    #[error("the operator stopped: {0}")]
    Operator(String),
}

const NS: &str = "shop";
/// The namespace of the simulated Flux Kustomization that applies checkout:
/// the team's own (a namespace's Runbook pauses only owners in its
/// namespace; docs/gitops.md).
const FLUX_NS: &str = NS;
/// Flux's field manager.
const FLUX_MANAGER: &str = "kustomize-controller";

fn kube_err(what: &'static str) -> impl FnOnce(kube::Error) -> DemoError {
    move |source| DemoError::Kube { what, source }
}

#[derive(Clone)]
struct Printer {
    start: Timestamp,
}

impl Printer {
    fn line(&self, who: &str, msg: impl AsRef<str>) {
        let secs = Timestamp::now().duration_since(self.start).as_secs_f64();
        println!("[{secs:6.1}s] {who:<10} {}", msg.as_ref());
    }
}

/// Run the demo; exit code 0 when the scenario completed as expected.
pub async fn main(args: DemoArgs) -> ExitCode {
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait<T, F, Fut>(what: &str, secs: u64, mut f: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Timeout {
                what: what.to_string(),
                secs,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn app(image: &str, behavior: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": NS, "labels": {
            "app": "checkout",
            // What Flux's kustomize-controller writes on what it applies.
            "kustomize.toolkit.fluxcd.io/name": "apps",
            "kustomize.toolkit.fluxcd.io/namespace": FLUX_NS
        }},
        "spec": {
            "replicas": 4,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {"labels": {"app": "checkout"},
                             "annotations": {"sim.kubeincident.io/behavior": behavior}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

async fn install(client: &Client, p: &Printer) -> Result<(), DemoError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Incident::crd(), Runbook::crd()] {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("kube-incident-demo").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(kube_err("installing the CRDs"))?;
        p.line("cluster", format!("installed CRD {name}"));
    }
    wait("the CRDs to be served", 20, || async {
        operator::check_crds(client).await.ok()
    })
    .await?;
    for n in [NS] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": n}}))
            .map_err(|e| DemoError::Operator(e.to_string()))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(kube_err("creating the namespaces"))?;
    }
    install_flux(client, p).await?;
    let rb: Runbook = serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "checkout", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "checkout"}},
            "triggers": [
                {"type": "CrashLoopBackOff", "minRestarts": 2},
                {"type": "Unavailable", "minUnavailableRatio": "0.5", "for": "30s"}
            ],
            "severity": {"default": "SEV3", "rules": [
                {"minUnavailableRatio": "1.0", "severity": "SEV1"},
                {"minUnavailableRatio": "0.5", "severity": "SEV2"}
            ]},
            "mitigations": [
                {"name": "rollback", "action": "RolloutUndo", "approval": "Manual",
                 "when": {"rolloutWithin": "30m"}}
            ],
            "monitoring": {"window": "15s"},
            "gitOps": {"policy": "Suspend", "restore": "OnResolve"},
            "limits": {"cooldown": "5m", "maxActionsPerHour": 3},
            "reopenWindow": "1h"
        }
    }))
    .map_err(|e| DemoError::Operator(e.to_string()))?;
    Api::<Runbook>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &rb)
        .await
        .map_err(kube_err("creating the Runbook"))?;
    p.line("cluster", "created Runbook shop/checkout (CrashLoopBackOff after 2 restarts; SEV1 when all replicas are down; mitigation: RolloutUndo after approval; gitOps.policy Suspend)");
    Ok(())
}

/// The Kustomization CRD (reduced to what the demo uses) and the
/// Kustomization `shop/apps` that lists checkout in its inventory.
async fn install_flux(client: &Client, p: &Printer) -> Result<(), DemoError> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
        "spec": {
            "group": "kustomize.toolkit.fluxcd.io", "scope": "Namespaced",
            "names": {"kind": "Kustomization", "listKind": "KustomizationList",
                      "plural": "kustomizations", "singular": "kustomization", "shortNames": ["ks"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}}]
        }
    }))
    .map_err(|e| DemoError::Operator(e.to_string()))?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            &crd.name_any(),
            &PatchParams::apply("kube-incident-demo").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(kube_err("installing the Flux Kustomization CRD"))?;
    let api = flux_api(client);
    wait("the Kustomization CRD to be served", 20, || async {
        api.list(&ListParams::default()).await.ok()
    })
    .await?;
    let ks: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": FLUX_NS},
        "spec": {"interval": "1m", "path": "./shop", "prune": true,
                 "sourceRef": {"kind": "GitRepository", "name": "fleet"}}
    }))
    .map_err(|e| DemoError::Operator(e.to_string()))?;
    api.create(&PostParams::default(), &ks)
        .await
        .map_err(kube_err("creating the Kustomization"))?;
    api.patch_status(
        "apps",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"inventory": {"entries": [
            {"id": format!("{NS}_checkout_apps_Deployment"), "v": "v1"}
        ]}}})),
    )
    .await
    .map_err(kube_err("writing the Kustomization's inventory"))?;
    p.line(
        "cluster",
        "Flux (simulated): Kustomization shop/apps applies shop/checkout from Git and puts back any drift",
    );
    Ok(())
}

fn flux_api(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization");
    Api::namespaced_with(
        client.clone(),
        FLUX_NS,
        &ApiResource::from_gvk_with_plural(&gvk, "kustomizations"),
    )
}

/// What Git says checkout runs: `(image, behavior)`.
type Git = Arc<Mutex<(String, String)>>;

fn image_of(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

/// A simulated Flux kustomize-controller: while the Kustomization is not
/// suspended, it applies what Git says whenever checkout differs from it
/// (server-side apply, forced, as `kustomize-controller`), every 300 ms.
async fn flux(client: Client, git: Git, p: Printer) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let ks = flux_api(&client);
    let mut said_suspended = false;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let suspended = ks.get("apps").await.ok().is_some_and(|k| {
            k.data.pointer("/spec/suspend") == Some(&serde_json::Value::Bool(true))
        });
        if suspended {
            if !said_suspended {
                p.line(
                    "flux",
                    "Kustomization shop/apps is suspended: not applying Git",
                );
                said_suspended = true;
            }
            continue;
        }
        if said_suspended {
            p.line("flux", "Kustomization shop/apps resumed");
            said_suspended = false;
        }
        let (image, behavior) = git.lock().map(|g| g.clone()).unwrap_or_default();
        let live = deployments.get("checkout").await.ok();
        if live.as_ref().and_then(image_of).as_deref() == Some(image.as_str()) {
            continue;
        }
        let body = app(&image, &behavior);
        if deployments
            .patch(
                "checkout",
                &PatchParams::apply(FLUX_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .is_ok()
            && live.is_some()
        {
            p.line("flux", format!("applied Git: checkout -> {image}"));
        }
    }
}

async fn rollout(
    client: &Client,
    p: &Printer,
    git: &Git,
    image: &str,
    behavior: &str,
    secs: u64,
) -> Result<(), DemoError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    if let Ok(mut g) = git.lock() {
        *g = (image.to_string(), behavior.to_string());
    }
    p.line(
        "you",
        format!("git push: checkout -> {image} (Flux applies it)"),
    );
    if behavior == "healthy" {
        wait("checkout to become available", secs, || async {
            let d = api.get("checkout").await.ok()?;
            let s = d.status?;
            (s.available_replicas == Some(4)
                && s.updated_replicas == Some(4)
                && s.replicas == Some(4))
            .then_some(())
        })
        .await?;
        p.line(
            "cluster",
            format!("checkout rolled out: 4/4 available ({image})"),
        );
    }
    Ok(())
}

/// The end of the demo: wait for the post-mortem draft the operator writes
/// on Resolved and print it (what `kubectl incident postmortem` shows).
async fn print_postmortem(
    client: &kube::Client,
    incidents: &kube::Api<crate::api::Incident>,
    name: &str,
) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let inc = incidents
            .get(name)
            .await
            .map_err(kube_err("reading the incident"))?;
        if let Some(r) = inc.status.as_ref().and_then(|s| s.postmortem_ref.as_ref()) {
            let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(client.clone(), NS);
            let cm = cms
                .get(&r.name)
                .await
                .map_err(kube_err("reading the post-mortem ConfigMap"))?;
            if let Some(md) = cm
                .data
                .as_ref()
                .and_then(|d| d.get(crate::core::postmortem::POSTMORTEM_KEY))
            {
                println!(
                    "Post-mortem draft (ConfigMap {NS}/{}; kubectl incident postmortem {name} -n {NS}):",
                    r.name
                );
                println!();
                println!("{md}");
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            println!("(the post-mortem draft was not written within 20s; see the operator's Events on the incident)");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let p = Printer {
        start: Timestamp::now(),
    };
    println!("kube-incident demo: the incident loop on an embedded emulated cluster\n");
    let emu = Emulator::start(EmulatorConfig {
        simulate: true,
        time_scale: args.time_scale,
        ..Default::default()
    })
    .await?;
    p.line(
        "cluster",
        format!(
            "emulated API server at {} (workloads {}x real time)",
            emu.url(),
            args.time_scale
        ),
    );
    if let Some(path) = &args.kubeconfig_out {
        emu.write_kubeconfig(path).map_err(DemoError::Kubeconfig)?;
        p.line(
            "cluster",
            format!(
                "kubeconfig written: KUBECONFIG={} kubectl get inc -n {NS} -w",
                path.display()
            ),
        );
    }
    let client = emu.client();
    install(&client, &p).await?;

    // The operator, in-process, as `kube-incident run --namespaces shop` would run.
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunArgs,
    }
    // The emulated API server has no admission policies, so no approval
    // can be verified: the demo accepts yours unverified and says so (the
    // Incident's ApprovalsVerified condition; docs/security.md).
    let run_args = Wrapper::parse_from([
        "demo",
        "--namespaces",
        NS,
        "--metrics-addr",
        "127.0.0.1:0",
        "--accept-unverified-approvals",
        "--gitops",
    ])
    .args;
    let handle = OperatorHandle {
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(AtomicBool::new(false)),
        metrics_addr: Arc::new(Mutex::new(None)),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let op_client = client.clone();
    let op_handle = handle.clone();
    let operator = tokio::spawn(async move {
        operator::run(
            op_client,
            run_args,
            operator::system_clock(),
            async {
                let _ = stop_rx.await;
            },
            Some(op_handle),
        )
        .await
    });
    let ready = handle.ready.clone();
    wait("the operator to become ready", 30, || async {
        ready
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await?;
    p.line(
        "operator",
        "kube-incident is running (watching namespace shop)",
    );

    let t = args.timeout_secs;
    let git: Git = Arc::new(Mutex::new(Default::default()));
    let flux = tokio::spawn(flux(client.clone(), git.clone(), p.clone()));
    rollout(
        &client,
        &p,
        &git,
        "registry.example/checkout:v1",
        "healthy",
        t,
    )
    .await?;
    rollout(
        &client,
        &p,
        &git,
        "registry.example/checkout:v2",
        "crashloop",
        t,
    )
    .await?;
    let mut git_fixed = false;

    // Watch the operator work.
    let incidents: Api<Incident> = Api::namespaced(client.clone(), NS);
    let mut printed: HashSet<String> = HashSet::new();
    let mut approved = false;
    let mut acked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(t);
    let outcome: Result<String, DemoError> = 'watch: loop {
        if tokio::time::Instant::now() > deadline {
            break 'watch Err(DemoError::Timeout {
                what: "the incident to be detected and resolved".into(),
                secs: t,
            });
        }
        let list = incidents
            .list(&ListParams::default())
            .await
            .map_err(kube_err("listing incidents"))?;
        for inc in &list.items {
            let name = inc.name_any();
            let Some(s) = &inc.status else { continue };
            for e in &s.timeline {
                let key = format!("{name}|{}|{:?}|{}", e.time.0, e.type_, e.message);
                if printed.insert(key) {
                    p.line("operator", format!("{name}: [{:?}] {}", e.type_, e.message));
                }
            }
            if s.opened_at.is_some() && !acked {
                acked = true;
                // A person takes a moment to read the page.
                tokio::time::sleep(Duration::from_secs(2)).await;
                incidents
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"acknowledgedBy": "you"}})),
                    )
                    .await
                    .map_err(kube_err("acknowledging"))?;
                p.line("you", format!("kubectl incident ack {name}"));
            }
            let awaiting = s
                .mitigations
                .iter()
                .position(|m| m.state == crate::api::StepState::AwaitingApproval);
            if let (true, false, Some(index)) = (acked, approved, awaiting) {
                approved = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
                // The same JSON patch `kubectl incident approve` sends.
                let step = s.mitigations[index].name.clone();
                let patch = crate::cli::commands::approve_patch(index, &step, "you");
                incidents
                    .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
                    .await
                    .map_err(kube_err("approving the rollback"))?;
                p.line("you", format!("kubectl incident approve {name} {step}"));
            }
            // Once the operator paused Flux, you make Git match what runs
            // (the way back the Incident asks for), so that Flux, given
            // back on resolve, applies the good revision.
            let paused = crate::core::conditions::is_true(
                &s.conditions,
                crate::core::lifecycle::condition::GITOPS_SUSPENDED,
            );
            if paused && !git_fixed {
                git_fixed = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(mut g) = git.lock() {
                    *g = ("registry.example/checkout:v1".into(), "healthy".into());
                }
                p.line("you", "git revert: Git says checkout:v1 again (what runs)");
            }
            if s.phase == Some(Phase::Resolved) {
                let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
                if let Ok(d) = api.get("checkout").await {
                    let ann = d.metadata.annotations.clone().unwrap_or_default();
                    let image = d
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.spec.as_ref())
                        .and_then(|p| p.containers.first())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_default();
                    p.line(
                        "cluster",
                        format!(
                            "checkout: revision {}, image {image}, kubeincident.io/last-action={:?}",
                            ann.get("deployment.kubernetes.io/revision").map(String::as_str).unwrap_or("?"),
                            ann.get(crate::api::LAST_ACTION_ANNOTATION).map(String::as_str).unwrap_or("")
                        ),
                    );
                }
                p.line(
                    "operator",
                    format!(
                        "{name} resolved: {} (severity {}, occurrences {})",
                        s.conditions
                            .iter()
                            .find(|c| c.type_ == "Resolved")
                            .map(|c| c.message.as_str())
                            .unwrap_or(""),
                        s.severity.map(|s| s.to_string()).unwrap_or_default(),
                        s.occurrences.unwrap_or(1),
                    ),
                );
                break 'watch Ok(name);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let result = match outcome {
        Ok(name) => {
            let inc = incidents
                .get(&name)
                .await
                .map_err(kube_err("reading the incident"))?;
            let s = inc.status.unwrap_or_default();
            let secs =
                |a: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
                 b: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                    match (a, b) {
                        (Some(a), Some(b)) => {
                            format!("{:.0}s", b.0.duration_since(a.0).as_secs_f64())
                        }
                        _ => "-".into(),
                    }
                };
            println!();
            println!("Incident {NS}/{name}");
            println!(
                "  time to detect (first visible -> opened): {}",
                secs(s.first_observed_at.as_ref(), s.opened_at.as_ref())
            );
            println!(
                "  time to acknowledge:                      {}",
                secs(s.opened_at.as_ref(), s.acknowledged_at.as_ref())
            );
            println!(
                "  time to mitigate:                         {}",
                secs(s.opened_at.as_ref(), s.mitigated_at.as_ref())
            );
            println!(
                "  time to resolve:                          {}",
                secs(s.opened_at.as_ref(), s.resolved_at.as_ref())
            );
            for m in &s.mitigations {
                println!(
                    "  mitigation {}: {} - {}",
                    m.name,
                    m.state.as_str(),
                    m.message
                );
            }
            println!();
            print_postmortem(&client, &incidents, &name).await
        }
        Err(e) => Err(e),
    };

    if args.hold && result.is_ok() {
        p.line(
            "demo",
            "holding: the emulated cluster and the operator keep running (Ctrl-C to stop)",
        );
        operator::shutdown_signal().await;
    }
    flux.abort();
    let _ = stop_tx.send(());
    match operator.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(DemoError::Operator(e.to_string())),
        Err(e) => return Err(DemoError::Operator(e.to_string())),
    }
    emu.shutdown().await;
    result
}

//! Benchmark: from a mitigation's approval (or, for an Automatic step, the
//! Incident's creation) to the server's receipt of the workload write.
//!
//! ```sh
//! cargo run --example mitigation_bench -- --samples 200
//! ```
//!
//! The emulated API server and the operator run in this process (the
//! operator as `kube-incident run --namespaces bench --detect=false` would).
//! Both ends are measured on the emulator's clock alone, from its write
//! log: the write of the approval (`kubectl incident approve`'s JSON patch)
//! or of the Incident, and the patch of the Deployment (RolloutUndo) or
//! of its replicas (Scale) by field manager `kube-incident`. Samples run
//! one at a time, each on its own Deployment.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use emulator::{Emulator, EmulatorConfig, WriteRecord};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use kube_incident::api::{Incident, Runbook, StepState};
use kube_incident::metrics::Metrics;
use kube_incident::operator::{self, OperatorHandle, RunArgs};
use serde_json::json;

const NS: &str = "bench";

fn samples_arg() -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == "--samples")
        .and_then(|i| argv.get(i + 1))
        .map(|v| v.parse().expect("--samples needs a number"))
        .unwrap_or(100)
}

async fn wait<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn deployment(name: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name},
                "annotations": {"sim.kubeincident.io/behavior": "healthy"}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}
    })
}

fn write_time(log: &[WriteRecord], pred: impl Fn(&WriteRecord) -> bool) -> Option<SystemTime> {
    log.iter().find(|w| pred(w)).map(|w| w.time)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{label:<34} n={:<4} p50={:>6.2} ms  p99={:>6.2} ms  max={:>6.2} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

async fn setup(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Incident::crd(), Runbook::crd()] {
        crds.patch(
            crd.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD");
    }
    wait("CRDs", || async { operator::check_crds(client).await.ok() }).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

#[tokio::main]
async fn main() {
    let samples = samples_arg();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let emu = Emulator::start(EmulatorConfig {
        simulate: true,
        time_scale: 50.0,
        ..Default::default()
    })
    .await
    .expect("emulator");
    let client = emu.client();
    setup(&client).await;

    use clap::Parser;
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunArgs,
    }
    let args = Wrapper::parse_from([
        "bench",
        "--namespaces",
        NS,
        "--metrics-addr",
        "127.0.0.1:0",
        "--detect=false",
    ])
    .args;
    let handle = OperatorHandle {
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(AtomicBool::new(false)),
        metrics_addr: Arc::new(Mutex::new(None)),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let op_client = client.clone();
    let h = handle.clone();
    let op = tokio::spawn(async move {
        operator::run(
            op_client,
            args,
            operator::system_clock(),
            async {
                let _ = stop_rx.await;
            },
            Some(h),
        )
        .await
    });
    wait("operator ready", || async {
        handle
            .ready
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await;

    let deps: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let incs: Api<Incident> = Api::namespaced(client.clone(), NS);
    let mut approve_undo = Vec::new();
    let mut auto_scale = Vec::new();
    for i in 0..samples {
        // Manual RolloutUndo: two revisions, then approve.
        let name = format!("undo-{i}");
        deps.create(
            &PostParams::default(),
            &serde_json::from_value(deployment(&name, "app:v1")).expect("deployment"),
        )
        .await
        .expect("create deployment");
        deps.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(deployment(&name, "app:v2")),
        )
        .await
        .expect("rollout v2");
        wait("revision 2", || async {
            let d = deps.get(&name).await.ok()?;
            (d.metadata
                .annotations?
                .get("deployment.kubernetes.io/revision")?
                == "2")
                .then_some(())
        })
        .await;
        let inc: Incident = serde_json::from_value(json!({
            "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
            "metadata": {"name": name},
            "spec": {"title": "bad rollout", "severity": "SEV2",
                "target": {"kind": "Deployment", "name": name},
                "mitigations": [{"name": "rollback", "action": "RolloutUndo"}]}
        }))
        .expect("incident");
        incs.create(&PostParams::default(), &inc)
            .await
            .expect("create incident");
        wait("AwaitingApproval", || async {
            let s = incs.get(&name).await.ok()?.status?;
            (s.mitigations.first()?.state == StepState::AwaitingApproval).then_some(())
        })
        .await;
        // A person reads the page before approving: let the operator finish
        // the reconcile that announced the step (Events, notifications,
        // evidence) so the measure is approval -> write, not queueing
        // behind that reconcile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let patch = kube_incident::cli::commands::approve_patch(0, "rollback", "bench");
        incs.patch(
            &name,
            &PatchParams {
                field_manager: Some("kubectl-incident".into()),
                ..Default::default()
            },
            &Patch::<()>::Json(patch),
        )
        .await
        .expect("approve");
        let n = name.clone();
        let (approved, written) = wait("the undo write", || {
            let log = emu.write_log();
            let n = n.clone();
            async move {
                let approved = write_time(&log, |w| {
                    w.resource == "incidents"
                        && w.name == n
                        && w.subresource.is_none()
                        && w.verb == "patch"
                        && w.field_manager.as_deref() == Some("kubectl-incident")
                })?;
                let written = write_time(&log, |w| {
                    w.resource == "deployments"
                        && w.name == n
                        && w.field_manager.as_deref() == Some("kube-incident")
                })?;
                Some((approved, written))
            }
        })
        .await;
        tracing::debug!(sample = %name, approved = ?approved, written = ?written, "undo sample");
        approve_undo.push(
            written
                .duration_since(approved)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );

        // Automatic Scale: from the Incident's creation.
        let name = format!("scale-{i}");
        deps.create(
            &PostParams::default(),
            &serde_json::from_value(deployment(&name, "app:v1")).expect("deployment"),
        )
        .await
        .expect("create deployment");
        // An existing, settled workload (not one the controllers are still creating).
        wait("available", || async {
            let s = deps.get(&name).await.ok()?.status?;
            (s.available_replicas == Some(2)).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let inc: Incident = serde_json::from_value(json!({
            "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
            "metadata": {"name": name},
            "spec": {"title": "capacity", "severity": "SEV3",
                "target": {"kind": "Deployment", "name": name},
                "mitigations": [{"name": "more", "action": "Scale", "replicas": 3, "approval": "Automatic"}]}
        }))
        .expect("incident");
        incs.create(&PostParams::default(), &inc)
            .await
            .expect("create incident");
        let n = name.clone();
        let (created, written) = wait("the scale write", || {
            let log = emu.write_log();
            let n = n.clone();
            async move {
                let created = write_time(&log, |w| {
                    w.resource == "incidents" && w.name == n && w.verb == "create"
                })?;
                let written = write_time(&log, |w| {
                    w.resource == "deployments"
                        && w.name == n
                        && w.field_manager.as_deref() == Some("kube-incident")
                })?;
                Some((created, written))
            }
        })
        .await;
        tracing::debug!(sample = %name, created = ?created, written = ?written, "scale sample");
        auto_scale.push(
            written
                .duration_since(created)
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );
    }
    println!("mitigation latency on the emulator ({samples} samples each, one at a time):");
    report("approval -> RolloutUndo write", approve_undo);
    report("Incident created -> Scale write", auto_scale);
    let _ = stop_tx.send(());
    let _ = op.await;
    emu.shutdown().await;
}

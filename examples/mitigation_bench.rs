//! Benchmark: from a mitigation's approval (or, for an Automatic step, the
//! Incident's creation) to the server's receipt of the workload write.
//!
//! ```sh
//! cargo run --example mitigation_bench -- --samples 200
//! cargo build --release --examples -j 2 && target/release/examples/mitigation_bench --samples 100
//! ```
//!
//! The emulated API server and the operator run in this process (the
//! operator as `kube-incident run --namespaces bench --detect=false` would).
//! Both ends are measured on the emulator's clock alone, from its write
//! log: the write of the approval (`kubectl incident approve`'s JSON patch)
//! or of the Incident, and the patch of the Deployment (RolloutUndo) or
//! of its replicas (Scale) by field manager `kube-incident`. Samples run
//! one at a time, each on its own Deployment.
//!
//! The bench learns that the write happened from a watch on the Deployment,
//! then reads the write log once. `--poll-log` polls the write log every
//! 2 ms instead, as the first version did: each poll clones the whole log
//! under the emulator's store lock, which every API request needs, so it
//! slows the path it measures more and more as the log grows (kept to
//! compare with the numbers taken that way).

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

fn poll_log_arg() -> bool {
    std::env::args().any(|a| a == "--poll-log")
}

/// A watch on Deployment `name`, started (its initial list done) before
/// the write that sets off the sample: the handle resolves once the
/// Deployment satisfies `done`, without polling.
async fn watch_for(
    deps: &Api<Deployment>,
    name: &str,
    done: fn(&Deployment) -> bool,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(deps.clone(), cfg);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let name = name.to_string();
    let handle = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut ready_tx = Some(ready_tx);
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => panic!("timed out watching deployment {name}"),
                ev = stream.next() => match ev {
                    Some(Ok(watcher::Event::InitDone)) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Some(Ok(watcher::Event::Apply(d))) if done(&d) => return,
                    Some(_) => {}
                    None => panic!("watch of deployment {name} ended"),
                },
            }
        }
    });
    let _ = ready_rx.await;
    handle
}

fn image(d: &Deployment) -> Option<&str> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
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
    // Power comes only from a Runbook: this one governs every Deployment
    // of the namespace and grants the two steps the samples ask for.
    let rb: Runbook = serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "bench"},
        "spec": {"selector": {}, "targetKinds": ["Deployment"],
            "mitigations": [
                {"name": "rollback", "action": "RolloutUndo"},
                {"name": "more", "action": "Scale", "replicas": 3, "approval": "Automatic"}]}
    }))
    .expect("runbook");
    Api::<Runbook>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &rb)
        .await
        .expect("runbook");
}

#[tokio::main]
async fn main() {
    let samples = samples_arg();
    let poll_log = poll_log_arg();
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
        // The emulator serves no ValidatingAdmissionPolicy, so approvals
        // cannot be verified there (as in the test suite).
        "--accept-unverified-approvals",
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
        let undone = if poll_log {
            None
        } else {
            Some(watch_for(&deps, &name, |d| image(d) == Some("app:v1")).await)
        };
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
        if let Some(seen) = undone {
            seen.await.expect("watch");
        }
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
        let scaled = if poll_log {
            None
        } else {
            Some(
                watch_for(&deps, &name, |d| {
                    d.spec.as_ref().and_then(|s| s.replicas) == Some(3)
                })
                .await,
            )
        };
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
        if let Some(seen) = scaled {
            seen.await.expect("watch");
        }
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
    println!(
        "mitigation latency on the emulator ({samples} samples each, one at a time; {}):",
        if poll_log {
            "write log polled every 2 ms"
        } else {
            "write seen by a watch"
        }
    );
    report("approval -> RolloutUndo write", approve_undo);
    report("Incident created -> Scale write", auto_scale);
    let _ = stop_tx.send(());
    let _ = op.await;
    emu.shutdown().await;
}

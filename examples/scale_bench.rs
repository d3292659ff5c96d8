//! Scale benchmark of detection on the emulated API server.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/scale_bench --pods 10000 --churn 2000 --failing 50
//! # a mix of kinds: Deployments, StatefulSets, DaemonSets and CronJobs (one
//! # running Job each, plus 5 finished Jobs), in turn
//! target/release/examples/scale_bench --pods 10000 --mix 1 --finished-jobs 5
//! ```
//!
//! The emulator runs in this process; the operator runs as a separate
//! process (`target/release/kube-incident run`), so its RSS and CPU are its
//! own. Detection latency is measured on the emulator's clock alone: from
//! the server's write of the pod status that makes a workload unhealthy to
//! the server's receipt of the Incident create (the emulator's write log).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use emulator::{Emulator, EmulatorConfig};
use futures::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use kube_incident::api::{Incident, Runbook};
use serde_json::json;

struct Args {
    pods: usize,
    pods_per_deployment: usize,
    namespaces: usize,
    churn: u64,
    failing: usize,
    churn_secs: u64,
    /// Workloads of every kind in turn (0: Deployments only).
    mix: bool,
    /// Finished (Complete) Jobs per CronJob, with no pods left.
    finished_jobs: usize,
    /// Against the real API server of `$KUBECONFIG` instead of the emulator.
    real: bool,
}

/// The kind of the `d`-th workload.
fn kind_of(a: &Args, d: usize) -> &'static str {
    if !a.mix {
        return "Deployment";
    }
    ["Deployment", "StatefulSet", "DaemonSet", "CronJob"][d % 4]
}

fn parse_args() -> Args {
    let mut a = Args {
        pods: 10_000,
        pods_per_deployment: 10,
        namespaces: 10,
        churn: 2_000,
        failing: 50,
        churn_secs: 20,
        mix: false,
        finished_jobs: 0,
        real: false,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < argv.len() {
        let v: u64 = argv[i + 1]
            .parse()
            .unwrap_or_else(|_| panic!("{} needs a number", argv[i]));
        match argv[i].as_str() {
            "--pods" => a.pods = v as usize,
            "--pods-per-deployment" => a.pods_per_deployment = v as usize,
            "--namespaces" => a.namespaces = v as usize,
            "--churn" => a.churn = v,
            "--failing" => a.failing = v as usize,
            "--churn-secs" => a.churn_secs = v,
            "--mix" => a.mix = v != 0,
            "--finished-jobs" => a.finished_jobs = v as usize,
            "--real" => a.real = v != 0,
            other => panic!("unknown flag {other}"),
        }
        i += 2;
    }
    a
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn pod_status(phase_ok: bool, restarts: i32, ip: &str) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    if phase_ok {
        json!({"status": {
            "phase": "Running", "podIP": ip, "hostIP": "10.0.0.1", "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "app", "image": "app:v1", "imageID": "", "ready": true, "started": true,
                "restartCount": restarts, "state": {"running": {"startedAt": now}}}]
        }})
    } else {
        json!({"status": {
            "phase": "Running", "podIP": ip,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{"name": "app", "image": "app:v2", "imageID": "", "ready": false, "started": false,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": now}}}]
        }})
    }
}

/// Create workload `name` of `kind` with `n` pods (all Ready), and what
/// owns its pods: (kind, name, uid) of the pods' controller.
async fn create_owner(
    client: &Client,
    a: &Args,
    kind: &str,
    ns: &str,
    name: &str,
    n: i32,
) -> (&'static str, String, String) {
    let now = jiff::Timestamp::now().to_string();
    let template = json!({"metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "app:v1"}]}});
    let meta = json!({"name": name, "namespace": ns, "labels": {"app": name}});
    let selector = json!({"matchLabels": {"app": name}});
    let pp = PostParams::default();
    let status = |v: serde_json::Value| Patch::Merge(json!({ "status": v }));
    match kind {
        "StatefulSet" => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let o: StatefulSet = serde_json::from_value(json!({"metadata": meta,
                "spec": {"replicas": n, "serviceName": name, "selector": selector, "template": template}}))
            .unwrap();
            let o = api.create(&pp, &o).await.unwrap();
            api.patch_status(name, &PatchParams::default(), &status(json!({
                "observedGeneration": 1, "replicas": n, "readyReplicas": n, "availableReplicas": n,
                "updatedReplicas": n, "currentReplicas": n, "currentRevision": "r1", "updateRevision": "r1"})))
                .await
                .unwrap();
            (
                "StatefulSet",
                name.to_string(),
                o.metadata.uid.unwrap_or_default(),
            )
        }
        "DaemonSet" => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
            let o: DaemonSet = serde_json::from_value(json!({"metadata": meta,
                "spec": {"selector": selector, "template": template}}))
            .unwrap();
            let o = api.create(&pp, &o).await.unwrap();
            api.patch_status(name, &PatchParams::default(), &status(json!({
                "observedGeneration": 1, "desiredNumberScheduled": n, "currentNumberScheduled": n,
                "numberMisscheduled": 0, "numberReady": n, "numberAvailable": n, "updatedNumberScheduled": n})))
                .await
                .unwrap();
            (
                "DaemonSet",
                name.to_string(),
                o.metadata.uid.unwrap_or_default(),
            )
        }
        "CronJob" => {
            let api: Api<CronJob> = Api::namespaced(client.clone(), ns);
            let mut job_template = template.clone();
            job_template["spec"]["restartPolicy"] = json!("OnFailure");
            let o: CronJob = serde_json::from_value(json!({"metadata": meta,
                "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": job_template}}}}))
            .unwrap();
            let o = api.create(&pp, &o).await.unwrap();
            let cj_uid = o.metadata.uid.unwrap_or_default();
            let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
            let job = |job: &str| -> Job {
                serde_json::from_value(json!({"metadata": {"name": job, "namespace": ns,
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": cj_uid, "controller": true}]},
                    "spec": {"parallelism": n, "template": job_template}}))
                .unwrap()
            };
            for k in 0..a.finished_jobs {
                let done = format!("{name}-done-{k}");
                jobs.create(&pp, &job(&done)).await.unwrap();
                jobs.patch_status(&done, &PatchParams::default(), &status(json!({
                    "succeeded": 1, "startTime": now, "completionTime": now,
                    "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                        {"type": "Complete", "status": "True", "lastTransitionTime": now}]})))
                    .await
                    .unwrap();
            }
            let running = format!("{name}-7f9c");
            let j = jobs.create(&pp, &job(&running)).await.unwrap();
            jobs.patch_status(
                &running,
                &PatchParams::default(),
                &status(json!({"active": n, "startTime": now})),
            )
            .await
            .unwrap();
            ("Job", running, j.metadata.uid.unwrap_or_default())
        }
        _ => {
            let dapi: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let dep: Deployment = serde_json::from_value(json!({"metadata": meta,
                "spec": {"replicas": n, "selector": selector, "template": template}}))
            .unwrap();
            let d = dapi.create(&pp, &dep).await.unwrap();
            dapi.patch_status(name, &PatchParams::default(), &status(json!({
                "observedGeneration": 1, "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "lastTransitionTime": now}]})))
                .await
                .unwrap();
            let uid = d.metadata.uid.unwrap_or_default();
            let rs_name = format!("{name}-7f9c");
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": rs_name, "namespace": ns, "labels": {"app": name},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": uid, "controller": true}]},
                "spec": {"replicas": n, "selector": selector, "template": template}
            }))
            .unwrap();
            let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                .create(&pp, &rs)
                .await
                .unwrap();
            ("ReplicaSet", rs_name, rs.metadata.uid.unwrap_or_default())
        }
    }
}

async fn populate(client: &Client, a: &Args) -> Vec<(String, String, Vec<String>)> {
    let deployments = a.pods / a.pods_per_deployment;
    let mut layout = Vec::new();
    for n in 0..a.namespaces {
        let ns = format!("bench-{n}");
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    for d in 0..deployments {
        let ns = format!("bench-{}", d % a.namespaces);
        let name = format!("app-{d}");
        let pods: Vec<String> = (0..a.pods_per_deployment)
            .map(|p| format!("{name}-7f9c-{p:05}"))
            .collect();
        layout.push((ns, name, pods));
    }
    let done = AtomicU64::new(0);
    let start = Instant::now();
    stream::iter(layout.iter())
        .for_each_concurrent(32, |(ns, name, pods)| {
            let client = client.clone();
            let done = &done;
            async move {
                let d: usize = name
                    .trim_start_matches("app-")
                    .parse()
                    .unwrap_or_default();
                let (owner_kind, owner_name, owner_uid) =
                    create_owner(&client, a, kind_of(a, d), ns, name, pods.len() as i32).await;
                let papi: Api<Pod> = Api::namespaced(client.clone(), ns);
                for (i, p) in pods.iter().enumerate() {
                    let pod: Pod = serde_json::from_value(json!({
                        "metadata": {"name": p, "namespace": ns, "labels": {"app": name},
                            "ownerReferences": [{"apiVersion": "v1", "kind": owner_kind, "name": owner_name, "uid": owner_uid, "controller": true}]},
                        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "app:v1"}]}
                    }))
                    .unwrap();
                    papi.create(&PostParams::default(), &pod).await.unwrap();
                    papi.patch_status(p, &PatchParams::default(), &Patch::Merge(pod_status(true, 0, &format!("10.1.{}.{}", i / 250, i % 250)))).await.unwrap();
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(100) {
                    eprintln!("  {n} deployments ({:.0}s)", start.elapsed().as_secs_f64());
                }
            }
        })
        .await;
    layout
}

#[tokio::main]
async fn main() {
    let a = parse_args();
    if a.real {
        real::run(&a).await;
        return;
    }
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    eprintln!(
        "machine: {host}, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let emu = Emulator::start(EmulatorConfig {
        simulate: false,
        watch_history: 200_000,
        ..Default::default()
    })
    .await
    .expect("emulator");
    let client = emu.client();
    let dir = std::env::temp_dir().join(format!("kube-incident-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Incident::crd(), Runbook::crd()] {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!(
        "populating {} pods in {} deployments",
        a.pods,
        a.pods / a.pods_per_deployment
    );
    let t0 = Instant::now();
    let layout = populate(&client, &a).await;
    eprintln!("populated in {:.1}s", t0.elapsed().as_secs_f64());

    // The operator, as its own process.
    let (bin, port) = operator_binary_and_port();
    let mut child: Child = Command::new(&bin)
        .args(["run", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (build it with `cargo build --release --bins`): {e}",
                bin.display()
            )
        });
    let pid = child.id();
    let sync_start = Instant::now();
    let mut peak_sync = 0;
    loop {
        peak_sync = peak_sync.max(rss_kib(pid));
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await;
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf).await;
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let synced_in = sync_start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let steady = rss_kib(pid);
    eprintln!(
        "operator ready in {:.1}s; RSS {} MiB",
        synced_in.as_secs_f64(),
        steady / 1024
    );

    // Background churn: pod status writes at the requested rate.
    let churned = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn_pods: Vec<(String, String)> = layout
        .iter()
        .skip(a.failing)
        .flat_map(|(ns, _, pods)| pods.iter().map(move |p| (ns.clone(), p.clone())))
        .collect();
    let churn_task = {
        let client = client.clone();
        let churned = churned.clone();
        let stop = stop.clone();
        let rate = a.churn;
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            let mut tick = tokio::time::interval(period * 16);
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let batch: Vec<_> = (0..16)
                    .map(|k| churn_pods[(i + k) % churn_pods.len()].clone())
                    .collect();
                i += 16;
                stream::iter(batch)
                    .for_each_concurrent(16, |(ns, p)| {
                        let client = client.clone();
                        let churned = churned.clone();
                        async move {
                            let api: Api<Pod> = Api::namespaced(client, &ns);
                            let ip = format!(
                                "10.2.{}.{}",
                                churned.load(Ordering::Relaxed) % 250,
                                churned.load(Ordering::Relaxed) / 250 % 250
                            );
                            if api
                                .patch_status(
                                    &p,
                                    &PatchParams::default(),
                                    &Patch::Merge(json!({"status": {"podIP": ip}})),
                                )
                                .await
                                .is_ok()
                            {
                                churned.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                    .await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = cpu_secs(pid);
    let ev0 = churned.load(Ordering::Relaxed);
    let churn_start = Instant::now();

    // Break `failing` deployments: every pod of each goes into CrashLoopBackOff.
    let mark = SystemTime::now();
    let failing: Vec<_> = layout.iter().take(a.failing).cloned().collect();
    for (ns, _, pods) in &failing {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        for p in pods {
            api.patch_status(
                p,
                &PatchParams::default(),
                &Patch::Merge(pod_status(false, 5, "10.9.9.9")),
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait for the incidents.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: usize = stream::iter(
            failing
                .iter()
                .map(|(ns, _, _)| ns.clone())
                .collect::<std::collections::BTreeSet<_>>(),
        )
        .then(|ns| {
            let client = client.clone();
            async move {
                Api::<Incident>::namespaced(client, &ns)
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items.len())
                    .unwrap_or(0)
            }
        })
        .fold(0, |acc, n| async move { acc + n })
        .await;
        if n >= a.failing || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let remaining = Duration::from_secs(a.churn_secs).saturating_sub(churn_start.elapsed());
    tokio::time::sleep(remaining).await;
    let cpu1 = cpu_secs(pid);
    let ev1 = churned.load(Ordering::Relaxed);
    let churn_elapsed = churn_start.elapsed().as_secs_f64();
    let steady_after = rss_kib(pid);
    // The detector's profile (its own counters), before the relist.
    let profile = real::metrics(port).await;

    // Latencies from the write log (one clock: the emulator's).
    let log = emu.write_log();
    let mut first_bad: HashMap<(String, String), SystemTime> = HashMap::new();
    for r in log.iter().filter(|r| {
        r.time >= mark && r.resource == "pods" && r.subresource.as_deref() == Some("status")
    }) {
        let ns = r.namespace.clone().unwrap_or_default();
        if let Some((_, d, _)) = failing
            .iter()
            .find(|(fns, _, pods)| *fns == ns && pods.contains(&r.name))
        {
            first_bad.entry((ns, d.clone())).or_insert(r.time);
        }
    }
    let mut lat_ms: Vec<f64> = Vec::new();
    for r in log
        .iter()
        .filter(|r| r.resource == "incidents" && r.verb == "create")
    {
        let ns = r.namespace.clone().unwrap_or_default();
        if let Some(((_, _), t)) = first_bad
            .iter()
            .find(|((fns, d), _)| *fns == ns && r.name.starts_with(&format!("{d}-")))
        {
            if let Ok(d) = r.time.duration_since(*t) {
                lat_ms.push(d.as_secs_f64() * 1000.0);
            }
        }
    }
    lat_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Relist: force every watch to expire and measure the peak.
    emu.faults().force_watch_expiry(None);
    emu.faults().drop_watches();
    let mut peak_relist = 0;
    let relist_start = Instant::now();
    while relist_start.elapsed() < Duration::from_secs(15) {
        peak_relist = peak_relist.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = churn_task.await;
    let _ = child.kill();
    let _ = child.wait();

    let events = (ev1 - ev0) as f64;
    eprint!("{profile}");
    if a.mix {
        println!(
            "workloads of every kind in turn (Deployment, StatefulSet, DaemonSet, CronJob with {} finished Jobs each)",
            a.finished_jobs
        );
    }
    println!("| pods | workloads | churn (writes/s achieved) | incidents | detection p50 / p99 / p99.9 (ms) | RSS steady (MiB) | RSS peak initial sync (MiB) | RSS peak relist (MiB) | CPU s per 1k events |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} | {}/{} | {:.1} / {:.1} / {:.1} | {:.1} (after churn {:.1}) | {:.1} | {:.1} | {:.3} |",
        a.pods,
        layout.len(),
        events / churn_elapsed,
        lat_ms.len(),
        a.failing,
        percentile(&lat_ms, 50.0),
        percentile(&lat_ms, 99.0),
        percentile(&lat_ms, 99.9),
        steady as f64 / 1024.0,
        steady_after as f64 / 1024.0,
        peak_sync as f64 / 1024.0,
        peak_relist as f64 / 1024.0,
        (cpu1 - cpu0) / (events / 1000.0).max(1e-9),
    );
    let _ = std::fs::remove_dir_all(&dir);
    emu.shutdown().await;
}

/// `--real 1`: the same measurement against the real API server of
/// `$KUBECONFIG` (the v1.36 control plane of `../shared/k8s`).
///
/// The cluster is shared, so everything is in namespaces `bench-r<pid>-<n>`
/// (deleted at the end) and the operator watches only those
/// (`--namespaces`). Pods come from real Deployments (the real deployment
/// and ReplicaSet controllers create them), bound by the pod template's
/// `nodeName` to a Node this process registers (`bench-node-<pid>`), which
/// the kubelet stand-in (`kubelet_sim.py`, which writes the status of pods
/// on *its* nodes only) leaves alone, and no scheduler or node lifecycle
/// controller touches: so this process writes every pod status itself, as
/// the emulator run does, and knows when it wrote the one that breaks a
/// workload. Detection latency is from the send of the first unhealthy
/// pod status write of a Deployment to the `stageTimestamp` of the
/// `ResponseComplete` audit event of its Incident's create (the API
/// server's audit log, `$KUBE_AUDIT_LOG`): both on this machine's clock.
/// No forced relist: a 410 cannot be forced on a shared server.
mod real {
    use std::collections::{BTreeMap, HashMap};

    use super::operator_binary_and_port;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use futures::{stream, StreamExt};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::{Api, Client};
    use kube_incident::api::Incident;
    use serde_json::json;

    use super::{cpu_secs, percentile, pod_status, rss_kib, Args};

    /// Wait until `/readyz` of the operator on `port` says 200; the peak RSS meanwhile.
    async fn wait_ready(pid: u32, port: u16) -> u64 {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_kib(pid));
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await;
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf).await;
                if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                    return peak;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The operator's `/metrics` (its detector profile).
    pub(super) async fn metrics(port: u16) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return String::new();
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf).await;
        buf.lines()
            .filter(|l| l.starts_with("kube_incident_detector_"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// `(namespace, name) -> stageTimestamp` of every completed Incident
    /// create in the audit log.
    fn incident_creates(audit: &str) -> HashMap<(String, String), SystemTime> {
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        let mut out = HashMap::new();
        for line in text.lines() {
            if !line.contains("\"incidents\"") || !line.contains("ResponseComplete") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let o = &v["objectRef"];
            if v["verb"] != "create"
                || v["stage"] != "ResponseComplete"
                || o["resource"] != "incidents"
                || o["subresource"].is_string()
                || v["responseStatus"]["code"] != 201
            {
                continue;
            }
            let at = v["stageTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            if let (Some(ns), Some(name), Some(at)) =
                (o["namespace"].as_str(), o["name"].as_str(), at)
            {
                out.insert((ns.to_string(), name.to_string()), SystemTime::from(at));
            }
        }
        out
    }

    pub async fn run(a: &Args) {
        let client = Client::try_default()
            .await
            .expect("a kubeconfig ($KUBECONFIG)");
        let kubeconfig = std::env::var("KUBECONFIG").expect("$KUBECONFIG");
        let audit = std::env::var("KUBE_AUDIT_LOG").expect("$KUBE_AUDIT_LOG (cluster.sh env)");
        let id = std::process::id();
        let node = format!("bench-node-{id}");
        let namespaces: Vec<String> = (0..a.namespaces)
            .map(|n| format!("bench-r{id}-{n}"))
            .collect();
        let cleanup = {
            let client = client.clone();
            let node = node.clone();
            let namespaces = namespaces.clone();
            move || async move {
                for ns in &namespaces {
                    let _ = Api::<Namespace>::all(client.clone())
                        .delete(ns, &DeleteParams::default())
                        .await;
                }
                let _ = Api::<Node>::all(client.clone())
                    .delete(&node, &DeleteParams::default())
                    .await;
            }
        };

        // A node of our own: no kubelet stand-in, scheduler or node
        // controller writes the status of its pods.
        let nodes: Api<Node> = Api::all(client.clone());
        let n: Node = serde_json::from_value(json!({"metadata": {"name": node,
            "labels": {"kubernetes.io/hostname": node, "bench": "kube-incident"}}}))
        .unwrap();
        nodes
            .create(&PostParams::default(), &n)
            .await
            .expect("create the bench node");
        let now = jiff::Timestamp::now().to_string();
        let _ = nodes
            .patch_status(
                &node,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                "capacity": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
                "allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "lastHeartbeatTime": now, "lastTransitionTime": now}]}})),
            )
            .await;
        for ns in &namespaces {
            let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &obj)
                .await
                .expect("namespace");
        }

        // Deployments; the real controllers create ReplicaSets and pods.
        let per = a.pods_per_deployment;
        let deployments = a.pods / per;
        let layout: Vec<(String, String)> = (0..deployments)
            .map(|d| (namespaces[d % namespaces.len()].clone(), format!("app-{d}")))
            .collect();
        eprintln!("creating {deployments} Deployments of {per} pods on the real API server");
        let t0 = Instant::now();
        stream::iter(layout.iter())
            .for_each_concurrent(16, |(ns, name)| {
                let client = client.clone();
                let node = node.clone();
                async move {
                    let dep: Deployment = serde_json::from_value(json!({
                        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                        "spec": {"replicas": per, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                                    "containers": [{"name": "app", "image": "app:v1"}]}}}
                    }))
                    .unwrap();
                    Api::<Deployment>::namespaced(client, ns)
                        .create(&PostParams::default(), &dep)
                        .await
                        .expect("create deployment");
                }
            })
            .await;
        // Every pod Running and Ready, written by us as the kubelet would.
        let mut ready: HashMap<(String, String), String> = HashMap::new();
        let mut pods_of: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        while ready.len() < deployments * per {
            for ns in &namespaces {
                let api: Api<Pod> = Api::namespaced(client.clone(), ns);
                let Ok(list) = api.list(&ListParams::default()).await else {
                    continue;
                };
                let todo: Vec<(String, String)> = list
                    .items
                    .iter()
                    .filter_map(|p| {
                        let name = p.metadata.name.clone()?;
                        let app = p.metadata.labels.as_ref()?.get("app")?.clone();
                        (!ready.contains_key(&(ns.clone(), name.clone()))).then_some((name, app))
                    })
                    .collect();
                stream::iter(todo.iter().enumerate())
                    .for_each_concurrent(16, |(i, (p, _))| {
                        let api = api.clone();
                        async move {
                            let _ = api
                                .patch_status(
                                    p,
                                    &PatchParams::default(),
                                    &Patch::Merge(pod_status(
                                        true,
                                        0,
                                        &format!("10.1.{}.{}", i / 250, i % 250),
                                    )),
                                )
                                .await;
                        }
                    })
                    .await;
                for (p, app) in todo {
                    pods_of
                        .entry((ns.clone(), app.clone()))
                        .or_default()
                        .push(p.clone());
                    ready.insert((ns.clone(), p), app);
                }
            }
            eprintln!(
                "  {} of {} pods Ready ({:.0}s)",
                ready.len(),
                deployments * per,
                t0.elapsed().as_secs_f64()
            );
            if ready.len() < deployments * per {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        eprintln!("populated in {:.1}s", t0.elapsed().as_secs_f64());

        // The operator, as its own process, watching our namespaces only.
        let (bin, port) = operator_binary_and_port();
        let mut child = Command::new(&bin)
            .args([
                "run",
                "--kubeconfig",
                &kubeconfig,
                "--namespaces",
                &namespaces.join(","),
            ])
            // No kubelet serves our node's logs: evidence would only fail.
            .arg("--evidence=false")
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the operator");
        let pid = child.id();
        let sync_start = Instant::now();
        let peak_sync = wait_ready(pid, port).await;
        let synced_in = sync_start.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let steady = rss_kib(pid);
        eprintln!(
            "operator ready in {:.1}s; RSS {} MiB",
            synced_in.as_secs_f64(),
            steady / 1024
        );

        // Churn on the pods of the Deployments that stay healthy.
        let failing: Vec<((String, String), Vec<String>)> = pods_of
            .iter()
            .take(a.failing)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let churn_pods: Vec<(String, String)> = pods_of
            .iter()
            .skip(a.failing)
            .flat_map(|((ns, _), pods)| pods.iter().map(move |p| (ns.clone(), p.clone())))
            .collect();
        let churned = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let churn_task = {
            let client = client.clone();
            let churned = churned.clone();
            let stop = stop.clone();
            let rate = a.churn;
            tokio::spawn(async move {
                let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
                let mut tick = tokio::time::interval(period * 16);
                let mut i = 0usize;
                // At most 64 writes in flight: a shared server that answers
                // slower than the rate gets what it can take, not a pile-up.
                let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
                while !stop.load(Ordering::Relaxed) && !churn_pods.is_empty() {
                    tick.tick().await;
                    let Ok(permit) = in_flight.clone().try_acquire_many_owned(16) else {
                        continue;
                    };
                    let batch: Vec<_> = (0..16)
                        .map(|k| churn_pods[(i + k) % churn_pods.len()].clone())
                        .collect();
                    i += 16;
                    // Not waited for: a slow answer must not slow the rate.
                    let (client, churned) = (client.clone(), churned.clone());
                    tokio::spawn(stream::iter(batch).for_each_concurrent(16, move |(ns, p)| {
                        let _permit = &permit;
                        let client = client.clone();
                        let churned = churned.clone();
                        async move {
                            let n = churned.load(Ordering::Relaxed);
                            let ip = format!("10.2.{}.{}", n % 250, n / 250 % 250);
                            if Api::<Pod>::namespaced(client, &ns)
                                .patch_status(
                                    &p,
                                    &PatchParams::default(),
                                    &Patch::Merge(json!({"status": {"podIP": ip}})),
                                )
                                .await
                                .is_ok()
                            {
                                churned.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }));
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        let cpu0 = cpu_secs(pid);
        let ev0 = churned.load(Ordering::Relaxed);
        let churn_start = Instant::now();

        // Break `failing` Deployments: each pod into CrashLoopBackOff; the
        // first write's send time is the start of detection.
        // (sent, answered) of the first unhealthy write of each Deployment.
        let mut first_bad: HashMap<(String, String), (SystemTime, SystemTime)> = HashMap::new();
        for ((ns, app), pods) in &failing {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            for p in pods {
                let sent = SystemTime::now();
                api.patch_status(
                    p,
                    &PatchParams::default(),
                    &Patch::Merge(pod_status(false, 5, "10.9.9.9")),
                )
                .await
                .expect("pod status");
                let answered = SystemTime::now();
                first_bad
                    .entry((ns.clone(), app.clone()))
                    .or_insert((sent, answered));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut n = 0;
            for ns in &namespaces {
                n += Api::<Incident>::namespaced(client.clone(), ns)
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items.len())
                    .unwrap_or(0);
            }
            if n >= a.failing || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let remaining = Duration::from_secs(a.churn_secs).saturating_sub(churn_start.elapsed());
        tokio::time::sleep(remaining).await;
        let cpu1 = cpu_secs(pid);
        let ev1 = churned.load(Ordering::Relaxed);
        let churn_elapsed = churn_start.elapsed().as_secs_f64();
        let steady_after = rss_kib(pid);
        let profile = metrics(port).await;
        stop.store(true, Ordering::Relaxed);
        let _ = churn_task.await;
        let _ = child.kill();
        let _ = child.wait();

        // The audit log is written asynchronously: give it a moment.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let creates = incident_creates(&audit);
        // From the send of the write (upper bound) and from its answer
        // (lower bound: the write had committed by then).
        let mut lat_ms: Vec<f64> = Vec::new();
        let mut lat_answered_ms: Vec<f64> = Vec::new();
        let mut write_ms: Vec<f64> = Vec::new();
        for ((ns, name), at) in &creates {
            if let Some((sent, answered)) = first_bad
                .iter()
                .find(|((fns, app), _)| fns == ns && name.starts_with(&format!("{app}-")))
                .map(|(_, t)| *t)
            {
                if let Ok(d) = at.duration_since(sent) {
                    lat_ms.push(d.as_secs_f64() * 1000.0);
                }
                lat_answered_ms.push(match at.duration_since(answered) {
                    Ok(d) => d.as_secs_f64() * 1000.0,
                    Err(e) => -e.duration().as_secs_f64() * 1000.0,
                });
                if let Ok(d) = answered.duration_since(sent) {
                    write_ms.push(d.as_secs_f64() * 1000.0);
                }
            }
        }
        lat_ms.sort_by(|a, b| a.total_cmp(b));
        lat_answered_ms.sort_by(|a, b| a.total_cmp(b));
        write_ms.sort_by(|a, b| a.total_cmp(b));
        eprintln!(
            "pod status write round trip p50 / max: {:.1} / {:.1} ms; detection from the write's answer p50 / p99 / max: {:.1} / {:.1} / {:.1} ms",
            percentile(&write_ms, 50.0),
            write_ms.last().copied().unwrap_or(f64::NAN),
            percentile(&lat_answered_ms, 50.0),
            percentile(&lat_answered_ms, 99.0),
            lat_answered_ms.last().copied().unwrap_or(f64::NAN),
        );
        eprintln!(
            "deleting namespaces {} and node {node}",
            namespaces.join(", ")
        );
        cleanup().await;

        let events = (ev1 - ev0) as f64;
        eprint!("{profile}");
        println!(
            "real API server ($KUBECONFIG), operator watching {} namespaces",
            namespaces.len()
        );
        println!("| pods | workloads | churn (writes/s achieved) | incidents | detection p50 / p99 / max (ms) | RSS steady (MiB) | RSS peak initial sync (MiB) | CPU s per 1k events |");
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {:.0} | {}/{} | {:.1} / {:.1} / {:.1} | {:.1} (after churn {:.1}) | {:.1} | {:.3} |",
            deployments * per,
            deployments,
            events / churn_elapsed,
            lat_ms.len(),
            a.failing,
            percentile(&lat_ms, 50.0),
            percentile(&lat_ms, 99.0),
            lat_ms.last().copied().unwrap_or(f64::NAN),
            steady as f64 / 1024.0,
            steady_after as f64 / 1024.0,
            peak_sync as f64 / 1024.0,
            (cpu1 - cpu0) / (events / 1000.0).max(1e-9),
        );
    }
}

/// The `kube-incident` binary beside this example's build, and a free
/// loopback port for its metrics endpoint.
fn operator_binary_and_port() -> (std::path::PathBuf, u16) {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("kube-incident");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (bin, l.local_addr().unwrap().port())
}

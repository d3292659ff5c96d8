//! Benchmark: a bad rollout on a real Kubernetes control plane, from
//! `kubectl set image` to the Incident, to the undo, to every replica
//! available on the good revision.
//!
//! ```sh
//! ../shared/k8s/cluster.sh up && ../shared/k8s/cluster.sh sim
//! eval "$(../shared/k8s/cluster.sh env)"
//! cargo build --release --example rollout_bench
//! KUBE_INCIDENT_BACKEND=real target/release/examples/rollout_bench --samples 3
//! ```
//!
//! Per sample: a fresh namespace, a Runbook whose only step is an
//! Automatic RolloutUndo (so BadRollout is on with its defaults), a
//! healthy Deployment of 4 replicas (`registry.example/web:v1`), and the
//! operator (in this process, as `kube-incident run --namespaces <ns>`
//! would, with the least-privilege operator user). Then the Deployment's
//! image is set to a broken v2, as `kubectl set image` does (one JSON
//! merge patch by the admin user).
//!
//! Times come from the API server's audit log (`stageTimestamp` of
//! `ResponseComplete`): the admin's patch (set image), the operator's
//! Incident create, the operator's Deployment patch (the undo). "All
//! available" is the first moment this process sees the Deployment's
//! status with every replica updated and available on the good image
//! (polled every 20 ms, on the same machine's clock as the audit log).
//!
//! Scenarios: `crash` (crash on start, BadRollout defaults: the second
//! crash), `crash-eager` (the same with `minRestarts: 1`: the first crash,
//! at the price of undoing a rollout whose pods would crash once and then
//! run), `imagepull`, `config-error`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use kube_incident::api::{Incident, IncidentSource};
use serde_json::json;
use testkit::fixtures::{behavior_image, healthy_deployment};
use testkit::incidents::create_runbook;
use testkit::{wait_for, Cluster, RunningOperator};

const WAIT: Duration = Duration::from_secs(120);

fn arg(name: &str, default: &str) -> String {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// One audit record: (verb, resource, user, namespace, name, time).
struct Record {
    verb: String,
    resource: String,
    user: String,
    namespace: String,
    name: String,
    at: jiff::Timestamp,
}

fn audit(path: &Path, ns: &str) -> Vec<Record> {
    let text = std::fs::read_to_string(path).expect("read the audit log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["stage"] == "ResponseComplete" && v["objectRef"]["namespace"] == ns)
        .filter(|v| {
            v["responseStatus"]["code"]
                .as_i64()
                .is_some_and(|c| c < 300)
        })
        .filter_map(|v| {
            Some(Record {
                verb: v["verb"].as_str()?.to_string(),
                resource: v["objectRef"]["resource"].as_str()?.to_string(),
                user: v["user"]["username"].as_str()?.to_string(),
                namespace: ns.to_string(),
                name: v["objectRef"]["name"].as_str().unwrap_or("").to_string(),
                at: v["stageTimestamp"].as_str()?.parse().ok()?,
            })
        })
        .collect()
}

fn ms(a: jiff::Timestamp, b: jiff::Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64() * 1000.0
}

fn image(d: &Deployment) -> Option<String> {
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

/// The first time every replica is updated and available on `good`.
async fn all_available(api: &Api<Deployment>, good: &str) -> jiff::Timestamp {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(d) = api.get("web").await {
            let s = d.status.clone().unwrap_or_default();
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas == Some(4)
                && s.available_replicas == Some(4)
                && s.replicas == Some(4)
                && image(&d).as_deref() == Some(good);
            if done {
                return jiff::Timestamp::try_from(SystemTime::now()).expect("now");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "web available again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Sample {
    to_incident: f64,
    undo_after_incident: f64,
    to_available: f64,
}

async fn sample(cluster: &Cluster, scenario: &str) -> Sample {
    let client: Client = cluster.client.clone();
    let ns = cluster.namespace("rbench").await;
    let mut runbook = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}],
        "monitoring": {"window": "5s"}
    });
    let behavior = match scenario {
        "crash-eager" => {
            runbook["triggers"] = json!([{"type": "BadRollout", "minRestarts": 1}]);
            "crashloop"
        }
        "crash" => "crashloop",
        other => other,
    };
    create_runbook(&client, &ns, "web", runbook).await;
    let d = healthy_deployment(&client, &ns, "web", 4, WAIT).await;
    let good = image(&d).expect("image");
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    // Let the operator's watches settle on the healthy revision.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let bad = behavior_image("registry.example/web:v2", behavior);
    let mut container = json!({"name": "app", "image": bad});
    if behavior == "config-error" {
        container["env"] = json!([{"name": "SETTING", "valueFrom": {"configMapKeyRef": {
            "name": "kube-incident-missing-config", "key": "setting"}}}]);
    }
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {
            "metadata": {"annotations": {"sim.kubeincident.io/behavior": behavior}},
            "spec": {"containers": [container]}}}})),
    )
    .await
    .expect("set image");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    wait_for(WAIT, || async {
        incidents
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|i| i.spec.source == IncidentSource::Detector)
    })
    .await
    .expect("the Incident opens");
    let available = all_available(&api, &good).await;
    op.stop().await.expect("operator stops");
    let log = cluster
        .audit_log()
        .expect("the real control plane's audit log");
    let records = audit(log, &ns);
    let find = |verb: &str, resource: &str, user: &str| {
        records
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource && r.user == user)
            .filter(|r| r.namespace == ns && (resource != "deployments" || r.name == "web"))
            .map(|r| r.at)
            .min()
    };
    // The admin's set-image patch is the admin's last Deployment patch.
    let set = records
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "deployments" && r.user == "admin")
        .map(|r| r.at)
        .max()
        .expect("the set-image patch in the audit log");
    let created = find("create", "incidents", "kube-incident-operator").expect("Incident create");
    let undo = find("patch", "deployments", "kube-incident-operator").expect("undo patch");
    Sample {
        to_incident: ms(set, created),
        undo_after_incident: ms(created, undo),
        to_available: ms(set, available),
    }
}

fn summary(xs: &mut [f64]) -> String {
    xs.sort_by(|a, b| a.total_cmp(b));
    let median = xs[xs.len() / 2];
    let max = xs[xs.len() - 1];
    format!("median {median:.0} ms, max {max:.0} ms")
}

#[tokio::main]
async fn main() {
    let samples: usize = arg("--samples", "3").parse().expect("--samples N");
    let scenarios = arg("--scenarios", "crash,crash-eager,imagepull,config-error");
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    if cluster.is_emulator() {
        eprintln!("rollout_bench measures a real control plane: set KUBE_INCIDENT_BACKEND=real");
        return;
    }
    println!("| scenario | n | set image -> Incident | Incident -> undo write | set image -> all available |");
    println!("|---|---|---|---|---|");
    for scenario in scenarios.split(',') {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut c = Vec::new();
        for i in 0..samples {
            let s = sample(&cluster, scenario).await;
            eprintln!(
                "{scenario} #{i}: set image -> Incident {:.0} ms, Incident -> undo {:.0} ms, set image -> all available {:.0} ms",
                s.to_incident, s.undo_after_incident, s.to_available
            );
            a.push(s.to_incident);
            b.push(s.undo_after_incident);
            c.push(s.to_available);
        }
        println!(
            "| {scenario} | {samples} | {} | {} | {} |",
            summary(&mut a),
            summary(&mut b),
            summary(&mut c)
        );
    }
}

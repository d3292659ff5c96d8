//! Leader election with a coordination.k8s.io Lease: two operator instances
//! on the same namespace; only the leader acts; a killed leader is replaced
//! within the lease duration (plus one retry period) without a duplicate
//! Incident, Event or metric; a leader that loses its lease stops at once;
//! a gracefully stopped leader hands over at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use kube_incident::api::{Incident, FINGERPRINT_LABEL};
use kube_incident::metrics::Metrics;
use kube_incident::operator::{self, OperatorHandle, RunArgs};

use crate::detection::{deployment, set_behavior};
use crate::harness::{wait_for, Cluster};
use testkit::incidents::lease_holder;

const WAIT: Duration = Duration::from_secs(60);
const LEASE: &str = "kube-incident-test";
/// Short timings so the tests are quick: lease 2s, renew deadline 1.5s, retry 200ms.
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(200);

/// One operator process, with leader election on; `kill` drops it without
/// any shutdown (as a killed pod: the lease is not released).
struct Instance {
    handle: OperatorHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), operator::OperatorError>>,
}

impl Instance {
    async fn start(client: &Client, ns: &str, name: &str, lease_duration: &str) -> Instance {
        Instance::start_with(
            client,
            &[
                "--namespaces",
                ns,
                "--instance",
                name,
                "--leader-elect",
                "--lease-name",
                LEASE,
                "--lease-namespace",
                ns,
                "--lease-duration",
                lease_duration,
                "--lease-renew-deadline",
                "1500ms",
                "--lease-retry-period",
                "200ms",
            ],
        )
        .await
    }

    async fn start_with(client: &Client, extra: &[&str]) -> Instance {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: RunArgs,
        }
        let mut argv = vec!["test", "--metrics-addr", "127.0.0.1:0"];
        argv.extend_from_slice(extra);
        let args = Wrapper::parse_from(argv).args;
        let handle = OperatorHandle {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            metrics_addr: Arc::new(Mutex::new(None)),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (client, h) = (client.clone(), handle.clone());
        let task = tokio::spawn(async move {
            operator::run(
                client,
                args,
                operator::system_clock(),
                async {
                    let _ = rx.await;
                },
                Some(h),
            )
            .await
        });
        let ready = handle.ready.clone();
        wait_for(Duration::from_secs(20), || {
            let ready = ready.clone();
            async move { ready.load(Ordering::SeqCst).then_some(()) }
        })
        .await
        .expect("operator becomes ready (followers too)");
        Instance {
            handle,
            stop: Some(tx),
            task,
        }
    }

    fn kill(self) {
        self.task.abort();
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("operator stops within 20s")
            .expect("operator task did not panic")
            .expect("operator stops cleanly");
    }

    /// Sum of a counter family's samples (e.g. `incidents_opened`).
    fn counter(&self, family: &str) -> f64 {
        counter(&self.handle.metrics, family)
    }
}

fn counter(metrics: &Metrics, family: &str) -> f64 {
    let text = metrics.encode().expect("metrics encode");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            name.ends_with(&format!("{family}_total"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Like [`counter`], only the samples whose labels contain `label`.
fn counter_where(metrics: &Metrics, family: &str, label: &str) -> f64 {
    let text = metrics.encode().expect("metrics encode");
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(label))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            name.ends_with(&format!("{family}_total"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_holder(client: &Client, ns: &str, prefix: &str, timeout: Duration) -> Option<String> {
    wait_for(timeout, || async {
        lease_holder(client, ns, LEASE)
            .await
            .filter(|h| h.starts_with(&format!("{prefix}_")))
    })
    .await
}

async fn incidents(client: &Client, ns: &str) -> Vec<Incident> {
    Api::<Incident>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list incidents")
        .items
}

async fn wait_opened(client: &Client, ns: &str, n: usize) -> Vec<Incident> {
    let got = wait_for(WAIT, || async {
        let list = incidents(client, ns).await;
        let opened = list
            .iter()
            .filter(|i| i.status.as_ref().is_some_and(|s| s.opened_at.is_some()))
            .count();
        (opened >= n).then_some(list)
    })
    .await;
    match got {
        Some(l) => l,
        None => panic!(
            "timed out waiting for {n} opened incidents: {:#?}",
            incidents(client, ns).await
        ),
    }
}

async fn broken_deployment(client: &Client, ns: &str, name: &str) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment(name, 2, "healthy"))
        .await
        .expect("deployment created");
    set_behavior(
        client,
        ns,
        name,
        "crashloop",
        &format!("registry.example/{name}:v2"),
    )
    .await;
}

async fn events(client: &Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
}

/// Every Incident of a workload is unique, and no Event was published
/// twice (by two instances, or twice by one).
async fn assert_no_duplicates(client: &Client, ns: &str) {
    let list = incidents(client, ns).await;
    let mut per_fp: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &list {
        let fp = i
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(FINGERPRINT_LABEL))
            .cloned()
            .unwrap_or_default();
        per_fp
            .entry(fp)
            .or_default()
            .push(i.metadata.name.clone().unwrap_or_default());
    }
    for (fp, names) in &per_fp {
        assert_eq!(
            names.len(),
            1,
            "workload {fp} has several incidents: {names:?}"
        );
    }
    for i in &list {
        let timeline = i
            .status
            .as_ref()
            .map(|s| s.timeline.clone())
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for e in &timeline {
            let key = serde_json::to_string(e).expect("timeline entry serializes");
            assert!(seen.insert(key), "duplicate timeline entry {e:?}");
        }
    }
    let mut seen: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for e in events(client, ns).await {
        let key = (
            e.regarding
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            e.note.clone().unwrap_or_default(),
        );
        seen.entry(key)
            .or_default()
            .push(e.reporting_instance.clone().unwrap_or_default());
    }
    for (key, instances) in &seen {
        assert_eq!(
            instances.len(),
            1,
            "event {key:?} published more than once, by {instances:?}"
        );
    }
}

#[tokio::test]
async fn killed_leader_fails_over_within_the_lease_duration_without_duplicates() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = &cluster.client;
    let ns = cluster.namespace("leader").await;

    let a = Instance::start(&cluster.operator_client, &ns, "op-a", "2s").await;
    wait_holder(client, &ns, "op-a", Duration::from_secs(10))
        .await
        .expect("the first instance takes the lease");
    let b = Instance::start(&cluster.operator_client, &ns, "op-b", "2s").await;

    broken_deployment(client, &ns, "checkout").await;
    wait_opened(client, &ns, 1).await;
    // Let both instances see the incident and its events for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        lease_holder(client, &ns, LEASE)
            .await
            .is_some_and(|h| h.starts_with("op-a_")),
        "the first instance keeps the lease while alive"
    );
    for family in [
        "reconciliations",
        "incidents_opened",
        "mitigations",
        "notifications",
    ] {
        assert_eq!(
            b.counter(family),
            0.0,
            "the follower does nothing: {family}"
        );
    }
    // kube-incident's Events only: a real cluster's scheduler and
    // controllers publish theirs in the same namespace.
    for e in events(client, &ns)
        .await
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some(kube_incident::api::FIELD_MANAGER))
    {
        assert_eq!(
            e.reporting_instance.as_deref(),
            Some("op-a"),
            "only the leader publishes events: {e:?}"
        );
    }
    let a_metrics = a.handle.metrics.clone();
    let a_opened = counter(&a_metrics, "incidents_opened");
    assert_eq!(a_opened, 1.0);

    // Kill the leader (no release) and break another workload meanwhile.
    let killed_at = Instant::now();
    a.kill();
    broken_deployment(client, &ns, "payments").await;
    wait_holder(client, &ns, "op-b", Duration::from_secs(30))
        .await
        .expect("the follower takes over once the lease expires");
    // Informational only (no timing is asserted): the follower takes over
    // one lease duration after it last saw a renewal.
    println!(
        "failover after {:?} (lease duration {LEASE_DURATION:?}, retry {RETRY:?})",
        killed_at.elapsed()
    );

    let list = wait_opened(client, &ns, 2).await;
    assert_eq!(list.len(), 2, "one incident per broken workload: {list:#?}");
    // Give the new leader time to reconcile both incidents repeatedly.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_duplicates(client, &ns).await;
    assert_eq!(
        counter(&a_metrics, "incidents_opened") + b.counter("incidents_opened"),
        2.0,
        "each incident opened exactly once across both instances"
    );
    assert!(
        b.counter("reconciliations") > 0.0,
        "the new leader reconciles"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops_acting_at_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = &cluster.client;
    let ns = cluster.namespace("leader-lost").await;
    let a = Instance::start(&cluster.operator_client, &ns, "op-a", "2s").await;
    wait_holder(client, &ns, "op-a", Duration::from_secs(10))
        .await
        .expect("the instance takes the lease");

    // Another party takes the lease (as if this instance had been paused
    // past its lease) and keeps renewing it.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let stealing = Arc::new(AtomicBool::new(true));
    let thief = {
        let leases = leases.clone();
        let stealing = stealing.clone();
        tokio::spawn(async move {
            while stealing.load(Ordering::SeqCst) {
                if let Ok(mut lease) = leases.get(LEASE).await {
                    let mut spec = lease.spec.clone().unwrap_or_default();
                    spec.holder_identity = Some("intruder".into());
                    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                    lease.spec = Some(spec);
                    let _ = leases.replace(LEASE, &PostParams::default(), &lease).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    wait_for(Duration::from_secs(5), || async {
        (lease_holder(client, &ns, LEASE).await.as_deref() == Some("intruder")).then_some(())
    })
    .await
    .expect("the lease is taken");
    // Within one retry period (plus a write race) the old leader knows.
    tokio::time::sleep(RETRY * 3).await;
    let reconciled = a.counter("reconciliations");
    broken_deployment(client, &ns, "checkout").await;
    // Long enough for the detector to have opened an incident if it could.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        incidents(client, &ns).await.is_empty(),
        "an instance without the lease opens nothing"
    );
    assert_eq!(
        a.counter("reconciliations"),
        reconciled,
        "and reconciles nothing"
    );
    assert_eq!(a.counter("incidents_opened"), 0.0);

    // The intruder goes away without releasing: the instance takes over
    // after a lease duration and acts on what broke meanwhile.
    stealing.store(false, Ordering::SeqCst);
    thief.await.expect("thief task");
    wait_holder(client, &ns, "op-a", Duration::from_secs(10))
        .await
        .expect("the instance takes the lease back");
    let list = wait_opened(client, &ns, 1).await;
    assert_eq!(list.len(), 1);
    assert_no_duplicates(client, &ns).await;
    let lease = leases.get(LEASE).await.expect("lease");
    let spec = lease.spec.expect("lease spec");
    assert!(
        spec.lease_transitions.unwrap_or(0) >= 1,
        "taking the lease over counts a transition: {spec:?}"
    );
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    a.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_releases_the_lease_for_an_immediate_handover() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let client = &cluster.client;
    let ns = cluster.namespace("leader-release").await;
    // A long lease: only a release can explain a quick handover.
    let a = Instance::start(&cluster.operator_client, &ns, "op-a", "30s").await;
    wait_holder(client, &ns, "op-a", Duration::from_secs(10))
        .await
        .expect("the first instance takes the lease");
    let b = Instance::start(&cluster.operator_client, &ns, "op-b", "30s").await;
    tokio::time::sleep(RETRY * 3).await;
    assert!(lease_holder(client, &ns, LEASE)
        .await
        .is_some_and(|h| h.starts_with("op-a_")));

    a.stop().await;
    // Released on the way out: the Lease no longer names op-a the moment
    // stop returns (no timing: an expiry would still name it for 30 s).
    assert!(
        !lease_holder(client, &ns, LEASE)
            .await
            .is_some_and(|h| h.starts_with("op-a_")),
        "the stopped instance released the lease"
    );
    wait_holder(client, &ns, "op-b", Duration::from_secs(20))
        .await
        .expect("the follower takes the released lease before it would expire");
    b.stop().await;
    assert_eq!(
        lease_holder(client, &ns, LEASE).await,
        None,
        "the last instance releases the lease too"
    );
}

/// One API request the operator made: (namespace or "" for cluster-wide,
/// group, resource[/subresource], verb).
type Call = (String, String, String, String);

/// A byte-level HTTP/1.1 proxy in front of the emulator that records every
/// request line (the operator's real traffic, watches included).
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let log: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let upstream = upstream.trim_start_matches("http://").to_string();
    let record = log.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut ro, &mut wi).await;
                });
                let mut buf: Vec<u8> = Vec::new();
                let mut chunk = [0u8; 16384];
                loop {
                    // Forward every complete request in the buffer.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let mut lines = head.lines();
                        let mut first = lines.next().unwrap_or_default().split(' ');
                        let (method, target) = (
                            first.next().unwrap_or_default().to_string(),
                            first.next().unwrap_or_default().to_string(),
                        );
                        let mut len = 0usize;
                        for l in lines {
                            let lower = l.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            assert!(
                                !lower.starts_with("transfer-encoding: chunked"),
                                "the proxy cannot frame chunked requests"
                            );
                        }
                        if buf.len() < end + 4 + len {
                            break;
                        }
                        let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
                        record.lock().expect("log lock").push((method, target));
                        if wo.write_all(&request).await.is_err() {
                            return;
                        }
                    }
                    match ri.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), log)
}

/// Map a request to the RBAC terms it needs (None: discovery, allowed to all).
fn call_of(method: &str, target: &str) -> Option<Call> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        _ => (String::new(), rest),
    };
    let (resource, named) = match rest {
        [] => return None,
        [r] => (r.to_string(), false),
        [r, _name] => (r.to_string(), true),
        [r, _name, sub] => (format!("{r}/{sub}"), true),
        _ => panic!("unexpected API path {path}"),
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => panic!("unexpected method {m}"),
    };
    Some((ns, group.to_string(), resource, verb.to_string()))
}

fn granted(lists: &[&[kube_incident::rbac::Permission]], c: &Call) -> bool {
    lists
        .iter()
        .flat_map(|l| l.iter())
        .any(|p| p.group == c.1 && p.resource == c.2 && p.verbs.contains(&c.3.as_str()))
}

/// Run a scenario through the recording proxy: a workload breaks, an
/// incident opens and is acknowledged, a Runbook in the operator's
/// namespace gets its status, leadership is held and released.
///
/// Emulator-only: the recording proxy sits in front of the emulator. On a
/// real back end the API server's RBAC is the proof: every scenario there
/// runs as the least-privilege user and a forbidden call fails the test.
async fn traffic(cluster_wide: bool) -> Option<(Vec<Call>, String, String)> {
    use kube_incident::api::Runbook;
    let cluster = Cluster::with_crds(true).await?;
    let emulator = cluster.emulator_only("every_api_call_the_operator_makes_is_granted")?;
    let watched = cluster.namespace("rbac-app").await;
    let own = cluster.namespace("rbac-op").await;
    let (url, log) = recording_proxy(emulator.url()).await;
    let config = kube::Config::new(url.parse().expect("proxy url"));
    let client = Client::try_from(config).expect("client through the proxy");
    let runbook: Runbook = serde_json::from_value(serde_json::json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "everything", "namespace": own},
        "spec": {
            "selector": {"matchLabels": {"app": "checkout"}},
            "namespaceSelector": {},
            "triggers": [{"type": "CrashLoopBackOff"}],
            "severity": {"default": "SEV3"},
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}]
        }
    }))
    .expect("runbook");
    Api::<Runbook>::namespaced(cluster.client.clone(), &own)
        .create(&PostParams::default(), &runbook)
        .await
        .expect("runbook created");
    let mut args = vec![
        "--instance",
        "op-a",
        "--operator-namespace",
        &own,
        "--leader-elect",
        "--lease-name",
        LEASE,
        "--lease-duration",
        "2s",
        "--lease-renew-deadline",
        "1500ms",
        "--lease-retry-period",
        "200ms",
    ];
    if !cluster_wide {
        args.extend(["--namespaces", &watched]);
    }
    let op = Instance::start_with(&client, &args).await;
    wait_for(Duration::from_secs(10), || async {
        lease_holder(&cluster.client, &own, LEASE)
            .await
            .filter(|h| h.starts_with("op-a_"))
    })
    .await
    .expect("leads");
    broken_deployment(&cluster.client, &watched, "checkout").await;
    let list = wait_opened(&cluster.client, &watched, 1).await;
    let name = list[0].metadata.name.clone().expect("name");
    Api::<Incident>::namespaced(cluster.client.clone(), &watched)
        .patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"acknowledgedBy": "alice"}})),
        )
        .await
        .expect("acknowledge");
    wait_for(WAIT, || async {
        let i = Api::<Incident>::namespaced(cluster.client.clone(), &watched)
            .get(&name)
            .await
            .ok()?;
        i.status?.acknowledged_at.map(|_| ())
    })
    .await
    .expect("acknowledged");
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.stop().await;
    let calls = log
        .lock()
        .expect("log")
        .iter()
        .filter_map(|(m, t)| call_of(m, t))
        .collect();
    Some((calls, watched, own))
}

#[tokio::test]
async fn every_api_call_the_operator_makes_is_granted_cluster_wide() {
    use kube_incident::rbac::{CLUSTER, LEADER_ELECTION, NAMESPACED};
    let Some((calls, _, own)) = traffic(true).await else {
        return;
    };
    let used: std::collections::BTreeSet<Call> = calls.into_iter().collect();
    for c in &used {
        let lists: &[&[_]] = if c.0 == own && c.1 == "coordination.k8s.io" {
            &[LEADER_ELECTION]
        } else {
            &[NAMESPACED, CLUSTER]
        };
        assert!(
            granted(lists, c),
            "the operator calls {c:?}, which the chart does not grant"
        );
    }
    println!("cluster-wide: {} distinct calls: {used:#?}", used.len());
    // The scenario exercised the core of the list (not a vacuous check).
    for (g, r, v) in [
        ("kubeincident.io", "incidents", "create"),
        ("kubeincident.io", "incidents/status", "patch"),
        ("kubeincident.io", "runbooks/status", "patch"),
        ("", "pods", "watch"),
        ("", "namespaces", "watch"),
        ("events.k8s.io", "events", "create"),
        ("coordination.k8s.io", "leases", "update"),
    ] {
        assert!(
            used.iter().any(|c| c.1 == g && c.2 == r && c.3 == v),
            "the scenario should have used {g}/{r} {v}"
        );
    }
}

#[tokio::test]
async fn every_api_call_the_operator_makes_is_granted_namespaced() {
    use kube_incident::rbac::{LEADER_ELECTION, NAMESPACED, OPERATOR_RUNBOOKS, POLICY_READ};
    let Some((calls, watched, own)) = traffic(false).await else {
        return;
    };
    let used: std::collections::BTreeSet<Call> = calls.into_iter().collect();
    for c in &used {
        let ok = if c.0 == watched {
            granted(&[NAMESPACED], c)
        } else if c.0 == own {
            granted(&[LEADER_ELECTION, OPERATOR_RUNBOOKS], c)
        } else {
            // Namespaced mode's one cluster-wide permission: reading the
            // admission policies (is an approval verified?).
            c.0.is_empty() && granted(&[POLICY_READ], c)
        };
        assert!(
            ok,
            "namespaced mode calls {c:?}, which its Roles do not grant"
        );
    }
    println!("namespaced: {} distinct calls: {used:#?}", used.len());
    assert!(used
        .iter()
        .any(|c| c.0 == own && c.2 == "runbooks/status" && c.3 == "patch"));
}

/// Successful writes of Deployments in `ns` by kube-incident (mitigations):
/// the emulator's write log or the real API server's audit log.
fn deployment_writes(cluster: &Cluster, ns: &str) -> usize {
    cluster
        .writes(ns, "deployments")
        .expect("writes are counted (emulator write log or audit log)")
}

#[tokio::test]
async fn failover_after_a_mitigation_does_not_run_it_again() {
    use kube_incident::api::{Runbook, StepState};
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = &cluster.client;
    let ns = cluster.namespace("leader-act").await;
    let rb: Runbook = serde_json::from_value(serde_json::json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": "checkout", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "checkout"}},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 2}],
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}],
            "monitoring": {"window": "3s"}
        }
    }))
    .expect("runbook");
    Api::<Runbook>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &rb)
        .await
        .expect("runbook created");
    let a = Instance::start(&cluster.operator_client, &ns, "op-a", "2s").await;
    wait_holder(client, &ns, "op-a", Duration::from_secs(10))
        .await
        .expect("the first instance leads");
    let b = Instance::start(&cluster.operator_client, &ns, "op-b", "2s").await;

    broken_deployment(client, &ns, "checkout").await;
    let done = wait_for(WAIT, || async {
        let list = incidents(client, &ns).await;
        let s = list.first()?.status.clone()?;
        (s.mitigations.first()?.state == StepState::Succeeded).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "the leader rolls back: {:#?}",
        incidents(client, &ns).await
    );
    let writes_before = deployment_writes(&cluster, &ns);
    assert!(writes_before >= 1, "the rollback wrote the Deployment");
    assert_eq!(b.counter("mitigations"), 0.0, "the follower ran nothing");
    let a_metrics = a.handle.metrics.clone();

    a.kill();
    wait_holder(client, &ns, "op-b", Duration::from_secs(10))
        .await
        .expect("the follower takes over");
    // The new leader reconciles the incident (recovery, monitoring) for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        b.counter("reconciliations") > 0.0,
        "the new leader reconciles"
    );
    assert_eq!(
        b.counter("mitigations"),
        0.0,
        "the new leader does not run the finished step again"
    );
    assert_eq!(
        deployment_writes(&cluster, &ns),
        writes_before,
        "no further write of the Deployment after the failover"
    );
    assert_eq!(
        counter_where(&a_metrics, "mitigations", "result=\"applied\""),
        1.0,
        "applied exactly once"
    );
    assert_no_duplicates(client, &ns).await;
    b.stop().await;
}

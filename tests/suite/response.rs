//! The response around the action: notifications (exactly counted under
//! restarts and retries, secrets never leaked), escalation, evidence and
//! the post-mortem, end to end against the emulated API server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::CreateGranted;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_incident::api::{DeliveryState, Incident, IncidentStatus};
use serde_json::{json, Value};

use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::fixtures::healthy_deployment;
use testkit::incidents::{create_runbook, events_for, incident, wait_incident};

const WAIT: Duration = Duration::from_secs(30);
/// Part of every sink URL: must never show up outside the Secret.
const SECRET_TOKEN: &str = "T0P-SECRET-hook-token-9f2c";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub sink: String,
    pub key: String,
    pub body: Value,
}

/// A local HTTP receiver for notifications: `/hook/{sink}/{token}`.
/// `fail_first[sink]` requests to a sink answer 503 before it accepts.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub fail_first: Arc<Mutex<BTreeMap<String, usize>>>,
    pub attempts: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        async fn hook(
            State(r): State<Receiver>,
            Path((sink, _token)): Path<(String, String)>,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            let n = {
                let mut a = r.attempts.lock().unwrap();
                let n = a.entry(sink.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let fail = r
                .fail_first
                .lock()
                .unwrap()
                .get(&sink)
                .copied()
                .unwrap_or(0);
            if n <= fail {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = serde_json::from_str(&body).unwrap_or(Value::Null);
            r.got.lock().unwrap().push(Received { sink, key, body });
            StatusCode::OK
        }
        let app = Router::new()
            .route("/hook/{sink}/{token}", post(hook))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (r, format!("http://{addr}"))
    }

    pub fn for_sink(&self, sink: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.sink == sink)
            .cloned()
            .collect()
    }

    /// `event` of each webhook body, or the Slack `text`, in arrival order.
    pub fn events(&self, sink: &str) -> Vec<String> {
        self.for_sink(sink)
            .iter()
            .map(|r| {
                r.body["event"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| r.body["text"].as_str().unwrap_or("?").to_string())
            })
            .collect()
    }
}

pub async fn secret(client: &Client, ns: &str, name: &str, url: &str) {
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": url},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

pub async fn declare(client: &Client, ns: &str, name: &str, extra: Value) {
    let mut spec = json!({
        "title": "checkout is down",
        "severity": "SEV2",
        "runbookRef": {"name": "team"},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    Api::<Incident>::namespaced(client.clone(), ns)
        .create_granted(&PostParams::default(), &incident(name, spec))
        .await
        .unwrap();
}

pub async fn patch_spec(client: &Client, ns: &str, name: &str, spec: Value) {
    Api::<Incident>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// [`wait_incident`] for Incident `name` in `ns`, for at most [`WAIT`].
pub async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    pred: impl Fn(&IncidentStatus) -> bool,
) -> Incident {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    wait_incident(&api, name, WAIT, what, pred).await
}

async fn wait_received(r: &Receiver, sink: &str, n: usize) {
    let ok = wait_for(WAIT, || async {
        (r.for_sink(sink).len() >= n).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "sink {sink}: expected {n} messages, got {:?}",
        r.events(sink)
    );
}

/// Everything a user can see about an Incident, as one string.
async fn visible(client: &Client, ns: &str, name: &str) -> String {
    let inc = Api::<Incident>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    let events = events_for(client, ns, name).await;
    format!(
        "{}\n{}",
        serde_json::to_string(&inc).unwrap()
            + &serde_json::to_string(&inc.status.as_ref().map(|s| &s.notifications)).unwrap(),
        serde_json::to_string(&events).unwrap()
    )
}

fn sinks_spec(base: &str) -> Value {
    let _ = base;
    json!({
        "selector": {"matchLabels": {"app": "nothing-here"}},
        "notify": [
            {"name": "team-slack", "format": "Slack", "urlSecretRef": {"name": "slack", "key": "url"}},
            {"name": "team-hook", "format": "Webhook", "urlSecretRef": {"name": "hook", "key": "url"}},
        ],
    })
}

/// Captures the operator's log lines (this test's thread only: the test
/// runtime is single-threaded, so the operator's tasks log here).
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn notifications_are_sent_exactly_once_across_restarts() {
    let logs = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("notify").await;
    let (recv, base) = Receiver::start().await;
    // The webhook sink answers 503 twice before accepting: retried.
    recv.fail_first
        .lock()
        .unwrap()
        .insert("team-hook".into(), 2);
    secret(
        &client,
        &ns,
        "slack",
        &format!("{base}/hook/team-slack/{SECRET_TOKEN}"),
    )
    .await;
    secret(
        &client,
        &ns,
        "hook",
        &format!("{base}/hook/team-hook/{SECRET_TOKEN}"),
    )
    .await;
    create_runbook(&client, &ns, "team", sinks_spec(&base)).await;
    let flags = ["--notify-backoff", "10ms", "--notify-max-attempts", "4"];
    let op = RunningOperator::start(&cluster.operator_client, &ns, &flags).await;
    declare(&client, &ns, "inc-a", json!({})).await;
    wait_received(&recv, "team-slack", 1).await;
    wait_received(&recv, "team-hook", 1).await;
    let inc = wait_status(&client, &ns, "inc-a", "both delivered", |s| {
        s.notifications.len() == 2
            && s.notifications
                .iter()
                .all(|r| r.state == DeliveryState::Sent)
    })
    .await;
    let hook = inc
        .status
        .as_ref()
        .unwrap()
        .notifications
        .iter()
        .find(|r| r.sink == "team-hook")
        .cloned()
        .unwrap();
    assert_eq!(hook.attempts, 3, "two 503s, then accepted: {hook:?}");

    // Restart: nothing is sent again.
    op.stop().await.unwrap();
    let op = RunningOperator::start(&cluster.operator_client, &ns, &flags).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recv.for_sink("team-slack").len(),
        1,
        "{:?}",
        recv.events("team-slack")
    );
    assert_eq!(recv.for_sink("team-hook").len(), 1);

    // Acknowledge, then resolve: one message each per sink.
    patch_spec(&client, &ns, "inc-a", json!({"acknowledgedBy": "alice"})).await;
    wait_received(&recv, "team-hook", 2).await;
    // A second operator (no leader election: a stand-in for a replica that
    // restarts mid-flight) sees the same records and sends nothing new.
    op.stop().await.unwrap();
    let op = RunningOperator::start(&cluster.operator_client, &ns, &flags).await;
    patch_spec(
        &client,
        &ns,
        "inc-a",
        json!({"resolution": {"by": "alice", "summary": "restarted the pods"}}),
    )
    .await;
    wait_received(&recv, "team-hook", 3).await;
    wait_received(&recv, "team-slack", 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    op.stop().await.unwrap();

    assert_eq!(
        recv.events("team-hook"),
        vec!["Declared", "Acknowledged", "Resolved"]
    );
    let slack = recv.events("team-slack");
    assert_eq!(slack.len(), 3, "{slack:?}");
    assert!(slack[0].contains("SEV2 incident declared"), "{slack:?}");
    assert!(slack[1].contains("acknowledged"), "{slack:?}");
    assert!(slack[2].contains("resolved"), "{slack:?}");
    // Distinct idempotency keys, webhook schema version.
    let mut keys: Vec<String> = recv
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6);
    for r in recv.for_sink("team-hook") {
        assert_eq!(r.body["apiVersion"], "notifications.kubeincident.io/v1");
        assert_eq!(r.body["incident"]["name"], "inc-a");
    }
    // The secret never shows up in status or Events.
    let seen = visible(&client, &ns, "inc-a").await;
    assert!(!seen.contains(SECRET_TOKEN), "secret leaked: {seen}");
    assert!(!seen.contains(&base), "sink URL leaked: {seen}");
    // Nor in the operator's log (which did record the deliveries).
    let log = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    assert!(log.contains("notification sent"), "log capture works");
    assert!(!log.contains(SECRET_TOKEN), "secret leaked into the log");
}

#[tokio::test]
async fn a_failing_sink_shows_in_a_condition_and_an_event_and_never_blocks() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("notify-fail").await;
    let (recv, base) = Receiver::start().await;
    recv.fail_first
        .lock()
        .unwrap()
        .insert("team-hook".into(), usize::MAX);
    secret(
        &client,
        &ns,
        "slack",
        &format!("{base}/hook/team-slack/{SECRET_TOKEN}"),
    )
    .await;
    secret(
        &client,
        &ns,
        "hook",
        &format!("{base}/hook/team-hook/{SECRET_TOKEN}"),
    )
    .await;
    create_runbook(&client, &ns, "team", sinks_spec(&base)).await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--notify-backoff", "10ms", "--notify-max-attempts", "2"],
    )
    .await;
    declare(&client, &ns, "inc-b", json!({})).await;
    let inc = wait_status(&client, &ns, "inc-b", "NotificationFailed", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "NotificationFailed" && c.status == "True")
    })
    .await;
    let s = inc.status.unwrap();
    let failed = s
        .notifications
        .iter()
        .find(|r| r.sink == "team-hook")
        .unwrap();
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.attempts, 2);
    assert!(failed.message.contains("HTTP 503"), "{failed:?}");
    // The other sink got its message; the lifecycle went on.
    assert_eq!(recv.for_sink("team-slack").len(), 1);
    assert_eq!(recv.attempts.lock().unwrap().get("team-hook"), Some(&2));
    patch_spec(&client, &ns, "inc-b", json!({"acknowledgedBy": "bob"})).await;
    wait_status(&client, &ns, "inc-b", "acknowledged", |s| {
        s.acknowledged_at.is_some()
    })
    .await;
    let ev = wait_for(WAIT, || async {
        events_for(&client, &ns, "inc-b")
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("NotificationFailed"))
    })
    .await
    .expect("a NotificationFailed event");
    let note = ev.note.unwrap_or_default();
    assert!(note.contains("team-hook"), "{note}");

    // The acknowledgement reached Slack before its secret goes.
    wait_for(WAIT, || async {
        (recv.for_sink("team-slack").len() == 2).then_some(())
    })
    .await
    .expect("the acknowledgement is sent to Slack");
    // A missing secret is a clear failure, not a crash.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .delete("slack", &Default::default())
        .await
        .unwrap();
    patch_spec(
        &client,
        &ns,
        "inc-b",
        json!({"resolution": {"by": "bob", "summary": "done"}}),
    )
    .await;
    let inc = wait_status(&client, &ns, "inc-b", "resolved record", |s| {
        s.notifications.iter().any(|r| {
            r.sink == "team-slack"
                && r.id.starts_with("resolved")
                && r.state == DeliveryState::Failed
        })
    })
    .await;
    let r = inc
        .status
        .unwrap()
        .notifications
        .into_iter()
        .find(|r| r.sink == "team-slack" && r.id.starts_with("resolved"))
        .unwrap();
    assert!(r.message.contains("secret \"slack\""), "{r:?}");
    assert!(r.message.contains("not found"), "{r:?}");
    // Counted with bounded labels (format, result).
    let metrics = reqwest::get(format!("{}/metrics", op.metrics_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        // declared, acknowledged, resolved: 2 attempts each to the 503 sink
        "kube_incident_notifications_total{format=\"Webhook\",result=\"retried\"} 3",
        "kube_incident_notifications_total{format=\"Webhook\",result=\"failed\"} 3",
        "kube_incident_notifications_total{format=\"Slack\",result=\"sent\"} 2",
        // resolved: its secret was deleted
        "kube_incident_notifications_total{format=\"Slack\",result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    assert!(
        !metrics.contains(&ns),
        "a namespace leaked into a metric label"
    );
    op.stop().await.unwrap();
    let seen = visible(&client, &ns, "inc-b").await;
    assert!(!seen.contains(SECRET_TOKEN), "secret leaked: {seen}");
    assert!(!seen.contains(&base), "sink URL leaked: {seen}");
}

#[tokio::test]
async fn missed_response_deadline_escalates_on_timers_until_acknowledged() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("escalate").await;
    let (recv, base) = Receiver::start().await;
    for sink in ["team-hook", "pager", "manager"] {
        secret(
            &client,
            &ns,
            sink,
            &format!("{base}/hook/{sink}/{SECRET_TOKEN}"),
        )
        .await;
    }
    create_runbook(
        &client,
        &ns, "team",
        json!({
            "selector": {"matchLabels": {"app": "nothing-here"}},
            "notify": [
                {"name": "team-hook", "format": "Webhook", "urlSecretRef": {"name": "team-hook", "key": "url"}},
                {"name": "pager", "format": "Webhook", "urlSecretRef": {"name": "pager", "key": "url"}},
                {"name": "manager", "format": "Webhook", "urlSecretRef": {"name": "manager", "key": "url"}},
            ],
            "escalation": [
                {"after": "1s", "notify": ["pager"]},
                {"after": "1h", "notify": ["manager"]},
            ],
        }),
    )
    .await;
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--response-target", "SEV2=2s"],
    )
    .await;
    declare(&client, &ns, "inc-e", json!({})).await;
    let inc = wait_status(&client, &ns, "inc-e", "escalation level 1", |s| {
        s.escalation.as_ref().is_some_and(|e| e.level == 1)
    })
    .await;
    let s = inc.status.unwrap();
    let esc = s.escalation.clone().unwrap();
    assert!(esc.next_at.is_some(), "level 2 is scheduled: {esc:?}");
    assert!(s
        .conditions
        .iter()
        .any(|c| c.type_ == "ResponseOverdue" && c.status == "True"));
    wait_received(&recv, "pager", 1).await;
    assert_eq!(recv.events("pager"), vec!["Escalated"]);
    let team = recv.events("team-hook");
    assert!(team.contains(&"Declared".to_string()), "{team:?}");
    wait_received(&recv, "team-hook", 2).await;
    assert!(recv
        .events("team-hook")
        .contains(&"ResponseOverdue".to_string()));
    assert!(recv.for_sink("manager").is_empty());

    // Acknowledging stops the walk; the level reached stays recorded, and
    // the paged sink hears that someone took it.
    patch_spec(&client, &ns, "inc-e", json!({"acknowledgedBy": "carol"})).await;
    let inc = wait_status(&client, &ns, "inc-e", "escalation stopped", |s| {
        s.escalation
            .as_ref()
            .is_some_and(|e| e.level == 1 && e.next_at.is_none())
    })
    .await;
    assert!(inc
        .status
        .unwrap()
        .timeline
        .iter()
        .any(|e| e.message.contains("escalated to level 1 (pager)")));
    wait_received(&recv, "pager", 2).await;
    assert_eq!(recv.events("pager"), vec!["Escalated", "Acknowledged"]);
    op.stop().await.unwrap();
    assert!(recv.for_sink("manager").is_empty());
}

#[tokio::test]
async fn evidence_at_open_and_postmortem_on_resolve() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("evidence").await;
    healthy_deployment(&client, &ns, "checkout", 3, WAIT).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    crate::detection::set_behavior(
        &client,
        &ns,
        "checkout",
        "crashloop",
        "registry.example/checkout:v2",
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let inc = wait_for(Duration::from_secs(60), || async {
        incidents
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|i| i.status.as_ref().is_some_and(|s| s.evidence_ref.is_some()))
    })
    .await
    .expect("an incident with evidence");
    let name = inc.metadata.name.clone().unwrap();
    let cm_name = inc
        .status
        .as_ref()
        .unwrap()
        .evidence_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    assert_eq!(cm_name, format!("{name}-evidence"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = cms.get(&cm_name).await.unwrap();
    let owner = &cm.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "Incident");
    assert_eq!(Some(&owner.uid), inc.metadata.uid.as_ref());
    let data = cm.data.unwrap();
    let summary = &data["summary.txt"];
    assert!(summary.contains("Deployment"), "{summary}");
    let history = &data["rollout-history.txt"];
    assert!(
        history.contains(&testkit::fixtures::behavior_image(
            "registry.example/checkout:v2",
            "crashloop"
        )),
        "{history}"
    );
    assert!(
        history.contains("registry.example/checkout:v1"),
        "{history}"
    );
    assert!(data.contains_key("events.txt"));
    assert!(
        data.keys().any(|k| k.starts_with("logs.checkout-")),
        "no logs in {:?}\n{summary}",
        data.keys().collect::<Vec<_>>()
    );
    let total: usize = data.values().map(String::len).sum();
    assert!(total <= kube_incident::core::evidence::Caps::default().total_bytes);

    // `kubectl incident describe` summarizes it and says how to read the rest.
    let dir = std::env::temp_dir().join(format!(
        "kube-incident-evidence-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    cluster.write_kubeconfig(&kubeconfig);
    let kubectl_incident = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-incident"))
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .output()
                .await
                .expect("run kubectl-incident");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        }
    };
    let described = kubectl_incident(vec![
        "-n".into(),
        ns.clone(),
        "describe".into(),
        name.clone(),
    ])
    .await;
    assert!(described.contains("Evidence summary:"), "{described}");
    assert!(
        described.contains(&format!("Evidence for Deployment {ns}/checkout")),
        "{described}"
    );
    assert!(
        described.contains(&format!("kubectl get configmap {cm_name} -n {ns}")),
        "{described}"
    );

    // The workload recovers; resolve by hand: the post-mortem draft is written.
    crate::detection::set_behavior(
        &client,
        &ns,
        "checkout",
        "healthy",
        "registry.example/checkout:v3",
    )
    .await;
    wait_for(WAIT, || async {
        let d = deployments.get("checkout").await.ok()?;
        let s = d.status?;
        (s.available_replicas? == 3 && s.updated_replicas? == 3).then_some(())
    })
    .await
    .expect("deployment recovers");
    patch_spec(
        &client,
        &ns,
        &name,
        json!({"rootCause": "v2 crashes at start", "resolution": {"by": "alice", "summary": "rolled back"}}),
    )
    .await;
    let inc = wait_status(&client, &ns, &name, "postmortemRef", |s| {
        s.postmortem_ref.is_some()
    })
    .await;
    let pm_name = inc.status.unwrap().postmortem_ref.unwrap().name;
    assert_eq!(pm_name, format!("{name}-postmortem"));
    // Rendered from the latest spec (the root cause may come after resolution).
    let md = wait_for(WAIT, || async {
        let pm = cms.get(&pm_name).await.ok()?;
        let md = pm.data?.get("postmortem.md")?.clone();
        md.contains("v2 crashes at start").then_some(md)
    })
    .await
    .unwrap_or_else(|| panic!("post-mortem never showed the root cause"));
    let md = &md;
    assert!(md.starts_with("# Post-mortem (draft): "), "{md}");
    assert!(md.contains("v2 crashes at start"), "{md}");
    assert!(
        md.contains("Resolved by alice: rolled back")
            || md.contains("resolved by alice: rolled back"),
        "{md}"
    );
    assert!(
        md.contains("| Time to resolve | opened → resolved |"),
        "{md}"
    );
    assert!(md.contains("| Resolved |"), "{md}");
    let printed = kubectl_incident(vec![
        "-n".into(),
        ns.clone(),
        "postmortem".into(),
        name.clone(),
    ])
    .await;
    assert!(printed.contains("v2 crashes at start"), "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
    op.stop().await.unwrap();
}

#[tokio::test]
async fn alertmanager_opens_updates_and_resolves_incidents() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("am").await;
    let token = "am-bearer-5b1e0c";
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "am-token"},
        "stringData": {"token": token},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    let secret_ref = format!("{ns}/am-token");
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &[
            "--alertmanager-token-secret",
            &secret_ref,
            "--detect",
            "false",
        ],
    )
    .await;
    let url = format!("{}/alertmanager", op.metrics_url());
    let http = reqwest::Client::new();
    let payload = |status: &str, alert_status: &str, severity: &str, ns: &str| {
        json!({
            "version": "4",
            "groupKey": "{}/{}:{alertname=\"CheckoutErrors\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "kube-incident",
            "groupLabels": {"alertname": "CheckoutErrors"},
            "commonLabels": {"alertname": "CheckoutErrors", "namespace": ns},
            "commonAnnotations": {"summary": "checkout 5xx ratio above 5%"},
            "externalURL": "http://alertmanager.monitoring:9093",
            "alerts": [{
                "status": alert_status,
                "labels": {"alertname": "CheckoutErrors", "namespace": ns, "deployment": "checkout", "severity": severity},
                "annotations": {"summary": "checkout 5xx ratio above 5%"},
                "startsAt": "2026-11-22T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": "0123abcd"
            }]
        })
    };
    let post = |body: String, auth: Option<String>| {
        let mut r = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let bearer = Some(format!("Bearer {token}"));
    let firing = payload("firing", "firing", "warning", &ns).to_string();
    // Unauthenticated and malformed requests change nothing.
    assert_eq!(post(firing.clone(), None).await.unwrap().status(), 401);
    assert_eq!(
        post(firing.clone(), Some("Bearer wrong".into()))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post("{not json".into(), bearer.clone())
            .await
            .unwrap()
            .status(),
        400
    );
    let mut v3 = payload("firing", "firing", "warning", &ns);
    v3["version"] = json!("3");
    assert_eq!(
        post(v3.to_string(), bearer.clone()).await.unwrap().status(),
        400
    );
    let other = payload("firing", "firing", "warning", "not-watched").to_string();
    assert_eq!(post(other, bearer.clone()).await.unwrap().status(), 422);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    assert!(incidents
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // Firing opens one Incident; a repeat and a rise update the same one.
    let r = post(firing.clone(), bearer.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(
        post(firing.clone(), bearer.clone()).await.unwrap().status(),
        200
    );
    let critical = payload("firing", "firing", "critical", &ns).to_string();
    assert_eq!(post(critical, bearer.clone()).await.unwrap().status(), 200);
    let list = incidents.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1, "{list:#?}");
    let inc = &list[0];
    let name = inc.metadata.name.clone().unwrap();
    assert!(name.starts_with("am-"), "{name}");
    assert_eq!(
        inc.spec.source,
        kube_incident::api::IncidentSource::Alertmanager
    );
    assert_eq!(inc.spec.severity, kube_incident::api::Severity::SEV1);
    assert_eq!(inc.spec.target.as_ref().unwrap().name, "checkout");
    assert_eq!(
        inc.spec.title,
        "CheckoutErrors: checkout 5xx ratio above 5%"
    );

    // Resolved: the Incident resolves.
    let resolved = payload("resolved", "resolved", "critical", &ns).to_string();
    assert_eq!(post(resolved, bearer.clone()).await.unwrap().status(), 200);
    let inc = wait_status(&client, &ns, &name, "resolved", |s| s.resolved_at.is_some()).await;
    assert_eq!(inc.spec.resolution.unwrap().by, "alertmanager");
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_delivery_cut_short_is_marked_unknown_and_never_resent() {
    let Some(cluster) = Cluster::with_crds(false).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("notify-cut").await;
    let (recv, base) = Receiver::start().await;
    secret(
        &client,
        &ns,
        "slack",
        &format!("{base}/hook/team-slack/{SECRET_TOKEN}"),
    )
    .await;
    secret(
        &client,
        &ns,
        "hook",
        &format!("{base}/hook/team-hook/{SECRET_TOKEN}"),
    )
    .await;
    create_runbook(&client, &ns, "team", sinks_spec(&base)).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    declare(&client, &ns, "inc-c", json!({})).await;
    wait_status(&client, &ns, "inc-c", "declared delivered", |s| {
        s.notifications.len() == 2
            && s.notifications
                .iter()
                .all(|r| r.state == DeliveryState::Sent)
    })
    .await;
    // As if an operator had claimed the Acknowledged message to team-hook
    // three minutes ago and died before recording the outcome.
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let raw: Value = serde_json::to_value(
        incidents
            .get("inc-c")
            .await
            .unwrap()
            .status
            .unwrap()
            .notifications,
    )
    .unwrap();
    let mut records = raw.as_array().unwrap().clone();
    let claimed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(180);
    records.push(json!({
        "id": "acknowledged.o1.team-hook", "sink": "team-hook", "event": "Acknowledged",
        "state": "Sending", "attempts": 1,
        "claimedAt": claimed.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }));
    incidents
        .patch_status(
            "inc-c",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"notifications": records}})),
        )
        .await
        .unwrap();
    patch_spec(&client, &ns, "inc-c", json!({"acknowledgedBy": "dana"})).await;
    let inc = wait_status(&client, &ns, "inc-c", "cut delivery marked Unknown", |s| {
        s.notifications
            .iter()
            .any(|r| r.id == "acknowledged.o1.team-hook" && r.state == DeliveryState::Unknown)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "NotificationFailed" && c.status == "True")
    })
    .await;
    wait_received(&recv, "team-slack", 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.stop().await.unwrap();
    assert_eq!(recv.events("team-hook"), vec!["Declared"], "never resent");
    // Read again: the acknowledgement's Slack record may have been stored
    // after the status seen above.
    let _ = inc;
    let s = wait_status(&client, &ns, "inc-c", "four records", |s| {
        s.notifications.len() >= 4
    })
    .await
    .status
    .unwrap();
    assert_eq!(s.notifications.len(), 4, "{:#?}", s.notifications);
}

#[tokio::test]
async fn the_whole_loop_notifies_each_transition_once() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let client = cluster.client.clone();
    let ns = cluster.namespace("loop").await;
    let (recv, base) = Receiver::start().await;
    secret(
        &client,
        &ns,
        "hook",
        &format!("{base}/hook/team-hook/{SECRET_TOKEN}"),
    )
    .await;
    create_runbook(
        &client,
        &ns,
        "checkout",
        json!({
            "selector": {"matchLabels": {"app": "checkout"}},
            "triggers": [{"type": "CrashLoopBackOff", "minRestarts": 2}],
            "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Manual"}],
            "monitoring": {"window": "5s"},
            "notify": [{"name": "team-hook", "format": "Webhook", "urlSecretRef": {"name": "hook", "key": "url"}}],
        }),
    )
    .await;
    healthy_deployment(&client, &ns, "checkout", 2, WAIT).await;
    let op = RunningOperator::start(&cluster.operator_client, &ns, &[]).await;
    crate::detection::set_behavior(
        &client,
        &ns,
        "checkout",
        "crashloop",
        "registry.example/checkout:v2",
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let name = wait_for(Duration::from_secs(60), || async {
        incidents
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|i| {
                i.status.as_ref().is_some_and(|s| {
                    s.mitigations
                        .first()
                        .is_some_and(|m| m.state == kube_incident::api::StepState::AwaitingApproval)
                })
            })
            .and_then(|i| i.metadata.name)
    })
    .await
    .expect("an incident awaiting approval");
    wait_received(&recv, "team-hook", 2).await;
    let patch = kube_incident::cli::commands::approve_patch(0, "rollback", "alice");
    incidents
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .unwrap();
    wait_status(&client, &ns, &name, "resolved", |s| s.resolved_at.is_some()).await;
    wait_received(&recv, "team-hook", 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.stop().await.unwrap();
    // Each transition exactly once. The first two are sent in the same
    // reconcile and may arrive in either order (delivery order across
    // transitions of one reconcile is not guaranteed; docs/notifications.md).
    let mut got = recv.events("team-hook");
    got[..2].sort();
    assert_eq!(
        got,
        vec![
            "Declared",
            "MitigationAwaitingApproval",
            "MitigationApplied",
            "Resolved"
        ]
    );
    let applied = &recv.for_sink("team-hook")[2].body;
    assert_eq!(applied["subject"], "rollback");
    assert!(
        applied["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("rolled back"),
        "{applied}"
    );
}

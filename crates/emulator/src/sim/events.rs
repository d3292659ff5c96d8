//! A core/v1 event recorder like client-go's `record.EventRecorder`: events
//! go through a bounded queue to one writer task (dropped when the queue is
//! full, as the real broadcaster does), and an identical repeat (same source,
//! object, type, reason and message) bumps `count` and `lastTimestamp` of the
//! existing Event instead of creating a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::rollout::now_secs;

/// Queue capacity before events are dropped.
pub const QUEUE_CAPACITY: usize = 20_000;

/// One event to record.
#[derive(Debug, Clone)]
pub struct EventReq {
    /// The object the event is about.
    pub object: ObjectReference,
    /// `Normal` / `Warning`.
    pub type_: String,
    /// Reason, e.g. `ScalingReplicaSet`.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Reporting component, e.g. `deployment-controller`, `kubelet`.
    pub component: String,
    /// Reporting host (the node for the kubelet).
    pub host: Option<String>,
}

/// Number of writer tasks; an object's events always go to the same one.
pub const WRITERS: usize = 4;

/// Handle to record events (cheap to clone).
#[derive(Debug, Clone)]
pub struct EventRecorder {
    tx: Vec<mpsc::Sender<Cmd>>,
}

#[derive(Debug)]
enum Cmd {
    Record(Box<EventReq>),
    Forget(String),
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn agg_key(e: &EventReq) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        e.component,
        e.host.as_deref().unwrap_or_default(),
        e.object.uid.as_deref().unwrap_or_default(),
        e.object.field_path.as_deref().unwrap_or_default(),
        e.object.name.as_deref().unwrap_or_default(),
        e.type_,
        e.reason,
        e.message
    )
}

/// Builds the Event object the real recorder would create (name `<object>.<hex nanos>`).
pub fn build_event(e: &EventReq, now: Timestamp) -> Event {
    let nanos = now.as_nanosecond() as u64 + SEQ.fetch_add(1, Ordering::Relaxed);
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                e.object.name.as_deref().unwrap_or("unknown"),
                nanos
            )),
            namespace: Some(
                e.object
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            ..Default::default()
        },
        involved_object: e.object.clone(),
        reason: Some(e.reason.clone()),
        message: Some(e.message.clone()),
        type_: Some(e.type_.clone()),
        count: Some(1),
        first_timestamp: Some(Time(now_secs())),
        last_timestamp: Some(Time(now_secs())),
        source: Some(EventSource {
            component: Some(e.component.clone()),
            host: e.host.clone(),
        }),
        reporting_component: Some(e.component.clone()),
        reporting_instance: Some(e.host.clone().unwrap_or_else(|| e.component.clone())),
        ..Default::default()
    }
}

impl EventRecorder {
    /// Starts the writer tasks; returns the recorder and the task handles.
    pub fn spawn(client: Client) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let mut tx = Vec::with_capacity(WRITERS);
        let mut tasks = Vec::with_capacity(WRITERS);
        for _ in 0..WRITERS {
            let (t, rx) = mpsc::channel(QUEUE_CAPACITY / WRITERS);
            tx.push(t);
            tasks.push(tokio::spawn(writer(client.clone(), rx)));
        }
        (Self { tx }, tasks)
    }

    fn shard(&self, uid: &str) -> &mpsc::Sender<Cmd> {
        let h = ::rollout::hash::fnv32a(uid.as_bytes()) as usize;
        &self.tx[h % self.tx.len()]
    }

    /// Records an event (dropped with a debug log when the queue is full).
    pub fn record(&self, e: EventReq) {
        let uid = e.object.uid.clone().unwrap_or_default();
        if self.shard(&uid).try_send(Cmd::Record(Box::new(e))).is_err() {
            tracing::debug!("event queue full, dropping event");
        }
    }

    /// Forgets the aggregation state of an object (after it was deleted).
    pub fn forget(&self, uid: &str) {
        let _ = self.shard(uid).try_send(Cmd::Forget(uid.to_string()));
    }
}

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    uid: String,
}

async fn writer(client: Client, mut rx: mpsc::Receiver<Cmd>) {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let pp = PostParams {
        field_manager: None,
        ..Default::default()
    };
    while let Some(cmd) = rx.recv().await {
        let e = match cmd {
            Cmd::Record(e) => e,
            Cmd::Forget(uid) => {
                seen.retain(|_, s| s.uid != uid);
                continue;
            }
        };
        let key = agg_key(&e);
        let ns = e
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        if let Some(s) = seen.get_mut(&key) {
            let count = s.count + 1;
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now_secs())});
            let api_s: Api<Event> = Api::namespaced(client.clone(), &s.namespace);
            match api_s
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    s.count = count;
                    continue;
                }
                Err(err) => {
                    tracing::debug!(error = %err, "event count update failed, creating a new event");
                    seen.remove(&key);
                }
            }
        }
        let ev = build_event(&e, Timestamp::now());
        match api.create(&pp, &ev).await {
            Ok(created) => {
                if seen.len() > 100_000 {
                    seen.clear();
                }
                seen.insert(
                    key,
                    Seen {
                        namespace: ns,
                        name: created.metadata.name.unwrap_or_default(),
                        count: 1,
                        uid: e.object.uid.clone().unwrap_or_default(),
                    },
                );
            }
            Err(err) => tracing::debug!(error = %err, reason = %e.reason, "event create failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shape() {
        let req = EventReq {
            object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("ns".into()),
                name: Some("web-1".into()),
                uid: Some("u".into()),
                field_path: Some("spec.containers{app}".into()),
                ..Default::default()
            },
            type_: "Warning".into(),
            reason: "BackOff".into(),
            message: "Back-off restarting failed container app".into(),
            component: "kubelet".into(),
            host: Some("sim-node-1".into()),
        };
        let e = build_event(&req, Timestamp::now());
        assert!(e
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("web-1.")));
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(e.count, Some(1));
        assert_eq!(
            e.source.as_ref().and_then(|s| s.host.as_deref()),
            Some("sim-node-1")
        );
        let mut other = req.clone();
        assert_eq!(agg_key(&req), agg_key(&other));
        other.message.push('!');
        assert_ne!(agg_key(&req), agg_key(&other));
    }
}

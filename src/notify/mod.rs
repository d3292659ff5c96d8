//! Notifications: Slack incoming webhooks and a generic JSON webhook.
//!
//! Delivery protocol (at most once, never twice; see docs/notifications.md):
//!
//! 1. The lifecycle's status (which records the transition) is stored first.
//! 2. The notifier reads the Incident fresh, adds one record per (message,
//!    sink) with a deterministic id and state `Sending`, and stores the
//!    records with a merge patch guarded by `metadata.resourceVersion`
//!    (a conflict re-reads and re-plans; an id already recorded is never
//!    claimed again). Only then is anything sent.
//! 3. Each claimed message is POSTed with `Idempotency-Key: <uid>/<id>`,
//!    retried with exponential backoff and jitter ([`RetryPolicy::backoff`])
//!    on connection errors, HTTP 429 and 5xx (never after a timeout: the
//!    sink may have it).
//! 4. The outcome (`Sent` / `Failed`) is stored the same guarded way. A
//!    record still `Sending` after [`STALE_SENDING`] (the operator stopped
//!    mid-delivery) becomes `Unknown` and is not resent.
//!
//! Sink URLs are read from Secrets at send time and never leave this
//! module: errors are described without them.

pub mod message;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::api::{DeliveryState, Incident, NotificationRecord, NotifyFormat, NotifySink, Runbook};
use crate::controller::status;
use crate::core::lifecycle::Transition;
use crate::metrics::Metrics;

/// A `Sending` record older than this belongs to a delivery that was cut
/// short (restart, leadership change): marked `Unknown`, never resent.
pub const STALE_SENDING: Duration = Duration::from_secs(120);
/// Records kept per Incident; the oldest finished ones go first.
pub const RECORD_CAP: usize = 100;
/// Attempts to store a claim or an outcome against concurrent writes.
const WRITE_ATTEMPTS: usize = 5;

/// Errors of the notifier (never containing a sink URL).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot record deliveries on incident {name}: {source}")]
    Record {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("incident {0} changed too often while recording deliveries; will retry")]
    Contended(String),
}

/// Retry settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per message (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles per attempt; each wait is drawn from
    /// `[d/2, d)` (see [`RetryPolicy::backoff`]).
    pub base_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The waits between attempts (`backon`), one per retry
    /// (`max_attempts - 1`): the wait before attempt `n + 1` is uniform in
    /// `[d/2, d)` where `d = min(max_backoff, base_backoff * 2^(n-1))`.
    ///
    /// backon's jitter is not full jitter: it adds a uniform fraction of the
    /// delay to it (`[x, 2x)`), so the builder runs at half the base and
    /// half the cap, which keeps the cap a cap.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_factor(2.0)
            // backon does not cap the first delay: a base above the cap
            // starts at the cap.
            .with_min_delay(self.base_backoff.min(self.max_backoff) / 2)
            .with_max_delay(self.max_backoff / 2)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
    }
}

/// Outcome of one message to one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub state: DeliveryState,
    pub attempts: i32,
    /// Human text without the URL.
    pub message: String,
}

/// Sends notifications for Incident transitions.
pub struct Notifier {
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
}

impl Notifier {
    pub fn new(metrics: Arc<Metrics>, retry: RetryPolicy) -> Result<Notifier, NotifyError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3).min(retry.timeout))
            .timeout(retry.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::HttpClient(e.without_url().to_string()))?;
        Ok(Notifier {
            http,
            metrics,
            retry,
        })
    }

    /// Deliver the messages `transitions` call for (after the status that
    /// records them was stored). Never fails the reconcile: problems are
    /// logged, counted, and shown on the Incident. `runbook`: the Runbook
    /// `runbookRef` names as the reconcile read it (fresh, in this
    /// reconcile); `None`: read it here.
    pub async fn notify(
        &self,
        client: &Client,
        recorder: &Recorder,
        inc: &Incident,
        runbook: Option<&Runbook>,
        transitions: &[Transition],
        now: Timestamp,
    ) {
        let planned = message::plan(transitions);
        let stale = inc.status.as_ref().is_some_and(|s| {
            s.notifications
                .iter()
                .any(|r| r.state == DeliveryState::Sending && is_stale(r, now))
        });
        if planned.is_empty() && !stale {
            return;
        }
        if let Err(e) = self
            .deliver(client, recorder, inc, runbook, &planned, now)
            .await
        {
            warn!(incident = %inc.name_any(), error = %e, "notification delivery incomplete");
            let event = Event {
                type_: EventType::Warning,
                reason: "NotificationFailed".into(),
                note: Some(format!("notifications not sent: {e}")),
                action: "Notify".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &inc.object_ref(&())).await {
                warn!(incident = %inc.name_any(), error = %e, "failed to publish event");
            }
        }
    }

    async fn deliver(
        &self,
        client: &Client,
        recorder: &Recorder,
        inc: &Incident,
        read: Option<&Runbook>,
        planned: &[message::Planned],
        now: Timestamp,
    ) -> Result<(), NotifyError> {
        let ns = inc.namespace().unwrap_or_default();
        let name = inc.name_any();
        // The governing Runbook (the reconciler sets `runbookRef` to it):
        // its sinks, with URLs from Secrets in its own namespace.
        let rb_ns = inc
            .spec
            .runbook_ref
            .as_ref()
            .map_or(ns.clone(), |r| r.namespace_or(&ns).to_string());
        let already = read.filter(|rb| {
            inc.spec.runbook_ref.as_ref().is_some_and(|r| {
                rb.metadata.name.as_deref() == Some(r.name.as_str())
                    && rb.metadata.namespace.as_deref() == Some(rb_ns.as_str())
            })
        });
        let runbook = match &inc.spec.runbook_ref {
            Some(_) if already.is_some() => already.cloned(),
            Some(r) => Api::<Runbook>::namespaced(client.clone(), &rb_ns)
                .get_opt(&r.name)
                .await
                .map_err(|source| NotifyError::Read {
                    what: format!("runbook {rb_ns}/{}", r.name),
                    source,
                })?,
            None => None,
        };
        let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);

        // Claim: record intent before sending anything.
        let mut claimed: Vec<(NotificationRecord, NotifySink)> = Vec::new();
        let mut fresh = None;
        for _ in 0..WRITE_ATTEMPTS {
            let current = incidents
                .get(&name)
                .await
                .map_err(|source| NotifyError::Read {
                    what: format!("incident {ns}/{name}"),
                    source,
                })?;
            let status = current.status.clone().unwrap_or_default();
            let mut records = status.notifications.clone();
            let mut changed = false;
            for r in records.iter_mut() {
                if r.state == DeliveryState::Sending && is_stale(r, now) {
                    r.state = DeliveryState::Unknown;
                    r.completed_at = Some(Time(now));
                    r.message = "the operator stopped while delivering; it may or may not have arrived, so it is not resent".into();
                    changed = true;
                }
            }
            claimed.clear();
            if let Some(rb) = &runbook {
                let occurrence = status.occurrences.unwrap_or(1);
                let level = status.escalation.as_ref().map_or(0, |e| e.level);
                for p in planned {
                    for sink in message::recipients(rb, &p.audience, level) {
                        let id = message::delivery_id(p, occurrence, &sink.name);
                        if records.iter().any(|r| r.id == id)
                            || claimed.iter().any(|(r, _)| r.id == id)
                        {
                            continue;
                        }
                        claimed.push((
                            NotificationRecord {
                                id,
                                sink: sink.name.clone(),
                                event: p.event,
                                subject: p.subject.clone(),
                                state: DeliveryState::Sending,
                                attempts: 0,
                                claimed_at: Time(now),
                                completed_at: None,
                                message: String::new(),
                            },
                            sink.clone(),
                        ));
                    }
                }
            }
            if claimed.is_empty() && !changed {
                return Ok(());
            }
            records.extend(claimed.iter().map(|(r, _)| r.clone()));
            match write_records(client, &current, &records).await {
                Ok(stored) => {
                    fresh = Some(stored);
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    debug!(incident = %name, "delivery claim conflicted; re-reading");
                    continue;
                }
                Err(source) => {
                    return Err(NotifyError::Record {
                        name: format!("{ns}/{name}"),
                        source,
                    })
                }
            }
        }
        let Some(fresh) = fresh else {
            return Err(NotifyError::Contended(format!("{ns}/{name}")));
        };
        if claimed.is_empty() {
            return Ok(());
        }

        // Send, all sinks concurrently; render from the fresh Incident.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &rb_ns);
        let sends = claimed.iter().map(|(rec, sink)| {
            let secrets = secrets.clone();
            let fresh = &fresh;
            async move {
                let outcome = match sink_url(&secrets, sink).await {
                    Ok(url) => {
                        let body = message::render(sink.format, fresh, rec);
                        let key = format!(
                            "{}/{}",
                            fresh.metadata.uid.as_deref().unwrap_or_default(),
                            rec.id
                        );
                        self.send(&url, &body, &key, sink.format).await
                    }
                    Err(message) => SendOutcome {
                        state: DeliveryState::Failed,
                        attempts: 0,
                        message,
                    },
                };
                (rec.id.clone(), sink.clone(), outcome)
            }
        });
        let outcomes: Vec<(String, NotifySink, SendOutcome)> =
            futures::future::join_all(sends).await;

        for (id, sink, o) in &outcomes {
            let format = format_label(sink.format);
            match o.state {
                DeliveryState::Sent => {
                    self.metrics.notification(format, "sent");
                    info!(incident = %name, namespace = %ns, sink = %sink.name, delivery = %id, "notification sent");
                }
                _ => {
                    self.metrics.notification(format, "failed");
                    warn!(incident = %name, namespace = %ns, sink = %sink.name, delivery = %id, reason = %o.message, "notification failed");
                    let event = Event {
                        type_: EventType::Warning,
                        reason: "NotificationFailed".into(),
                        note: Some(format!(
                            "notification {id} to sink {:?} failed: {}",
                            sink.name, o.message
                        )),
                        action: "Notify".into(),
                        secondary: None,
                    };
                    if let Err(e) = recorder.publish(&event, &inc.object_ref(&())).await {
                        warn!(incident = %name, error = %e, "failed to publish event");
                    }
                }
            }
        }

        // Store outcomes.
        let results: BTreeMap<&str, &SendOutcome> =
            outcomes.iter().map(|(id, _, o)| (id.as_str(), o)).collect();
        let mut base = fresh;
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                base = incidents
                    .get(&name)
                    .await
                    .map_err(|source| NotifyError::Read {
                        what: format!("incident {ns}/{name}"),
                        source,
                    })?;
            }
            let mut records = base
                .status
                .as_ref()
                .map(|s| s.notifications.clone())
                .unwrap_or_default();
            for r in records.iter_mut() {
                if let Some(o) = results.get(r.id.as_str()) {
                    r.state = o.state;
                    r.attempts = o.attempts;
                    r.message = o.message.clone();
                    r.completed_at = Some(Time(now));
                }
            }
            match write_records(client, &base, &records).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(source) => {
                    return Err(NotifyError::Record {
                        name: format!("{ns}/{name}"),
                        source,
                    })
                }
            }
        }
        Err(NotifyError::Contended(format!("{ns}/{name}")))
    }

    /// POST with retries. Never returns or logs the URL.
    pub async fn send(
        &self,
        url: &str,
        body: &Value,
        idempotency_key: &str,
        format: NotifyFormat,
    ) -> SendOutcome {
        let mut waits = self.retry.backoff().build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self
                .http
                .post(url)
                .header("Idempotency-Key", idempotency_key)
                .header("X-Kube-Incident-Delivery", idempotency_key)
                .json(body)
                .send()
                .await;
            let (retryable, message) = match result {
                Ok(resp) if resp.status().is_success() => {
                    return SendOutcome {
                        state: DeliveryState::Sent,
                        attempts,
                        message: format!("HTTP {}", resp.status().as_u16()),
                    }
                }
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    (
                        code == 429 || resp.status().is_server_error(),
                        format!("the sink answered HTTP {code}"),
                    )
                }
                Err(e) if e.is_connect() => (true, "cannot connect to the sink".to_string()),
                Err(e) if e.is_timeout() => (
                    false,
                    format!(
                        "no answer within {}; not retried because it may have arrived",
                        crate::api::format_duration(self.retry.timeout)
                    ),
                ),
                Err(e) if e.is_builder() => (
                    false,
                    "the URL in the secret is not a valid http(s) URL".to_string(),
                ),
                Err(_) => (false, "the request failed".to_string()),
            };
            // The waits run out after `max_attempts - 1` retries.
            let wait = if retryable { waits.next() } else { None };
            let Some(wait) = wait else {
                let message = if attempts > 1 {
                    format!("{message} (after {attempts} attempts)")
                } else {
                    message
                };
                return SendOutcome {
                    state: DeliveryState::Failed,
                    attempts,
                    message,
                };
            };
            self.metrics.notification(format_label(format), "retried");
            tokio::time::sleep(wait).await;
        }
    }
}

fn format_label(f: NotifyFormat) -> &'static str {
    match f {
        NotifyFormat::Slack => "Slack",
        NotifyFormat::Webhook => "Webhook",
    }
}

fn is_stale(r: &NotificationRecord, now: Timestamp) -> bool {
    now.duration_since(r.claimed_at.0)
        .try_into()
        .is_ok_and(|d: Duration| d >= STALE_SENDING)
}

/// Keep at most [`RECORD_CAP`] records: drop the oldest finished ones.
pub fn cap_records(records: &mut Vec<NotificationRecord>) {
    while records.len() > RECORD_CAP {
        match records
            .iter()
            .position(|r| r.state != DeliveryState::Sending)
        {
            Some(i) => {
                records.remove(i);
            }
            None => break,
        }
    }
}

/// Store `status.notifications`, guarded by the resourceVersion read
/// (through [`crate::controller::status`], where every Incident status
/// write is; why these records cannot ride on the reconciler's status
/// apply is explained there).
async fn write_records(
    client: &Client,
    base: &Incident,
    records: &[NotificationRecord],
) -> Result<Incident, kube::Error> {
    let mut records = records.to_vec();
    cap_records(&mut records);
    status::merge_if_unchanged(client, base, json!({ "notifications": records })).await
}

/// Read a sink's URL from its Secret. The error text names the Secret and
/// key, never a value.
async fn sink_url(secrets: &Api<Secret>, sink: &NotifySink) -> Result<String, String> {
    let r = &sink.url_secret_ref;
    let secret = match secrets.get_opt(&r.name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(format!(
                "secret {:?} (sink {:?}) not found",
                r.name, sink.name
            ))
        }
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Err(format!(
                "not allowed to read secret {:?} (sink {:?})",
                r.name, sink.name
            ))
        }
        Err(_) => {
            return Err(format!(
                "cannot read secret {:?} (sink {:?})",
                r.name, sink.name
            ))
        }
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|s| s.trim().to_string())
        });
    match value {
        Some(v) if v.starts_with("https://") || v.starts_with("http://") => Ok(v),
        Some(_) => Err(format!(
            "key {:?} of secret {:?} (sink {:?}) is not an http(s) URL",
            r.key, r.name, sink.name
        )),
        None => Err(format!(
            "secret {:?} (sink {:?}) has no key {:?}",
            r.name, sink.name, r.key
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            timeout: Duration::from_secs(1),
        };
        let ms = Duration::from_millis;
        for _ in 0..50 {
            let waits: Vec<Duration> = p.backoff().build().collect();
            // One wait per retry: max_attempts - 1.
            assert_eq!(waits.len(), 9);
            // Before attempt n + 1: [d/2, d], d = min(max, base * 2^(n-1)).
            let b1 = waits[0];
            assert!(b1 >= ms(50) && b1 <= ms(100), "{b1:?}");
            let b3 = waits[2];
            assert!(b3 >= ms(200) && b3 <= ms(400), "{b3:?}");
            let b9 = waits[8];
            assert!(b9 >= ms(500) && b9 <= ms(1000), "{b9:?}");
            // The cap holds for every wait.
            assert!(waits.iter().all(|w| *w <= ms(1000)), "{waits:?}");
        }
        // The defaults: 4 attempts, 500ms doubling, capped at 8s.
        let d = RetryPolicy::default();
        for _ in 0..50 {
            let waits: Vec<Duration> = d.backoff().build().collect();
            assert_eq!(waits.len(), 3, "{waits:?}");
            for (w, hi) in waits.iter().zip([500, 1000, 2000]) {
                assert!(*w >= ms(hi / 2) && *w <= ms(hi), "{waits:?}");
            }
        }
        // One attempt: no retry.
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(once.backoff().build().count(), 0);
        // A base above the cap starts at the cap.
        let big = RetryPolicy {
            base_backoff: Duration::from_secs(20),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let waits: Vec<Duration> = big.backoff().build().collect();
            assert!(
                waits.iter().all(|w| *w >= ms(4000) && *w <= ms(8000)),
                "{waits:?}"
            );
        }
    }

    fn rec(id: &str, state: DeliveryState) -> NotificationRecord {
        NotificationRecord {
            id: id.into(),
            sink: "s".into(),
            event: crate::api::NotificationEvent::Declared,
            subject: None,
            state,
            attempts: 1,
            claimed_at: Time(Timestamp::UNIX_EPOCH),
            completed_at: None,
            message: String::new(),
        }
    }

    #[test]
    fn cap_drops_oldest_finished_records_only() {
        let mut v = vec![rec("sending", DeliveryState::Sending)];
        for i in 0..RECORD_CAP + 5 {
            v.push(rec(&format!("r{i}"), DeliveryState::Sent));
        }
        cap_records(&mut v);
        assert_eq!(v.len(), RECORD_CAP);
        assert_eq!(v[0].id, "sending");
        assert_eq!(v[1].id, "r6");
    }

    #[test]
    fn stale_after_threshold() {
        let r = rec("a", DeliveryState::Sending);
        assert!(!is_stale(&r, Timestamp::UNIX_EPOCH));
        let later = Timestamp::from_second(STALE_SENDING.as_secs() as i64).unwrap();
        assert!(is_stale(&r, later));
    }
}

//! Alertmanager intake: `POST /alertmanager` accepts Alertmanager's webhook
//! payload (version 4) and opens, updates and resolves Incidents with
//! source `Alertmanager`, one per (alert group, namespace).
//!
//! - Authentication: `Authorization: Bearer <token>`, the token read from a
//!   Secret (`--alertmanager-token-secret NAMESPACE/NAME`, key
//!   `--alertmanager-token-key`, default `token`). Missing or wrong: 401.
//! - Malformed JSON, a version other than "4", no groupKey: 400; no alert
//!   that maps to a watched namespace: 422. Nothing is changed then.
//! - Mapping (flags): the namespace, deployment, pod and severity labels,
//!   and severity values to SEV levels.
//! - Grouping: the Incident name is `am-` + a hash of (groupKey, namespace);
//!   firing alerts open or update it (severity only rises), a payload in
//!   which every alert of the namespace is resolved resolves it. Firing
//!   again after that does what a detector recurrence does: within the
//!   reopen window (`--alertmanager-reopen-window`, default 1h) of the
//!   resolution it reopens the Incident (`spec.resolution` removed and the
//!   annotation `kubeincident.io/recurred-at` set, which the lifecycle turns
//!   into `Reopened`); later it opens a new episode `am-<hash>-<n>`.
//! - A namespace that does not exist (or another refusal no retry can fix)
//!   is a 422 with the reason; server errors are a 503, which Alertmanager
//!   retries (every step is idempotent).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::api::{Incident, IncidentSource, Severity, TargetKind, RECURRED_AT_ANNOTATION};
use crate::controller::detector::EPISODE_LABEL;

/// Label on Incidents opened from Alertmanager: the group hash.
pub const ALERT_GROUP_LABEL: &str = "kubeincident.io/alert-group";
/// Annotation with the full Alertmanager group key.
pub const ALERT_GROUP_KEY_ANNOTATION: &str = "kubeincident.io/alert-group-key";
/// Who resolves an Incident when its alerts resolve.
pub const RESOLVER: &str = "alertmanager";

/// How alert labels map onto Incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub namespace_label: String,
    pub deployment_label: String,
    pub pod_label: String,
    pub severity_label: String,
    /// Label value (lower-cased) -> severity.
    pub severities: BTreeMap<String, Severity>,
    pub default_severity: Severity,
}

impl Default for Mapping {
    fn default() -> Self {
        let severities = [
            ("critical", Severity::SEV1),
            ("page", Severity::SEV1),
            ("high", Severity::SEV2),
            ("error", Severity::SEV2),
            ("warning", Severity::SEV3),
            ("info", Severity::SEV4),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Mapping {
            namespace_label: "namespace".into(),
            deployment_label: "deployment".into(),
            pod_label: "pod".into(),
            severity_label: "severity".into(),
            severities,
            default_severity: Severity::SEV3,
        }
    }
}

/// A bad `--alertmanager-severity-map` entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid --alertmanager-severity-map entry {0:?}: want VALUE=SEV1..SEV4, e.g. critical=SEV1"
)]
pub struct MappingError(pub String);

impl Mapping {
    /// Apply `value=SEVn` overrides.
    pub fn with_severity_overrides(mut self, entries: &[String]) -> Result<Self, MappingError> {
        for e in entries.iter().filter(|e| !e.trim().is_empty()) {
            let (k, v) = e.split_once('=').ok_or_else(|| MappingError(e.clone()))?;
            let sev = Severity::from_str(v.trim()).map_err(|_| MappingError(e.clone()))?;
            self.severities.insert(k.trim().to_ascii_lowercase(), sev);
        }
        Ok(self)
    }
}

/// Alertmanager's webhook payload, version 4.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: i64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// One alert of a payload.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// Why a payload was refused (the HTTP status says which kind).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntakeError {
    #[error("malformed Alertmanager payload: {0}")]
    Malformed(String),
    #[error("unsupported Alertmanager payload version {0:?} (want \"4\")")]
    Version(String),
    #[error("no alert maps to a watched namespace: {0}")]
    Unmappable(String),
}

impl IntakeError {
    pub fn status(&self) -> StatusCode {
        match self {
            IntakeError::Malformed(_) | IntakeError::Version(_) => StatusCode::BAD_REQUEST,
            IntakeError::Unmappable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// What to do with one Incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open (or update: severity only rises; reopen if resolved).
    Fire {
        namespace: String,
        /// The name of the group's first episode.
        name: String,
        group_hash: String,
        title: String,
        severity: Severity,
        target: Option<(TargetKind, String)>,
    },
    /// Every alert of the group in this namespace resolved.
    Resolve {
        namespace: String,
        /// The name of the group's first episode.
        name: String,
        group_hash: String,
        summary: String,
    },
}

/// The Incident name for (group key, namespace).
pub fn incident_name(group_key: &str, namespace: &str) -> (String, String) {
    let mut h = Sha256::new();
    h.update(group_key.as_bytes());
    h.update([0]);
    h.update(namespace.as_bytes());
    let hash = hex::encode(h.finalize())[..16].to_string();
    (format!("am-{hash}"), hash)
}

/// The name of episode `n` of a group: `am-<hash>` for the first (the name
/// the intake always used), `am-<hash>-<n>` after that.
pub fn episode_name(first: &str, n: u32) -> String {
    if n <= 1 {
        first.to_string()
    } else {
        format!("{first}-{n}")
    }
}

/// The episode of an Incident of a group (1 when unlabelled: opened before
/// episodes existed).
pub fn episode_of(inc: &Incident) -> u32 {
    inc.labels()
        .get(EPISODE_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// What firing alerts do to the Incidents of their group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireDecision {
    /// No Incident yet, or the latest was resolved longer than the reopen
    /// window ago: open episode `episode`.
    Open { name: String, episode: u32 },
    /// The latest Incident is open: update it (severity only rises).
    Update { name: String },
    /// The latest Incident was resolved within the reopen window: reopen it.
    Reopen { name: String },
}

/// Decide what firing alerts do, as the detector does for a recurrence:
/// reopen the latest Incident of the group when it was resolved less than
/// `window` ago (or its resolution is not processed yet), else open the
/// next episode. Pure. `group`: the Incidents of the group in the namespace.
pub fn decide_fire(
    first_name: &str,
    group: &[Incident],
    window: Duration,
    now: Timestamp,
) -> FireDecision {
    let Some(latest) = group.iter().max_by_key(|i| episode_of(i)) else {
        return FireDecision::Open {
            name: first_name.to_string(),
            episode: 1,
        };
    };
    let name = latest.name_any();
    let resolved_at = latest
        .status
        .as_ref()
        .and_then(|s| s.resolved_at.as_ref())
        .map(|t| t.0);
    match (resolved_at, latest.spec.resolution.is_some()) {
        (None, false) => FireDecision::Update { name },
        // Resolved in the spec, not yet by the controller: just resolved.
        (None, true) => FireDecision::Reopen { name },
        (Some(at), _) => {
            let within = at.checked_add(window).is_ok_and(|end| now < end);
            if within {
                FireDecision::Reopen { name }
            } else {
                let episode = episode_of(latest) + 1;
                FireDecision::Open {
                    name: episode_name(first_name, episode),
                    episode,
                }
            }
        }
    }
}

/// The latest Incident of a group, if any (what a resolution applies to).
pub fn latest(group: &[Incident]) -> Option<&Incident> {
    group.iter().max_by_key(|i| episode_of(i))
}

/// Parse and plan a payload. Pure. `watched`: namespaces the operator
/// watches (empty: all).
pub fn plan(
    body: &[u8],
    mapping: &Mapping,
    watched: &[String],
) -> Result<Vec<Action>, IntakeError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| IntakeError::Malformed(e.to_string()))?;
    if payload.version != "4" {
        return Err(IntakeError::Version(payload.version));
    }
    if payload.group_key.trim().is_empty() {
        return Err(IntakeError::Malformed("groupKey is empty".into()));
    }
    if payload.alerts.is_empty() {
        return Err(IntakeError::Malformed("no alerts".into()));
    }
    for a in &payload.alerts {
        if a.status != "firing" && a.status != "resolved" {
            return Err(IntakeError::Malformed(format!(
                "alert status {:?} (want firing or resolved)",
                a.status
            )));
        }
    }
    let mut by_ns: BTreeMap<String, Vec<&Alert>> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    for a in &payload.alerts {
        let ns = a
            .labels
            .get(&mapping.namespace_label)
            .or_else(|| payload.common_labels.get(&mapping.namespace_label));
        match ns {
            Some(ns) if watched.is_empty() || watched.iter().any(|w| w == ns) => {
                by_ns.entry(ns.clone()).or_default().push(a)
            }
            Some(ns) => {
                skipped.insert(format!("namespace {ns:?} is not watched"));
            }
            None => {
                skipped.insert(format!(
                    "alert without a {:?} label",
                    mapping.namespace_label
                ));
            }
        }
    }
    if by_ns.is_empty() {
        return Err(IntakeError::Unmappable(
            skipped.into_iter().collect::<Vec<_>>().join("; "),
        ));
    }
    let mut actions = Vec::new();
    for (ns, alerts) in by_ns {
        let (name, group_hash) = incident_name(&payload.group_key, &ns);
        let firing: Vec<&&Alert> = alerts.iter().filter(|a| a.status == "firing").collect();
        if firing.is_empty() {
            actions.push(Action::Resolve {
                namespace: ns,
                name,
                group_hash,
                summary: format!(
                    "all {} alert(s) of the Alertmanager group resolved",
                    alerts.len()
                ),
            });
            continue;
        }
        let severity = firing
            .iter()
            .map(|a| {
                a.labels
                    .get(&mapping.severity_label)
                    .and_then(|v| mapping.severities.get(&v.to_ascii_lowercase()).copied())
                    .unwrap_or(mapping.default_severity)
            })
            .reduce(Severity::max_severity)
            .unwrap_or(mapping.default_severity);
        let target = firing.iter().find_map(|a| {
            a.labels
                .get(&mapping.deployment_label)
                .map(|d| (TargetKind::Deployment, d.clone()))
                .or_else(|| {
                    a.labels
                        .get(&mapping.pod_label)
                        .map(|p| (TargetKind::Pod, p.clone()))
                })
        });
        let first = firing[0];
        let alertname = first
            .labels
            .get("alertname")
            .or_else(|| payload.common_labels.get("alertname"))
            .cloned()
            .unwrap_or_else(|| "alert".into());
        let summary = first
            .annotations
            .get("summary")
            .or_else(|| payload.common_annotations.get("summary"))
            .cloned();
        let mut title = match summary {
            Some(s) => format!("{alertname}: {s}"),
            None => format!("{alertname} firing ({} alert(s))", firing.len()),
        };
        if title.len() > 200 {
            let mut cut = 200;
            while !title.is_char_boundary(cut) {
                cut -= 1;
            }
            title.truncate(cut);
        }
        actions.push(Action::Fire {
            namespace: ns,
            name,
            group_hash,
            title,
            severity,
            target,
        });
    }
    Ok(actions)
}

/// Where the bearer token lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl TokenRef {
    /// Parse `NAMESPACE/NAME`.
    pub fn parse(s: &str, key: &str) -> Option<TokenRef> {
        let (ns, name) = s.split_once('/')?;
        (!ns.is_empty() && !name.is_empty()).then(|| TokenRef {
            namespace: ns.into(),
            name: name.into(),
            key: key.into(),
        })
    }
}

/// The intake endpoint's state.
pub struct Intake {
    pub client: Client,
    pub token: TokenRef,
    pub mapping: Mapping,
    pub watched: Vec<String>,
    /// Only the leader writes; a follower answers 503 and Alertmanager
    /// retries (the Service may route the retry to the leader).
    pub leadership: crate::leader::Leadership,
    /// Firing again within this long of the resolution reopens the
    /// Incident; later, a new episode opens.
    pub reopen_window: Duration,
    pub clock: crate::controller::Clock,
}

/// The default of `--alertmanager-reopen-window` (the detector's default
/// `reopenWindow`).
pub const DEFAULT_REOPEN_WINDOW: Duration = Duration::from_secs(3600);

/// Why an action could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A server error, a conflict, a timeout: Alertmanager should retry
    /// (503; every step is idempotent).
    #[error("{0}")]
    Retry(String),
    /// Refused in a way no retry fixes (the namespace does not exist, the
    /// Incident would be invalid): 422, Alertmanager does not retry.
    #[error("{0}")]
    Refused(String),
}

/// Classify an API error of `what`: 400, 404 and 422 are refusals no retry
/// fixes; everything else (5xx, 429, 409, 403, transport) is retried.
fn api_error(what: &str, namespace: &str, e: kube::Error) -> ApplyError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ApplyError::Refused(format!(
            "{what}: {} (does namespace {namespace:?} exist?)",
            s.message
        )),
        kube::Error::Api(s) if s.code == 400 || s.code == 422 => {
            ApplyError::Refused(format!("{what}: {}", s.message))
        }
        e => ApplyError::Retry(format!("{what}: {e}")),
    }
}

fn reply(code: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": if code.is_success() {"ok"} else {"error"}, "message": message.into()})
            .to_string(),
    )
        .into_response();
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// Constant-time comparison of two byte strings.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Intake {
    async fn expected_token(&self) -> Result<Vec<u8>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.token.namespace);
        let s = api
            .get_opt(&self.token.name)
            .await
            .map_err(|e| format!("cannot read the token secret: {e}"))?
            .ok_or_else(|| "the token secret does not exist".to_string())?;
        let v = s
            .data
            .as_ref()
            .and_then(|d| d.get(&self.token.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("the token secret has no key {:?}", self.token.key))?;
        let trimmed = String::from_utf8_lossy(&v).trim().as_bytes().to_vec();
        if trimmed.is_empty() {
            return Err("the token in the secret is empty".into());
        }
        Ok(trimmed)
    }

    /// Handle one request: authenticate, plan, apply.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().as_bytes().to_vec());
        let Some(presented) = presented else {
            return reply(StatusCode::UNAUTHORIZED, "missing bearer token");
        };
        let expected = match self.expected_token().await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "alertmanager intake: cannot authenticate requests");
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the intake cannot read its token secret; see the operator's log",
                );
            }
        };
        if !same(&presented, &expected) {
            return reply(StatusCode::UNAUTHORIZED, "invalid bearer token");
        }
        let actions = match plan(body, &self.mapping, &self.watched) {
            Ok(a) => a,
            Err(e) => {
                info!(error = %e, "alertmanager payload refused");
                return reply(e.status(), e.to_string());
            }
        };
        if !self.leadership.is_leader() {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "this replica is not the leader; retry (another replica will take it)",
            );
        }
        let mut done = Vec::new();
        let mut refused = Vec::new();
        for a in &actions {
            match self.apply(a).await {
                Ok(what) => done.push(what),
                Err(ApplyError::Retry(e)) => {
                    warn!(error = %e, "alertmanager intake: cannot apply");
                    // Alertmanager retries on 5xx; every step is idempotent.
                    return reply(StatusCode::SERVICE_UNAVAILABLE, e);
                }
                Err(ApplyError::Refused(e)) => {
                    info!(error = %e, "alertmanager intake: alert refused");
                    refused.push(e);
                }
            }
        }
        if !refused.is_empty() {
            // A 4xx: Alertmanager must not retry what cannot succeed.
            let mut message = format!("refused: {}", refused.join("; "));
            if !done.is_empty() {
                message.push_str(&format!("; done: {}", done.join("; ")));
            }
            return reply(StatusCode::UNPROCESSABLE_ENTITY, message);
        }
        reply(StatusCode::OK, done.join("; "))
    }

    /// The Incidents of a group in a namespace.
    async fn group(&self, namespace: &str, group_hash: &str) -> Result<Vec<Incident>, ApplyError> {
        let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default().labels(&format!("{ALERT_GROUP_LABEL}={group_hash}")))
            .await
            .map(|l| l.items)
            .map_err(|e| api_error("cannot list the incidents of the alert group", namespace, e))
    }

    async fn apply(&self, action: &Action) -> Result<String, ApplyError> {
        match action {
            Action::Fire {
                namespace,
                name: first_name,
                group_hash,
                title,
                severity,
                target,
            } => {
                let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
                let group = self.group(namespace, group_hash).await?;
                let now = (self.clock)();
                match decide_fire(first_name, &group, self.reopen_window, now) {
                    FireDecision::Open { name, episode } => {
                        let mut spec = json!({
                            "title": title,
                            "severity": severity.to_string(),
                            "source": IncidentSource::Alertmanager.as_str(),
                        });
                        if let Some((kind, t)) = target {
                            spec["target"] = json!({"kind": kind.as_str(), "name": t});
                        }
                        let inc: Incident = serde_json::from_value(json!({
                            "apiVersion": "kubeincident.io/v1alpha1",
                            "kind": "Incident",
                            "metadata": {
                                "name": name,
                                "namespace": namespace,
                                "labels": {
                                    ALERT_GROUP_LABEL: group_hash,
                                    EPISODE_LABEL: episode.to_string(),
                                },
                            },
                            "spec": spec,
                        }))
                        .map_err(|e| {
                            ApplyError::Refused(format!("cannot build the incident: {e}"))
                        })?;
                        match api.create(&PostParams::default(), &inc).await {
                            Ok(_) => {
                                info!(incident = %name, namespace = %namespace, episode, "incident opened from Alertmanager");
                                Ok(format!("opened {namespace}/{name}"))
                            }
                            // Created concurrently by a retry: fine.
                            Err(kube::Error::Api(s)) if s.code == 409 => {
                                Ok(format!("{namespace}/{name} exists"))
                            }
                            Err(e) => Err(api_error(
                                &format!("cannot create incident {namespace}/{name}"),
                                namespace,
                                e,
                            )),
                        }
                    }
                    FireDecision::Update { name } => {
                        let Some(inc) = group.iter().find(|i| i.name_any() == name) else {
                            return Ok(format!("{namespace}/{name} unchanged"));
                        };
                        if !severity.is_more_severe_than(inc.spec.severity) {
                            return Ok(format!("{namespace}/{name} unchanged"));
                        }
                        let ops = vec![
                            json!({"op": "replace", "path": "/spec/severity", "value": severity.to_string()}),
                        ];
                        self.patch(&api, namespace, &name, ops).await?;
                        Ok(format!("updated {namespace}/{name}"))
                    }
                    FireDecision::Reopen { name } => {
                        let Some(inc) = group.iter().find(|i| i.name_any() == name) else {
                            return Ok(format!("{namespace}/{name} unchanged"));
                        };
                        let mut ops = Vec::new();
                        if let Some(res) = &inc.spec.resolution {
                            // Remove exactly the resolution we saw.
                            ops.push(
                                json!({"op": "test", "path": "/spec/resolution", "value": res}),
                            );
                            ops.push(json!({"op": "remove", "path": "/spec/resolution"}));
                        }
                        // Sub-second precision: a resolution processed
                        // earlier in the same second is still before it.
                        let at = now.to_string();
                        if inc
                            .metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| !a.is_empty())
                        {
                            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", RECURRED_AT_ANNOTATION.replace('/', "~1")), "value": at}));
                        } else {
                            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {RECURRED_AT_ANNOTATION: at}}));
                        }
                        if severity.is_more_severe_than(inc.spec.severity) {
                            ops.push(json!({"op": "replace", "path": "/spec/severity", "value": severity.to_string()}));
                        }
                        self.patch(&api, namespace, &name, ops).await?;
                        info!(incident = %name, namespace = %namespace, "incident reopened by Alertmanager");
                        Ok(format!("reopened {namespace}/{name}"))
                    }
                }
            }
            Action::Resolve {
                namespace,
                name: first_name,
                group_hash,
                summary,
            } => {
                let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
                let group = self.group(namespace, group_hash).await?;
                match latest(&group) {
                    None => Ok(format!(
                        "{namespace}/{first_name} unknown; nothing to resolve"
                    )),
                    Some(inc) if inc.spec.resolution.is_some() => {
                        Ok(format!("{namespace}/{} already resolved", inc.name_any()))
                    }
                    Some(inc) => {
                        let name = inc.name_any();
                        let patch =
                            json!({"spec": {"resolution": {"by": RESOLVER, "summary": summary}}});
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map_err(|e| {
                                api_error(
                                    &format!("cannot resolve incident {namespace}/{name}"),
                                    namespace,
                                    e,
                                )
                            })?;
                        info!(incident = %name, namespace = %namespace, "incident resolved by Alertmanager");
                        Ok(format!("resolved {namespace}/{name}"))
                    }
                }
            }
        }
    }

    /// A JSON patch of an Incident of the group. A failed `test` (someone
    /// changed it in between: kube-apiserver answers 422 "the server
    /// rejected our request due to an error in our request") is retried:
    /// the next delivery decides again.
    async fn patch(
        &self,
        api: &Api<Incident>,
        namespace: &str,
        name: &str,
        ops: Vec<serde_json::Value>,
    ) -> Result<(), ApplyError> {
        let tested = ops.iter().any(|op| op["op"] == "test");
        let patch: json_patch::Patch = serde_json::from_value(json!(ops))
            .map_err(|e| ApplyError::Refused(format!("cannot build the patch: {e}")))?;
        match api
            .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 422 && tested => Err(ApplyError::Retry(format!(
                "incident {namespace}/{name} changed while it was updated; retry"
            ))),
            Err(e) => Err(api_error(
                &format!("cannot update incident {namespace}/{name}"),
                namespace,
                e,
            )),
        }
    }
}

/// Handle a request to `POST /alertmanager` (`None`: the intake is off).
pub async fn handle(intake: Option<&Intake>, headers: &HeaderMap, body: &[u8]) -> Response {
    match intake {
        Some(i) => i.handle(headers, body).await,
        None => reply(
            StatusCode::NOT_FOUND,
            "the Alertmanager intake is off (start the operator with --alertmanager-token-secret)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(status: &str, alerts: serde_json::Value) -> Vec<u8> {
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"CheckoutDown\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "kube-incident",
            "groupLabels": {"alertname": "CheckoutDown"},
            "commonLabels": {"alertname": "CheckoutDown"},
            "commonAnnotations": {"summary": "checkout 5xx above 5%"},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        })
        .to_string()
        .into_bytes()
    }

    fn alert(status: &str, labels: serde_json::Value) -> serde_json::Value {
        json!({"status": status, "labels": labels, "annotations": {}, "startsAt": "2026-01-01T00:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "abc"})
    }

    #[test]
    fn firing_maps_namespace_target_and_highest_severity() {
        let body = payload(
            "firing",
            json!([
                alert(
                    "firing",
                    json!({"namespace": "shop", "deployment": "checkout", "severity": "warning"})
                ),
                alert(
                    "firing",
                    json!({"namespace": "shop", "pod": "checkout-1", "severity": "critical"})
                ),
            ]),
        );
        let a = plan(&body, &Mapping::default(), &[]).unwrap();
        assert_eq!(a.len(), 1);
        match &a[0] {
            Action::Fire {
                namespace,
                name,
                severity,
                target,
                title,
                ..
            } => {
                assert_eq!(namespace, "shop");
                assert!(name.starts_with("am-") && name.len() == 19, "{name}");
                assert_eq!(*severity, Severity::SEV1);
                assert_eq!(target, &Some((TargetKind::Deployment, "checkout".into())));
                assert_eq!(title, "CheckoutDown: checkout 5xx above 5%");
            }
            other => panic!("{other:?}"),
        }
        // Same group, same namespace: same name.
        let again = plan(&body, &Mapping::default(), &[]).unwrap();
        assert_eq!(a, again);
    }

    #[test]
    fn all_resolved_resolves_and_namespaces_split() {
        let body = payload(
            "resolved",
            json!([
                alert("resolved", json!({"namespace": "shop"})),
                alert("firing", json!({"namespace": "pay"})),
            ]),
        );
        let a = plan(&body, &Mapping::default(), &[]).unwrap();
        assert_eq!(a.len(), 2);
        assert!(matches!(&a[0], Action::Fire { namespace, .. } if namespace == "pay"));
        assert!(matches!(&a[1], Action::Resolve { namespace, .. } if namespace == "shop"));
    }

    #[test]
    fn mapping_is_configurable() {
        let mut m = Mapping::default()
            .with_severity_overrides(&["P1=SEV1".into(), "warning=SEV2".into()])
            .unwrap();
        m.namespace_label = "k8s_namespace".into();
        m.severity_label = "priority".into();
        let body = payload(
            "firing",
            json!([alert(
                "firing",
                json!({"k8s_namespace": "shop", "priority": "p1"})
            )]),
        );
        match &plan(&body, &m, &[]).unwrap()[0] {
            Action::Fire {
                severity, target, ..
            } => {
                assert_eq!(*severity, Severity::SEV1);
                assert_eq!(*target, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(Mapping::default()
            .with_severity_overrides(&["nonsense".into()])
            .is_err());
        assert!(Mapping::default()
            .with_severity_overrides(&["x=SEV9".into()])
            .is_err());
    }

    #[test]
    fn malformed_payloads_are_refused_with_the_right_status() {
        let m = Mapping::default();
        let e = plan(b"{not json", &m, &[]).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let mut v: serde_json::Value = serde_json::from_slice(&payload(
            "firing",
            json!([alert("firing", json!({"namespace": "shop"}))]),
        ))
        .unwrap();
        v["version"] = json!("3");
        let e = plan(v.to_string().as_bytes(), &m, &[]).unwrap_err();
        assert_eq!(e, IntakeError::Version("3".into()));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        v["version"] = json!("4");
        v["groupKey"] = json!("");
        assert_eq!(
            plan(v.to_string().as_bytes(), &m, &[])
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        v["groupKey"] = json!("g");
        v["alerts"] = json!([]);
        assert_eq!(
            plan(v.to_string().as_bytes(), &m, &[])
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        v["alerts"] = json!([alert("weird", json!({"namespace": "shop"}))]);
        assert_eq!(
            plan(v.to_string().as_bytes(), &m, &[])
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        // No namespace label, or an unwatched namespace: 422.
        let body = payload("firing", json!([alert("firing", json!({"job": "x"}))]));
        assert_eq!(
            plan(&body, &m, &[]).unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let body = payload(
            "firing",
            json!([alert("firing", json!({"namespace": "other"}))]),
        );
        assert_eq!(
            plan(&body, &m, &["shop".into()]).unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    fn episode(
        name: &str,
        n: Option<u32>,
        resolved_at: Option<&str>,
        resolution: bool,
    ) -> Incident {
        let mut labels = json!({ALERT_GROUP_LABEL: "abc"});
        if let Some(n) = n {
            labels[EPISODE_LABEL] = json!(n.to_string());
        }
        let mut spec = json!({"title": "t", "severity": "SEV3", "source": "Alertmanager"});
        if resolution {
            spec["resolution"] = json!({"by": RESOLVER, "summary": "all resolved"});
        }
        let mut v = json!({
            "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": spec,
        });
        if let Some(at) = resolved_at {
            v["status"] = json!({"resolvedAt": at});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn firing_again_reopens_within_the_window_and_opens_a_new_episode_after() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            decide_fire("am-abc", &[], hour, now),
            FireDecision::Open {
                name: "am-abc".into(),
                episode: 1
            }
        );
        // Open (no resolution): update it.
        let open = episode("am-abc", None, None, false);
        assert_eq!(
            decide_fire("am-abc", std::slice::from_ref(&open), hour, now),
            FireDecision::Update {
                name: "am-abc".into()
            }
        );
        // Resolved by the intake, not yet processed by the controller: reopen.
        let just = episode("am-abc", None, None, true);
        assert_eq!(
            decide_fire("am-abc", std::slice::from_ref(&just), hour, now),
            FireDecision::Reopen {
                name: "am-abc".into()
            }
        );
        // Resolved 30 minutes ago: reopen (the page is not lost).
        let recent = episode("am-abc", None, Some("2026-01-01T11:30:00Z"), true);
        assert_eq!(
            decide_fire("am-abc", std::slice::from_ref(&recent), hour, now),
            FireDecision::Reopen {
                name: "am-abc".into()
            }
        );
        // Resolved (also automatically, without spec.resolution) 2h ago: a new episode.
        let old = episode("am-abc", None, Some("2026-01-01T10:00:00Z"), false);
        assert_eq!(
            decide_fire("am-abc", std::slice::from_ref(&old), hour, now),
            FireDecision::Open {
                name: "am-abc-2".into(),
                episode: 2
            }
        );
        // The latest episode decides.
        let second = episode("am-abc-2", Some(2), None, false);
        assert_eq!(
            decide_fire("am-abc", &[second.clone(), old.clone()], hour, now),
            FireDecision::Update {
                name: "am-abc-2".into()
            }
        );
        assert_eq!(
            latest(&[old, second]).map(|i| i.name_any()),
            Some("am-abc-2".to_string())
        );
        assert_eq!(episode_name("am-abc", 1), "am-abc");
        assert_eq!(episode_name("am-abc", 3), "am-abc-3");
    }

    #[test]
    fn refusals_no_retry_can_fix_are_4xx_the_rest_is_retried() {
        let status = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("namespaces \"gone\" not found", "NotFound")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(matches!(
            api_error("cannot create incident gone/am-x", "gone", status(404)),
            ApplyError::Refused(m) if m.contains("does namespace \"gone\" exist")
        ));
        assert!(matches!(
            api_error("x", "shop", status(422)),
            ApplyError::Refused(_)
        ));
        for code in [500, 503, 429, 409, 403] {
            assert!(matches!(
                api_error("x", "shop", status(code)),
                ApplyError::Retry(_)
            ));
        }
    }

    #[test]
    fn token_ref_and_comparison() {
        assert_eq!(
            TokenRef::parse("ops/am-token", "token"),
            Some(TokenRef {
                namespace: "ops".into(),
                name: "am-token".into(),
                key: "token".into()
            })
        );
        assert_eq!(TokenRef::parse("nope", "token"), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}

//! Alertmanager's webhook payload (version 4), parsed and planned into
//! one [`Action`] per (alert group, namespace). Pure.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Mapping;
use crate::api::{Severity, TargetKind};

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

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;

//! How alert labels map onto Incidents (`--alertmanager-*-label`,
//! `--alertmanager-severity-map`).

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::api::Severity;

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

//! What one evaluation takes: the Incident as read, what was observed of
//! its target, and the policy in force.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::{Impact, IncidentSpec, IncidentStatus, Severity, TriggerType};
use crate::core::escalation;
use crate::core::targets::SeverityTargets;

/// Health of the Incident's target as the controller observed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TargetHealth {
    /// No target, or it could not be read this time: change nothing.
    #[default]
    Unknown,
    /// The target does not exist.
    Missing,
    /// Every desired replica is ready and up to date.
    Healthy,
    /// Something is wrong; the text says what.
    Unhealthy(String),
}

/// What the controller (and, for detector incidents, the detector) saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub target: TargetHealth,
    /// Current impact, if measured.
    pub impact: Option<Impact>,
    /// The severity the Runbook's impact rules give for the current impact.
    pub impact_severity: Option<Severity>,
    /// When the trouble first became visible on the cluster.
    pub first_observed_at: Option<Timestamp>,
    /// Symptoms the detector sees now: (trigger, description).
    pub symptoms: Vec<(TriggerType, String)>,
    /// The detector saw the trouble again after the incident was resolved,
    /// within the Runbook's reopen window: reopen it.
    pub recurrence: Option<Timestamp>,
}

/// Policy in force for this Incident: targets plus the Runbook's overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub targets: SeverityTargets,
    /// The Runbook's `monitoring.window`, overriding the severity default.
    pub monitoring_window: Option<Duration>,
    /// The Runbook's escalation list (walked once the response deadline is missed).
    pub escalation: Vec<escalation::Level>,
    /// Steps no governing Runbook grants, by name, with the reason
    /// ([`crate::core::authority::plan`]). They never run.
    pub refused: std::collections::BTreeMap<String, String>,
    /// Whether `approvedBy` values were checked by the API server.
    pub approvals: crate::core::authority::ApprovalTrust,
}

impl Policy {
    /// The monitoring window for a severity.
    pub fn monitoring_window(&self, severity: Severity) -> Duration {
        self.monitoring_window
            .unwrap_or_else(|| self.targets.get(severity).monitoring_window)
    }
}

/// The Incident as read from the API server.
#[derive(Debug, Clone, Copy)]
pub struct IncidentView<'a> {
    pub spec: &'a IncidentSpec,
    pub generation: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub status: Option<&'a IncidentStatus>,
}

//! The Incident lifecycle as a pure function of (spec, status, observation,
//! policy, now). It returns the new status and the transitions that happened;
//! the controller turns transitions into Kubernetes Events, notifications and
//! metrics, and requeues after [`Decision::requeue_after`].
//!
//! ```text
//! Investigating -> Identified (rootCause set, or a mitigation approved)
//!               -> Mitigating (a step is Running)
//!               -> Monitoring (a step succeeded; target must stay healthy for the window)
//!               -> Resolved   (healthy for the whole window, or spec.resolution set)
//! Monitoring + relapse -> step Ineffective, next step (none left: escalate)
//! ```
//!
//! Re-running with the same inputs yields the same status and no
//! transitions (idempotence), so a replayed reconcile never emits an Event
//! or a notification twice.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{get_condition, is_true, set_condition, FALSE, TRUE};
use super::targets::SeverityTargets;
use super::validation::{self, FieldError};
use crate::api::{
    Approval, Impact, IncidentSource, IncidentSpec, IncidentStatus, MitigationStatus, Phase,
    Severity, StepState, TimelineEntry, TimelineType, TriggerType,
};

/// Condition types on an Incident.
pub mod condition {
    pub const ACKNOWLEDGED: &str = "Acknowledged";
    pub const RESPONSE_OVERDUE: &str = "ResponseOverdue";
    pub const RESOLUTION_OVERDUE: &str = "ResolutionOverdue";
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    pub const MITIGATION_FAILED: &str = "MitigationFailed";
    pub const RESOLVED: &str = "Resolved";
    /// `False` when the spec is semantically invalid (the message names the field).
    pub const VALID: &str = "Valid";
    /// `True` while the latest delivery to some notification sink failed.
    pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
}

/// Timeline entries kept: the first (`Opened`) and the newest `TIMELINE_CAP - 1`.
pub const TIMELINE_CAP: usize = 100;

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
    pub escalation: Vec<super::escalation::Level>,
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

/// Something that happened in this reconcile. Each maps to at most one
/// Event and one notification; the timeline entry is already in the status.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Opened {
        severity: Severity,
        source: IncidentSource,
    },
    Reopened {
        occurrences: i64,
    },
    Symptom {
        trigger: TriggerType,
        message: String,
    },
    SeverityChanged {
        from: Severity,
        to: Severity,
        by_impact: bool,
    },
    Acknowledged {
        by: String,
        after: Duration,
        severity: Severity,
    },
    AcknowledgementWithdrawn,
    Identified {
        root_cause: Option<String>,
    },
    AwaitingApproval {
        step: String,
    },
    Approved {
        step: String,
        by: String,
    },
    /// Step `index` is cleared to run: the executor must record intent and act.
    StepReady {
        index: usize,
        step: String,
    },
    StepFailed {
        step: String,
        message: String,
    },
    StepSkipped {
        step: String,
        message: String,
    },
    Monitoring {
        step: String,
        window: Duration,
    },
    Relapse {
        step: String,
        reason: String,
    },
    /// Every step was tried and none held: a person must take over.
    MitigationsExhausted,
    /// Another field manager changed what a step set: recorded, not fought.
    ExternalChange {
        step: String,
        message: String,
    },
    /// The executor recorded its intent and is applying step `step`.
    StepStarted {
        step: String,
        message: String,
    },
    /// A `revertOnResolve` step restored the recorded values.
    Reverted {
        step: String,
        message: String,
    },
    ResponseOverdue {
        target: Duration,
    },
    ResolutionOverdue {
        target: Duration,
    },
    /// Escalation level `level` (1-based) was reached: notify `notify`.
    Escalated {
        level: i32,
        notify: Vec<String>,
        after: Duration,
    },
    Resolved {
        by: Option<String>,
        summary: String,
        after: Duration,
        severity: Severity,
    },
    Invalid {
        message: String,
    },
}

/// Kubernetes Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl Transition {
    /// The Kubernetes Event for this transition: (type, reason, note).
    /// `StepReady` is an instruction to the executor, not an event.
    pub fn event(&self) -> Option<(EventType, &'static str, String)> {
        use EventType::*;
        let e = match self {
            Transition::Opened { severity, source } => (
                Warning,
                "Opened",
                format!("{severity} incident opened ({})", source.as_str()),
            ),
            Transition::Reopened { occurrences } => (
                Warning,
                "Reopened",
                format!("the trouble recurred; reopened (occurrence {occurrences})"),
            ),
            Transition::Symptom { trigger, message } => (
                Warning,
                "Symptom",
                format!("{}: {message}", trigger.as_str()),
            ),
            Transition::SeverityChanged {
                from,
                to,
                by_impact,
            } => (
                if to.is_more_severe_than(*from) {
                    Warning
                } else {
                    Normal
                },
                "SeverityChanged",
                format!(
                    "severity {from} -> {to}{}",
                    if *by_impact { " (impact grew)" } else { "" }
                ),
            ),
            Transition::Acknowledged { by, after, .. } => (
                Normal,
                "Acknowledged",
                format!("acknowledged by {by} after {}", human(*after)),
            ),
            Transition::AcknowledgementWithdrawn => (
                Warning,
                "AcknowledgementWithdrawn",
                "acknowledgement withdrawn".into(),
            ),
            Transition::Identified { root_cause } => (
                Normal,
                "Identified",
                match root_cause {
                    Some(rc) => format!("root cause identified: {rc}"),
                    None => "a mitigation was approved".into(),
                },
            ),
            Transition::AwaitingApproval { step } => (
                Normal,
                "AwaitingApproval",
                format!("mitigation {step:?} awaits approval (kubectl incident approve)"),
            ),
            Transition::Approved { step, by } => (
                Normal,
                "Approved",
                format!("mitigation {step:?} approved by {by}"),
            ),
            Transition::StepReady { .. } => return None,
            Transition::StepFailed { step, message } => (
                Warning,
                "MitigationFailed",
                format!("mitigation {step:?} failed: {message}"),
            ),
            Transition::StepSkipped { step, message } => (
                Normal,
                "MitigationSkipped",
                format!("mitigation {step:?} skipped: {message}"),
            ),
            Transition::Monitoring { step, window } => (
                Normal,
                "Monitoring",
                format!(
                    "mitigation {step:?} succeeded; monitoring for {}",
                    human(*window)
                ),
            ),
            Transition::Relapse { step, reason } => (
                Warning,
                "Relapse",
                format!("target relapsed after mitigation {step:?}: {reason}"),
            ),
            Transition::MitigationsExhausted => (
                Warning,
                "MitigationsExhausted",
                "no mitigation step left; a person must take over".into(),
            ),
            Transition::ExternalChange { step, message } => (
                Warning,
                "ExternalChange",
                format!("mitigation {step:?} was undone by someone else; not fighting it, a person must decide: {message}"),
            ),
            Transition::StepStarted { step, message } => (
                Normal,
                "MitigationStarted",
                format!("mitigation {step:?} started: {message}"),
            ),
            Transition::Reverted { step, message } => (
                Normal,
                "MitigationReverted",
                format!("mitigation {step:?} reverted: {message}"),
            ),
            Transition::ResponseOverdue { target } => (
                Warning,
                "ResponseOverdue",
                format!(
                    "not acknowledged within the {} response target",
                    human(*target)
                ),
            ),
            Transition::ResolutionOverdue { target } => (
                Warning,
                "ResolutionOverdue",
                format!(
                    "not resolved within the {} resolution target",
                    human(*target)
                ),
            ),
            Transition::Escalated { level, notify, after } => (
                Warning,
                "Escalated",
                format!(
                    "escalated to level {level} ({}) {} after the response deadline",
                    notify.join(", "),
                    human(*after)
                ),
            ),
            Transition::Resolved {
                by, summary, after, ..
            } => (
                Normal,
                "Resolved",
                match by {
                    Some(by) => format!("resolved by {by} after {}: {summary}", human(*after)),
                    None => format!("resolved after {}: {summary}", human(*after)),
                },
            ),
            Transition::Invalid { message } => (Warning, "InvalidSpec", message.clone()),
        };
        Some(e)
    }
}

/// The outcome of one lifecycle evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: IncidentStatus,
    pub transitions: Vec<Transition>,
    /// When to look again (the next deadline or window end), if any.
    pub requeue_after: Option<Duration>,
}

/// `1h5m`-style text for messages.
pub fn human(d: Duration) -> String {
    crate::api::format_duration(d)
}

/// Drop sub-second precision: `metav1.Time` is serialized in whole seconds,
/// so status computed from a finer clock would never equal what was stored.
pub fn truncate_to_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

struct Builder {
    status: IncidentStatus,
    transitions: Vec<Transition>,
    now: Timestamp,
    generation: Option<i64>,
    wake: Option<Timestamp>,
}

impl Builder {
    fn timeline(&mut self, type_: TimelineType, message: String) {
        push_timeline(&mut self.status, type_, message, self.now);
    }

    fn cond(
        &mut self,
        type_: &str,
        status: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> bool {
        set_condition(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            message,
            self.generation,
            self.now,
        )
    }

    fn wake_at(&mut self, t: Timestamp) {
        if t > self.now {
            self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
        }
    }
}

/// Append a timeline entry, skipping an exact repeat of the last entry, and
/// enforce [`TIMELINE_CAP`] (the first entry is kept; the oldest after it go,
/// counted in `timelineDropped`).
pub fn push_timeline(
    status: &mut IncidentStatus,
    type_: TimelineType,
    message: String,
    now: Timestamp,
) {
    if status
        .timeline
        .last()
        .is_some_and(|e| e.type_ == type_ && e.message == message)
    {
        return;
    }
    status.timeline.push(TimelineEntry {
        time: Time(now),
        type_,
        message,
    });
    while status.timeline.len() > TIMELINE_CAP {
        status.timeline.remove(1);
        status.timeline_dropped = Some(status.timeline_dropped.unwrap_or(0) + 1);
    }
}

/// Evaluate the lifecycle.
pub fn reconcile(
    incident: IncidentView<'_>,
    observation: &Observation,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let now = truncate_to_seconds(now);
    let spec = incident.spec;
    let mut b = Builder {
        status: incident.status.cloned().unwrap_or_default(),
        transitions: Vec::new(),
        now,
        generation: incident.generation,
        wake: None,
    };
    b.status.observed_generation = incident.generation;

    open(&mut b, &incident);
    let opened_at = b.status.opened_at.as_ref().map_or(now, |t| t.0);
    reopen(&mut b, spec, observation);
    symptoms(&mut b, observation);

    // Severity: the declared one, never below what the impact reached.
    let impact_severity = observation
        .impact_severity
        .into_iter()
        .chain(b.status.impact.as_ref().and_then(|i| i.severity))
        .reduce(Severity::max_severity);
    if let Some(mut impact) = observation.impact.clone() {
        impact.severity = impact_severity;
        b.status.impact = Some(impact);
    } else if let (Some(sev), Some(impact)) = (impact_severity, b.status.impact.as_mut()) {
        impact.severity = Some(sev);
    }
    let effective = impact_severity.map_or(spec.severity, |s| spec.severity.max_severity(s));
    let previous = b.status.severity.unwrap_or(effective);
    b.status.severity = Some(effective);
    if previous != effective {
        let by_impact = impact_severity == Some(effective) && effective != spec.severity;
        severity_timeline(&mut b, previous, effective, by_impact);
        b.transitions.push(Transition::SeverityChanged {
            from: previous,
            to: effective,
            by_impact,
        });
    }
    let targets = policy.targets.get(effective);
    b.status.response_deadline = Some(Time(add(opened_at, targets.response)));
    b.status.resolution_deadline = Some(Time(add(opened_at, targets.resolution)));
    if let Some(t) = observation.first_observed_at {
        let t = truncate_to_seconds(t);
        let earliest = b
            .status
            .first_observed_at
            .as_ref()
            .map_or(t, |f| f.0.min(t));
        b.status.first_observed_at = Some(Time(earliest.min(opened_at)));
    }

    // Target health drives the monitoring window.
    match &observation.target {
        TargetHealth::Healthy => {
            if b.status.healthy_since.is_none() {
                b.status.healthy_since = Some(Time(now));
            }
        }
        TargetHealth::Unhealthy(_) | TargetHealth::Missing => b.status.healthy_since = None,
        TargetHealth::Unknown => {}
    }

    let errors = validation::validate_incident(spec);
    validity(&mut b, &errors);
    acknowledgement(&mut b, spec, opened_at);

    let was_resolved = b.status.resolved_at.is_some();
    if !was_resolved {
        if let Some(res) = &spec.resolution {
            resolve(
                &mut b,
                Some(res.by.clone()),
                res.summary.clone(),
                opened_at,
                "ManuallyResolved",
            );
        }
    }
    steps(&mut b, spec, observation, policy, &errors, opened_at);
    overdue(&mut b, targets.response, targets.resolution);
    escalate(&mut b, policy);
    deliveries(&mut b);

    // Phase.
    let phase = phase_of(&b.status, spec);
    let before = incident.status.and_then(|s| s.phase);
    if phase == Phase::Identified && before == Some(Phase::Investigating) {
        let root_cause = spec.root_cause.clone();
        b.timeline(
            TimelineType::Identified,
            match &root_cause {
                Some(rc) => format!("root cause identified: {rc}"),
                None => "a mitigation was approved".into(),
            },
        );
        b.transitions.push(Transition::Identified { root_cause });
    }
    b.status.phase = Some(phase);

    let requeue_after = b.wake.map(|w| since(w, now));
    Decision {
        status: b.status,
        transitions: b.transitions,
        requeue_after,
    }
}

/// The timeline entry of a severity change. Changes within one second
/// (SEV3 -> SEV2 -> SEV1 as the impact climbs) are one entry with the
/// final severity: the newest entry is replaced when it is a severity
/// change of this same second (and dropped when the severity came back to
/// where that entry started).
fn severity_timeline(b: &mut Builder, previous: Severity, effective: Severity, by_impact: bool) {
    let same_second = b
        .status
        .timeline
        .last()
        .filter(|e| e.type_ == TimelineType::SeverityChanged && e.time.0 == b.now)
        .and_then(|e| severity_change_from(&e.message));
    let from = match same_second {
        Some(from) => {
            b.status.timeline.pop();
            from
        }
        None => previous,
    };
    if from == effective {
        return;
    }
    b.timeline(
        TimelineType::SeverityChanged,
        format!(
            "severity {from} -> {effective}{}",
            if by_impact { " (impact grew)" } else { "" }
        ),
    );
}

/// The `from` of a `severity FROM -> TO` timeline message.
fn severity_change_from(message: &str) -> Option<Severity> {
    let rest = message.strip_prefix("severity ")?;
    let (from, _) = rest.split_once(" -> ")?;
    from.parse().ok()
}

fn open(b: &mut Builder, incident: &IncidentView<'_>) {
    if b.status.opened_at.is_some() {
        return;
    }
    let spec = incident.spec;
    let opened_at = truncate_to_seconds(incident.created_at.unwrap_or(b.now));
    b.status.opened_at = Some(Time(opened_at));
    b.status.occurrences = Some(1);
    b.status.last_seen_at = Some(Time(b.now));
    b.status.phase = Some(Phase::Investigating);
    b.status.severity = Some(spec.severity);
    let target = spec
        .target
        .as_ref()
        .map(|t| format!(" on {}/{}", t.kind.as_str(), t.name))
        .unwrap_or_default();
    b.timeline(
        TimelineType::Opened,
        format!(
            "{} incident opened{target} ({}): {}",
            spec.severity,
            spec.source.as_str(),
            spec.title
        ),
    );
    b.cond(
        condition::ACKNOWLEDGED,
        FALSE,
        "NotAcknowledged",
        "nobody has acknowledged the incident",
    );
    b.cond(
        condition::RESPONSE_OVERDUE,
        FALSE,
        "WithinTarget",
        "the response target has not passed",
    );
    b.cond(
        condition::RESOLUTION_OVERDUE,
        FALSE,
        "WithinTarget",
        "the resolution target has not passed",
    );
    b.cond(condition::RESOLVED, FALSE, "Open", "the incident is open");
    b.transitions.push(Transition::Opened {
        severity: spec.severity,
        source: spec.source,
    });
}

/// Minimum spacing of `lastSeenAt` updates (bounds status writes while a
/// symptom persists).
pub const LAST_SEEN_RESOLUTION: Duration = Duration::from_secs(60);

/// The recurrence an Incident's `kubeincident.io/recurred-at` annotation
/// records (written by the Alertmanager intake when a resolved group fires
/// again), if it parses.
pub fn recurred_at(annotations: &std::collections::BTreeMap<String, String>) -> Option<Timestamp> {
    annotations
        .get(crate::api::RECURRED_AT_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
}

fn reopen(b: &mut Builder, spec: &IncidentSpec, observation: &Observation) {
    let (Some(resolved_at), Some(again)) = (
        b.status.resolved_at.as_ref().map(|t| t.0),
        observation.recurrence,
    ) else {
        return;
    };
    if again <= resolved_at || spec.resolution.is_some() {
        return;
    }
    let occurrences = b.status.occurrences.unwrap_or(1) + 1;
    b.status.occurrences = Some(occurrences);
    b.status.resolved_at = None;
    b.status.healthy_since = None;
    b.status.last_seen_at = Some(Time(b.now));
    b.cond(
        condition::RESOLVED,
        FALSE,
        "Reopened",
        "the trouble recurred after resolution",
    );
    let what = observation
        .symptoms
        .iter()
        .map(|(t, m)| format!("{}: {m}", t.as_str()))
        .collect::<Vec<_>>()
        .join("; ");
    b.timeline(
        TimelineType::Reopened,
        format!(
            "the trouble recurred {} after resolution; reopened (occurrence {occurrences}){}",
            human(since(b.now, resolved_at)),
            if what.is_empty() {
                String::new()
            } else {
                format!(": {what}")
            }
        ),
    );
    b.transitions.push(Transition::Reopened { occurrences });
}

/// Record symptoms not yet on the timeline of this episode (since the last
/// Opened/Reopened entry), and keep `lastSeenAt` fresh.
fn symptoms(b: &mut Builder, observation: &Observation) {
    if observation.symptoms.is_empty() || b.status.resolved_at.is_some() {
        return;
    }
    let episode_start = b
        .status
        .timeline
        .iter()
        .rposition(|e| matches!(e.type_, TimelineType::Opened | TimelineType::Reopened))
        .unwrap_or(0);
    for (trigger, message) in &observation.symptoms {
        let prefix = format!("{}: ", trigger.as_str());
        let recorded = b.status.timeline[episode_start..]
            .iter()
            .any(|e| e.type_ == TimelineType::Symptom && e.message.starts_with(&prefix));
        if !recorded {
            b.timeline(TimelineType::Symptom, format!("{prefix}{message}"));
            b.transitions.push(Transition::Symptom {
                trigger: *trigger,
                message: message.clone(),
            });
        }
    }
    let stale = b
        .status
        .last_seen_at
        .as_ref()
        .is_none_or(|t| since(b.now, t.0) >= LAST_SEEN_RESOLUTION);
    if stale {
        b.status.last_seen_at = Some(Time(b.now));
    }
}

fn validity(b: &mut Builder, errors: &[FieldError]) {
    if errors.is_empty() {
        b.cond(condition::VALID, TRUE, "Valid", "the spec is valid");
    } else {
        let message = validation::summarize(errors);
        let changed_message = get_condition(&b.status.conditions, condition::VALID)
            .is_none_or(|c| c.message != message);
        b.cond(condition::VALID, FALSE, "InvalidSpec", message.clone());
        if changed_message {
            b.timeline(TimelineType::Invalid, message.clone());
            b.transitions.push(Transition::Invalid { message });
        }
    }
}

fn acknowledgement(b: &mut Builder, spec: &IncidentSpec, opened_at: Timestamp) {
    match spec.acknowledged_by.as_deref().map(str::trim) {
        Some(by) if !by.is_empty() => {
            let message = format!("acknowledged by {by}");
            let previous = get_condition(&b.status.conditions, condition::ACKNOWLEDGED)
                .map(|c| (c.status.clone(), c.message.clone()));
            if b.status.acknowledged_at.is_none() {
                b.status.acknowledged_at = Some(Time(b.now));
            }
            b.cond(
                condition::ACKNOWLEDGED,
                TRUE,
                "Acknowledged",
                message.clone(),
            );
            let first = previous.as_ref().is_none_or(|(s, _)| s != TRUE);
            let handed_over = previous
                .as_ref()
                .is_some_and(|(s, m)| s == TRUE && *m != message);
            if first || handed_over {
                b.timeline(TimelineType::Acknowledged, message);
                let at = b.status.acknowledged_at.as_ref().map_or(b.now, |t| t.0);
                b.transitions.push(Transition::Acknowledged {
                    by: by.to_string(),
                    after: since(at, opened_at),
                    severity: b.status.severity.unwrap_or(spec.severity),
                });
            }
        }
        _ => {
            if is_true(&b.status.conditions, condition::ACKNOWLEDGED) {
                b.status.acknowledged_at = None;
                b.cond(
                    condition::ACKNOWLEDGED,
                    FALSE,
                    "Withdrawn",
                    "the acknowledgement was withdrawn",
                );
                b.timeline(
                    TimelineType::Acknowledged,
                    "acknowledgement withdrawn".into(),
                );
                b.transitions.push(Transition::AcknowledgementWithdrawn);
            }
        }
    }
}

fn resolve(
    b: &mut Builder,
    by: Option<String>,
    summary: String,
    opened_at: Timestamp,
    reason: &str,
) {
    b.status.resolved_at = Some(Time(b.now));
    let message = match &by {
        Some(by) => format!("resolved by {by}: {summary}"),
        None => format!("resolved: {summary}"),
    };
    b.cond(condition::RESOLVED, TRUE, reason, message.clone());
    b.timeline(TimelineType::Resolved, message);
    b.transitions.push(Transition::Resolved {
        by,
        summary,
        after: since(b.now, opened_at),
        severity: b.status.severity.unwrap_or(Severity::SEV4),
    });
}

/// The mitigation plan: align status entries with the spec, gate on
/// approval, watch the monitoring window, move on after a relapse.
fn steps(
    b: &mut Builder,
    spec: &IncidentSpec,
    observation: &Observation,
    policy: &Policy,
    errors: &[FieldError],
    opened_at: Timestamp,
) {
    // Status entries follow spec order; a step's record is kept by name.
    let mut old = std::mem::take(&mut b.status.mitigations);
    b.status.mitigations = spec
        .mitigations
        .iter()
        .map(|s| {
            old.iter()
                .position(|m| m.name == s.name)
                .map(|i| old.swap_remove(i))
                .unwrap_or_else(|| MitigationStatus {
                    name: s.name.clone(),
                    ..Default::default()
                })
        })
        .collect();

    let severity = b.status.severity.unwrap_or(spec.severity);
    let window = policy.monitoring_window(severity);

    if b.status.resolved_at.is_none() {
        let mut i = 0;
        while i < spec.mitigations.len() {
            let state = b.status.mitigations[i].state;
            let name = spec.mitigations[i].name.clone();
            match state {
                StepState::Running => break, // the executor reports back
                StepState::Succeeded => {
                    // Monitoring this step, unless a later step already ran.
                    if b.status.mitigations[i + 1..].iter().any(|m| {
                        m.state != StepState::Pending && m.state != StepState::AwaitingApproval
                    }) {
                        i += 1;
                        continue;
                    }
                    let completed = b.status.mitigations[i]
                        .completed_at
                        .as_ref()
                        .map_or(b.now, |t| t.0);
                    if b.status.mitigated_at.is_none() {
                        b.status.mitigated_at = Some(Time(completed));
                    }
                    match &observation.target {
                        TargetHealth::Unhealthy(reason) => {
                            let step = &mut b.status.mitigations[i];
                            step.state = StepState::Ineffective;
                            step.message = format!("target relapsed during monitoring: {reason}");
                            b.timeline(
                                TimelineType::Relapse,
                                format!("target relapsed after mitigation {name:?}: {reason}"),
                            );
                            b.transitions.push(Transition::Relapse {
                                step: name,
                                reason: reason.clone(),
                            });
                            i += 1;
                            continue;
                        }
                        TargetHealth::Healthy => {
                            let healthy_since =
                                b.status.healthy_since.as_ref().map_or(b.now, |t| t.0);
                            let end = add(healthy_since.max(completed), window);
                            if b.now >= end {
                                resolve(
                                    b,
                                    None,
                                    format!(
                                        "target healthy for {} after mitigation {name:?}",
                                        human(window)
                                    ),
                                    opened_at,
                                    "Recovered",
                                );
                            } else {
                                b.wake_at(end);
                            }
                        }
                        TargetHealth::Unknown | TargetHealth::Missing => {}
                    }
                    break;
                }
                s if s.is_final() => {
                    i += 1;
                    continue;
                }
                _ => {
                    // Pending or AwaitingApproval: this step's turn.
                    let step_spec = &spec.mitigations[i];
                    let step_errs = validation::step_errors(errors, i);
                    if !step_errs.is_empty() {
                        let message = validation::summarize(&step_errs);
                        fail_step(b, i, message);
                        i += 1;
                        continue;
                    }
                    let approved_by = step_spec
                        .approved_by
                        .as_deref()
                        .map(str::trim)
                        .filter(|s| !s.is_empty());
                    match (step_spec.approval, approved_by) {
                        (Approval::Manual, None) => {
                            if state != StepState::AwaitingApproval {
                                let st = &mut b.status.mitigations[i];
                                st.state = StepState::AwaitingApproval;
                                st.message = format!(
                                    "waiting for approval: kubectl incident approve <incident> {name}"
                                );
                                b.timeline(
                                    TimelineType::AwaitingApproval,
                                    format!(
                                        "mitigation {name:?} ({}) awaits approval",
                                        step_spec.action
                                    ),
                                );
                                b.transitions
                                    .push(Transition::AwaitingApproval { step: name });
                            }
                        }
                        (approval, by) => {
                            if b.status.mitigations[i].approved_at.is_none() {
                                b.status.mitigations[i].approved_at = Some(Time(b.now));
                                if let (Approval::Manual, Some(by)) = (approval, by) {
                                    b.timeline(
                                        TimelineType::Approved,
                                        format!("mitigation {name:?} approved by {by}"),
                                    );
                                    b.transitions.push(Transition::Approved {
                                        step: name.clone(),
                                        by: by.to_string(),
                                    });
                                }
                            }
                            let st = &mut b.status.mitigations[i];
                            st.state = StepState::Pending;
                            st.message = match by {
                                Some(by) => format!("approved by {by}; starting"),
                                None => "automatic; starting".into(),
                            };
                            b.transitions.push(Transition::StepReady {
                                index: i,
                                step: name,
                            });
                        }
                    }
                    break;
                }
            }
        }
        if !spec.mitigations.is_empty()
            && b.status.mitigations.iter().all(|m| m.state.is_final())
            && !b
                .status
                .mitigations
                .iter()
                .any(|m| m.state == StepState::Succeeded)
            && get_condition(&b.status.conditions, condition::MITIGATION_FAILED)
                .is_none_or(|c| c.reason != "MitigationsExhausted")
        {
            b.cond(
                condition::MITIGATION_FAILED,
                TRUE,
                "MitigationsExhausted",
                "every mitigation step was tried and none held; a person must take over",
            );
            b.timeline(
                TimelineType::Escalated,
                "no mitigation step left; a person must take over".into(),
            );
            b.transitions.push(Transition::MitigationsExhausted);
        }

        // A detector-opened incident without a plan resolves by itself once
        // the target stays healthy for the monitoring window.
        if b.status.resolved_at.is_none()
            && spec.source == IncidentSource::Detector
            && spec.mitigations.is_empty()
        {
            if let (TargetHealth::Healthy, Some(since_t)) = (
                &observation.target,
                b.status.healthy_since.as_ref().map(|t| t.0),
            ) {
                let end = add(since_t, window);
                if b.now >= end {
                    resolve(
                        b,
                        None,
                        format!("target healthy for {}", human(window)),
                        opened_at,
                        "Recovered",
                    );
                } else {
                    b.wake_at(end);
                }
            }
        }
    }

    // Once resolved, steps that never ran will not run.
    if b.status.resolved_at.is_some() {
        for i in 0..b.status.mitigations.len() {
            let st = &b.status.mitigations[i];
            if matches!(st.state, StepState::Pending | StepState::AwaitingApproval) {
                let name = st.name.clone();
                let message = "the incident was resolved before this step ran".to_string();
                let st = &mut b.status.mitigations[i];
                st.state = StepState::Skipped;
                st.message = message.clone();
                b.timeline(
                    TimelineType::MitigationSkipped,
                    format!("mitigation {name:?} skipped: {message}"),
                );
                b.transitions.push(Transition::StepSkipped {
                    step: name,
                    message,
                });
            }
        }
    }

    let awaiting: Vec<&str> = b
        .status
        .mitigations
        .iter()
        .filter(|m| m.state == StepState::AwaitingApproval)
        .map(|m| m.name.as_str())
        .collect();
    let (status, reason, message) = if awaiting.is_empty() {
        (
            FALSE,
            "NoPendingApproval",
            "no mitigation awaits approval".to_string(),
        )
    } else {
        (
            TRUE,
            "AwaitingApproval",
            format!("awaiting approval: {}", awaiting.join(", ")),
        )
    };
    if !spec.mitigations.is_empty()
        || get_condition(&b.status.conditions, condition::AWAITING_APPROVAL).is_some()
    {
        b.cond(condition::AWAITING_APPROVAL, status, reason, message);
    }
}

fn fail_step(b: &mut Builder, i: usize, message: String) {
    let name = b.status.mitigations[i].name.clone();
    let st = &mut b.status.mitigations[i];
    st.state = StepState::Failed;
    st.message = message.clone();
    st.completed_at = Some(Time(b.now));
    b.cond(
        condition::MITIGATION_FAILED,
        TRUE,
        "StepFailed",
        format!("mitigation {name:?} failed: {message}"),
    );
    b.timeline(
        TimelineType::MitigationFailed,
        format!("mitigation {name:?} failed: {message}"),
    );
    b.transitions.push(Transition::StepFailed {
        step: name,
        message,
    });
}

fn overdue(b: &mut Builder, response: Duration, resolution: Duration) {
    let resolved = b.status.resolved_at.is_some();
    let acknowledged = b.status.acknowledged_at.is_some();
    let response_deadline = b.status.response_deadline.as_ref().map(|t| t.0);
    let resolution_deadline = b.status.resolution_deadline.as_ref().map(|t| t.0);

    if let Some(deadline) = response_deadline {
        if resolved {
            b.cond(
                condition::RESPONSE_OVERDUE,
                FALSE,
                "Resolved",
                "the incident is resolved",
            );
        } else if acknowledged {
            b.cond(
                condition::RESPONSE_OVERDUE,
                FALSE,
                "Acknowledged",
                "the incident was acknowledged",
            );
        } else if b.now >= deadline {
            let message = format!(
                "not acknowledged within the {} response target",
                human(response)
            );
            if b.cond(
                condition::RESPONSE_OVERDUE,
                TRUE,
                "ResponseTargetMissed",
                message.clone(),
            ) {
                b.timeline(TimelineType::ResponseOverdue, message);
                b.transitions
                    .push(Transition::ResponseOverdue { target: response });
            }
        } else {
            b.cond(
                condition::RESPONSE_OVERDUE,
                FALSE,
                "WithinTarget",
                "the response target has not passed",
            );
            b.wake_at(deadline);
        }
    }
    if let Some(deadline) = resolution_deadline {
        if resolved {
            b.cond(
                condition::RESOLUTION_OVERDUE,
                FALSE,
                "Resolved",
                "the incident is resolved",
            );
        } else if b.now >= deadline {
            let message = format!(
                "not resolved within the {} resolution target",
                human(resolution)
            );
            if b.cond(
                condition::RESOLUTION_OVERDUE,
                TRUE,
                "ResolutionTargetMissed",
                message.clone(),
            ) {
                b.timeline(TimelineType::ResolutionOverdue, message);
                b.transitions
                    .push(Transition::ResolutionOverdue { target: resolution });
            }
        } else {
            b.cond(
                condition::RESOLUTION_OVERDUE,
                FALSE,
                "WithinTarget",
                "the resolution target has not passed",
            );
            b.wake_at(deadline);
        }
    }
}

/// Walk the escalation list (see [`super::escalation`]): levels reached are
/// recorded in `status.escalation` and the timeline; the next level's time
/// becomes a wake-up. Acknowledging or resolving stops the walk.
fn escalate(b: &mut Builder, policy: &Policy) {
    let stopped = b.status.resolved_at.is_some() || b.status.acknowledged_at.is_some();
    let outcome = super::escalation::evaluate(
        &policy.escalation,
        b.status.response_deadline.as_ref().map(|t| t.0),
        stopped,
        b.status.escalation.as_ref(),
        b.now,
    );
    b.status.escalation = outcome.status;
    if let Some(w) = outcome.wake_at {
        b.wake_at(w);
    }
    for r in outcome.reached {
        b.timeline(
            TimelineType::Escalated,
            format!("escalated to level {} ({})", r.level, r.notify.join(", ")),
        );
        b.transitions.push(Transition::Escalated {
            level: r.level,
            notify: r.notify,
            after: r.after,
        });
    }
}

/// `NotificationFailed` from the notifier's delivery records: `True` while
/// the latest delivery to some sink failed (or its outcome is unknown).
fn deliveries(b: &mut Builder) {
    use crate::api::DeliveryState;
    if b.status.notifications.is_empty() {
        return;
    }
    let mut latest: std::collections::BTreeMap<&str, &crate::api::NotificationRecord> =
        Default::default();
    for r in &b.status.notifications {
        if r.state == DeliveryState::Sending {
            continue;
        }
        latest.insert(r.sink.as_str(), r);
    }
    let failing: Vec<String> = latest
        .values()
        .filter(|r| matches!(r.state, DeliveryState::Failed | DeliveryState::Unknown))
        .map(|r| format!("{} ({}: {})", r.sink, r.id, r.message))
        .collect();
    let (status, reason, message) = if failing.is_empty() {
        (
            FALSE,
            "Delivered",
            "the latest notification to every sink was delivered".to_string(),
        )
    } else {
        (
            TRUE,
            "DeliveryFailed",
            format!("notification delivery failed: {}", failing.join("; ")),
        )
    };
    if latest.is_empty() {
        return;
    }
    b.cond(condition::NOTIFICATION_FAILED, status, reason, message);
}

/// The phase the status and spec imply.
fn phase_of(status: &IncidentStatus, spec: &IncidentSpec) -> Phase {
    if status.resolved_at.is_some() {
        return Phase::Resolved;
    }
    if status
        .mitigations
        .iter()
        .any(|m| m.state == StepState::Running)
    {
        return Phase::Mitigating;
    }
    let monitoring = status
        .mitigations
        .iter()
        .rposition(|m| m.state != StepState::Pending && m.state != StepState::AwaitingApproval)
        .is_some_and(|i| status.mitigations[i].state == StepState::Succeeded);
    if monitoring {
        return Phase::Monitoring;
    }
    let approved = spec.mitigations.iter().any(|m| {
        m.approved_by
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
    });
    let progressed = matches!(
        status.phase,
        Some(Phase::Identified | Phase::Mitigating | Phase::Monitoring)
    );
    if spec
        .root_cause
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
        || approved
        || progressed
    {
        return Phase::Identified;
    }
    Phase::Investigating
}

/// What an executor reports about a step (the mitigations issue's executors
/// call this; tests use it to drive the lifecycle).
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Intent recorded before acting: the step is Running.
    Started {
        before: std::collections::BTreeMap<String, String>,
        intent: std::collections::BTreeMap<String, String>,
        message: String,
    },
    /// Applied and verified.
    Succeeded {
        after: std::collections::BTreeMap<String, String>,
        message: String,
    },
    /// Could not be applied.
    Failed { message: String },
    /// Not run (guard not met, dry-run, ...).
    Skipped { message: String },
    /// Dry-run: planned and recorded ("would have"), nothing changed; the
    /// step is Skipped with its `before` and `intent`.
    DryRun {
        before: std::collections::BTreeMap<String, String>,
        intent: std::collections::BTreeMap<String, String>,
        message: String,
    },
    /// `revertOnResolve`: the recorded values were restored.
    Reverted { message: String },
    /// `revertOnResolve` decided against restoring (the field no longer
    /// holds our value); the step keeps its state, the reason is recorded.
    NotReverted { message: String },
    /// Another manager changed what the step set (a GitOps self-heal, a
    /// person): the step fails and the incident escalates to a person.
    ExternalChange { message: String },
}

/// Record an executor's report on step `index` and return the transitions
/// it causes. Reporting the same outcome twice changes nothing.
pub fn record_step_outcome(
    status: &mut IncidentStatus,
    index: usize,
    outcome: StepOutcome,
    monitoring_window: Duration,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Transition> {
    let now = truncate_to_seconds(now);
    let Some(step) = status.mitigations.get_mut(index) else {
        return Vec::new();
    };
    let name = step.name.clone();
    let mut transitions = Vec::new();
    let timeline;
    match outcome {
        StepOutcome::Started {
            before,
            intent,
            message,
        } => {
            if step.state == StepState::Running {
                return transitions;
            }
            step.state = StepState::Running;
            step.started_at = Some(Time(now));
            step.before = before;
            step.intent = intent;
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationStarted,
                format!("mitigation {name:?} started: {message}"),
            ));
            transitions.push(Transition::StepStarted {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::Succeeded { after, message } => {
            if step.state == StepState::Succeeded {
                return transitions;
            }
            step.state = StepState::Succeeded;
            step.completed_at = Some(Time(now));
            step.after = after;
            step.message = message.clone();
            if status.mitigated_at.is_none() {
                status.mitigated_at = Some(Time(now));
            }
            timeline = Some((
                TimelineType::MitigationSucceeded,
                format!(
                    "mitigation {name:?} succeeded: {message}; monitoring for {}",
                    human(monitoring_window)
                ),
            ));
            transitions.push(Transition::Monitoring {
                step: name.clone(),
                window: monitoring_window,
            });
        }
        StepOutcome::Failed { message } => {
            if step.state == StepState::Failed {
                return transitions;
            }
            step.state = StepState::Failed;
            step.completed_at = Some(Time(now));
            step.message = message.clone();
            set_condition(
                &mut status.conditions,
                condition::MITIGATION_FAILED,
                TRUE,
                "StepFailed",
                format!("mitigation {name:?} failed: {message}"),
                generation,
                now,
            );
            timeline = Some((
                TimelineType::MitigationFailed,
                format!("mitigation {name:?} failed: {message}"),
            ));
            transitions.push(Transition::StepFailed {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::Skipped { message } => {
            if step.state == StepState::Skipped {
                return transitions;
            }
            step.state = StepState::Skipped;
            step.completed_at = Some(Time(now));
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationSkipped,
                format!("mitigation {name:?} skipped: {message}"),
            ));
            transitions.push(Transition::StepSkipped {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::DryRun {
            before,
            intent,
            message,
        } => {
            if step.state == StepState::Skipped {
                return transitions;
            }
            step.state = StepState::Skipped;
            step.completed_at = Some(Time(now));
            step.before = before;
            step.intent = intent;
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationSkipped,
                format!("mitigation {name:?} skipped: {message}"),
            ));
            transitions.push(Transition::StepSkipped {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::Reverted { message } => {
            if step.state == StepState::Reverted {
                return transitions;
            }
            step.state = StepState::Reverted;
            step.message = message.clone();
            timeline = Some((
                TimelineType::MitigationReverted,
                format!("mitigation {name:?} reverted: {message}"),
            ));
            transitions.push(Transition::Reverted {
                step: name.clone(),
                message,
            });
        }
        StepOutcome::NotReverted { message } => {
            if step.after.get("revert") == Some(&message) {
                return transitions;
            }
            step.after.insert("revert".into(), message.clone());
            timeline = Some((
                TimelineType::MitigationReverted,
                format!("mitigation {name:?} not reverted: {message}"),
            ));
        }
        StepOutcome::ExternalChange { message } => {
            if step.state == StepState::Failed {
                return transitions;
            }
            step.state = StepState::Failed;
            step.completed_at = Some(Time(now));
            step.message = format!("changed by another manager: {message}");
            set_condition(
                &mut status.conditions,
                condition::MITIGATION_FAILED,
                TRUE,
                "ExternalChange",
                format!("mitigation {name:?} was undone by another manager; a person must decide: {message}"),
                generation,
                now,
            );
            timeline = Some((
                TimelineType::ExternalChange,
                format!("mitigation {name:?} was undone by another manager (not fighting it; a person must decide): {message}"),
            ));
            transitions.push(Transition::ExternalChange {
                step: name.clone(),
                message,
            });
        }
    }
    if let Some((t, m)) = timeline {
        push_timeline(status, t, m, now);
    }

    if matches!(
        status.mitigations.get(index).map(|m| m.state),
        Some(StepState::Running)
    ) {
        status.phase = Some(Phase::Mitigating);
    }
    transitions
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;

//! What happened in one evaluation ([`Transition`]) and the Kubernetes
//! Event each one becomes.

use std::time::Duration;

use super::time::human;
use crate::api::{IncidentSource, Severity, TriggerType};

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
    /// No governing Runbook grants the step: it never runs.
    StepRefused {
        step: String,
        message: String,
    },
    /// An approval the API server did not verify was not honoured
    /// (`accepted: false`) or was honoured under the operator's flag.
    ApprovalUnverified {
        step: String,
        by: String,
        accepted: bool,
        why: String,
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
    /// The GitOps owner of the target was paused before step `step`.
    GitOpsSuspended {
        step: String,
        message: String,
    },
    /// A paused GitOps owner got its automation back (`restored`), or was
    /// left as it is (why in `message`).
    GitOpsRestored {
        step: String,
        message: String,
        restored: bool,
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
            Transition::StepRefused { step, message } => (
                Warning,
                "MitigationRefused",
                format!("mitigation {step:?} refused: {message}"),
            ),
            Transition::ApprovalUnverified {
                step,
                by,
                accepted,
                why,
            } => (
                Warning,
                "ApprovalUnverified",
                if *accepted {
                    format!("approval of {step:?} by {by} accepted UNVERIFIED (--accept-unverified-approvals): {why}")
                } else {
                    format!("approval of {step:?} by {by} not honoured: {why}")
                },
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
            Transition::GitOpsSuspended { step, message } => (
                Warning,
                "GitOpsSuspended",
                format!("before mitigation {step:?}: {message}"),
            ),
            Transition::GitOpsRestored {
                step,
                message,
                restored,
            } => (
                Normal,
                if *restored {
                    "GitOpsRestored"
                } else {
                    "GitOpsNotRestored"
                },
                format!("after mitigation {step:?}: {message}"),
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

//! Pure: which messages a reconcile's transitions call for, to which sinks,
//! and how they read (Slack text, versioned webhook JSON). Deterministic:
//! rendering depends only on the Incident and the delivery record.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::api::{
    Incident, NotificationEvent, NotificationRecord, NotifyFormat, NotifySink, Runbook,
};
use crate::core::lifecycle::{human, Transition};

/// The webhook payload's schema identifier (documented in docs/notifications.md).
pub const WEBHOOK_API_VERSION: &str = "notifications.kubeincident.io/v1";
/// The webhook payload's kind.
pub const WEBHOOK_KIND: &str = "IncidentNotification";

/// Who receives a planned message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The Runbook's team sinks: every `notify` sink not named by an escalation level.
    Team,
    /// The team sinks plus the escalation sinks of levels already reached.
    TeamAndEscalated,
    /// Exactly these sinks (an escalation level).
    Sinks(Vec<String>),
}

/// One message the transitions call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub event: NotificationEvent,
    pub subject: Option<String>,
    pub audience: Audience,
}

/// The messages for a reconcile's transitions (in order).
pub fn plan(transitions: &[Transition]) -> Vec<Planned> {
    let p = |event, subject: Option<String>, audience| Planned {
        event,
        subject,
        audience,
    };
    transitions
        .iter()
        .filter_map(|t| match t {
            Transition::Opened { .. } => Some(p(NotificationEvent::Declared, None, Audience::Team)),
            Transition::Reopened { .. } => {
                Some(p(NotificationEvent::Reopened, None, Audience::Team))
            }
            Transition::Acknowledged { .. } => Some(p(
                NotificationEvent::Acknowledged,
                None,
                Audience::TeamAndEscalated,
            )),
            Transition::AwaitingApproval { step } => Some(p(
                NotificationEvent::MitigationAwaitingApproval,
                Some(step.clone()),
                Audience::Team,
            )),
            Transition::Monitoring { step, .. } => Some(p(
                NotificationEvent::MitigationApplied,
                Some(step.clone()),
                Audience::Team,
            )),
            Transition::GitOpsSuspended { step, .. } => Some(p(
                NotificationEvent::GitOpsSuspended,
                Some(step.clone()),
                Audience::Team,
            )),
            Transition::ResponseOverdue { .. } => {
                Some(p(NotificationEvent::ResponseOverdue, None, Audience::Team))
            }
            Transition::ResolutionOverdue { .. } => Some(p(
                NotificationEvent::ResolutionOverdue,
                None,
                Audience::TeamAndEscalated,
            )),
            Transition::Escalated { level, notify, .. } => Some(p(
                NotificationEvent::Escalated,
                Some(format!("level-{level}")),
                Audience::Sinks(notify.clone()),
            )),
            Transition::Resolved { .. } => Some(p(
                NotificationEvent::Resolved,
                None,
                Audience::TeamAndEscalated,
            )),
            _ => None,
        })
        .collect()
}

/// The sinks of a Runbook that receive a planned message. `escalated_level`
/// is the incident's `status.escalation.level`.
pub fn recipients<'a>(
    runbook: &'a Runbook,
    audience: &Audience,
    escalated_level: i32,
) -> Vec<&'a NotifySink> {
    let escalation_sinks: BTreeSet<&str> = runbook
        .spec
        .escalation
        .iter()
        .flat_map(|l| l.notify.iter().map(String::as_str))
        .collect();
    let mut levels = crate::core::escalation::levels(&runbook.spec.escalation);
    levels.truncate(escalated_level.max(0) as usize);
    let reached: BTreeSet<&str> = levels
        .iter()
        .flat_map(|l| l.notify.iter())
        .filter_map(|n| escalation_sinks.get(n.as_str()).copied())
        .collect();
    runbook
        .spec
        .notify
        .iter()
        .filter(|s| {
            let team = !escalation_sinks.contains(s.name.as_str());
            match audience {
                Audience::Team => team,
                Audience::TeamAndEscalated => team || reached.contains(s.name.as_str()),
                Audience::Sinks(names) => names.iter().any(|n| n == &s.name),
            }
        })
        .collect()
}

/// The delivery id of a message to a sink: stable across replays, restarts
/// and replicas (event, subject, occurrence of the episode, sink).
pub fn delivery_id(planned: &Planned, occurrence: i64, sink: &str) -> String {
    let mut id = planned.event.as_str().to_ascii_lowercase();
    if let Some(s) = &planned.subject {
        id.push('.');
        id.push_str(s);
    }
    id.push_str(&format!(".o{occurrence}.{sink}"));
    id
}

fn ns_name(inc: &Incident) -> (String, String) {
    (
        inc.metadata.namespace.clone().unwrap_or_default(),
        inc.metadata.name.clone().unwrap_or_default(),
    )
}

/// Headline of a message, e.g. `SEV2 incident declared`.
fn headline(event: NotificationEvent, subject: Option<&str>, sev: &str) -> String {
    let subject = subject.unwrap_or("");
    match event {
        NotificationEvent::Declared => format!("{sev} incident declared"),
        NotificationEvent::Reopened => format!("{sev} incident reopened: the trouble recurred"),
        NotificationEvent::Acknowledged => format!("{sev} incident acknowledged"),
        NotificationEvent::MitigationAwaitingApproval => {
            format!("{sev} incident: mitigation {subject:?} awaits approval")
        }
        NotificationEvent::MitigationApplied => {
            format!("{sev} incident: mitigation {subject:?} applied")
        }
        NotificationEvent::GitOpsSuspended => format!(
            "{sev} incident: GitOps automation paused for mitigation {subject:?}; Git no longer matches what runs"
        ),
        NotificationEvent::Escalated => format!(
            "{sev} incident escalated ({}): nobody acknowledged it",
            subject.replace('-', " ")
        ),
        NotificationEvent::ResponseOverdue => {
            format!("{sev} incident not acknowledged within its response target")
        }
        NotificationEvent::ResolutionOverdue => {
            format!("{sev} incident not resolved within its resolution target")
        }
        NotificationEvent::Resolved => format!("{sev} incident resolved"),
    }
}

/// What to do next, as commands a responder can paste.
fn next_steps(inc: &Incident, event: NotificationEvent, subject: Option<&str>) -> Vec<String> {
    let (ns, name) = ns_name(inc);
    let ack = format!("acknowledge: kubectl incident ack {name} -n {ns}");
    let describe = format!("details and evidence: kubectl incident describe {name} -n {ns}");
    match event {
        NotificationEvent::Declared
        | NotificationEvent::Reopened
        | NotificationEvent::ResponseOverdue
        | NotificationEvent::Escalated => vec![ack, describe],
        NotificationEvent::Acknowledged => vec![
            describe,
            format!("when you know the cause: kubectl patch incident {name} -n {ns} --type merge -p '{{\"spec\":{{\"rootCause\":\"...\"}}}}'"),
        ],
        NotificationEvent::MitigationAwaitingApproval => vec![
            format!(
                "approve: kubectl incident approve {name} {} -n {ns}",
                subject.unwrap_or_default()
            ),
            describe,
        ],
        NotificationEvent::MitigationApplied => vec![
            "watch the target through the monitoring window; a relapse moves to the next step"
                .to_string(),
            describe,
        ],
        NotificationEvent::GitOpsSuspended => vec![
            "make Git match what is running (the difference is in the post-mortem draft), then: kubectl patch incident NAME --type merge -p '{\"spec\":{\"resumeGitOps\":true}}'"
                .replace("NAME", &format!("{name} -n {ns}")),
            describe,
        ],
        NotificationEvent::ResolutionOverdue => vec![
            describe,
            format!("resolve by hand when it is over: kubectl incident resolve {name} -n {ns} --summary \"...\""),
        ],
        NotificationEvent::Resolved => vec![format!(
            "read the post-mortem draft: kubectl incident postmortem {name} -n {ns}"
        )],
    }
}

fn impact_text(inc: &Incident) -> Option<String> {
    let i = inc.status.as_ref()?.impact.as_ref()?;
    let mut parts = Vec::new();
    if let (Some(r), Some(d)) = (i.ready_replicas, i.desired_replicas) {
        parts.push(format!("{r}/{d} replicas ready"));
    }
    if let Some(u) = i.unhealthy_pods {
        parts.push(format!("{u} unhealthy pods"));
    }
    let mut text = parts.join(", ");
    if !i.reasons.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("({})", i.reasons.join(", ")));
    }
    (!text.is_empty()).then_some(text)
}

fn severity(inc: &Incident) -> String {
    inc.status
        .as_ref()
        .and_then(|s| s.severity)
        .unwrap_or(inc.spec.severity)
        .to_string()
}

/// Extra detail of a message (the step's outcome, the resolution).
fn detail(inc: &Incident, rec: &NotificationRecord) -> Option<String> {
    let status = inc.status.as_ref();
    match rec.event {
        NotificationEvent::MitigationApplied => {
            let name = rec.subject.as_deref()?;
            let m = status?.mitigations.iter().find(|m| m.name == name)?;
            (!m.message.is_empty()).then(|| m.message.clone())
        }
        NotificationEvent::GitOpsSuspended => status?
            .conditions
            .iter()
            .find(|c| c.type_ == crate::core::lifecycle::condition::GITOPS_SUSPENDED)
            .map(|c| c.message.clone()),
        NotificationEvent::Acknowledged => inc
            .spec
            .acknowledged_by
            .as_ref()
            .map(|by| format!("acknowledged by {by}")),
        NotificationEvent::Resolved => {
            let s = status?;
            let dur = match (&s.opened_at, &s.resolved_at) {
                (Some(o), Some(r)) => Some(human(
                    std::time::Duration::try_from(r.0.duration_since(o.0)).unwrap_or_default(),
                )),
                _ => None,
            };
            let summary = inc
                .spec
                .resolution
                .as_ref()
                .map(|r| r.summary.clone())
                .filter(|s| !s.is_empty());
            match (dur, summary) {
                (Some(d), Some(s)) => Some(format!("after {d}: {s}")),
                (Some(d), None) => Some(format!("after {d}")),
                (None, s) => s,
            }
        }
        _ => None,
    }
}

/// Escape the three characters Slack's message formatting reserves.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack incoming-webhook payload. Free text (title, detail,
/// commander) is escaped so it cannot inject links or mentions.
pub fn render_slack(inc: &Incident, rec: &NotificationRecord) -> Value {
    let (ns, name) = ns_name(inc);
    let sev = severity(inc);
    let head = slack_escape(&headline(rec.event, rec.subject.as_deref(), &sev));
    let title = slack_escape(&inc.spec.title);
    let mut lines = vec![
        format!("*{head}*: {title}"),
        format!("*Incident:* `{ns}/{name}`"),
    ];
    if let Some(d) = detail(inc, rec) {
        lines.push(format!("*Detail:* {}", slack_escape(&d)));
    }
    if let Some(t) = &inc.spec.target {
        lines.push(format!("*Target:* {} `{ns}/{}`", t.kind.as_str(), t.name));
    }
    if let Some(i) = impact_text(inc) {
        lines.push(format!("*Impact:* {i}"));
    }
    if let Some(c) = &inc.spec.commander {
        lines.push(format!("*Commander:* {}", slack_escape(c)));
    }
    let steps = next_steps(inc, rec.event, rec.subject.as_deref());
    lines.push("*Next:*".to_string());
    for s in &steps {
        lines.push(format!("• {}", slack_escape(s)));
    }
    let text = lines.join("\n");
    json!({
        "text": format!("{head}: {title} ({ns}/{name})"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        ]
    })
}

/// The generic webhook payload (schema `notifications.kubeincident.io/v1`).
pub fn render_webhook(inc: &Incident, rec: &NotificationRecord) -> Value {
    let (ns, name) = ns_name(inc);
    let sev = severity(inc);
    let status = inc.status.clone().unwrap_or_default();
    let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| t.0.to_string())
    };
    json!({
        "apiVersion": WEBHOOK_API_VERSION,
        "kind": WEBHOOK_KIND,
        "id": rec.id,
        "event": rec.event.as_str(),
        "subject": rec.subject,
        "summary": headline(rec.event, rec.subject.as_deref(), &sev),
        "detail": detail(inc, rec),
        "nextSteps": next_steps(inc, rec.event, rec.subject.as_deref()),
        "incident": {
            "namespace": ns,
            "name": name,
            "uid": inc.metadata.uid,
            "title": inc.spec.title,
            "severity": sev,
            "phase": status.phase.map(|p| p.as_str()),
            "source": inc.spec.source.as_str(),
            "target": inc.spec.target.as_ref().map(|t| json!({"kind": t.kind.as_str(), "name": t.name})),
            "commander": inc.spec.commander,
            "acknowledgedBy": inc.spec.acknowledged_by,
            "impact": status.impact,
            "escalationLevel": status.escalation.as_ref().map(|e| e.level),
            "occurrences": status.occurrences,
            "openedAt": time(&status.opened_at),
            "acknowledgedAt": time(&status.acknowledged_at),
            "mitigatedAt": time(&status.mitigated_at),
            "resolvedAt": time(&status.resolved_at),
        }
    })
}

/// The payload for a sink's format.
pub fn render(format: NotifyFormat, inc: &Incident, rec: &NotificationRecord) -> Value {
    match format {
        NotifyFormat::Slack => render_slack(inc, rec),
        NotifyFormat::Webhook => render_webhook(inc, rec),
    }
}

#[cfg(test)]
mod tests;

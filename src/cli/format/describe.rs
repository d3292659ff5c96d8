//! The `describe` page of one Incident.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::time::{deadline_state, format_time, human_duration, span, time_and_relative};
use super::{cell, effective_severity, opened_at, steps, table, target_text, timeline, NONE};
use crate::api::{Incident, Phase};

/// Width of the label column of `describe`.
const LABEL_WIDTH: usize = 21;

/// One `Label:  value` line of `describe`.
fn field(out: &mut String, label: &str, value: &str) {
    let label = format!("{label}:");
    out.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// The `describe` page of one Incident.
pub fn describe(incident: &Incident, now: Timestamp) -> String {
    let spec = &incident.spec;
    let default_status = Default::default();
    let status = incident.status.as_ref().unwrap_or(&default_status);
    let namespace = incident.metadata.namespace.clone().unwrap_or_default();
    let name = incident.metadata.name.clone().unwrap_or_default();
    let opened = opened_at(incident);
    let resolved = status.phase == Some(Phase::Resolved);
    let mut out = String::new();

    field(&mut out, "Name", &name);
    field(&mut out, "Namespace", &namespace);
    field(&mut out, "Title", &cell(&spec.title));
    let effective = effective_severity(incident);
    let severity = if effective == spec.severity {
        effective.to_string()
    } else {
        format!("{effective} (declared {})", spec.severity)
    };
    field(&mut out, "Severity", &severity);
    field(
        &mut out,
        "Phase",
        &status
            .phase
            .map_or("<none> (not yet seen by the operator)".to_string(), |p| {
                p.to_string()
            }),
    );
    field(&mut out, "Source", spec.source.as_str());
    field(&mut out, "Target", &target_text(spec.target.as_ref()));
    field(
        &mut out,
        "Runbook",
        &spec
            .runbook_ref
            .as_ref()
            .map_or(NONE.to_string(), |r| match &r.namespace {
                Some(ns) => format!("{ns}/{}", r.name),
                None => r.name.clone(),
            }),
    );
    field(
        &mut out,
        "Commander",
        &spec.commander.as_deref().map_or(NONE.to_string(), cell),
    );
    field(
        &mut out,
        "Opened",
        &opened.map_or(NONE.to_string(), |t| time_and_relative(t, now)),
    );
    if let Some(t) = ts(&status.first_observed_at) {
        field(&mut out, "First observed", &time_and_relative(t, now));
    }

    let acked_at = ts(&status.acknowledged_at);
    let ack = match (&spec.acknowledged_by, acked_at) {
        (Some(by), Some(at)) => match opened {
            Some(o) => format!(
                "by {}, {} after opening ({})",
                cell(by),
                human_duration(span(at, o)),
                format_time(at)
            ),
            None => format!("by {} ({})", cell(by), format_time(at)),
        },
        (Some(by), None) => format!("by {} (not yet recorded by the operator)", cell(by)),
        (None, _) => "no".to_string(),
    };
    field(&mut out, "Acknowledged", &ack);

    let acked = spec.acknowledged_by.is_some() || acked_at.is_some();
    match ts(&status.response_deadline) {
        Some(d) => {
            let state = if resolved && !acked {
                "not acknowledged before resolution".to_string()
            } else {
                deadline_state(d, acked, acked_at, now)
            };
            field(
                &mut out,
                "Response deadline",
                &format!("{} ({state})", format_time(d)),
            );
        }
        None => field(&mut out, "Response deadline", NONE),
    }
    let resolved_at = ts(&status.resolved_at);
    match ts(&status.resolution_deadline) {
        Some(d) => {
            let state = deadline_state(d, resolved, resolved_at, now);
            field(
                &mut out,
                "Resolution deadline",
                &format!("{} ({state})", format_time(d)),
            );
        }
        None => field(&mut out, "Resolution deadline", NONE),
    }
    if let Some(t) = ts(&status.mitigated_at) {
        field(&mut out, "Mitigated", &time_and_relative(t, now));
    }
    if let Some(t) = resolved_at {
        let mut text = time_and_relative(t, now);
        if let Some(o) = opened {
            text.push_str(&format!(", {} after opening", human_duration(span(t, o))));
        }
        field(&mut out, "Resolved", &text);
    }
    if let Some(r) = &spec.resolution {
        let text = if r.summary.is_empty() {
            format!("by {}", cell(&r.by))
        } else {
            format!("by {}: {}", cell(&r.by), cell(&r.summary))
        };
        field(&mut out, "Resolution", &text);
    }
    if let Some(rc) = &spec.root_cause {
        field(&mut out, "Root cause", &cell(rc));
    }
    if let Some(n) = status.occurrences.filter(|n| *n > 1) {
        let last = ts(&status.last_seen_at)
            .map(|t| format!(", last seen {}", time_and_relative(t, now)))
            .unwrap_or_default();
        field(&mut out, "Occurrences", &format!("{n}{last}"));
    }
    if let Some(impact) = &status.impact {
        let mut parts = Vec::new();
        match (impact.ready_replicas, impact.desired_replicas) {
            (Some(r), Some(d)) => parts.push(format!("{r}/{d} replicas ready")),
            (None, Some(d)) => parts.push(format!("{d} replicas desired")),
            (Some(r), None) => parts.push(format!("{r} replicas ready")),
            (None, None) => {}
        }
        if let Some(u) = impact.unhealthy_pods {
            parts.push(format!("{u} unhealthy pods"));
        }
        if !impact.reasons.is_empty() {
            parts.push(format!("reasons: {}", impact.reasons.join(", ")));
        }
        if let Some(s) = impact.severity {
            parts.push(format!("impact severity {s}"));
        }
        if !parts.is_empty() {
            field(&mut out, "Impact", &parts.join("; "));
        }
    }
    if let Some(o) = &status.git_ops_owner {
        let paused = status
            .conditions
            .iter()
            .find(|c| c.type_ == crate::core::lifecycle::condition::GITOPS_SUSPENDED)
            .map_or(String::new(), |c| {
                if c.status == "True" {
                    " (automation paused by kube-incident)".to_string()
                } else {
                    format!(" ({})", c.reason)
                }
            });
        field(
            &mut out,
            "GitOps owner",
            &format!("{o}, named by its {}{paused}", o.via),
        );
    }
    if let Some(e) = &status.escalation {
        if e.level > 0 || e.next_at.is_some() {
            let next = ts(&e.next_at)
                .map(|t| format!(", next {}", time_and_relative(t, now)))
                .unwrap_or_default();
            field(&mut out, "Escalation", &format!("level {}{next}", e.level));
        }
    }

    if spec.mitigations.is_empty() {
        field(&mut out, "Mitigations", NONE);
    } else {
        out.push_str("Mitigations:\n");
        out.push_str(&table(&steps::rows(incident), "  "));
    }

    if status.conditions.is_empty() {
        field(&mut out, "Conditions", NONE);
    } else {
        out.push_str("Conditions:\n");
        let mut rows = vec![["TYPE", "STATUS", "REASON", "MESSAGE", "AGE"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
        for c in &status.conditions {
            let t = c.last_transition_time.0;
            rows.push(vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                cell(&c.message),
                if t > now {
                    "0s".to_string()
                } else {
                    human_duration(span(now, t))
                },
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }

    if status.timeline.is_empty() {
        field(&mut out, "Timeline", NONE);
    } else {
        out.push_str("Timeline:\n");
        out.push_str(&table(&timeline::rows(status, opened), "  "));
    }

    let ns_flag = if namespace.is_empty() {
        String::new()
    } else {
        format!(" -n {namespace}")
    };
    match &status.evidence_ref {
        Some(r) => field(
            &mut out,
            "Evidence",
            &format!(
                "ConfigMap {} (read it: kubectl get configmap {}{ns_flag} -o yaml)",
                r.name, r.name
            ),
        ),
        None => field(&mut out, "Evidence", NONE),
    }
    match &status.postmortem_ref {
        Some(r) => field(
            &mut out,
            "Post-mortem",
            &format!(
                "ConfigMap {} (read it: kubectl incident postmortem {name}{ns_flag})",
                r.name
            ),
        ),
        None => field(
            &mut out,
            "Post-mortem",
            if resolved {
                "<none> (not written yet)"
            } else {
                "<none> (written when resolved)"
            },
        ),
    }
    out
}

#[cfg(test)]
#[path = "describe_tests.rs"]
mod tests;

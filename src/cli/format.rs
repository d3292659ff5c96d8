//! Pure formatting of Incidents for people: the `list` table and the
//! `describe` page. Every function takes the data and `now` and returns a
//! `String`, so the output is unit-tested with golden strings.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    Approval, Incident, MitigationAction, MitigationStatus, MitigationStep, Phase, Severity,
    StepState, TargetKind, TargetRef,
};

/// Shown for absent values, as kubectl does.
pub const NONE: &str = "<none>";

/// Width of the label column of `describe`.
const LABEL_WIDTH: usize = 21;

/// kubectl's `HumanDuration` (k8s.io/apimachinery `duration.HumanDuration`):
/// `45s`, `5m30s`, `12m`, `3h20m`, `20h`, `3d4h`, `120d`, `2y30d`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `later - earlier`, clamped at zero.
fn span(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// RFC 3339 in UTC, whole seconds: `2026-11-22T10:00:00Z`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `12m ago` (or `in 3m` for a time in the future).
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    if t <= now {
        format!("{} ago", human_duration(span(now, t)))
    } else {
        format!("in {}", human_duration(span(t, now)))
    }
}

/// `2026-11-22T10:00:00Z (12m ago)`.
pub fn time_and_relative(t: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", format_time(t), relative(t, now))
}

/// A signed offset from `base` in Go duration style: `+2m10s`, `-30s`.
pub fn offset(t: Timestamp, base: Timestamp) -> String {
    if t >= base {
        format!("+{}", crate::api::format_duration(span(t, base)))
    } else {
        format!("-{}", crate::api::format_duration(span(base, t)))
    }
}

/// The effective severity: `status.severity`, else the declared one.
pub fn effective_severity(incident: &Incident) -> Severity {
    incident
        .status
        .as_ref()
        .and_then(|s| s.severity)
        .unwrap_or(incident.spec.severity)
}

/// The phase, if the operator has set one.
pub fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

/// When the Incident was opened: `status.openedAt`, else its creation time.
pub fn opened_at(incident: &Incident) -> Option<Timestamp> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.opened_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// `deployment/web`, `pod/web-0`.
pub fn target_text(target: Option<&TargetRef>) -> String {
    match target {
        Some(t) => {
            let kind = match t.kind {
                TargetKind::Deployment => "deployment",
                TargetKind::Pod => "pod",
            };
            format!("{kind}/{}", t.name)
        }
        None => NONE.to_string(),
    }
}

/// Replace line breaks (and tabs) so a value stays on its table row.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

/// Align rows into columns separated by three spaces (like kubectl's
/// tabwriter), each line prefixed by `indent`; trailing spaces trimmed.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i + 1 < row.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Sort for `list`: effective severity (SEV1 first), then oldest first,
/// then namespace and name.
pub fn sort_for_list(incidents: &mut [Incident]) {
    incidents.sort_by(|a, b| {
        effective_severity(a)
            .cmp(&effective_severity(b))
            .then_with(|| opened_at(a).cmp(&opened_at(b)))
            .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The `list` table (rows in the given order). `all_namespaces` adds a
/// leading NAMESPACE column.
pub fn list_table(incidents: &[Incident], all_namespaces: bool, now: Timestamp) -> String {
    let mut header: Vec<String> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".into());
    }
    header.extend(
        ["NAME", "SEVERITY", "PHASE", "TARGET", "ACK", "AGE", "TITLE"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut rows = vec![header];
    for inc in incidents {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(inc.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(inc.metadata.name.clone().unwrap_or_default());
        row.push(effective_severity(inc).to_string());
        row.push(phase(inc).map_or(NONE.to_string(), |p| p.to_string()));
        row.push(target_text(inc.spec.target.as_ref()));
        row.push(
            inc.spec
                .acknowledged_by
                .as_deref()
                .map_or(NONE.to_string(), cell),
        );
        row.push(opened_at(inc).map_or(NONE.to_string(), |t| {
            if t > now {
                "0s".to_string()
            } else {
                human_duration(span(now, t))
            }
        }));
        row.push(cell(&inc.spec.title));
        rows.push(row);
    }
    table(&rows, "")
}

/// What a step does, in a few words: `Scale to 6`, `SetEnv A=b (container app)`.
pub fn action_text(step: &MitigationStep) -> String {
    match step.action {
        MitigationAction::RolloutUndo if step.to_revision > 0 => {
            format!("RolloutUndo to revision {}", step.to_revision)
        }
        MitigationAction::RolloutUndo => "RolloutUndo".to_string(),
        MitigationAction::Scale => match step.replicas {
            Some(r) => format!("Scale to {r}"),
            None => "Scale".to_string(),
        },
        MitigationAction::SetEnv => {
            let vars: Vec<String> = step
                .env
                .iter()
                .map(|e| format!("{}={}", e.name, e.value))
                .collect();
            let mut s = format!("SetEnv {}", vars.join(","));
            if let Some(c) = &step.container {
                s.push_str(&format!(" (container {c})"));
            }
            cell(s.trim_end())
        }
        MitigationAction::RolloutRestart => "RolloutRestart".to_string(),
    }
}

fn approval_text(step: &MitigationStep) -> String {
    match (step.approval, &step.approved_by) {
        (Approval::Automatic, _) => "Automatic".to_string(),
        (Approval::Manual, Some(by)) => format!("approved by {}", cell(by)),
        (Approval::Manual, None) => "Manual, not approved".to_string(),
    }
}

fn map_text(m: &std::collections::BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", cell(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn change_text(status: Option<&MitigationStatus>) -> String {
    let Some(s) = status else {
        return String::new();
    };
    match (s.before.is_empty(), s.after.is_empty()) {
        (true, true) => String::new(),
        _ => format!(
            "{} -> {}",
            if s.before.is_empty() {
                "?".to_string()
            } else {
                map_text(&s.before)
            },
            if s.after.is_empty() {
                "?".to_string()
            } else {
                map_text(&s.after)
            }
        ),
    }
}

/// The state of each step: `status.mitigations` by name, else `Pending`.
pub fn step_state(incident: &Incident, step: &str) -> StepState {
    step_status(incident, step).map_or(StepState::Pending, |s| s.state)
}

/// The status entry of a step, by name.
pub fn step_status<'a>(incident: &'a Incident, step: &str) -> Option<&'a MitigationStatus> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.mitigations.iter().find(|m| m.name == step))
}

/// One `Label:  value` line of `describe`.
fn field(out: &mut String, label: &str, value: &str) {
    let label = format!("{label}:");
    out.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// The text after a deadline: `in 3m`, `overdue by 2m`, `met`, `missed by 4m`.
/// `done_at` is when the deadline's goal was reached (acknowledged/resolved);
/// `done` says whether it was reached at all (the time may be unknown yet).
pub fn deadline_state(
    deadline: Timestamp,
    done: bool,
    done_at: Option<Timestamp>,
    now: Timestamp,
) -> String {
    if done {
        return match done_at {
            Some(t) if t > deadline => format!("missed by {}", human_duration(span(t, deadline))),
            _ => "met".to_string(),
        };
    }
    if now < deadline {
        format!("in {}", human_duration(span(deadline, now)))
    } else {
        format!("overdue by {}", human_duration(span(now, deadline)))
    }
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
        spec.runbook_ref.as_ref().map_or(NONE, |r| r.name.as_str()),
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
        let mut rows = vec![["NAME", "ACTION", "APPROVAL", "STATE", "MESSAGE", "CHANGE"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
        for step in &spec.mitigations {
            let st = step_status(incident, &step.name);
            rows.push(vec![
                step.name.clone(),
                action_text(step),
                approval_text(step),
                st.map_or(StepState::Pending, |s| s.state)
                    .as_str()
                    .to_string(),
                st.map_or(String::new(), |s| cell(&s.message)),
                change_text(st),
            ]);
        }
        out.push_str(&table(&rows, "  "));
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
        let base = opened.unwrap_or(status.timeline[0].time.0);
        let mut rows = Vec::new();
        for (i, e) in status.timeline.iter().enumerate() {
            rows.push(vec![
                offset(e.time.0, base),
                format_time(e.time.0),
                format!("{:?}", e.type_),
                cell(&e.message),
            ]);
            if i == 0 {
                if let Some(n) = status.timeline_dropped.filter(|n| *n > 0) {
                    rows.push(vec![
                        "...".to_string(),
                        String::new(),
                        String::new(),
                        format!("({n} older entries dropped by the timeline cap)"),
                    ]);
                }
            }
        }
        out.push_str(&table(&rows, "  "));
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
mod tests {
    use super::*;
    use crate::api::{
        EnvVarSetting, Impact, IncidentSource, IncidentSpec, IncidentStatus, LocalObjectReference,
        Resolution, TimelineEntry, TimelineType,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use std::collections::BTreeMap;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn time(s: &str) -> Option<Time> {
        Some(Time(t(s)))
    }

    fn spec(title: &str, severity: Severity) -> IncidentSpec {
        IncidentSpec {
            title: title.into(),
            severity,
            source: IncidentSource::Manual,
            target: None,
            runbook_ref: None,
            commander: None,
            acknowledged_by: None,
            root_cause: None,
            mitigations: vec![],
            resolution: None,
        }
    }

    fn incident(
        ns: &str,
        name: &str,
        spec: IncidentSpec,
        status: Option<IncidentStatus>,
    ) -> Incident {
        let mut inc = Incident::new(name, spec);
        inc.metadata.namespace = Some(ns.into());
        inc.status = status;
        inc
    }

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (130, "2m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (8 * 3600 + 20 * 60, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (8 * 86400, "8d"),
            (800 * 86400, "2y70d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn relative_times_and_offsets() {
        let now = t("2026-11-22T10:12:00Z");
        assert_eq!(relative(t("2026-11-22T10:00:00Z"), now), "12m ago");
        assert_eq!(relative(t("2026-11-22T10:15:00Z"), now), "in 3m");
        assert_eq!(
            time_and_relative(t("2026-11-22T10:00:00Z"), now),
            "2026-11-22T10:00:00Z (12m ago)"
        );
        let base = t("2026-11-22T10:00:00Z");
        assert_eq!(offset(t("2026-11-22T10:02:10Z"), base), "+2m10s");
        assert_eq!(offset(base, base), "+0s");
        assert_eq!(offset(t("2026-11-22T09:59:30Z"), base), "-30s");
        assert_eq!(offset(t("2026-11-22T11:30:00Z"), base), "+1h30m");
    }

    #[test]
    fn deadlines() {
        let d = t("2026-11-22T10:15:00Z");
        assert_eq!(
            deadline_state(d, false, None, t("2026-11-22T10:12:00Z")),
            "in 3m"
        );
        assert_eq!(
            deadline_state(d, false, None, t("2026-11-22T10:17:00Z")),
            "overdue by 2m"
        );
        assert_eq!(
            deadline_state(
                d,
                true,
                Some(t("2026-11-22T10:03:00Z")),
                t("2026-11-22T10:30:00Z")
            ),
            "met"
        );
        assert_eq!(
            deadline_state(
                d,
                true,
                Some(t("2026-11-22T10:19:00Z")),
                t("2026-11-22T10:30:00Z")
            ),
            "missed by 4m"
        );
        assert_eq!(
            deadline_state(d, true, None, t("2026-11-22T10:30:00Z")),
            "met"
        );
    }

    #[test]
    fn targets() {
        let web = TargetRef {
            kind: TargetKind::Deployment,
            name: "web".into(),
        };
        assert_eq!(target_text(Some(&web)), "deployment/web");
        assert_eq!(target_text(None), "<none>");
    }

    fn list_fixture() -> Vec<Incident> {
        let mut a = spec("web: 502s after deploy", Severity::SEV2);
        a.target = Some(TargetRef {
            kind: TargetKind::Deployment,
            name: "web".into(),
        });
        a.acknowledged_by = Some("alice".into());
        let a = incident(
            "shop",
            "web-abc123",
            a,
            Some(IncidentStatus {
                phase: Some(Phase::Mitigating),
                severity: Some(Severity::SEV2),
                opened_at: time("2026-11-22T10:00:00Z"),
                ..Default::default()
            }),
        );
        // declared SEV3, raised to SEV1 by impact: sorts first
        let b = incident(
            "pay",
            "payments-down-1a2b3c",
            spec("payments failing", Severity::SEV3),
            Some(IncidentStatus {
                phase: Some(Phase::Investigating),
                severity: Some(Severity::SEV1),
                opened_at: time("2026-11-22T10:10:00Z"),
                ..Default::default()
            }),
        );
        // no status yet: creation time is its age
        let mut c = incident(
            "shop",
            "batch-9f9f9f",
            spec("batch slow", Severity::SEV2),
            None,
        );
        c.metadata.creation_timestamp = time("2026-11-22T08:00:00Z");
        vec![a, b, c]
    }

    #[test]
    fn list_golden() {
        let mut items = list_fixture();
        sort_for_list(&mut items);
        let now = t("2026-11-22T10:12:00Z");
        let want = "\
NAME                   SEVERITY   PHASE           TARGET           ACK      AGE    TITLE
payments-down-1a2b3c   SEV1       Investigating   <none>           <none>   2m     payments failing
batch-9f9f9f           SEV2       <none>          <none>           <none>   132m   batch slow
web-abc123             SEV2       Mitigating      deployment/web   alice    12m    web: 502s after deploy
";
        assert_eq!(list_table(&items, false, now), want);
        let all = list_table(&items, true, now);
        assert!(
            all.starts_with("NAMESPACE   NAME                   SEVERITY"),
            "{all}"
        );
        assert!(
            all.contains("\npay         payments-down-1a2b3c   SEV1"),
            "{all}"
        );
    }

    fn describe_fixture() -> Incident {
        let mut s = spec("checkout: pods crash-looping after rollout", Severity::SEV2);
        s.source = IncidentSource::Detector;
        s.target = Some(TargetRef {
            kind: TargetKind::Deployment,
            name: "checkout".into(),
        });
        s.runbook_ref = Some(crate::api::RunbookReference {
            name: "checkout".into(),
            namespace: None,
        });
        s.commander = Some("alice".into());
        s.acknowledged_by = Some("alice".into());
        let mut rollback = MitigationStep::new("rollback", MitigationAction::RolloutUndo);
        rollback.approval = Approval::Automatic;
        let mut scale = MitigationStep::new("more-capacity", MitigationAction::Scale);
        scale.replicas = Some(6);
        let mut env = MitigationStep::new("kill-switch", MitigationAction::SetEnv);
        env.env = vec![EnvVarSetting {
            name: "FEATURE_X".into(),
            value: "false".into(),
        }];
        env.container = Some("app".into());
        env.approved_by = Some("bob".into());
        s.mitigations = vec![rollback, scale, env];
        let status = IncidentStatus {
            phase: Some(Phase::Monitoring),
            severity: Some(Severity::SEV1),
            opened_at: time("2026-11-22T10:00:00Z"),
            first_observed_at: time("2026-11-22T09:58:00Z"),
            acknowledged_at: time("2026-11-22T10:03:00Z"),
            mitigated_at: time("2026-11-22T10:04:00Z"),
            response_deadline: time("2026-11-22T10:05:00Z"),
            resolution_deadline: time("2026-11-22T12:00:00Z"),
            impact: Some(Impact {
                desired_replicas: Some(4),
                ready_replicas: Some(1),
                unhealthy_pods: Some(3),
                reasons: vec!["CrashLoopBackOff".into()],
                severity: Some(Severity::SEV1),
            }),
            occurrences: Some(1),
            mitigations: vec![
                MitigationStatus {
                    name: "rollback".into(),
                    state: StepState::Succeeded,
                    message: "rolled back checkout from revision 7 to revision 6".into(),
                    before: BTreeMap::from([("revision".to_string(), "7".to_string())]),
                    after: BTreeMap::from([("revision".to_string(), "6".to_string())]),
                    ..Default::default()
                },
                MitigationStatus {
                    name: "more-capacity".into(),
                    state: StepState::Pending,
                    ..Default::default()
                },
            ],
            evidence_ref: Some(LocalObjectReference {
                name: "checkout-7f3a2c-evidence".into(),
            }),
            conditions: vec![Condition {
                type_: "Acknowledged".into(),
                status: "True".into(),
                reason: "AcknowledgedBy".into(),
                message: "acknowledged by alice".into(),
                last_transition_time: Time(t("2026-11-22T10:03:00Z")),
                observed_generation: Some(2),
            }],
            timeline: vec![
                TimelineEntry {
                    time: Time(t("2026-11-22T10:00:00Z")),
                    type_: TimelineType::Opened,
                    message: "3/4 pods of checkout in CrashLoopBackOff".into(),
                },
                TimelineEntry {
                    time: Time(t("2026-11-22T10:03:00Z")),
                    type_: TimelineType::Acknowledged,
                    message: "acknowledged by alice".into(),
                },
                TimelineEntry {
                    time: Time(t("2026-11-22T10:04:10Z")),
                    type_: TimelineType::MitigationSucceeded,
                    message: "rollback: rolled back".into(),
                },
            ],
            timeline_dropped: Some(2),
            ..Default::default()
        };
        incident("shop", "checkout-7f3a2c", s, Some(status))
    }

    #[test]
    fn describe_golden() {
        let inc = describe_fixture();
        let now = t("2026-11-22T10:12:00Z");
        let want = "\
Name:                checkout-7f3a2c
Namespace:           shop
Title:               checkout: pods crash-looping after rollout
Severity:            SEV1 (declared SEV2)
Phase:               Monitoring
Source:              Detector
Target:              deployment/checkout
Runbook:             checkout
Commander:           alice
Opened:              2026-11-22T10:00:00Z (12m ago)
First observed:      2026-11-22T09:58:00Z (14m ago)
Acknowledged:        by alice, 3m after opening (2026-11-22T10:03:00Z)
Response deadline:   2026-11-22T10:05:00Z (met)
Resolution deadline: 2026-11-22T12:00:00Z (in 108m)
Mitigated:           2026-11-22T10:04:00Z (8m ago)
Impact:              1/4 replicas ready; 3 unhealthy pods; reasons: CrashLoopBackOff; impact severity SEV1
Mitigations:
  NAME            ACTION                                   APPROVAL               STATE       MESSAGE                                              CHANGE
  rollback        RolloutUndo                              Automatic              Succeeded   rolled back checkout from revision 7 to revision 6   revision=7 -> revision=6
  more-capacity   Scale to 6                               Manual, not approved   Pending
  kill-switch     SetEnv FEATURE_X=false (container app)   approved by bob        Pending
Conditions:
  TYPE           STATUS   REASON           MESSAGE                 AGE
  Acknowledged   True     AcknowledgedBy   acknowledged by alice   9m
Timeline:
  +0s      2026-11-22T10:00:00Z   Opened                3/4 pods of checkout in CrashLoopBackOff
  ...                                                   (2 older entries dropped by the timeline cap)
  +3m      2026-11-22T10:03:00Z   Acknowledged          acknowledged by alice
  +4m10s   2026-11-22T10:04:10Z   MitigationSucceeded   rollback: rolled back
Evidence:            ConfigMap checkout-7f3a2c-evidence (read it: kubectl get configmap checkout-7f3a2c-evidence -n shop -o yaml)
Post-mortem:         <none> (written when resolved)
";
        let got = describe(&inc, now);
        assert_eq!(got, want, "\n--- got ---\n{got}");
    }

    #[test]
    fn describe_overdue_unacknowledged_and_resolved() {
        let mut inc = describe_fixture();
        inc.spec.acknowledged_by = None;
        let st = inc.status.as_mut().unwrap();
        st.acknowledged_at = None;
        st.severity = Some(Severity::SEV2);
        let now = t("2026-11-22T10:07:00Z");
        let got = describe(&inc, now);
        assert!(got.contains("\nSeverity:            SEV2\n"), "{got}");
        assert!(got.contains("\nAcknowledged:        no\n"), "{got}");
        assert!(
            got.contains("\nResponse deadline:   2026-11-22T10:05:00Z (overdue by 2m)\n"),
            "{got}"
        );
        assert!(
            got.contains("\nResolution deadline: 2026-11-22T12:00:00Z (in 113m)\n"),
            "{got}"
        );

        // resolved by hand, late, never acknowledged
        inc.spec.resolution = Some(Resolution {
            by: "bob".into(),
            summary: "rolled back".into(),
        });
        let st = inc.status.as_mut().unwrap();
        st.phase = Some(Phase::Resolved);
        st.resolved_at = time("2026-11-22T12:30:00Z");
        st.postmortem_ref = Some(LocalObjectReference {
            name: "checkout-7f3a2c-postmortem".into(),
        });
        let got = describe(&inc, t("2026-11-22T13:00:00Z"));
        assert!(
            got.contains(
                "\nResponse deadline:   2026-11-22T10:05:00Z (not acknowledged before resolution)\n"
            ),
            "{got}"
        );
        assert!(
            got.contains("\nResolution deadline: 2026-11-22T12:00:00Z (missed by 30m)\n"),
            "{got}"
        );
        assert!(
            got.contains(
                "\nResolved:            2026-11-22T12:30:00Z (30m ago), 150m after opening\n"
            ),
            "{got}"
        );
        assert!(
            got.contains("\nResolution:          by bob: rolled back\n"),
            "{got}"
        );
        assert!(got.contains(
            "\nPost-mortem:         ConfigMap checkout-7f3a2c-postmortem (read it: kubectl incident postmortem checkout-7f3a2c -n shop)\n"
        ), "{got}");
    }

    #[test]
    fn describe_fresh_incident_without_status() {
        let mut inc = incident("shop", "web-1", spec("web down", Severity::SEV3), None);
        inc.metadata.creation_timestamp = time("2026-11-22T10:00:00Z");
        let got = describe(&inc, t("2026-11-22T10:00:30Z"));
        let want = "\
Name:                web-1
Namespace:           shop
Title:               web down
Severity:            SEV3
Phase:               <none> (not yet seen by the operator)
Source:              Manual
Target:              <none>
Runbook:             <none>
Commander:           <none>
Opened:              2026-11-22T10:00:00Z (30s ago)
Acknowledged:        no
Response deadline:   <none>
Resolution deadline: <none>
Mitigations:         <none>
Conditions:          <none>
Timeline:            <none>
Evidence:            <none>
Post-mortem:         <none> (written when resolved)
";
        assert_eq!(got, want, "\n--- got ---\n{got}");
    }
}

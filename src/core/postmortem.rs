//! The post-mortem draft: Markdown rendered from a resolved Incident.
//! Pure and deterministic (no clock: every time comes from the status), so
//! the same Incident always renders the same bytes (golden-tested).

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{format_duration, Incident, MitigationStatus, StepState, TimelineEntry};

/// Key of the draft in its ConfigMap (`status.postmortemRef`).
pub const POSTMORTEM_KEY: &str = "postmortem.md";

/// Marker of every placeholder a person must fill in.
pub const PLACEHOLDER: &str = "TODO";

fn span(from: Option<&Time>, to: Option<&Time>) -> Option<Duration> {
    let (f, t) = (from?.0, to?.0);
    Duration::try_from(t.duration_since(f)).ok()
}

fn dur(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_string(), format_duration)
}

/// `+1h5m` / `-30s` relative to `origin`.
fn offset(origin: Timestamp, t: Timestamp) -> String {
    let secs = t.as_second() - origin.as_second();
    let sign = if secs < 0 { "-" } else { "+" };
    format!(
        "{sign}{}",
        format_duration(Duration::from_secs(secs.unsigned_abs()))
    )
}

/// Escape text for a Markdown table cell (one line, no pipes).
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn clock(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn kv(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "—".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Render the draft.
pub fn render(inc: &Incident) -> String {
    let spec = &inc.spec;
    let status = inc.status.clone().unwrap_or_default();
    let ns = inc.metadata.namespace.as_deref().unwrap_or_default();
    let name = inc.metadata.name.as_deref().unwrap_or_default();
    let opened = status.opened_at.as_ref().map(|t| t.0);
    let severity = status.severity.unwrap_or(spec.severity);
    let mut out = String::new();
    let w = &mut out;

    let _ = writeln!(w, "# Post-mortem (draft): {}", spec.title);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "> Drafted by kube-incident from Incident `{ns}/{name}` when it resolved. \
         Everything below comes from the Incident's status; fill in every `{PLACEHOLDER}` \
         and correct what the machine could not know."
    );
    let _ = writeln!(w);

    // Summary.
    let _ = writeln!(w, "## Summary");
    let _ = writeln!(w);
    let _ = writeln!(w, "| | |");
    let _ = writeln!(w, "|---|---|");
    let _ = writeln!(w, "| Incident | `{ns}/{name}` |");
    let _ = writeln!(
        w,
        "| Date | {} |",
        opened.map_or_else(
            || "—".to_string(),
            |t| t.strftime("%Y-%m-%d").to_string() + " (UTC)"
        )
    );
    let _ = writeln!(
        w,
        "| Duration | {} |",
        dur(span(status.opened_at.as_ref(), status.resolved_at.as_ref()))
    );
    let sev = if severity != spec.severity {
        format!("{severity} (declared {})", spec.severity)
    } else {
        severity.to_string()
    };
    let _ = writeln!(w, "| Severity | {sev} |");
    let _ = writeln!(
        w,
        "| Commander | {} |",
        spec.commander.as_deref().map_or_else(
            || format!("{PLACEHOLDER}: nobody was named commander"),
            cell
        )
    );
    let _ = writeln!(
        w,
        "| Acknowledged by | {} |",
        spec.acknowledged_by.as_deref().map_or("—".into(), cell)
    );
    let _ = writeln!(w, "| Source | {} |", spec.source.as_str());
    let _ = writeln!(
        w,
        "| Target | {} |",
        spec.target.as_ref().map_or("none".into(), |t| format!(
            "{} `{ns}/{}`",
            t.kind.as_str(),
            t.name
        ))
    );
    if let Some(o) = status.occurrences.filter(|o| *o > 1) {
        let _ = writeln!(w, "| Occurrences | {o} (the trouble recurred) |");
    }
    let _ = writeln!(w);

    // Impact.
    let _ = writeln!(w, "## Impact");
    let _ = writeln!(w);
    match &status.impact {
        Some(i) => {
            if let (Some(r), Some(d)) = (i.ready_replicas, i.desired_replicas) {
                let _ = writeln!(w, "- Ready replicas at last look: {r}/{d}");
            }
            if let Some(u) = i.unhealthy_pods {
                let _ = writeln!(w, "- Unhealthy pods at last look: {u}");
            }
            if !i.reasons.is_empty() {
                let _ = writeln!(w, "- Reasons seen: {}", i.reasons.join(", "));
            }
            if let Some(s) = i.severity {
                let _ = writeln!(w, "- Worst severity the impact reached: {s}");
            }
        }
        None => {
            let _ = writeln!(
                w,
                "- No impact was measured (no target, or declared by hand)."
            );
        }
    }
    let _ = writeln!(
        w,
        "- {PLACEHOLDER}: who was affected (users, requests, revenue) and for how long."
    );
    let _ = writeln!(w);

    // Key times.
    let _ = writeln!(w, "## Key times");
    let _ = writeln!(w);
    let _ = writeln!(w, "| Measure | From | Value |");
    let _ = writeln!(w, "|---|---|---|");
    let _ = writeln!(
        w,
        "| Time to detect | first observed on the cluster → opened | {} |",
        dur(span(
            status.first_observed_at.as_ref(),
            status.opened_at.as_ref()
        ))
    );
    let _ = writeln!(
        w,
        "| Time to acknowledge | opened → acknowledged | {} |",
        dur(span(
            status.opened_at.as_ref(),
            status.acknowledged_at.as_ref()
        ))
    );
    let _ = writeln!(
        w,
        "| Time to mitigate | opened → first mitigation succeeded | {} |",
        dur(span(
            status.opened_at.as_ref(),
            status.mitigated_at.as_ref()
        ))
    );
    let _ = writeln!(
        w,
        "| Time to resolve | opened → resolved | {} |",
        dur(span(status.opened_at.as_ref(), status.resolved_at.as_ref()))
    );
    if let Some(e) = status.escalation.as_ref().filter(|e| e.level > 0) {
        let _ = writeln!(w, "| Escalation | levels reached | {} |", e.level);
    }
    let _ = writeln!(w);

    // Timeline.
    let _ = writeln!(w, "## Timeline");
    let _ = writeln!(w);
    let origin = opened.or_else(|| status.timeline.first().map(|e| e.time.0));
    let _ = writeln!(w, "| Offset | Time (UTC) | Event | Detail |");
    let _ = writeln!(w, "|---|---|---|---|");
    if let (Some(first), Some(o)) = (status.first_observed_at.as_ref(), origin) {
        if first.0 < o {
            let _ = writeln!(
                w,
                "| {} | {} | FirstObserved | the trouble became visible on the cluster |",
                offset(o, first.0),
                clock(first.0)
            );
        }
    }
    let dropped_after_first = status.timeline_dropped.filter(|d| *d > 0);
    for (i, e) in status.timeline.iter().enumerate() {
        timeline_row(w, origin, e);
        if i == 0 {
            if let Some(d) = dropped_after_first {
                let _ = writeln!(w, "| … | … | … | {d} entries dropped by the timeline cap |");
            }
        }
    }
    let _ = writeln!(w);

    // Root cause.
    let _ = writeln!(w, "## Root cause");
    let _ = writeln!(w);
    match spec.root_cause.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(rc) => {
            let _ = writeln!(w, "{rc}");
        }
        None => {
            let _ = writeln!(
                w,
                "{PLACEHOLDER}: no root cause was recorded on the Incident (`spec.rootCause`). \
                 Describe what broke and why."
            );
        }
    }
    let _ = writeln!(w);

    // Resolution.
    let _ = writeln!(w, "## Resolution");
    let _ = writeln!(w);
    match &spec.resolution {
        Some(r) => {
            let summary = if r.summary.trim().is_empty() {
                "(no summary given)".to_string()
            } else {
                r.summary.clone()
            };
            let _ = writeln!(w, "Resolved by {}: {summary}", r.by);
        }
        None => {
            // spec.resolution may be gone (a reopen removes it): the
            // timeline keeps what was recorded.
            let recorded = status
                .timeline
                .iter()
                .rev()
                .find(|e| e.type_ == crate::api::TimelineType::Resolved);
            match recorded {
                Some(e) if e.message.starts_with("resolved by ") => {
                    let _ = writeln!(w, "Recorded on the timeline: {}", e.message);
                }
                _ => {
                    let _ = writeln!(
                        w,
                        "Resolved by kube-incident: the target stayed healthy for the whole monitoring window."
                    );
                }
            }
        }
    }
    let _ = writeln!(w);
    if status.mitigations.is_empty() {
        let _ = writeln!(w, "No mitigation steps were planned.");
    } else {
        let _ = writeln!(w, "| Step | Action | State | Before | After | Message |");
        let _ = writeln!(w, "|---|---|---|---|---|---|");
        for m in &status.mitigations {
            mitigation_row(w, inc, m);
        }
    }
    let _ = writeln!(w);

    // Placeholders.
    let _ = writeln!(w, "## Action items");
    let _ = writeln!(w);
    for m in &status.mitigations {
        git_match_item(w, inc, m);
    }
    let _ = writeln!(
        w,
        "- [ ] {PLACEHOLDER}: what prevents a recurrence (owner, due date)"
    );
    let _ = writeln!(
        w,
        "- [ ] {PLACEHOLDER}: what would have detected or mitigated it sooner"
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "## Lessons learned");
    let _ = writeln!(w);
    let _ = writeln!(w, "- What went well: {PLACEHOLDER}");
    let _ = writeln!(w, "- What went wrong: {PLACEHOLDER}");
    let _ = writeln!(w, "- Where we got lucky: {PLACEHOLDER}");
    out
}

fn timeline_row(w: &mut String, origin: Option<Timestamp>, e: &TimelineEntry) {
    let off = origin.map_or_else(|| "—".to_string(), |o| offset(o, e.time.0));
    let kind = serde_json::to_value(e.type_)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(
        w,
        "| {off} | {} | {kind} | {} |",
        clock(e.time.0),
        cell(&e.message)
    );
}

/// "Make Git match what is running", for a step that changed a target
/// its GitOps owner applies from Git and whose change still runs.
fn git_match_item(w: &mut String, inc: &Incident, m: &MitigationStatus) {
    use crate::core::gitops::key;
    let Some(owner) = m.before.get(key::OWNER) else {
        return;
    };
    let paused = m.intent.contains_key(key::SUSPEND)
        && !m.intent.contains_key(crate::core::mitigation::key::DRY_RUN);
    if !matches!(
        m.state,
        StepState::Succeeded | StepState::Ineffective | StepState::Running
    ) {
        // The step's change is not in effect: only a pause still held
        // needs a person.
        if paused && !m.after.contains_key(key::RESTORE) {
            let _ = writeln!(
                w,
                "- [ ] Give {owner} its automation back: mitigation {:?} ({}) paused it and still holds the pause; once Git matches what runs: kubectl patch incident {} --type merge -p '{{\"spec\":{{\"resumeGitOps\":true}}}}'",
                m.name,
                m.state.as_str(),
                inc.metadata.name.as_deref().unwrap_or_default()
            );
        }
        return;
    }
    let target = inc
        .spec
        .target
        .as_ref()
        .map_or(String::new(), |t| format!("{} {}", t.kind.as_str(), t.name));
    let owner_state = if paused {
        match m.after.get(key::RESTORE) {
            Some(r) => format!("it was paused for the incident; {r}"),
            None => format!(
                "it is still paused ({} changed by kube-incident): give it back with spec.resumeGitOps once Git matches",
                m.before.get(key::FIELD).map_or("its automation", String::as_str)
            ),
        }
    } else if m.before.get(key::POLICY).map(String::as_str) == Some("Suspend") {
        format!(
            "its automation was already off when the step ran, not by kube-incident ({}: {})",
            m.before.get(key::FIELD).map_or("?", String::as_str),
            m.before.get(key::VALUE).map_or("?", String::as_str)
        )
    } else {
        format!(
            "it was not paused (policy {})",
            m.before.get(key::POLICY).map_or("?", String::as_str)
        )
    };
    let _ = writeln!(
        w,
        "- [ ] Make Git match what is running: {owner} applies {target} from Git, and mitigation {:?} changed it; {owner_state}. Until Git says the same, the next sync puts the bad state back. Difference (Git → running):",
        m.name
    );
    for line in m
        .before
        .get(key::DIFF)
        .map_or("(not recorded)", String::as_str)
        .lines()
    {
        let _ = writeln!(w, "  - `{}`", line.replace('`', "'"));
    }
}

fn mitigation_row(w: &mut String, inc: &Incident, m: &MitigationStatus) {
    let action = inc
        .spec
        .mitigations
        .iter()
        .find(|s| s.name == m.name)
        .map_or("—", |s| s.action.as_str());
    let _ = writeln!(
        w,
        "| {} | {action} | {} | {} | {} | {} |",
        cell(&m.name),
        m.state.as_str(),
        cell(&kv(&m
            .before
            .iter()
            .filter(|(k, _)| k.as_str() != crate::core::gitops::key::DIFF)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())),
        cell(&kv(&m.after)),
        cell(if m.message.is_empty() {
            "—"
        } else {
            &m.message
        })
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        EscalationStatus, Impact, IncidentSource, IncidentSpec, IncidentStatus, MitigationStep,
        Phase, Resolution, Severity, StepState, TargetKind, TargetRef, TimelineType,
    };

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(1_790_000_000 + s).unwrap())
    }

    fn entry(s: i64, type_: TimelineType, message: &str) -> TimelineEntry {
        TimelineEntry {
            time: t(s),
            type_,
            message: message.into(),
        }
    }

    fn resolved() -> Incident {
        let step = |name: &str, action: &str| -> MitigationStep {
            serde_json::from_value(serde_json::json!({"name": name, "action": action})).unwrap()
        };
        let mut inc = Incident::new(
            "checkout-crashloop-7f3a2c",
            IncidentSpec {
                title: "checkout: pods crash-looping after rollout".into(),
                severity: Severity::SEV3,
                source: IncidentSource::Detector,
                target: Some(TargetRef {
                    kind: TargetKind::Deployment,
                    name: "checkout".into(),
                }),
                runbook_ref: None,
                commander: Some("alice".into()),
                acknowledged_by: Some("alice".into()),
                root_cause: Some("bad config | in v2.3".into()),
                mitigations: vec![
                    step("rollback", "RolloutUndo"),
                    step("more-capacity", "Scale"),
                ],
                resolution: None,
                resume_git_ops: None,
            },
        );
        inc.metadata.namespace = Some("shop".into());
        let mut before = std::collections::BTreeMap::new();
        before.insert("revision".to_string(), "7".to_string());
        let mut after = std::collections::BTreeMap::new();
        after.insert("revision".to_string(), "6".to_string());
        inc.status = Some(IncidentStatus {
            phase: Some(Phase::Resolved),
            severity: Some(Severity::SEV2),
            first_observed_at: Some(t(-90)),
            opened_at: Some(t(0)),
            acknowledged_at: Some(t(240)),
            mitigated_at: Some(t(400)),
            resolved_at: Some(t(1300)),
            occurrences: Some(1),
            escalation: Some(EscalationStatus {
                level: 1,
                next_at: None,
            }),
            impact: Some(Impact {
                desired_replicas: Some(4),
                ready_replicas: Some(1),
                unhealthy_pods: Some(3),
                reasons: vec!["CrashLoopBackOff".into()],
                severity: Some(Severity::SEV2),
            }),
            mitigations: vec![
                MitigationStatus {
                    name: "rollback".into(),
                    state: StepState::Succeeded,
                    message: "rolled back checkout from revision 7 to revision 6".into(),
                    before,
                    after,
                    ..Default::default()
                },
                MitigationStatus {
                    name: "more-capacity".into(),
                    state: StepState::Skipped,
                    message: "the incident resolved first".into(),
                    ..Default::default()
                },
            ],
            timeline: vec![
                entry(
                    0,
                    TimelineType::Opened,
                    "3/4 pods of checkout in CrashLoopBackOff",
                ),
                entry(
                    60,
                    TimelineType::SeverityChanged,
                    "severity SEV3 -> SEV2 (impact grew)",
                ),
                entry(240, TimelineType::Acknowledged, "acknowledged by alice"),
                entry(
                    300,
                    TimelineType::MitigationStarted,
                    "mitigation \"rollback\" started",
                ),
                entry(
                    400,
                    TimelineType::Monitoring,
                    "mitigation \"rollback\" succeeded; monitoring for 15m",
                ),
                entry(
                    1300,
                    TimelineType::Resolved,
                    "resolved after 21m40s: healthy for the monitoring window",
                ),
            ],
            ..Default::default()
        });
        inc
    }

    fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/core/golden")
            .join(name);
        if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
        assert_eq!(
            actual, expected,
            "golden {name} differs (UPDATE_GOLDEN=1 to regenerate)"
        );
    }

    #[test]
    fn detector_incident_matches_golden() {
        golden("postmortem-detector.md", &render(&resolved()));
    }

    #[test]
    fn manual_incident_without_root_cause_matches_golden() {
        let mut inc = resolved();
        inc.spec.root_cause = None;
        inc.spec.commander = None;
        inc.spec.target = None;
        inc.spec.source = IncidentSource::Manual;
        inc.spec.mitigations.clear();
        inc.spec.resolution = Some(Resolution {
            by: "bob".into(),
            summary: "restarted the database".into(),
        });
        let s = inc.status.as_mut().unwrap();
        s.impact = None;
        s.mitigations.clear();
        s.first_observed_at = None;
        s.mitigated_at = None;
        s.escalation = None;
        s.timeline_dropped = Some(12);
        golden("postmortem-manual.md", &render(&inc));
    }

    #[test]
    fn a_step_on_a_gitops_owned_target_asks_to_make_git_match() {
        use crate::core::gitops::key;
        let mut inc = resolved();
        let s = inc.status.as_mut().unwrap();
        let m = &mut s.mitigations[0];
        m.state = StepState::Succeeded;
        for (k, v) in [
            (key::OWNER, "Flux Kustomization flux-system/apps"),
            (key::POLICY, "Suspend"),
            (key::FIELD, "spec.suspend"),
            (key::VALUE, "<absent>"),
            (
                key::DIFF,
                "spec.template.spec.containers[app].image: \"web:v2\" (Git) → \"web:v1\" (running)",
            ),
        ] {
            m.before.insert(k.into(), v.into());
        }
        m.intent
            .insert(key::SUSPEND.into(), "Kustomization/flux-system/apps".into());
        m.after.insert(
            key::RESTORE.into(),
            "gave Flux Kustomization flux-system/apps its automation back (spec.suspend: <absent>)"
                .into(),
        );
        let md = render(&inc);
        assert!(md.contains("- [ ] Make Git match what is running: Flux Kustomization flux-system/apps applies Deployment checkout from Git, and mitigation \"rollback\" changed it; it was paused for the incident; gave Flux Kustomization"), "{md}");
        assert!(md.contains("  - `spec.template.spec.containers[app].image: \"web:v2\" (Git) → \"web:v1\" (running)`"), "{md}");
        // The diff is not repeated in the mitigations table.
        assert_eq!(md.matches("(Git) →").count(), 1, "{md}");
        // A failed step that still holds its pause: give it back.
        let m = &mut inc.status.as_mut().unwrap().mitigations[0];
        m.state = StepState::Failed;
        m.after.clear();
        let md = render(&inc);
        assert!(
            md.contains("- [ ] Give Flux Kustomization flux-system/apps its automation back"),
            "{md}"
        );
        assert!(!md.contains("Make Git match"), "{md}");
    }

    #[test]
    fn rendering_is_deterministic_and_complete() {
        let a = render(&resolved());
        assert_eq!(a, render(&resolved()));
        for section in [
            "## Summary",
            "## Impact",
            "## Key times",
            "## Timeline",
            "## Root cause",
            "## Resolution",
            "## Action items",
            "## Lessons learned",
        ] {
            assert!(a.contains(section), "missing {section}");
        }
        assert!(a.contains("| Time to detect | first observed on the cluster → opened | 1m30s |"));
        assert!(a.contains("| -1m30s |"));
        assert!(a.contains("| +21m40s |"));
        assert!(a.contains("bad config \\| in v2.3") || a.contains("bad config | in v2.3"));
        assert!(a.contains("| rollback | RolloutUndo | Succeeded | revision=7 | revision=6 |"));
    }
}

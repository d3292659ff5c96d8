//! The safety gate, the action history and the executor outcomes in the lifecycle.

use super::*;

#[test]
fn gate_rails_in_order() {
    let d = dep(3, "web:v3", json!({}));
    let rss = history();
    let s = step(MitigationAction::RolloutUndo);
    let none = runbook(json!({}), json!({}));
    let g = |s: &MitigationStep,
             rb: Option<(&str, &RunbookSpec)>,
             dry: bool,
             hist: &[ActionRecord],
             d: &Deployment| {
        gate(GateInput {
            step: s,
            runbook: rb,
            global_dry_run: dry,
            workload: w(d, &rss, &[]).into(),
            history: hist,
            now: now(),
        })
    };
    assert_eq!(g(&s, Some(("rb", &none)), false, &[], &d), Gate::Go);
    assert!(matches!(g(&s, None, true, &[], &d), Gate::DryRun(_)));
    let dry = runbook(json!({}), json!({"dryRun": true}));
    assert!(
        matches!(g(&s, Some(("rb", &dry)), false, &[], &d), Gate::DryRun(m) if m.contains("spec.dryRun"))
    );
    let paused = runbook(json!({}), json!({"paused": true}));
    assert!(matches!(
        g(&s, Some(("rb", &paused)), false, &[], &d),
        Gate::Wait { until: None, .. }
    ));
    let ignored = dep(
        3,
        "web:v3",
        json!({"metadata": {"labels": {IGNORE_LABEL: "true"}}}),
    );
    assert!(matches!(g(&s, None, false, &[], &ignored), Gate::Skip(_)));

    // rolloutWithin: revision 3 rolled out at 02:00, now is 02:10.
    let mut guarded = s.clone();
    guarded.when = Some(StepGuard {
        rollout_within: Some(GoDuration::new("30m")),
    });
    assert_eq!(g(&guarded, None, false, &[], &d), Gate::Go);
    guarded.when = Some(StepGuard {
        rollout_within: Some(GoDuration::new("5m")),
    });
    assert!(
        matches!(g(&guarded, None, false, &[], &d), Gate::Skip(m) if m.contains("rolloutWithin 5m"))
    );

    // Cooldown per workload, then the hourly limit per Runbook.
    let limited = RunbookSpec {
        limits: Some(Limits {
            cooldown: Some(GoDuration::new("10m")),
            max_actions_per_hour: Some(2),
        }),
        ..none.clone()
    };
    let rec = |at: &str, workload: &str| ActionRecord {
        at: ts(at),
        workload: workload.into(),
        runbook: Some("rb".into()),
    };
    match g(
        &s,
        Some(("rb", &limited)),
        false,
        &[rec("2026-01-01T02:05:00Z", "web")],
        &d,
    ) {
        Gate::Wait { until, reason } => {
            assert_eq!(until, Some(ts("2026-01-01T02:15:00Z")));
            assert!(reason.contains("cooldown"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        g(
            &s,
            Some(("rb", &limited)),
            false,
            &[rec("2026-01-01T01:55:00Z", "web")],
            &d
        ),
        Gate::Go
    );
    let busy = [
        rec("2026-01-01T01:20:00Z", "api"),
        rec("2026-01-01T01:40:00Z", "db"),
    ];
    match g(&s, Some(("rb", &limited)), false, &busy, &d) {
        Gate::Wait { until, reason } => {
            assert_eq!(until, Some(ts("2026-01-01T02:20:00Z")));
            assert!(reason.contains("2 actions per hour"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn actions_of_counts_started_steps_not_dry_runs() {
    let status: IncidentStatus = serde_json::from_value(json!({"mitigations": [
        {"name": "a", "state": "Succeeded", "startedAt": "2026-01-01T00:00:00Z"},
        {"name": "b", "state": "Skipped", "startedAt": "2026-01-01T00:01:00Z", "intent": {"dryRun": "true"}},
        {"name": "c", "state": "Pending"},
        {"name": "d", "state": "Failed", "startedAt": "2026-01-01T00:02:00Z"}
    ]}))
    .unwrap();
    let a = actions_of(&status, "web", Some("rb"));
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].at, ts("2026-01-01T00:02:00Z"));
}

#[test]
fn executor_outcomes_in_the_lifecycle_are_idempotent() {
    use crate::core::lifecycle::{record_step_outcome, StepOutcome, Transition};
    let mut status: IncidentStatus = serde_json::from_value(json!({"mitigations": [
        {"name": "a", "state": "Succeeded", "intent": {"replicas": "4"}},
        {"name": "b", "state": "Pending"}
    ]}))
    .unwrap();
    let w = Duration::from_secs(60);
    let t = now();
    let out = record_step_outcome(
        &mut status,
        0,
        StepOutcome::ExternalChange {
            message: "replicas is 2".into(),
        },
        w,
        Some(1),
        t,
    );
    assert!(matches!(&out[..], [Transition::ExternalChange { .. }]));
    assert_eq!(status.mitigations[0].state, StepState::Failed);
    assert!(status.mitigations[0]
        .message
        .starts_with("changed by another manager"));
    assert!(status
        .conditions
        .iter()
        .any(|c| c.type_ == "MitigationFailed" && c.reason == "ExternalChange"));
    assert!(record_step_outcome(
        &mut status,
        0,
        StepOutcome::ExternalChange {
            message: "replicas is 2".into()
        },
        w,
        Some(1),
        t
    )
    .is_empty());

    let out = record_step_outcome(
        &mut status,
        0,
        StepOutcome::NotReverted {
            message: "someone changed it".into(),
        },
        w,
        Some(1),
        t,
    );
    assert!(out.is_empty());
    assert_eq!(
        status.mitigations[0].after[key::REVERT],
        "someone changed it"
    );
    let n = status.timeline.len();
    record_step_outcome(
        &mut status,
        0,
        StepOutcome::NotReverted {
            message: "someone changed it".into(),
        },
        w,
        Some(1),
        t,
    );
    assert_eq!(status.timeline.len(), n, "recorded once");

    let mut intent = BTreeMap::new();
    intent.insert(key::DRY_RUN.to_string(), "true".to_string());
    let out = record_step_outcome(
        &mut status,
        1,
        StepOutcome::DryRun {
            before: BTreeMap::new(),
            intent,
            message: "would have".into(),
        },
        w,
        Some(1),
        t,
    );
    assert!(matches!(&out[..], [Transition::StepSkipped { .. }]));
    assert_eq!(status.mitigations[1].state, StepState::Skipped);
    assert!(
        actions_of(&status, "web", None).is_empty(),
        "dry-runs are not actions"
    );

    status.mitigations[1].state = StepState::Succeeded;
    let out = record_step_outcome(
        &mut status,
        1,
        StepOutcome::Reverted {
            message: "scaled back".into(),
        },
        w,
        Some(1),
        t,
    );
    assert!(matches!(&out[..], [Transition::Reverted { .. }]));
    assert!(record_step_outcome(
        &mut status,
        1,
        StepOutcome::Reverted {
            message: "scaled back".into()
        },
        w,
        Some(1),
        t
    )
    .is_empty());
}

//! Unit tests of the lifecycle: every transition of the contract's table.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{
    Approval, Impact, IncidentSource, IncidentSpec, IncidentStatus, MitigationAction,
    MitigationStep, Phase, Resolution, Severity, StepState, TargetKind, TargetRef, TimelineType,
};
use crate::core::conditions::get_condition;

const T0: &str = "2026-11-22T03:00:00Z";

fn t(offset_secs: i64) -> Timestamp {
    let base: Timestamp = T0.parse().unwrap();
    base.checked_add(jiff::SignedDuration::from_secs(offset_secs))
        .unwrap()
}

fn spec(severity: Severity) -> IncidentSpec {
    IncidentSpec {
        title: "checkout: pods crash-looping".into(),
        severity,
        source: IncidentSource::Manual,
        target: Some(TargetRef {
            kind: TargetKind::Deployment,
            name: "checkout".into(),
        }),
        runbook_ref: None,
        commander: None,
        acknowledged_by: None,
        root_cause: None,
        mitigations: vec![],
        resolution: None,
        resume_git_ops: None,
    }
}

fn manual_step(name: &str) -> MitigationStep {
    MitigationStep::new(name, MitigationAction::RolloutUndo)
}

fn auto_step(name: &str) -> MitigationStep {
    let mut s = MitigationStep::new(name, MitigationAction::RolloutRestart);
    s.approval = Approval::Automatic;
    s
}

fn obs(target: TargetHealth) -> Observation {
    Observation {
        target,
        ..Default::default()
    }
}

/// Run the lifecycle at `now` on `status`, then check that a re-run with the
/// same inputs is a no-op (idempotence), and return the decision.
fn run(
    spec: &IncidentSpec,
    status: Option<&IncidentStatus>,
    o: &Observation,
    now: Timestamp,
) -> Decision {
    let policy = Policy::default();
    let view = IncidentView {
        spec,
        generation: Some(1),
        created_at: Some(t(0)),
        status,
    };
    let d = reconcile(view, o, &policy, now);
    let again = reconcile(
        IncidentView {
            status: Some(&d.status),
            ..view
        },
        o,
        &policy,
        now,
    );
    assert_eq!(again.status, d.status, "re-run changed the status");
    let replayed: Vec<_> = again
        .transitions
        .iter()
        .filter(|t| !matches!(t, Transition::StepReady { .. }))
        .collect();
    assert!(
        replayed.is_empty(),
        "re-run produced transitions: {replayed:?}"
    );
    d
}

fn cond<'a>(s: &'a IncidentStatus, type_: &str) -> (&'a str, &'a str) {
    let c = get_condition(&s.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.as_str(), c.reason.as_str())
}

fn timeline_types(s: &IncidentStatus) -> Vec<TimelineType> {
    s.timeline.iter().map(|e| e.type_).collect()
}

#[test]
fn opens_investigating_with_deadlines() {
    let sp = spec(Severity::SEV2);
    let d = run(&sp, None, &obs(TargetHealth::Unknown), t(10));
    let s = &d.status;
    assert_eq!(s.phase, Some(Phase::Investigating));
    assert_eq!(s.severity, Some(Severity::SEV2));
    assert_eq!(
        s.opened_at,
        Some(Time(t(0))),
        "openedAt is the creation time"
    );
    assert_eq!(s.response_deadline, Some(Time(t(15 * 60))));
    assert_eq!(s.resolution_deadline, Some(Time(t(4 * 3600))));
    assert_eq!(s.occurrences, Some(1));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(timeline_types(s), vec![TimelineType::Opened]);
    assert_eq!(
        cond(s, condition::ACKNOWLEDGED),
        ("False", "NotAcknowledged")
    );
    assert_eq!(
        cond(s, condition::RESPONSE_OVERDUE),
        ("False", "WithinTarget")
    );
    assert_eq!(cond(s, condition::RESOLVED), ("False", "Open"));
    assert_eq!(cond(s, condition::VALID), ("True", "Valid"));
    assert_eq!(
        d.transitions,
        vec![Transition::Opened {
            severity: Severity::SEV2,
            source: IncidentSource::Manual
        }]
    );
    // Wake at the response deadline.
    assert_eq!(d.requeue_after, Some(Duration::from_secs(15 * 60 - 10)));
}

#[test]
fn deadlines_follow_the_severity_table() {
    for (sev, response, resolution) in [
        (Severity::SEV1, 5 * 60, 2 * 3600),
        (Severity::SEV2, 15 * 60, 4 * 3600),
        (Severity::SEV3, 3600, 24 * 3600),
        (Severity::SEV4, 24 * 3600, 72 * 3600),
    ] {
        let d = run(&spec(sev), None, &obs(TargetHealth::Unknown), t(0));
        assert_eq!(d.status.response_deadline, Some(Time(t(response))), "{sev}");
        assert_eq!(
            d.status.resolution_deadline,
            Some(Time(t(resolution))),
            "{sev}"
        );
    }
}

#[test]
fn flag_overrides_change_deadlines() {
    let mut policy = Policy::default();
    policy
        .targets
        .apply_overrides(
            crate::core::targets::TargetField::Response,
            &["SEV2=2m".into()],
        )
        .unwrap();
    let sp = spec(Severity::SEV2);
    let view = IncidentView {
        spec: &sp,
        generation: Some(1),
        created_at: Some(t(0)),
        status: None,
    };
    let d = reconcile(view, &Observation::default(), &policy, t(0));
    assert_eq!(d.status.response_deadline, Some(Time(t(120))));
}

#[test]
fn acknowledgement() {
    let mut sp = spec(Severity::SEV2);
    let opened = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    sp.acknowledged_by = Some("alice".into());
    let d = run(&sp, Some(&opened), &obs(TargetHealth::Unknown), t(120));
    let s = &d.status;
    assert_eq!(s.acknowledged_at, Some(Time(t(120))));
    assert_eq!(cond(s, condition::ACKNOWLEDGED), ("True", "Acknowledged"));
    assert_eq!(
        cond(s, condition::RESPONSE_OVERDUE),
        ("False", "Acknowledged")
    );
    assert_eq!(
        d.transitions,
        vec![Transition::Acknowledged {
            by: "alice".into(),
            after: Duration::from_secs(120),
            severity: Severity::SEV2
        }]
    );
    assert_eq!(
        timeline_types(s),
        vec![TimelineType::Opened, TimelineType::Acknowledged]
    );
    // Next wake-up is the resolution deadline, not the response one.
    assert_eq!(d.requeue_after, Some(Duration::from_secs(4 * 3600 - 120)));

    // Handing over to another person is recorded; the ack time is kept.
    sp.acknowledged_by = Some("bob".into());
    let d2 = run(&sp, Some(s), &obs(TargetHealth::Unknown), t(300));
    assert_eq!(d2.status.acknowledged_at, Some(Time(t(120))));
    assert_eq!(d2.transitions.len(), 1);
    let c = get_condition(&d2.status.conditions, condition::ACKNOWLEDGED).unwrap();
    assert_eq!(c.last_transition_time, Time(t(120)), "transition time kept");
    assert_eq!(c.message, "acknowledged by bob");

    // Withdrawing the acknowledgement.
    sp.acknowledged_by = None;
    let d3 = run(&sp, Some(&d2.status), &obs(TargetHealth::Unknown), t(400));
    assert_eq!(d3.status.acknowledged_at, None);
    assert_eq!(
        cond(&d3.status, condition::ACKNOWLEDGED),
        ("False", "Withdrawn")
    );
    assert_eq!(d3.transitions, vec![Transition::AcknowledgementWithdrawn]);
}

#[test]
fn response_overdue_then_acknowledged() {
    let mut sp = spec(Severity::SEV1);
    let opened = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    // Just before the deadline: nothing.
    let d = run(&sp, Some(&opened), &obs(TargetHealth::Unknown), t(299));
    assert!(d.transitions.is_empty());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(1)));
    // At the deadline.
    let d = run(&sp, Some(&d.status), &obs(TargetHealth::Unknown), t(300));
    assert_eq!(
        d.transitions,
        vec![Transition::ResponseOverdue {
            target: Duration::from_secs(300)
        }]
    );
    assert_eq!(
        cond(&d.status, condition::RESPONSE_OVERDUE),
        ("True", "ResponseTargetMissed")
    );
    let overdue_at = get_condition(&d.status.conditions, condition::RESPONSE_OVERDUE)
        .unwrap()
        .last_transition_time
        .clone();
    assert_eq!(overdue_at, Time(t(300)));
    // Later re-runs keep the transition time.
    let later = run(&sp, Some(&d.status), &obs(TargetHealth::Unknown), t(900));
    assert_eq!(
        get_condition(&later.status.conditions, condition::RESPONSE_OVERDUE)
            .unwrap()
            .last_transition_time,
        overdue_at
    );
    assert!(later.transitions.is_empty());
    // Acknowledging stops it.
    sp.acknowledged_by = Some("alice".into());
    let acked = run(
        &sp,
        Some(&later.status),
        &obs(TargetHealth::Unknown),
        t(1000),
    );
    assert_eq!(
        cond(&acked.status, condition::RESPONSE_OVERDUE),
        ("False", "Acknowledged")
    );
    assert!(timeline_types(&acked.status).contains(&TimelineType::ResponseOverdue));
}

#[test]
fn resolution_overdue() {
    let mut sp = spec(Severity::SEV1);
    sp.acknowledged_by = Some("alice".into());
    let opened = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    let d = run(&sp, Some(&opened), &obs(TargetHealth::Unknown), t(2 * 3600));
    assert_eq!(
        d.transitions,
        vec![Transition::ResolutionOverdue {
            target: Duration::from_secs(7200)
        }]
    );
    assert_eq!(
        cond(&d.status, condition::RESOLUTION_OVERDUE),
        ("True", "ResolutionTargetMissed")
    );
    assert_eq!(d.requeue_after, None, "no deadline left to wake for");
}

#[test]
fn root_cause_identifies() {
    let mut sp = spec(Severity::SEV3);
    let opened = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    sp.root_cause = Some("bad config in v2.3".into());
    let d = run(&sp, Some(&opened), &obs(TargetHealth::Unknown), t(60));
    assert_eq!(d.status.phase, Some(Phase::Identified));
    assert_eq!(
        d.transitions,
        vec![Transition::Identified {
            root_cause: Some("bad config in v2.3".into())
        }]
    );
    assert_eq!(
        d.status.timeline.last().unwrap().type_,
        TimelineType::Identified
    );
}

#[test]
fn manual_resolution() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![manual_step("rollback")];
    let opened = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    assert_eq!(opened.mitigations[0].state, StepState::AwaitingApproval);
    sp.resolution = Some(Resolution {
        by: "alice".into(),
        summary: "fixed by hand".into(),
    });
    let d = run(&sp, Some(&opened), &obs(TargetHealth::Unknown), t(600));
    let s = &d.status;
    assert_eq!(s.phase, Some(Phase::Resolved));
    assert_eq!(s.resolved_at, Some(Time(t(600))));
    assert_eq!(cond(s, condition::RESOLVED), ("True", "ManuallyResolved"));
    assert_eq!(cond(s, condition::RESPONSE_OVERDUE), ("False", "Resolved"));
    assert_eq!(
        cond(s, condition::RESOLUTION_OVERDUE),
        ("False", "Resolved")
    );
    assert_eq!(
        cond(s, condition::AWAITING_APPROVAL),
        ("False", "NoPendingApproval")
    );
    assert_eq!(s.mitigations[0].state, StepState::Skipped);
    assert!(d.transitions.contains(&Transition::Resolved {
        by: Some("alice".into()),
        summary: "fixed by hand".into(),
        after: Duration::from_secs(600),
        severity: Severity::SEV2
    }));
    assert_eq!(d.requeue_after, None);
    // Resolved is terminal: deadlines passing later change nothing.
    let later = run(&sp, Some(s), &obs(TargetHealth::Unknown), t(10 * 3600));
    assert!(later.transitions.is_empty());
    assert_eq!(
        cond(&later.status, condition::RESOLUTION_OVERDUE),
        ("False", "Resolved")
    );
}

#[test]
fn approval_gate() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![manual_step("rollback"), manual_step("second")];
    let d = run(
        &sp,
        None,
        &obs(TargetHealth::Unhealthy(
            "3/4 pods in CrashLoopBackOff".into(),
        )),
        t(0),
    );
    let s = &d.status;
    assert_eq!(s.mitigations[0].state, StepState::AwaitingApproval);
    assert_eq!(
        s.mitigations[1].state,
        StepState::Pending,
        "one step at a time"
    );
    assert_eq!(
        cond(s, condition::AWAITING_APPROVAL),
        ("True", "AwaitingApproval")
    );
    assert!(d.transitions.contains(&Transition::AwaitingApproval {
        step: "rollback".into()
    }));
    assert_eq!(s.phase, Some(Phase::Investigating));

    sp.mitigations[0].approved_by = Some("alice".into());
    let d2 = run(
        &sp,
        Some(s),
        &obs(TargetHealth::Unhealthy("x".into())),
        t(60),
    );
    assert_eq!(d2.status.mitigations[0].state, StepState::Pending);
    assert_eq!(d2.status.mitigations[0].approved_at, Some(Time(t(60))));
    assert_eq!(
        d2.status.phase,
        Some(Phase::Identified),
        "approval identifies"
    );
    assert_eq!(
        cond(&d2.status, condition::AWAITING_APPROVAL),
        ("False", "NoPendingApproval")
    );
    assert_eq!(
        d2.transitions,
        vec![
            Transition::Approved {
                step: "rollback".into(),
                by: "alice".into()
            },
            Transition::StepReady {
                index: 0,
                step: "rollback".into()
            },
            Transition::Identified { root_cause: None },
        ]
    );
    // A replay asks the executor again (it is idempotent) but records nothing new.
    let d3 = run(
        &sp,
        Some(&d2.status),
        &obs(TargetHealth::Unhealthy("x".into())),
        t(61),
    );
    assert_eq!(
        d3.transitions,
        vec![Transition::StepReady {
            index: 0,
            step: "rollback".into()
        }]
    );
    assert_eq!(d3.status.timeline, d2.status.timeline);
}

#[test]
fn automatic_step_runs_at_once() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![auto_step("restart")];
    let d = run(&sp, None, &obs(TargetHealth::Unhealthy("x".into())), t(0));
    assert_eq!(d.status.mitigations[0].state, StepState::Pending);
    assert!(d.transitions.contains(&Transition::StepReady {
        index: 0,
        step: "restart".into()
    }));
    assert!(!d
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::AwaitingApproval { .. })));
    assert_eq!(
        cond(&d.status, condition::AWAITING_APPROVAL),
        ("False", "NoPendingApproval")
    );
}

fn started() -> StepOutcome {
    StepOutcome::Started {
        before: BTreeMap::from([("revision".into(), "7".into())]),
        intent: BTreeMap::from([("toRevision".into(), "6".into())]),
        message: "rolling back to revision 6".into(),
    }
}

fn succeeded() -> StepOutcome {
    StepOutcome::Succeeded {
        after: BTreeMap::from([("revision".into(), "8".into())]),
        message: "rolled back checkout from revision 7 to revision 6".into(),
    }
}

#[test]
fn mitigating_monitoring_resolved() {
    let mut sp = spec(Severity::SEV2);
    sp.source = IncidentSource::Detector;
    sp.acknowledged_by = Some("alice".into()); // so the response deadline does not wake us first
    sp.mitigations = vec![auto_step("restart")];
    let unhealthy = obs(TargetHealth::Unhealthy("crashloop".into()));
    let d = run(&sp, None, &unhealthy, t(0));
    let mut s = d.status;
    let window = Duration::from_secs(15 * 60);

    let tr = record_step_outcome(&mut s, 0, started(), window, Some(1), t(1));
    assert!(
        matches!(&tr[..], [Transition::StepStarted { step, .. }] if step == "restart"),
        "{tr:?}"
    );
    assert_eq!(s.mitigations[0].state, StepState::Running);
    assert_eq!(s.mitigations[0].before["revision"], "7");
    assert!(
        record_step_outcome(&mut s, 0, started(), window, Some(1), t(2)).is_empty(),
        "replayed report is a no-op"
    );
    let d = run(&sp, Some(&s), &unhealthy, t(2));
    assert_eq!(d.status.phase, Some(Phase::Mitigating));
    let mut s = d.status;

    let tr = record_step_outcome(&mut s, 0, succeeded(), window, Some(1), t(30));
    assert_eq!(
        tr,
        vec![Transition::Monitoring {
            step: "restart".into(),
            window
        }]
    );
    assert_eq!(s.mitigated_at, Some(Time(t(30))));
    // Still unhealthy right after: relapse? No — health is measured from the
    // next observation; a healthy observation starts the window.
    let d = run(&sp, Some(&s), &obs(TargetHealth::Healthy), t(40));
    assert_eq!(d.status.phase, Some(Phase::Monitoring));
    assert_eq!(d.status.healthy_since, Some(Time(t(40))));
    assert_eq!(
        d.requeue_after,
        Some(window),
        "wake at the end of the window"
    );
    let d = run(
        &sp,
        Some(&d.status),
        &obs(TargetHealth::Healthy),
        t(40 + 15 * 60 - 1),
    );
    assert_eq!(d.status.phase, Some(Phase::Monitoring));
    let d = run(
        &sp,
        Some(&d.status),
        &obs(TargetHealth::Healthy),
        t(40 + 15 * 60),
    );
    assert_eq!(d.status.phase, Some(Phase::Resolved));
    assert_eq!(cond(&d.status, condition::RESOLVED), ("True", "Recovered"));
    assert!(matches!(
        d.transitions[..],
        [Transition::Resolved { by: None, .. }]
    ));
}

#[test]
fn relapse_moves_to_next_step_then_exhausts() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![auto_step("restart"), manual_step("rollback")];
    let sick = obs(TargetHealth::Unhealthy("crashloop".into()));
    let mut s = run(&sp, None, &sick, t(0)).status;
    let w = Duration::from_secs(900);
    record_step_outcome(&mut s, 0, started(), w, Some(1), t(1));
    record_step_outcome(&mut s, 0, succeeded(), w, Some(1), t(5));
    let d = run(&sp, Some(&s), &obs(TargetHealth::Healthy), t(10));
    assert_eq!(d.status.phase, Some(Phase::Monitoring));
    assert_eq!(
        d.status.mitigations[1].state,
        StepState::Pending,
        "no next step while monitoring"
    );
    // Relapse.
    let d = run(&sp, Some(&d.status), &sick, t(60));
    assert_eq!(d.status.mitigations[0].state, StepState::Ineffective);
    assert_eq!(d.status.mitigations[1].state, StepState::AwaitingApproval);
    assert_eq!(d.status.healthy_since, None);
    assert!(d.transitions.contains(&Transition::Relapse {
        step: "restart".into(),
        reason: "crashloop".into()
    }));
    assert_eq!(
        d.status.phase,
        Some(Phase::Identified),
        "phase does not regress to Investigating"
    );
    // The second step fails: nothing left.
    let mut s = d.status;
    sp.mitigations[1].approved_by = Some("alice".into());
    s = run(&sp, Some(&s), &sick, t(70)).status;
    record_step_outcome(
        &mut s,
        1,
        StepOutcome::Failed {
            message: "no previous revision".into(),
        },
        w,
        Some(1),
        t(71),
    );
    assert_eq!(
        cond(&s, condition::MITIGATION_FAILED),
        ("True", "StepFailed")
    );
    let d = run(&sp, Some(&s), &sick, t(72));
    assert_eq!(d.transitions, vec![Transition::MitigationsExhausted]);
    assert_eq!(
        cond(&d.status, condition::MITIGATION_FAILED),
        ("True", "MitigationsExhausted")
    );
    assert_eq!(
        d.status.timeline.last().unwrap().type_,
        TimelineType::Escalated
    );
}

#[test]
fn detector_incident_without_plan_auto_resolves() {
    let mut sp = spec(Severity::SEV3); // window 10m
    sp.source = IncidentSource::Detector;
    let s = run(&sp, None, &obs(TargetHealth::Unhealthy("x".into())), t(0)).status;
    let d = run(&sp, Some(&s), &obs(TargetHealth::Healthy), t(100));
    assert_eq!(d.status.healthy_since, Some(Time(t(100))));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(600)));
    // A flap resets the window.
    let d = run(
        &sp,
        Some(&d.status),
        &obs(TargetHealth::Unhealthy("x".into())),
        t(200),
    );
    assert_eq!(d.status.healthy_since, None);
    let d = run(&sp, Some(&d.status), &obs(TargetHealth::Healthy), t(300));
    let d = run(&sp, Some(&d.status), &obs(TargetHealth::Healthy), t(899));
    assert_eq!(d.status.phase, Some(Phase::Investigating));
    let d = run(&sp, Some(&d.status), &obs(TargetHealth::Healthy), t(900));
    assert_eq!(d.status.phase, Some(Phase::Resolved));
    assert_eq!(cond(&d.status, condition::RESOLVED), ("True", "Recovered"));
}

#[test]
fn manual_incident_without_plan_waits_for_a_person() {
    let sp = spec(Severity::SEV4);
    let s = run(&sp, None, &obs(TargetHealth::Healthy), t(0)).status;
    let d = run(&sp, Some(&s), &obs(TargetHealth::Healthy), t(3 * 3600));
    assert_eq!(d.status.phase, Some(Phase::Investigating));
}

#[test]
fn runbook_monitoring_window_overrides() {
    let policy = Policy {
        monitoring_window: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    assert_eq!(
        policy.monitoring_window(Severity::SEV1),
        Duration::from_secs(60)
    );
    assert_eq!(
        Policy::default().monitoring_window(Severity::SEV1),
        Duration::from_secs(1800)
    );
}

#[test]
fn severity_changes() {
    let mut sp = spec(Severity::SEV3);
    let s = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    // A person raises it: deadlines follow.
    sp.severity = Severity::SEV1;
    let d = run(&sp, Some(&s), &obs(TargetHealth::Unknown), t(60));
    assert_eq!(d.status.severity, Some(Severity::SEV1));
    assert_eq!(d.status.response_deadline, Some(Time(t(300))));
    assert_eq!(
        d.transitions,
        vec![Transition::SeverityChanged {
            from: Severity::SEV3,
            to: Severity::SEV1,
            by_impact: false
        }]
    );
    // A person lowers it: allowed, recorded.
    sp.severity = Severity::SEV2;
    let d = run(&sp, Some(&d.status), &obs(TargetHealth::Unknown), t(120));
    assert_eq!(d.status.severity, Some(Severity::SEV2));
    assert_eq!(
        d.status.timeline.last().unwrap().message,
        "severity SEV1 -> SEV2"
    );
}

#[test]
fn severity_changes_within_one_second_are_one_timeline_entry() {
    let sp = spec(Severity::SEV3);
    let s = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    let impact = |sev: Severity| Observation {
        impact_severity: Some(sev),
        ..Default::default()
    };
    // SEV3 -> SEV2 -> SEV1 within the same second (two reconciles).
    let d1 = run(&sp, Some(&s), &impact(Severity::SEV2), t(30));
    let d2 = reconcile(
        IncidentView {
            spec: &sp,
            generation: Some(1),
            created_at: Some(t(0)),
            status: Some(&d1.status),
        },
        &impact(Severity::SEV1),
        &Policy::default(),
        t(30) + jiff::SignedDuration::from_millis(400),
    );
    let changes: Vec<&str> = d2
        .status
        .timeline
        .iter()
        .filter(|e| e.type_ == TimelineType::SeverityChanged)
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(changes, vec!["severity SEV3 -> SEV1 (impact grew)"]);
    assert_eq!(d2.status.severity, Some(Severity::SEV1));
    // The transition (Event, notification) is this reconcile's change.
    assert_eq!(
        d2.transitions,
        vec![Transition::SeverityChanged {
            from: Severity::SEV2,
            to: Severity::SEV1,
            by_impact: true
        }]
    );
    // A change in a later second is an entry of its own.
    let mut manual = spec(Severity::SEV3);
    let s = run(&manual, None, &obs(TargetHealth::Unknown), t(0)).status;
    manual.severity = Severity::SEV2;
    let a = run(&manual, Some(&s), &obs(TargetHealth::Unknown), t(40)).status;
    manual.severity = Severity::SEV1;
    let b = run(&manual, Some(&a), &obs(TargetHealth::Unknown), t(41)).status;
    let changes: Vec<&str> = b
        .timeline
        .iter()
        .filter(|e| e.type_ == TimelineType::SeverityChanged)
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        changes,
        vec!["severity SEV3 -> SEV2", "severity SEV2 -> SEV1"]
    );
    // Back where it started within the second: no entry at all.
    manual.severity = Severity::SEV3;
    let d = run(&manual, Some(&a), &obs(TargetHealth::Unknown), t(40)).status;
    assert!(d
        .timeline
        .iter()
        .all(|e| e.type_ != TimelineType::SeverityChanged));
}

#[test]
fn impact_raises_severity_and_never_silently_lowers_it() {
    let sp = spec(Severity::SEV3);
    let s = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    let worse = Observation {
        target: TargetHealth::Unhealthy("4/4 unavailable".into()),
        impact: Some(Impact {
            desired_replicas: Some(4),
            ready_replicas: Some(0),
            unhealthy_pods: Some(4),
            reasons: vec!["CrashLoopBackOff".into()],
            severity: None,
        }),
        impact_severity: Some(Severity::SEV1),
        ..Default::default()
    };
    let d = run(&sp, Some(&s), &worse, t(30));
    assert_eq!(d.status.severity, Some(Severity::SEV1));
    assert_eq!(
        d.status.impact.as_ref().unwrap().severity,
        Some(Severity::SEV1)
    );
    assert_eq!(
        d.status.timeline.last().unwrap().message,
        "severity SEV3 -> SEV1 (impact grew)"
    );
    let better = Observation {
        impact_severity: Some(Severity::SEV3),
        impact: Some(Impact {
            ready_replicas: Some(3),
            ..worse.impact.clone().unwrap()
        }),
        ..worse.clone()
    };
    let d = run(&sp, Some(&d.status), &better, t(60));
    assert_eq!(
        d.status.severity,
        Some(Severity::SEV1),
        "not lowered when impact improves"
    );
    assert!(d.transitions.is_empty());
}

#[test]
fn first_observed_at_is_kept_earliest() {
    let sp = spec(Severity::SEV3);
    let o = Observation {
        first_observed_at: Some(t(-90)),
        ..Default::default()
    };
    let s = run(&sp, None, &o, t(0)).status;
    assert_eq!(s.first_observed_at, Some(Time(t(-90))));
    let later = Observation {
        first_observed_at: Some(t(-10)),
        ..Default::default()
    };
    let s = run(&sp, Some(&s), &later, t(5)).status;
    assert_eq!(s.first_observed_at, Some(Time(t(-90))));
}

#[test]
fn timeline_is_capped_keeping_the_first_entry() {
    let mut s = IncidentStatus::default();
    push_timeline(&mut s, TimelineType::Opened, "opened".into(), t(0));
    for i in 0..150 {
        push_timeline(
            &mut s,
            TimelineType::Symptom,
            format!("symptom {i}"),
            t(i + 1),
        );
    }
    assert_eq!(s.timeline.len(), TIMELINE_CAP);
    assert_eq!(s.timeline[0].type_, TimelineType::Opened);
    assert_eq!(s.timeline[1].message, "symptom 51");
    assert_eq!(s.timeline.last().unwrap().message, "symptom 149");
    assert_eq!(s.timeline_dropped, Some(51));
    // An exact repeat of the last entry is not appended.
    push_timeline(&mut s, TimelineType::Symptom, "symptom 149".into(), t(500));
    assert_eq!(s.timeline_dropped, Some(51));
}

#[test]
fn invalid_spec_is_reported_and_the_step_fails() {
    let mut sp = spec(Severity::SEV2);
    let mut scale = MitigationStep::new("more", MitigationAction::Scale);
    scale.approval = Approval::Automatic;
    sp.mitigations = vec![scale];
    let d = run(&sp, None, &obs(TargetHealth::Unknown), t(0));
    let (status, reason) = cond(&d.status, condition::VALID);
    assert_eq!((status, reason), ("False", "InvalidSpec"));
    let msg = &get_condition(&d.status.conditions, condition::VALID)
        .unwrap()
        .message;
    assert!(msg.contains("spec.mitigations[0].replicas"), "{msg}");
    assert_eq!(d.status.mitigations[0].state, StepState::Failed);
    assert!(d
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::Invalid { .. })));
    assert!(d.transitions.contains(&Transition::MitigationsExhausted));
    // Fixing the spec makes it valid again (the failed step stays failed).
    sp.mitigations[0].replicas = Some(3);
    let d2 = run(&sp, Some(&d.status), &obs(TargetHealth::Unknown), t(10));
    assert_eq!(cond(&d2.status, condition::VALID), ("True", "Valid"));
}

#[test]
fn sub_second_clock_is_truncated() {
    let sp = spec(Severity::SEV2);
    let now = t(5)
        .checked_add(jiff::SignedDuration::from_millis(750))
        .unwrap();
    let d = run(&sp, None, &obs(TargetHealth::Unknown), now);
    assert_eq!(d.status.last_seen_at, Some(Time(t(5))));
    // And serializing then parsing the status gives it back unchanged.
    let json = serde_json::to_string(&d.status).unwrap();
    let back: IncidentStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d.status);
}

#[test]
fn steps_follow_spec_order_and_keep_records_by_name() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![manual_step("a"), manual_step("b")];
    let mut s = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    s.mitigations[0].message = "kept".into();
    sp.mitigations.insert(0, manual_step("z"));
    let d = reconcile(
        IncidentView {
            spec: &sp,
            generation: Some(2),
            created_at: Some(t(0)),
            status: Some(&s),
        },
        &Observation::default(),
        &Policy::default(),
        t(1),
    );
    let names: Vec<_> = d
        .status
        .mitigations
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, vec!["z", "a", "b"]);
    assert_eq!(d.status.observed_generation, Some(2));
}

#[test]
fn symptoms_are_recorded_once_per_episode() {
    let mut sp = spec(Severity::SEV2);
    sp.source = IncidentSource::Detector;
    let crash = (
        crate::api::TriggerType::CrashLoopBackOff,
        "3/4 pods in CrashLoopBackOff".to_string(),
    );
    let o = Observation {
        target: TargetHealth::Unhealthy("x".into()),
        symptoms: vec![crash.clone()],
        ..Default::default()
    };
    let d = run(&sp, None, &o, t(0));
    assert_eq!(
        timeline_types(&d.status),
        vec![TimelineType::Opened, TimelineType::Symptom]
    );
    assert_eq!(
        d.status.timeline[1].message,
        "CrashLoopBackOff: 3/4 pods in CrashLoopBackOff"
    );
    assert_eq!(d.status.last_seen_at, Some(Time(t(0))));
    // The same symptom with other numbers is not a new symptom.
    let o2 = Observation {
        symptoms: vec![(crash.0, "4/4 pods in CrashLoopBackOff".into())],
        ..o.clone()
    };
    let d2 = run(&sp, Some(&d.status), &o2, t(30));
    assert!(d2.transitions.is_empty());
    assert_eq!(
        d2.status.last_seen_at,
        Some(Time(t(0))),
        "lastSeenAt is throttled"
    );
    let d3 = run(&sp, Some(&d2.status), &o2, t(61));
    assert_eq!(d3.status.last_seen_at, Some(Time(t(61))));
    // A new kind of trouble is appended.
    let o3 = Observation {
        symptoms: vec![
            crash.clone(),
            (
                crate::api::TriggerType::Unavailable,
                "3/4 replicas unavailable".into(),
            ),
        ],
        ..o
    };
    let d4 = run(&sp, Some(&d3.status), &o3, t(62));
    assert_eq!(
        d4.transitions,
        vec![Transition::Symptom {
            trigger: crate::api::TriggerType::Unavailable,
            message: "3/4 replicas unavailable".into()
        }]
    );
}

#[test]
fn an_alertmanager_incident_firing_again_is_reopened_like_a_detector_one() {
    let mut sp = spec(Severity::SEV2);
    sp.source = IncidentSource::Alertmanager;
    sp.target = None;
    let s = run(&sp, None, &obs(TargetHealth::Unknown), t(0)).status;
    // All alerts resolved: the intake sets spec.resolution.
    let mut resolved_spec = sp.clone();
    resolved_spec.resolution = Some(Resolution {
        by: "alertmanager".into(),
        summary: "all 1 alert(s) of the Alertmanager group resolved".into(),
    });
    let resolved = run(&resolved_spec, Some(&s), &obs(TargetHealth::Unknown), t(60)).status;
    assert_eq!(resolved.phase, Some(Phase::Resolved));
    // Firing again: the intake removes spec.resolution and annotates the
    // recurrence (sub-second precision, later in the same second as the
    // resolution was processed).
    let mut annotations = BTreeMap::new();
    annotations.insert(
        crate::api::RECURRED_AT_ANNOTATION.to_string(),
        (t(60) + jiff::SignedDuration::from_millis(250)).to_string(),
    );
    let again = recurred_at(&annotations).expect("the annotation parses");
    let fired = Observation {
        recurrence: Some(again),
        ..Default::default()
    };
    let d = run(&sp, Some(&resolved), &fired, t(61));
    assert_eq!(d.status.phase, Some(Phase::Investigating));
    assert_eq!(d.status.occurrences, Some(2));
    assert!(d
        .transitions
        .contains(&Transition::Reopened { occurrences: 2 }));
    assert_eq!(cond(&d.status, condition::RESOLVED), ("False", "Reopened"));
    // Resolved again later: the old annotation does not reopen it.
    let r2 = run(&resolved_spec, Some(&d.status), &fired, t(120)).status;
    assert_eq!(r2.phase, Some(Phase::Resolved));
    assert_eq!(
        run(&sp, Some(&r2), &fired, t(180)).status.phase,
        Some(Phase::Resolved),
        "a recurrence older than the latest resolution is history"
    );
    // Without the annotation, removing spec.resolution alone reopens nothing.
    assert_eq!(
        run(&sp, Some(&resolved), &obs(TargetHealth::Unknown), t(61))
            .status
            .phase,
        Some(Phase::Resolved)
    );
    let mut bad = BTreeMap::new();
    bad.insert(
        crate::api::RECURRED_AT_ANNOTATION.to_string(),
        "yesterday".into(),
    );
    assert_eq!(recurred_at(&bad), None);
}

#[test]
fn recurrence_reopens_the_resolved_incident() {
    let mut sp = spec(Severity::SEV3);
    sp.source = IncidentSource::Detector;
    let sick = Observation {
        target: TargetHealth::Unhealthy("x".into()),
        symptoms: vec![(crate::api::TriggerType::OOMKilled, "OOMKilled (app)".into())],
        ..Default::default()
    };
    let s = run(&sp, None, &sick, t(0)).status;
    let s = run(&sp, Some(&s), &obs(TargetHealth::Healthy), t(10)).status;
    let resolved = run(&sp, Some(&s), &obs(TargetHealth::Healthy), t(10 + 600)).status;
    assert_eq!(resolved.phase, Some(Phase::Resolved));
    // A recurrence not after the resolution changes nothing.
    let stale = Observation {
        recurrence: Some(t(600)),
        ..sick.clone()
    };
    assert_eq!(
        run(&sp, Some(&resolved), &stale, t(700)).status.phase,
        Some(Phase::Resolved)
    );
    let again = Observation {
        recurrence: Some(t(900)),
        ..sick.clone()
    };
    let d = run(&sp, Some(&resolved), &again, t(905));
    assert_eq!(d.status.phase, Some(Phase::Investigating));
    assert_eq!(d.status.occurrences, Some(2));
    assert_eq!(d.status.resolved_at, None);
    assert_eq!(cond(&d.status, condition::RESOLVED), ("False", "Reopened"));
    assert!(d
        .transitions
        .contains(&Transition::Reopened { occurrences: 2 }));
    // The symptom is recorded again for the new episode.
    assert!(d
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::Symptom { .. })));
    let types = timeline_types(&d.status);
    assert_eq!(
        &types[types.len() - 2..],
        &[TimelineType::Reopened, TimelineType::Symptom]
    );
    // A manual resolution is not undone by a recurrence while it stands.
    let mut manual = sp.clone();
    manual.resolution = Some(Resolution {
        by: "bob".into(),
        summary: "done".into(),
    });
    let r = run(&manual, Some(&s), &obs(TargetHealth::Healthy), t(20)).status;
    assert_eq!(
        run(&manual, Some(&r), &again, t(905)).status.phase,
        Some(Phase::Resolved)
    );
}

fn run_with(
    spec: &IncidentSpec,
    status: Option<&IncidentStatus>,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let view = IncidentView {
        spec,
        generation: Some(1),
        created_at: Some(t(0)),
        status,
    };
    let o = obs(TargetHealth::Unhealthy("x".into()));
    let d = reconcile(view, &o, policy, now);
    let again = reconcile(
        IncidentView {
            status: Some(&d.status),
            ..view
        },
        &o,
        policy,
        now,
    );
    assert_eq!(again.status, d.status, "re-run changed the status");
    d
}

#[test]
fn a_refused_step_never_runs_and_the_next_takes_its_turn() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![auto_step("pwn"), manual_step("rollback")];
    let policy = Policy {
        refused: BTreeMap::from([(
            "pwn".to_string(),
            "no Runbook governs Deployment checkout".to_string(),
        )]),
        ..Policy::default()
    };
    let d = run_with(&sp, None, &policy, t(0));
    let s = &d.status;
    assert_eq!(s.mitigations[0].state, StepState::Refused);
    assert!(s.mitigations[0].message.contains("no Runbook governs"));
    assert_eq!(s.mitigations[1].state, StepState::AwaitingApproval);
    assert_eq!(
        cond(s, condition::MITIGATION_REFUSED),
        ("True", "NotGranted")
    );
    assert!(!d
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::StepReady { index: 0, .. })));
    assert!(d.transitions.contains(&Transition::StepRefused {
        step: "pwn".into(),
        message: "no Runbook governs Deployment checkout".into()
    }));
    assert!(timeline_types(s).contains(&TimelineType::MitigationRefused));
    // Final: a later grant does not bring it back.
    let d2 = run_with(&sp, Some(s), &Policy::default(), t(10));
    assert_eq!(d2.status.mitigations[0].state, StepState::Refused);
}

#[test]
fn unverified_approvals_are_held_or_reported() {
    let mut sp = spec(Severity::SEV2);
    sp.mitigations = vec![manual_step("rollback")];
    sp.mitigations[0].approved_by = Some("mallory".into());
    let why = "the admission policy kube-incident-approvals is not installed".to_string();
    let held = Policy {
        approvals: crate::core::authority::ApprovalTrust::Unverified {
            why: why.clone(),
            accept: false,
        },
        ..Policy::default()
    };
    let d = run_with(&sp, None, &held, t(0));
    assert_eq!(d.status.mitigations[0].state, StepState::AwaitingApproval);
    assert!(d.status.mitigations[0].message.contains("not honoured"));
    assert_eq!(
        cond(&d.status, condition::APPROVALS_VERIFIED),
        ("False", "NotHonoured")
    );
    assert!(!d
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::StepReady { .. })));
    let accepted = Policy {
        approvals: crate::core::authority::ApprovalTrust::Unverified { why, accept: true },
        ..Policy::default()
    };
    let d = run_with(&sp, None, &accepted, t(0));
    assert_eq!(d.status.mitigations[0].state, StepState::Pending);
    assert_eq!(
        cond(&d.status, condition::APPROVALS_VERIFIED),
        ("False", "AcceptedUnverified")
    );
    assert!(d
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::ApprovalUnverified { accepted: true, .. })));
}

#[test]
fn an_undo_that_cannot_replace_pods_hands_the_turn_to_the_next_step() {
    let mut sp = spec(Severity::SEV2);
    sp.target = Some(TargetRef {
        kind: TargetKind::StatefulSet,
        name: "db".into(),
    });
    let mut delete = MitigationStep::new("replace", MitigationAction::DeletePods);
    delete.approval = Approval::Manual;
    sp.mitigations = vec![auto_step("rollback"), delete];
    // The health of a StatefulSet is not judged here (Unknown).
    let unknown = obs(TargetHealth::Unknown);
    let mut s = run(&sp, None, &unknown, t(0)).status;
    let w = Duration::from_secs(900);
    record_step_outcome(&mut s, 0, started(), w, Some(1), t(1));
    // A plain success waits in Monitoring.
    let mut plain = s.clone();
    record_step_outcome(&mut plain, 0, succeeded(), w, Some(1), t(5));
    let d = run(&sp, Some(&plain), &unknown, t(10));
    assert_eq!(d.status.mitigations[1].state, StepState::Pending);
    // One that says what it could not do gives DeletePods its turn (and its approval gate).
    let limited = StepOutcome::Succeeded {
        after: BTreeMap::from([("limitation".into(), "OrderedReady".into())]),
        message: "restored the template; pods not replaced until deleted".into(),
    };
    record_step_outcome(&mut s, 0, limited, w, Some(1), t(5));
    let d = run(&sp, Some(&s), &unknown, t(10));
    assert_eq!(d.status.mitigations[0].state, StepState::Succeeded);
    assert_eq!(d.status.mitigations[1].state, StepState::AwaitingApproval);
}

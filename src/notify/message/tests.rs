//! Golden tests of the message texts. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test --lib notify::message`.

use super::*;
use crate::api::{
    DeliveryState, EscalationLevel, GoDuration, Impact, IncidentSpec, IncidentStatus,
    MitigationStatus, Phase, RunbookSpec, SecretKeyReference, Severity, StepState, TargetKind,
    TargetRef,
};
use crate::core::lifecycle::Transition;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

fn t(s: i64) -> Time {
    Time(Timestamp::from_second(1_790_000_000 + s).unwrap())
}

fn incident() -> Incident {
    let mut inc = Incident::new(
        "checkout-crashloop-7f3a2c",
        IncidentSpec {
            title: "checkout: pods crash-looping after rollout".into(),
            severity: Severity::SEV3,
            source: crate::api::IncidentSource::Detector,
            target: Some(TargetRef {
                kind: TargetKind::Deployment,
                name: "checkout".into(),
            }),
            runbook_ref: None,
            commander: Some("alice".into()),
            acknowledged_by: Some("alice".into()),
            root_cause: None,
            mitigations: vec![],
            resolution: None,
            resume_git_ops: None,
        },
    );
    inc.metadata.namespace = Some("shop".into());
    inc.metadata.uid = Some("0b8c7a4e-1111-2222-3333-444455556666".into());
    inc.status = Some(IncidentStatus {
        phase: Some(Phase::Monitoring),
        severity: Some(Severity::SEV2),
        opened_at: Some(t(0)),
        acknowledged_at: Some(t(240)),
        mitigated_at: Some(t(400)),
        resolved_at: Some(t(1500)),
        occurrences: Some(1),
        impact: Some(Impact {
            desired_replicas: Some(4),
            ready_replicas: Some(1),
            unhealthy_pods: Some(3),
            reasons: vec!["CrashLoopBackOff".into()],
            severity: Some(Severity::SEV2),
        }),
        mitigations: vec![MitigationStatus {
            name: "rollback".into(),
            state: StepState::Succeeded,
            message: "rolled back checkout from revision 7 to revision 6".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    inc
}

fn record(event: NotificationEvent, subject: Option<&str>) -> NotificationRecord {
    NotificationRecord {
        id: format!(
            "{}{}.o1.team-slack",
            event.as_str().to_ascii_lowercase(),
            subject.map(|s| format!(".{s}")).unwrap_or_default()
        ),
        sink: "team-slack".into(),
        event,
        subject: subject.map(str::to_string),
        state: DeliveryState::Sending,
        attempts: 0,
        claimed_at: t(0),
        completed_at: None,
        message: String::new(),
    }
}

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/notify/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
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

fn cases() -> Vec<(&'static str, NotificationEvent, Option<&'static str>)> {
    vec![
        ("declared", NotificationEvent::Declared, None),
        ("acknowledged", NotificationEvent::Acknowledged, None),
        (
            "awaiting-approval",
            NotificationEvent::MitigationAwaitingApproval,
            Some("more-capacity"),
        ),
        (
            "applied",
            NotificationEvent::MitigationApplied,
            Some("rollback"),
        ),
        (
            "gitops-suspended",
            NotificationEvent::GitOpsSuspended,
            Some("rollback"),
        ),
        ("escalated", NotificationEvent::Escalated, Some("level-1")),
        ("resolved", NotificationEvent::Resolved, None),
    ]
}

#[test]
fn slack_messages_match_golden() {
    let inc = incident();
    let mut out = String::new();
    for (name, event, subject) in cases() {
        let v = render_slack(&inc, &record(event, subject));
        out.push_str(&format!(
            "### {name}\n{}\n\n",
            serde_json::to_string_pretty(&v).unwrap()
        ));
    }
    golden("slack.golden", &out);
}

#[test]
fn webhook_messages_match_golden() {
    let inc = incident();
    let mut out = String::new();
    for (name, event, subject) in cases() {
        let v = render_webhook(&inc, &record(event, subject));
        assert_eq!(v["apiVersion"], WEBHOOK_API_VERSION);
        out.push_str(&format!(
            "### {name}\n{}\n\n",
            serde_json::to_string_pretty(&v).unwrap()
        ));
    }
    golden("webhook.golden", &out);
}

#[test]
fn every_message_names_severity_target_impact_and_next_step() {
    let inc = incident();
    for (_, event, subject) in cases() {
        let v = render_slack(&inc, &record(event, subject));
        let text = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("SEV2"), "{text}");
        assert!(text.contains("Deployment `shop/checkout`"), "{text}");
        assert!(text.contains("1/4 replicas ready"), "{text}");
        assert!(text.contains("*Next:*\n• "), "{text}");
    }
}

fn runbook() -> Runbook {
    let sink = |name: &str, format| NotifySink {
        name: name.into(),
        format,
        url_secret_ref: SecretKeyReference {
            name: format!("{name}-secret"),
            key: "url".into(),
        },
    };
    let spec: RunbookSpec = serde_json::from_value(serde_json::json!({"selector": {}})).unwrap();
    let mut rb = Runbook::new("checkout", spec);
    rb.spec.notify = vec![
        sink("team-slack", NotifyFormat::Slack),
        sink("pager", NotifyFormat::Webhook),
        sink("manager", NotifyFormat::Webhook),
    ];
    rb.spec.escalation = vec![
        EscalationLevel {
            after: GoDuration::new("10m"),
            notify: vec!["pager".into()],
        },
        EscalationLevel {
            after: GoDuration::new("30m"),
            notify: vec!["manager".into()],
        },
    ];
    rb
}

fn names(v: Vec<&NotifySink>) -> Vec<&str> {
    v.into_iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn escalation_sinks_hear_only_escalations_and_the_end() {
    let rb = runbook();
    assert_eq!(
        names(recipients(&rb, &Audience::Team, 0)),
        vec!["team-slack"]
    );
    assert_eq!(
        names(recipients(&rb, &Audience::TeamAndEscalated, 0)),
        vec!["team-slack"]
    );
    assert_eq!(
        names(recipients(&rb, &Audience::TeamAndEscalated, 1)),
        vec!["team-slack", "pager"]
    );
    assert_eq!(
        names(recipients(&rb, &Audience::Sinks(vec!["manager".into()]), 0)),
        vec!["manager"]
    );
}

#[test]
fn plan_maps_transitions_and_ids_are_stable() {
    let p = plan(&[
        Transition::Opened {
            severity: Severity::SEV2,
            source: crate::api::IncidentSource::Detector,
        },
        Transition::Symptom {
            trigger: crate::api::TriggerType::CrashLoopBackOff,
            message: "x".into(),
        },
        Transition::Escalated {
            level: 2,
            notify: vec!["manager".into()],
            after: Duration::from_secs(1800),
        },
    ]);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].event, NotificationEvent::Declared);
    assert_eq!(
        delivery_id(&p[0], 1, "team-slack"),
        "declared.o1.team-slack"
    );
    assert_eq!(
        delivery_id(&p[1], 3, "manager"),
        "escalated.level-2.o3.manager"
    );
    assert_eq!(p[1].audience, Audience::Sinks(vec!["manager".into()]));
}

#[test]
fn a_paused_gitops_owner_is_told_to_the_team() {
    let p = plan(&[
        Transition::GitOpsSuspended {
            step: "rollback".into(),
            message: "suspended Flux Kustomization flux-system/apps".into(),
        },
        Transition::GitOpsRestored {
            step: "rollback".into(),
            message: "gave it back".into(),
            restored: true,
        },
    ]);
    assert_eq!(p.len(), 1, "only the pause is a message: {p:?}");
    assert_eq!(p[0].event, NotificationEvent::GitOpsSuspended);
    assert_eq!(p[0].subject.as_deref(), Some("rollback"));
    assert_eq!(p[0].audience, Audience::Team);
}

#[test]
fn slack_free_text_is_escaped() {
    let mut inc = incident();
    inc.spec.title = "<!channel> a & b > c".into();
    let v = render_slack(&inc, &record(NotificationEvent::Declared, None));
    let text = v["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(text.contains("&lt;!channel&gt; a &amp; b &gt; c"), "{text}");
    assert!(!text.contains("<!channel>"));
    assert!(v["text"].as_str().unwrap().contains("&lt;!channel&gt;"));
}

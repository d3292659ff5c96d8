use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::*;
use crate::api::{
    Approval, EnvVarSetting, Impact, IncidentSource, IncidentStatus, LocalObjectReference,
    MitigationAction, MitigationStatus, MitigationStep, Resolution, Severity, StepState,
    TargetKind, TargetRef, TimelineEntry, TimelineType,
};
use crate::cli::format::fixtures::{incident, spec, t, time};

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
        got.contains("\nResolved:            2026-11-22T12:30:00Z (30m ago), 150m after opening\n"),
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
fn describe_shows_the_gitops_owner_and_its_pause() {
    let mut inc = describe_fixture();
    let now = t("2026-11-22T10:07:00Z");
    let st = inc.status.as_mut().unwrap();
    st.git_ops_owner = Some(crate::api::GitOpsOwner {
        kind: crate::api::GitOpsOwnerKind::Kustomization,
        namespace: "flux-system".into(),
        name: "apps".into(),
        via: "label kustomize.toolkit.fluxcd.io/name".into(),
    });
    let got = describe(&inc, now);
    assert!(
        got.contains("\nGitOps owner:        Flux Kustomization flux-system/apps, named by its label kustomize.toolkit.fluxcd.io/name\n"),
        "{got}"
    );
    inc.status.as_mut().unwrap().conditions.push(Condition {
        type_: "GitOpsSuspended".into(),
        status: "True".into(),
        reason: "Suspended".into(),
        message: "suspended".into(),
        observed_generation: None,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    });
    let got = describe(&inc, now);
    assert!(
        got.contains("flux-system/apps, named by its label kustomize.toolkit.fluxcd.io/name (automation paused by kube-incident)\n"),
        "{got}"
    );
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

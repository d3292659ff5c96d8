//! The `approve` command: which step it names, the patch it sends, and
//! how API refusals (RBAC, the admission policy) are reported.

use super::*;
use crate::api::{IncidentStatus, MitigationAction, MitigationStatus, MitigationStep, Severity};

fn inc(steps: Vec<MitigationStep>, states: &[(&str, StepState)]) -> Incident {
    let spec = IncidentSpec {
        title: "t".into(),
        severity: Severity::SEV2,
        source: IncidentSource::Manual,
        target: None,
        runbook_ref: None,
        commander: None,
        acknowledged_by: None,
        root_cause: None,
        mitigations: steps,
        resolution: None,
        resume_git_ops: None,
    };
    let mut i = Incident::new("inc", spec);
    i.status = Some(IncidentStatus {
        phase: Some(Phase::Investigating),
        mitigations: states
            .iter()
            .map(|(n, s)| MitigationStatus {
                name: n.to_string(),
                state: *s,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    i
}

fn manual(name: &str) -> MitigationStep {
    MitigationStep::new(name, MitigationAction::Scale)
}

#[test]
fn approves_the_single_awaiting_step() {
    let i = inc(
        vec![manual("a"), manual("b")],
        &[("a", StepState::Failed), ("b", StepState::AwaitingApproval)],
    );
    assert_eq!(
        plan_approval(&i, None).unwrap(),
        ApprovePlan::Approve {
            index: 1,
            step: "b".into()
        }
    );
}

#[test]
fn no_or_ambiguous_awaiting_step() {
    let i = inc(
        vec![manual("a"), manual("b")],
        &[("a", StepState::Running), ("b", StepState::Pending)],
    );
    let e = plan_approval(&i, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"inc\" has no step awaiting approval (a Running, b Pending); name one: kubectl incident approve inc STEP"
    );
    let i = inc(
        vec![manual("a"), manual("b")],
        &[
            ("a", StepState::AwaitingApproval),
            ("b", StepState::AwaitingApproval),
        ],
    );
    assert!(matches!(
        plan_approval(&i, None),
        Err(CliError::AmbiguousStep { .. })
    ));
    let i = inc(vec![], &[]);
    assert!(plan_approval(&i, None)
        .unwrap_err()
        .to_string()
        .contains("it has no mitigation steps"));
}

#[test]
fn unknown_step_names_the_valid_ones() {
    let i = inc(vec![manual("rollback"), manual("more-capacity")], &[]);
    let e = plan_approval(&i, Some("rolback")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "incident \"inc\" has no mitigation step \"rolback\" (valid steps: rollback, more-capacity)"
    );
}

#[test]
fn named_pending_step_can_be_approved_ahead() {
    let i = inc(
        vec![manual("a"), manual("b")],
        &[("a", StepState::AwaitingApproval)],
    );
    assert_eq!(
        plan_approval(&i, Some("b")).unwrap(),
        ApprovePlan::Approve {
            index: 1,
            step: "b".into()
        }
    );
}

#[test]
fn refusals_and_already_approved() {
    let mut auto = manual("auto");
    auto.approval = Approval::Automatic;
    let mut done = manual("done");
    done.approved_by = Some("bob".into());
    let i = inc(
        vec![auto, done, manual("failed")],
        &[
            ("auto", StepState::Pending),
            ("done", StepState::Succeeded),
            ("failed", StepState::Failed),
        ],
    );
    assert!(matches!(
        plan_approval(&i, Some("auto")),
        Err(CliError::NotManual { .. })
    ));
    assert_eq!(
        plan_approval(&i, Some("done")).unwrap(),
        ApprovePlan::AlreadyApproved {
            step: "done".into(),
            by: "bob".into()
        }
    );
    let e = plan_approval(&i, Some("failed")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "step \"failed\" of incident \"inc\" is already Failed: there is nothing left to approve"
    );
}

fn api_error(code: u16, message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure(message, if code == 403 { "Forbidden" } else { "Invalid" })
            .with_code(code)
            .boxed(),
    )
}

#[test]
fn refusals_name_what_is_missing() {
    let policy = "incidents.kubeincident.io \"x\" is forbidden: ValidatingAdmissionPolicy 'kube-incident-verified-approvals' with binding 'kube-incident-verified-approvals' denied request: cannot approve: user mallory lacks verb approve on incidents.kubeincident.io in namespace shop (bind ClusterRole kube-incident-approver); spec.mitigations[].approvedBy of step scale was not accepted";
    for code in [403, 422] {
        let e = refusal(&api_error(code, policy), "approve").unwrap();
        assert!(matches!(e, CliError::Denied(_)));
        assert!(
            e.one_line().starts_with("cannot approve: user mallory lacks verb approve on incidents.kubeincident.io in namespace shop (bind ClusterRole kube-incident-approver)"),
            "{e}"
        );
    }
    let rbac = "incidents.kubeincident.io \"x\" is forbidden: User \"alice\" cannot patch resource \"incidents\" in API group \"kubeincident.io\" in the namespace \"shop\"";
    let e = refusal(&api_error(403, rbac), "acknowledge").unwrap();
    assert_eq!(
        e.one_line(),
        format!("forbidden: {rbac} (bind ClusterRole kube-incident-responder)")
    );
    // a failed JSON-patch test is not a refusal (it is a conflict)
    assert!(refusal(
        &api_error(
            422,
            "the server rejected our request: testing value /spec/mitigations/1/name failed"
        ),
        "approve"
    )
    .is_none());
    assert!(refusal(&api_error(409, "conflict"), "approve").is_none());
}

#[test]
fn approve_patch_tests_then_adds() {
    let p = approve_patch(2, "scale", "alice");
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(
        v,
        json!([
            {"op": "test", "path": "/spec/mitigations/2/name", "value": "scale"},
            {"op": "add", "path": "/spec/mitigations/2/approvedBy", "value": "alice"},
        ])
    );
    // applied locally: approves the right step, and refuses a moved one
    let mut doc =
        json!({"spec": {"mitigations": [{"name": "a"}, {"name": "b"}, {"name": "scale"}]}});
    json_patch::patch(&mut doc, &p).unwrap();
    assert_eq!(doc["spec"]["mitigations"][2]["approvedBy"], "alice");
    let mut moved =
        json!({"spec": {"mitigations": [{"name": "a"}, {"name": "scale"}, {"name": "b"}]}});
    assert!(json_patch::patch(&mut moved, &p).is_err());
    assert!(moved["spec"]["mitigations"][2].get("approvedBy").is_none());
}

//! The approval gate of a mitigation step, and the `AwaitingApproval`
//! condition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::builder::Builder;
use super::condition;
use super::transition::Transition;
use crate::api::{Approval, IncidentSpec, MitigationStep, StepState, TimelineType};
use crate::core::authority::ApprovalTrust;
use crate::core::conditions::{get_condition, FALSE, TRUE};

/// Step `i` has its turn: a manual step without an approver waits for one;
/// an automatic or approved step is cleared to run. An approval the API
/// server did not verify (no admission policy) is not honoured unless the
/// operator accepts unverified approvals; either way it is reported.
pub(super) fn gate(
    b: &mut Builder,
    step: &MitigationStep,
    i: usize,
    state: StepState,
    trust: &ApprovalTrust,
) {
    let approved_by = step
        .approved_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match (step.approval, approved_by, trust) {
        (Approval::Manual, None, _) => await_approval(b, step, i, state),
        (Approval::Manual, Some(by), ApprovalTrust::Unverified { why, accept }) => {
            unverified(b, &step.name, by, why, *accept);
            if *accept {
                clear_to_run(b, i, step.name.clone(), Approval::Manual, Some(by));
            } else {
                await_approval(b, step, i, state);
                b.status.mitigations[i].message = format!(
                    "approval by {by} not honoured: {why}; install the admission policy (kube-incident install-manifests) so approvals are checked by the API server"
                );
            }
        }
        (approval, by, _) => clear_to_run(b, i, step.name.clone(), approval, by),
    }
}

/// `ApprovalsVerified=False` naming the approval the API server did not
/// check (once per approver and step: the transition is reported when the
/// condition's message changes).
fn unverified(b: &mut Builder, step: &str, by: &str, why: &str, accepted: bool) {
    let (reason, message) = if accepted {
        (
            "AcceptedUnverified",
            format!("approval of {step:?} by {by} was accepted without verification (--accept-unverified-approvals): {why}"),
        )
    } else {
        (
            "NotHonoured",
            format!("approval of {step:?} by {by} is not honoured: {why}"),
        )
    };
    let changed = get_condition(&b.status.conditions, condition::APPROVALS_VERIFIED)
        .is_none_or(|c| c.message != message);
    b.cond(
        condition::APPROVALS_VERIFIED,
        FALSE,
        reason,
        message.clone(),
    );
    if changed {
        b.timeline(TimelineType::AwaitingApproval, message);
        b.transitions.push(Transition::ApprovalUnverified {
            step: step.to_string(),
            by: by.to_string(),
            accepted,
            why: why.to_string(),
        });
    }
}

/// Mark step `i` AwaitingApproval (once).
fn await_approval(b: &mut Builder, step: &MitigationStep, i: usize, state: StepState) {
    if state == StepState::AwaitingApproval {
        return;
    }
    let name = step.name.clone();
    let st = &mut b.status.mitigations[i];
    st.state = StepState::AwaitingApproval;
    st.message = format!("waiting for approval: kubectl incident approve <incident> {name}");
    b.timeline(
        TimelineType::AwaitingApproval,
        format!("mitigation {name:?} ({}) awaits approval", step.action),
    );
    b.transitions
        .push(Transition::AwaitingApproval { step: name });
}

/// Step `i` may run: record the approval (once; a person's goes on the
/// timeline) and tell the executor.
fn clear_to_run(
    b: &mut Builder,
    i: usize,
    name: String,
    approval: Approval,
    approved_by: Option<&str>,
) {
    if b.status.mitigations[i].approved_at.is_none() {
        b.status.mitigations[i].approved_at = Some(Time(b.now));
        if let (Approval::Manual, Some(by)) = (approval, approved_by) {
            b.timeline(
                TimelineType::Approved,
                format!("mitigation {name:?} approved by {by}"),
            );
            b.transitions.push(Transition::Approved {
                step: name.clone(),
                by: by.to_string(),
            });
        }
    }
    let st = &mut b.status.mitigations[i];
    st.state = StepState::Pending;
    st.message = match approved_by {
        Some(by) => format!("approved by {by}; starting"),
        None => "automatic; starting".into(),
    };
    b.transitions.push(Transition::StepReady {
        index: i,
        step: name,
    });
}

/// `AwaitingApproval`: `True` while some step waits for a person, naming
/// them. Set once the incident has a plan (or had the condition).
pub(super) fn awaiting_approval_condition(b: &mut Builder, spec: &IncidentSpec) {
    let awaiting: Vec<&str> = b
        .status
        .mitigations
        .iter()
        .filter(|m| m.state == StepState::AwaitingApproval)
        .map(|m| m.name.as_str())
        .collect();
    let (status, reason, message) = if awaiting.is_empty() {
        (
            FALSE,
            "NoPendingApproval",
            "no mitigation awaits approval".to_string(),
        )
    } else {
        (
            TRUE,
            "AwaitingApproval",
            format!("awaiting approval: {}", awaiting.join(", ")),
        )
    };
    if !spec.mitigations.is_empty()
        || get_condition(&b.status.conditions, condition::AWAITING_APPROVAL).is_some()
    {
        b.cond(condition::AWAITING_APPROVAL, status, reason, message);
    }
}

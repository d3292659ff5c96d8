//! Authority: power flows only from Runbooks.
//!
//! The operator's ServiceAccount may patch workloads; nobody borrows that
//! power by writing an Incident. A mitigation step runs only when the
//! Runbook that *governs* its target grants it, within the Runbook's bounds:
//!
//! - [`governing`]: the one Runbook that governs a Deployment. A cluster-wide
//!   Runbook (in the operator's namespace, with a `namespaceSelector`) wins
//!   over any Runbook a tenant creates in its own namespace; among equals,
//!   the first by name.
//! - [`check_reference`]: an Incident's `runbookRef`, when set, must name
//!   that Runbook (a reference cannot borrow another Runbook's mandate).
//! - [`grant`]: the step the Runbook grants, with the Incident's parameters
//!   where they stay within the Runbook's bounds, or the reason it is refused.
//! - [`plan`]: the same for every step of an Incident, plus the approval
//!   trust (whether `approvedBy` was checked by the API server's admission
//!   policy).
//!
//! Pure: no client, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::api::{
    Approval, IncidentSpec, MitigationAction, MitigationStep, Runbook, RunbookReference,
    RunbookSpec, StepGuard, TargetKind, TargetRef,
};
use crate::core::selector;

/// A Runbook, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunbookId {
    pub namespace: String,
    pub name: String,
}

impl RunbookId {
    pub fn of(rb: &Runbook) -> RunbookId {
        RunbookId {
            namespace: rb.metadata.namespace.clone().unwrap_or_default(),
            name: rb.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The reference an Incident carries for it.
    pub fn reference(&self) -> RunbookReference {
        RunbookReference {
            name: self.name.clone(),
            namespace: Some(self.namespace.clone()),
        }
    }
}

impl fmt::Display for RunbookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The Runbook that governs a target, and how it was found.
#[derive(Debug, Clone, Copy)]
pub struct Governing<'a> {
    pub runbook: &'a Runbook,
    /// In the operator's namespace, applying through its `namespaceSelector`.
    pub cluster_wide: bool,
}

impl Governing<'_> {
    pub fn id(&self) -> RunbookId {
        RunbookId::of(self.runbook)
    }

    pub fn spec(&self) -> &RunbookSpec {
        &self.runbook.spec
    }
}

/// The Runbook governing a Deployment with `workload_labels` in `namespace`
/// (labelled `namespace_labels`), see the module docs.
pub fn governing<'a>(
    runbooks: impl IntoIterator<Item = &'a Runbook>,
    namespace: &str,
    kind: TargetKind,
    namespace_labels: &BTreeMap<String, String>,
    workload_labels: &BTreeMap<String, String>,
    operator_namespace: Option<&str>,
) -> Option<Governing<'a>> {
    let rb = selector::runbook_for(
        runbooks,
        namespace,
        kind,
        namespace_labels,
        workload_labels,
        operator_namespace,
    )?;
    let cluster_wide = rb.metadata.namespace.as_deref() != Some(namespace);
    Some(Governing {
        runbook: rb,
        cluster_wide,
    })
}

/// An Incident's `runbookRef` must name the governing Runbook (when set).
pub fn check_reference(
    reference: Option<&RunbookReference>,
    incident_namespace: &str,
    governing: Option<&RunbookId>,
) -> Result<(), String> {
    let Some(r) = reference else {
        return Ok(());
    };
    let named = RunbookId {
        namespace: r.namespace_or(incident_namespace).to_string(),
        name: r.name.clone(),
    };
    match governing {
        Some(g) if *g == named => Ok(()),
        Some(g) => Err(format!(
            "spec.runbookRef names Runbook {named}, but the target is governed by Runbook {g}"
        )),
        None => Err(format!(
            "spec.runbookRef names Runbook {named}, which does not exist or does not govern the target"
        )),
    }
}

/// A step's mandate.
#[derive(Debug, Clone, PartialEq)]
pub enum Mandate {
    /// The step as it will run: the Runbook's step with the Incident's
    /// parameters where they stay within its bounds.
    Granted(MitigationStep),
    /// Never run; the reason names what is missing.
    Refused(String),
}

/// Whether `approvedBy` values were checked by the API server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApprovalTrust {
    /// The admission policy is installed and current: `approvedBy` is the
    /// identity of a user the API server authorized to approve.
    #[default]
    Verified,
    /// The policy is missing or stale (`why`). With `accept` (the operator
    /// flag `--accept-unverified-approvals`), approvals are honoured and
    /// reported as unverified; without it, they are not honoured.
    Unverified { why: String, accept: bool },
}

/// The mandate of every step of an Incident.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// One per spec step, same order: the granted step, or the Incident's
    /// own (unchanged) where refused.
    pub steps: Vec<MitigationStep>,
    /// Refused steps by name, with the reason.
    pub refused: BTreeMap<String, String>,
    /// The governing Runbook (when one governs the target).
    pub runbook: Option<RunbookId>,
}

impl Plan {
    /// The Incident's spec with the granted steps in place of the requested ones.
    pub fn effective_spec(&self, spec: &IncidentSpec) -> IncidentSpec {
        IncidentSpec {
            mitigations: self.steps.clone(),
            ..spec.clone()
        }
    }
}

/// The mandate of every step of `spec` (an Incident in `incident_namespace`).
pub fn plan(
    spec: &IncidentSpec,
    incident_namespace: &str,
    governing: Option<Governing<'_>>,
) -> Plan {
    let id = governing.map(|g| g.id());
    let reference = check_reference(spec.runbook_ref.as_ref(), incident_namespace, id.as_ref());
    let mut out = Plan {
        runbook: id,
        ..Plan::default()
    };
    for step in &spec.mitigations {
        let mandate = match &reference {
            Err(why) => Mandate::Refused(why.clone()),
            Ok(()) => grant(step, spec.target.as_ref(), governing),
        };
        match mandate {
            Mandate::Granted(s) => out.steps.push(s),
            Mandate::Refused(why) => {
                out.refused.insert(step.name.clone(), why);
                out.steps.push(step.clone());
            }
        }
    }
    out
}

/// The mandate of one step. See the module docs; the bounds per action:
/// - every action: the Runbook lists a step of this name and action; its
///   `approval: Manual` cannot be loosened; its `when` guard applies;
/// - RolloutUndo: `toRevision` only as the Runbook's, unless it sets
///   `allowExplicitRevision`;
/// - Scale: `replicas` between the Runbook step's `replicas` and its
///   `maxReplicas` (exactly its `replicas` without one);
/// - SetEnv: only variables the Runbook step lists, in its container if it names one;
/// - RolloutRestart, Suspend and DeletePods take no parameters: the name,
///   the action, the approval and the guard are all there is to bound (the
///   pods a DeletePods step deletes are decided by the workload's state:
///   those off its update revision).
///
/// The action must act on the target's kind ([`crate::core::mitigation::action_applies`]).
pub fn grant(
    step: &MitigationStep,
    target: Option<&TargetRef>,
    governing: Option<Governing<'_>>,
) -> Mandate {
    let refuse = |why: String| Mandate::Refused(why);
    let Some(target) = target else {
        return refuse(format!(
            "the Incident has no target; {} acts on a {} target",
            step.action,
            crate::core::mitigation::kinds_of(step.action)
        ));
    };
    if !crate::core::mitigation::action_applies(step.action, target.kind) {
        return refuse(format!(
            "{} (spec.target is {} {})",
            crate::core::mitigation::not_applicable(step.action, target.kind),
            target.kind.as_str(),
            target.name
        ));
    }
    let Some(g) = governing else {
        return refuse(format!(
            "no Runbook governs {} {}: a step runs only if a Runbook in the target's namespace (or a cluster-wide Runbook in the operator's namespace) selects it (for this kind: targetKinds) and lists the step",
            target.kind.as_str(),
            target.name
        ));
    };
    let id = g.id();
    let Some(rb) = g.spec().mitigations.iter().find(|m| m.name == step.name) else {
        return refuse(format!(
            "Runbook {id} has no mitigation named {:?}; it grants: {}",
            step.name,
            names(&g.spec().mitigations)
        ));
    };
    if rb.action != step.action {
        return refuse(format!(
            "step {:?} is {} here but {} in Runbook {id}",
            step.name, step.action, rb.action
        ));
    }
    let mut out = rb.clone();
    out.approved_by = step.approved_by.clone();
    // Manual in either place stays Manual: an Incident cannot loosen it.
    out.approval = if rb.approval == Approval::Manual || step.approval == Approval::Manual {
        Approval::Manual
    } else {
        Approval::Automatic
    };
    out.revert_on_resolve = rb.revert_on_resolve || step.revert_on_resolve;
    out.when = stricter_guard(rb.when.as_ref(), step.when.as_ref());
    match step.action {
        MitigationAction::RolloutUndo => {
            if step.to_revision != 0 && step.to_revision != rb.to_revision {
                if !rb.allow_explicit_revision {
                    return refuse(format!(
                        "toRevision {} is not allowed: Runbook {id} step {:?} does not set allowExplicitRevision",
                        step.to_revision, step.name
                    ));
                }
                out.to_revision = step.to_revision;
            }
        }
        MitigationAction::Scale => {
            let low = rb.replicas.unwrap_or(0);
            let high = rb.max_replicas.or(rb.replicas).unwrap_or(0);
            let want = step.replicas.or(rb.replicas);
            match want {
                Some(n) if n >= low && n <= high => out.replicas = Some(n),
                Some(n) => {
                    return refuse(format!(
                    "replicas {n} is outside what Runbook {id} step {:?} allows ({low}..={high}{})",
                    step.name,
                    if rb.max_replicas.is_some() {
                        ", from replicas to maxReplicas"
                    } else {
                        "; set maxReplicas there to allow more"
                    }
                ))
                }
                None => {
                    return refuse(format!(
                        "Scale step {:?} sets no replicas, and neither does Runbook {id}",
                        step.name
                    ))
                }
            }
            out.max_replicas = match (rb.max_replicas, step.max_replicas) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        MitigationAction::SetEnv => {
            if let Some(c) = &rb.container {
                if step.container.as_ref().is_some_and(|s| s != c) {
                    return refuse(format!(
                        "container {:?} is not allowed: Runbook {id} step {:?} changes only container {c:?}",
                        step.container.as_deref().unwrap_or_default(),
                        step.name
                    ));
                }
            } else if step.container.is_some() {
                out.container = step.container.clone();
            }
            if !step.env.is_empty() {
                let allowed: BTreeSet<&str> = rb.env.iter().map(|e| e.name.as_str()).collect();
                let extra: Vec<&str> = step
                    .env
                    .iter()
                    .map(|e| e.name.as_str())
                    .filter(|n| !allowed.contains(n))
                    .collect();
                if !extra.is_empty() {
                    return refuse(format!(
                        "variables {} are not listed by Runbook {id} step {:?} (it allows: {})",
                        extra.join(", "),
                        step.name,
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.into_iter().collect::<Vec<_>>().join(", ")
                        }
                    ));
                }
                out.env = step.env.clone();
            }
        }
        MitigationAction::RolloutRestart
        | MitigationAction::Suspend
        | MitigationAction::DeletePods => {}
    }
    Mandate::Granted(out)
}

fn names(steps: &[MitigationStep]) -> String {
    if steps.is_empty() {
        return "nothing".into();
    }
    steps
        .iter()
        .map(|s| format!("{:?} ({})", s.name, s.action))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stricter of two `when` guards: the shorter `rolloutWithin`.
fn stricter_guard(rb: Option<&StepGuard>, step: Option<&StepGuard>) -> Option<StepGuard> {
    let within = |g: Option<&StepGuard>| g.and_then(|g| g.rollout_within.clone());
    match (within(rb), within(step)) {
        (Some(a), Some(b)) => {
            let (da, db) = (a.parse().ok(), b.parse().ok());
            let pick = match (da, db) {
                (Some(x), Some(y)) if y < x => b,
                _ => a,
            };
            Some(StepGuard {
                rollout_within: Some(pick),
            })
        }
        (Some(a), None) => Some(StepGuard {
            rollout_within: Some(a),
        }),
        _ => rb.cloned().or_else(|| step.cloned()),
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;

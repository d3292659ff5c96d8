//! Suspend of a CronJob: `spec.suspend: true` (no new Jobs are launched;
//! running ones go on), fenced by the CronJob's generation (kube-apiserver
//! sets and bumps `metadata.generation` on CronJobs, as on Deployments). A
//! `revertOnResolve` Suspend resumes the CronJob on Resolved, only if it
//! still holds our value.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::CronJob;
use serde_json::json;

use super::patch::{annotate, last_action, precondition};
use super::plan::kind_intent;
use super::revert::Revert;
use super::target::generation_of;
use super::verify::Verification;
use super::{key, Actor, Plan, Planned, Write, WriteTarget};
use crate::api::{TargetKind, LAST_ACTION_ANNOTATION};

fn suspended(c: &CronJob) -> bool {
    c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false)
}

fn name(c: &CronJob) -> String {
    c.metadata.name.clone().unwrap_or_default()
}

pub(super) fn plan_suspend(actor: Actor<'_>, c: &CronJob) -> Plan {
    let step = actor.step;
    let n = name(c);
    if suspended(c) {
        return Plan::Noop(format!("CronJob {n} is already suspended"));
    }
    let mut before = BTreeMap::new();
    before.insert(
        key::SUSPEND.into(),
        c.spec
            .as_ref()
            .and_then(|s| s.suspend)
            .map_or(super::ABSENT.to_string(), |v| v.to_string()),
    );
    let mut intent = BTreeMap::new();
    intent.insert(key::ACTION.into(), "Suspend".into());
    kind_intent(&mut intent, TargetKind::CronJob);
    intent.insert(key::SUSPEND.into(), "true".into());
    intent.insert(key::GENERATION.into(), generation_of(&c.metadata));
    Plan::Act(Box::new(Planned {
        before,
        intent,
        previous_env: Vec::new(),
        description: format!(
            "suspend CronJob {n} (spec.suspend: true): no new Jobs are launched; Jobs already running go on"
        ),
        write: Write {
            target: WriteTarget::CronJob(n),
            patch: json!([
                precondition(c.metadata.generation),
                {"op": "add", "path": "/spec/suspend", "value": true},
                annotate(&c.metadata, "/metadata", LAST_ACTION_ANNOTATION,
                    &last_action(actor.incident, &step.name, step.action)),
            ]),
        },
    }))
}

pub(super) fn is_suspended(c: &CronJob) -> bool {
    suspended(c)
}

/// A suspend takes effect when it is written: the CronJob controller reads
/// `spec.suspend` before each launch (CronJobs report no observedGeneration).
pub(super) fn verify_suspend(c: &CronJob) -> Verification {
    let n = name(c);
    if !suspended(c) {
        return Verification::Waiting(format!("waiting for CronJob {n} to be suspended"));
    }
    let mut after = BTreeMap::new();
    after.insert(key::SUSPEND.into(), "true".into());
    after.insert(key::GENERATION.into(), generation_of(&c.metadata));
    let active = c
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .map_or(0, Vec::len);
    Verification::Done {
        after,
        message: format!(
            "suspended CronJob {n}: it launches no new Jobs ({active} active Job(s) left running)"
        ),
    }
}

/// Resume on Resolved: only if `spec.suspend` is still our `true`.
pub(super) fn plan_resume(
    actor: Actor<'_>,
    before: &BTreeMap<String, String>,
    c: &CronJob,
) -> Revert {
    let n = name(c);
    let step = actor.step;
    let prior = before
        .get(key::SUSPEND)
        .map_or(super::ABSENT, String::as_str);
    if !suspended(c) {
        return Revert::AlreadyReverted(format!("CronJob {n} is no longer suspended"));
    }
    if prior == "true" {
        return Revert::Refuse(format!(
            "not reverted: CronJob {n} was suspended before this step"
        ));
    }
    let mark = format!("{}/{}: revert {}", actor.incident, step.name, step.action);
    let op = if prior == super::ABSENT {
        json!({"op": "remove", "path": "/spec/suspend"})
    } else {
        json!({"op": "replace", "path": "/spec/suspend", "value": false})
    };
    Revert::Act {
        write: Write {
            target: WriteTarget::CronJob(n.clone()),
            patch: json!([
                precondition(c.metadata.generation),
                op,
                annotate(&c.metadata, "/metadata", LAST_ACTION_ANNOTATION, &mark),
            ]),
        },
        description: format!("resumed CronJob {n} (spec.suspend: {prior})"),
    }
}

//! Runbook status from the index (pure): `Ready` (valid, paused, an
//! ignored `namespaceSelector`, or the validation errors),
//! `matchedWorkloads` (the workload controllers each governs) and `lastTriggeredAt`.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::index::{key_of, Index, Key};
use crate::api::{Runbook, RunbookStatus};
use crate::core::conditions::set_condition;
use crate::core::lifecycle::truncate_to_seconds;
use crate::core::selector;
use crate::core::validation::{summarize, validate_runbook};

/// A Runbook status that differs from the stored one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunbookStatusWrite {
    pub namespace: String,
    pub name: String,
    pub status: RunbookStatus,
}

impl Index {
    /// The status of every known Runbook whose stored status is outdated.
    pub fn runbook_statuses(&self, now: Timestamp) -> Vec<RunbookStatusWrite> {
        // One pass over the workload controllers (Deployments,
        // StatefulSets, DaemonSets, Jobs of no CronJob, CronJobs): which
        // Runbook governs each.
        let mut matched_by: HashMap<Key, usize> = HashMap::new();
        for w in self.controllers() {
            if let Some(rb) = self.runbook_for(&w) {
                *matched_by.entry(key_of(rb)).or_default() += 1;
            }
        }
        let now = truncate_to_seconds(now);
        let mut writes = Vec::new();
        for (k, rb) in &self.runbooks {
            let matched = matched_by.get(k).copied().unwrap_or(0);
            let status = self.status_of(rb, matched, self.last_triggered.get(k), now);
            if status != rb.status.clone().unwrap_or_default() {
                writes.push(RunbookStatusWrite {
                    namespace: k.0.clone(),
                    name: k.1.clone(),
                    status,
                });
            }
        }
        writes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        writes
    }

    fn status_of(
        &self,
        rb: &Runbook,
        matched: usize,
        last_triggered: Option<&Timestamp>,
        now: Timestamp,
    ) -> RunbookStatus {
        let old = rb.status.clone().unwrap_or_default();
        let mut status = RunbookStatus {
            observed_generation: rb.metadata.generation,
            matched_workloads: Some(i32::try_from(matched).unwrap_or(i32::MAX)),
            last_triggered_at: last_triggered
                .map(|t| Time(truncate_to_seconds(*t)))
                .or(old.last_triggered_at.clone()),
            conditions: old.conditions.clone(),
        };
        let errors = validate_runbook(&rb.spec);
        if !errors.is_empty() {
            set_condition(
                &mut status.conditions,
                "Ready",
                "False",
                "InvalidSpec",
                summarize(&errors),
                rb.metadata.generation,
                now,
            );
            return status;
        }
        let ignored = selector::ignored_namespace_selector(rb, self.operator_namespace.as_deref());
        let mut msg = if rb.spec.paused {
            "valid; paused: opens no incidents".to_string()
        } else {
            "valid".to_string()
        };
        let reason = match (&ignored, rb.spec.paused) {
            (_, true) => "Paused",
            (Some(_), false) => "NamespaceSelectorIgnored",
            (None, false) => "Valid",
        };
        if let Some(why) = &ignored {
            msg.push_str("; ");
            msg.push_str(why);
        }
        set_condition(
            &mut status.conditions,
            "Ready",
            "True",
            reason,
            msg,
            rb.metadata.generation,
            now,
        );
        status
    }
}

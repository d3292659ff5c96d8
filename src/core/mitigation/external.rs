//! After a step succeeded: did another manager change what it set?

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;

use super::verify::is_applied;
use super::workload::dep_name;
use super::{key, Workload};
use crate::api::{MitigationAction, MitigationStep};

/// After a step succeeded: does the workload still hold what it set? `None`
/// when it does; otherwise what changed.
pub fn external_change(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    w: Workload<'_>,
) -> Option<String> {
    if is_applied(step, intent, w) {
        return None;
    }
    let d = w.deployment;
    let name = dep_name(d);
    let field = if step.action == MitigationAction::Scale {
        "f:replicas"
    } else {
        "f:template"
    };
    let who = last_update_manager(d, field).map_or(String::new(), |m| {
        format!(" (last written by field manager {m:?})")
    });
    Some(match step.action {
        MitigationAction::RolloutUndo => format!(
            "the pod template of {name} no longer matches revision {} that this step rolled back to{who}",
            intent.get(key::TO_REVISION).map(String::as_str).unwrap_or("?")
        ),
        MitigationAction::Scale => match intent.get(key::HPA) {
            Some(h) => format!(
                "minReplicas of HorizontalPodAutoscaler {h} is no longer {}",
                intent.get(key::HPA_MIN_REPLICAS).map(String::as_str).unwrap_or("?")
            ),
            None => format!(
                "{name} has {} replicas, no longer the {} this step set{who}",
                d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                intent.get(key::REPLICAS).map(String::as_str).unwrap_or("?")
            ),
        },
        MitigationAction::SetEnv => format!(
            "{} is no longer set on {name}{who}",
            intent.get(key::ENV).map(String::as_str).unwrap_or("")
        ),
        MitigationAction::RolloutRestart => {
            format!("the restartedAt annotation of {name} changed{who}")
        }
        MitigationAction::Suspend | MitigationAction::DeletePods => return None,
    })
}

/// The field manager, other than ours, that most recently wrote a field
/// under `field` (a managedFields key such as `f:template`).
pub fn last_update_manager(d: &Deployment, field: &str) -> Option<String> {
    d.metadata
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|m| m.manager.as_deref() != Some(crate::api::FIELD_MANAGER))
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| serde_json::to_string(&f.0).ok())
                .is_some_and(|f| f.contains(&format!("\"{field}\"")))
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

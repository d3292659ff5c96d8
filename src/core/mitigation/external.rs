//! After a step succeeded: did another manager change what it set?

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::key;
use super::target::Target;
use super::verify::is_applied;
use crate::api::{MitigationAction, MitigationStep};

/// After a step succeeded: does the workload still hold what it set? `None`
/// when it does; otherwise what changed.
pub fn external_change<'a>(
    step: &MitigationStep,
    intent: &BTreeMap<String, String>,
    target: impl Into<Target<'a>>,
) -> Option<String> {
    let t = target.into();
    // Deleted pods stay deleted: nothing another manager could undo.
    if step.action == MitigationAction::DeletePods || is_applied(step, intent, t) {
        return None;
    }
    let meta = t.meta();
    let name = format!("{} {}", t.kind().as_str(), t.name());
    let field = match step.action {
        MitigationAction::Scale => "f:replicas",
        MitigationAction::Suspend => "f:suspend",
        _ => "f:template",
    };
    let who = last_update_manager(meta, field).map_or(String::new(), |m| {
        match crate::core::gitops::tool_of_manager(&m) {
            // A GitOps owner's self-heal: it put Git's state back.
            Some(tool) => {
                format!(" (last written by field manager {m:?}: {tool} put back what Git says)")
            }
            None => format!(" (last written by field manager {m:?})"),
        }
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
                t.view().and_then(|v| v.replicas).unwrap_or(1),
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
        MitigationAction::Suspend => format!("{name} is no longer suspended{who}"),
        MitigationAction::DeletePods => return None,
    })
}

/// The field manager, other than ours, that most recently wrote a field
/// under `field` (a managedFields key such as `f:template`).
pub fn last_update_manager(meta: &ObjectMeta, field: &str) -> Option<String> {
    meta.managed_fields
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

//! The post-mortem draft of a resolved Incident: rendered by
//! [`crate::core::postmortem`] into `<incident>-postmortem` (an owned
//! ConfigMap, see [`super::artifacts`]), again when the spec changes after
//! the resolution (e.g. a rootCause added later).

use std::collections::BTreeMap;

use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::artifacts::{apply_configmap, set_refs, ArtifactError};
use crate::api::Incident;
use crate::core::lifecycle::Transition;
use crate::core::postmortem;

/// The post-mortem ConfigMap's name.
pub fn postmortem_name(incident: &str) -> String {
    format!("{incident}-postmortem")
}

/// Whether the post-mortem draft should be (re)written now.
pub fn postmortem_due(inc: &Incident, transitions: &[Transition]) -> bool {
    transitions
        .iter()
        .any(|t| matches!(t, Transition::Resolved { .. }))
        || inc.status.as_ref().is_some_and(|s| {
            s.resolved_at.is_some()
                && (s.postmortem_ref.is_none()
                    || s.postmortem_generation != inc.metadata.generation)
        })
}

/// Render the post-mortem draft into `<incident>-postmortem`.
pub async fn write_postmortem(client: &Client, inc: &Incident) -> Result<String, ArtifactError> {
    let cm_name = postmortem_name(&inc.name_any());
    let mut data = BTreeMap::new();
    data.insert(
        postmortem::POSTMORTEM_KEY.to_string(),
        postmortem::render(inc),
    );
    apply_configmap(client, inc, &cm_name, "postmortem", &data).await?;
    let refs = json!({
        "postmortemRef": {"name": cm_name},
        "postmortemGeneration": inc.metadata.generation,
    });
    set_refs(client, inc, "postmortemRef", refs).await?;
    info!(incident = %inc.name_any(), configmap = %cm_name, "post-mortem draft written");
    Ok(format!(
        "post-mortem draft written to ConfigMap {cm_name} (kubectl incident postmortem {})",
        inc.name_any()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IncidentStatus, LocalObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn inc(target: bool) -> Incident {
        let mut spec = serde_json::json!({"title": "t", "severity": "SEV3"});
        if target {
            spec["target"] = serde_json::json!({"kind": "Deployment", "name": "checkout"});
        }
        let mut i = Incident::new("checkout-1", serde_json::from_value(spec).unwrap());
        i.metadata.generation = Some(2);
        i
    }

    #[test]
    fn postmortem_on_resolve_and_when_the_spec_changes_later() {
        let mut i = inc(false);
        assert!(!postmortem_due(&i, &[]));
        i.status = Some(IncidentStatus {
            resolved_at: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..Default::default()
        });
        assert!(postmortem_due(&i, &[]), "resolved without a draft");
        let s = i.status.as_mut().unwrap();
        s.postmortem_ref = Some(LocalObjectReference {
            name: postmortem_name("checkout-1"),
        });
        s.postmortem_generation = Some(2);
        assert!(!postmortem_due(&i, &[]), "draft is current");
        i.metadata.generation = Some(3);
        assert!(postmortem_due(&i, &[]), "rootCause added after resolution");
    }
}

//! The post-mortem draft of a resolved Incident: rendered by
//! [`crate::core::postmortem`] into `<incident>-postmortem` (an owned
//! ConfigMap, see [`super::artifacts`]), again when the spec changes after
//! the resolution (e.g. a rootCause added later).

use std::collections::BTreeMap;

use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::artifacts::{set_refs, write_configmap, ArtifactError};
use crate::api::Incident;
use crate::core::lifecycle::Transition;
use crate::core::postmortem;
use crate::leader::Leadership;

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

/// The most a post-mortem draft keeps (far below the 1 MiB object limit
/// of a ConfigMap; the timeline in it is capped too, this is the backstop).
pub const MAX_POSTMORTEM_BYTES: usize = 512 * 1024;

/// `text` cut to at most `max` bytes (at a line), with a marker saying so.
fn cap_draft(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    // Room for the marker (well under 128 bytes).
    let mut end = max.saturating_sub(128);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let head = head.rfind('\n').map_or(head, |i| &head[..=i]);
    format!(
        "{head}[… cut at {max} bytes by kube-incident's post-mortem cap; {} bytes left out …]\n",
        text.len() - head.len()
    )
}

/// Render the post-mortem draft into `<incident>-postmortem` (created,
/// never adopted; re-rendered only while this Incident owns it: see
/// [`super::artifacts::write_configmap`]).
pub async fn write_postmortem(
    leadership: &Leadership,
    client: &Client,
    inc: &Incident,
) -> Result<String, ArtifactError> {
    let cm_name = postmortem_name(&inc.name_any());
    let mut data = BTreeMap::new();
    data.insert(
        postmortem::POSTMORTEM_KEY.to_string(),
        cap_draft(postmortem::render(inc), MAX_POSTMORTEM_BYTES),
    );
    write_configmap(leadership, client, inc, &cm_name, "postmortem", &data).await?;
    let refs = json!({
        "postmortemRef": {"name": cm_name},
        "postmortemGeneration": inc.metadata.generation,
    });
    set_refs(leadership, client, inc, "postmortemRef", refs).await?;
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
    fn a_huge_draft_is_cut_at_a_line_with_a_marker() {
        let text: String = (0..100_000)
            .map(|i| format!("timeline entry {i}\n"))
            .collect();
        let capped = cap_draft(text.clone(), 64 * 1024);
        assert!(capped.len() <= 64 * 1024, "{}", capped.len());
        assert!(capped.starts_with("timeline entry 0\n"));
        let (head, marker) = capped
            .split_once("[… cut at 65536 bytes by kube-incident's post-mortem cap; ")
            .expect("marker");
        assert!(head.ends_with('\n'), "cut at a line");
        let left_out: usize = marker
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("bytes left out");
        assert_eq!(left_out, text.len() - head.len());
        assert_eq!(cap_draft("short\n".into(), 64), "short\n");
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

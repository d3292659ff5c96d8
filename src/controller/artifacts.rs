//! Artifacts owned by an Incident: the evidence ConfigMap
//! ([`super::evidence`]: at open, when severity rises, before a mitigation's
//! first workload write) and the post-mortem draft ([`super::postmortem`]:
//! on Resolved). What they share: the owned ConfigMap, the Event that
//! reports each outcome, and the status references to them. (Which are
//! due after a reconcile's transitions is decided in [`super::incident`].)
//!
//! Both ConfigMaps carry an ownerReference to the Incident (deleted with
//! it) and are written with server-side apply by `kube-incident`; the
//! Incident's `status.evidenceRef` / `status.postmortemRef` point to them
//! (written through [`super::status::merge`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};
use tracing::warn;

use super::status;
use crate::api::{Incident, FIELD_MANAGER};

/// Errors writing artifacts (shown in an Event; no secret can be in them).
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot read incident {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write ConfigMap {name}: {source}")]
    ConfigMap {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot record {field} on incident {name}: {source}")]
    Status {
        field: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("evidence for incident {name} was not written within {after}; the mitigation goes ahead without it")]
    TimedOut { name: String, after: String },
}

/// The outcome of writing an artifact, as an Event on the Incident
/// (`<what>Written` or `<what>Failed`).
pub async fn report(
    recorder: &Recorder,
    inc: &Incident,
    what: &'static str,
    result: Result<String, ArtifactError>,
) {
    let (type_, reason, note) = match result {
        Ok(note) => (EventType::Normal, format!("{what}Written"), note),
        Err(e) => {
            warn!(incident = %inc.name_any(), error = %e, "{what} not written");
            (EventType::Warning, format!("{what}Failed"), e.to_string())
        }
    };
    let event = Event {
        type_,
        reason,
        note: Some(note),
        action: "Record".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &inc.object_ref(&())).await {
        warn!(incident = %inc.name_any(), error = %e, "failed to publish event");
    }
}

/// Server-side apply a ConfigMap owned by the Incident.
pub async fn apply_configmap(
    client: &Client,
    inc: &Incident,
    cm_name: &str,
    kind_label: &str,
    data: &BTreeMap<String, String>,
) -> Result<(), ArtifactError> {
    let ns = inc.namespace().unwrap_or_default();
    let owner = json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "name": inc.name_any(),
        "uid": inc.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": false,
    });
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name,
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/managed-by": "kube-incident",
                "kubeincident.io/incident": inc.name_any(),
                "kubeincident.io/artifact": kind_label,
            },
            "ownerReferences": [owner],
        },
        "data": data,
    });
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .patch(
            cm_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
        .map_err(|source| ArtifactError::ConfigMap {
            name: format!("{ns}/{cm_name}"),
            source,
        })?;
    Ok(())
}

/// Point the Incident's status at an artifact (`field`: the reference's
/// name in the status, for the error; `fields`: what to merge).
pub async fn set_refs(
    client: &Client,
    inc: &Incident,
    field: &'static str,
    fields: Value,
) -> Result<(), ArtifactError> {
    status::merge(client, inc, fields)
        .await
        .map_err(|source| ArtifactError::Status {
            field,
            name: format!("{}/{}", inc.namespace().unwrap_or_default(), inc.name_any()),
            source,
        })
}

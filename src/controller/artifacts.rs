//! Artifacts owned by an Incident: the evidence ConfigMap
//! ([`super::evidence`]: at open, when severity rises, before a mitigation's
//! first workload write) and the post-mortem draft ([`super::postmortem`]:
//! on Resolved). What they share: the owned ConfigMap, the Event that
//! reports each outcome, and the status references to them. (Which are
//! due after a reconcile's transitions is decided in [`super::incident`].)
//!
//! Both ConfigMaps carry an ownerReference to the Incident (deleted with
//! it) and are created, never adopted ([`write_configmap`]): a POST create;
//! when the name is taken, the data is replaced only if the existing
//! ConfigMap is owned by this Incident (a JSON patch whose first operation
//! tests the owner's uid), otherwise it is left alone and the artifact
//! fails with an Event naming it. (A forced server-side apply would take
//! over a ConfigMap someone else created, and the garbage collector would
//! then delete it with the Incident.) The Incident's `status.evidenceRef` /
//! `status.postmortemRef` point to them (written through
//! [`super::status::merge`]). Only the leader writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};
use tracing::warn;

use super::status;
use crate::api::{Incident, FIELD_MANAGER};
use crate::leader::Leadership;

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
    #[error("ConfigMap {name} already exists and is not owned by incident {incident}: kube-incident neither adopts nor changes it (delete or rename it, and the next reconcile writes the {what})")]
    NotOwned {
        name: String,
        incident: String,
        what: &'static str,
    },
    #[error("{what} of incident {incident} not written: this instance no longer leads")]
    NotLeading {
        what: &'static str,
        incident: String,
    },
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
        // A deposed leader publishes nothing either.
        Err(e @ ArtifactError::NotLeading { .. }) => {
            tracing::debug!(incident = %inc.name_any(), error = %e, "{what} not written");
            return;
        }
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

/// The ConfigMap [`write_configmap`] creates.
fn owned_configmap(
    inc: &Incident,
    cm_name: &str,
    kind_label: &str,
    data: &BTreeMap<String, String>,
) -> Result<ConfigMap, serde_json::Error> {
    let owner = json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "name": inc.name_any(),
        "uid": inc.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": false,
    });
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name,
            "namespace": inc.namespace().unwrap_or_default(),
            "labels": {
                "app.kubernetes.io/managed-by": "kube-incident",
                "kubeincident.io/incident": inc.name_any(),
                "kubeincident.io/artifact": kind_label,
            },
            "ownerReferences": [owner],
        },
        "data": data,
    }))
}

/// The update of a ConfigMap this Incident already owns: a JSON patch whose
/// first operation tests that its (only) owner is the Incident's uid, so a
/// ConfigMap anyone else created (or re-created) is refused with 422 and
/// left as it is; then the data is replaced whole.
fn owned_update(uid: &str, data: &BTreeMap<String, String>) -> Value {
    json!([
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": uid},
        {"op": "add", "path": "/data", "value": data},
    ])
}

/// Write an artifact ConfigMap owned by the Incident, create-only: POST
/// create; if the name is taken, replace its data only when it is owned by
/// this Incident (ownerReference uid, tested in the same request), else
/// fail with [`ArtifactError::NotOwned`] without touching it. Checks
/// leadership just before each write.
pub async fn write_configmap(
    leadership: &Leadership,
    client: &Client,
    inc: &Incident,
    cm_name: &str,
    kind_label: &'static str,
    data: &BTreeMap<String, String>,
) -> Result<(), ArtifactError> {
    let ns = inc.namespace().unwrap_or_default();
    let full_name = format!("{ns}/{cm_name}");
    let not_leading = || ArtifactError::NotLeading {
        what: kind_label,
        incident: inc.name_any(),
    };
    let cm_err = |source| ArtifactError::ConfigMap {
        name: full_name.clone(),
        source,
    };
    let uid = inc.metadata.uid.clone().unwrap_or_default();
    let api = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let cm = owned_configmap(inc, cm_name, kind_label, data)
        .map_err(|e| cm_err(kube::Error::SerdeError(e)))?;
    if !leadership.is_leader() {
        return Err(not_leading());
    }
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.create(&pp, &cm).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {}
        Err(e) => return Err(cm_err(e)),
    }
    if !leadership.is_leader() {
        return Err(not_leading());
    }
    let patch: json_patch::Patch = serde_json::from_value(owned_update(&uid, data))
        .map_err(|e| cm_err(kube::Error::SerdeError(e)))?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.patch(cm_name, &params, &Patch::<()>::Json(patch)).await {
        Ok(_) => Ok(()),
        // The owner test failed (or there is no owner): not ours.
        Err(kube::Error::Api(s)) if s.code == 422 && !uid.is_empty() => {
            Err(ArtifactError::NotOwned {
                name: full_name.clone(),
                incident: inc.name_any(),
                what: kind_label,
            })
        }
        Err(e) => Err(cm_err(e)),
    }
}

/// Point the Incident's status at an artifact (`field`: the reference's
/// name in the status, for the error; `fields`: what to merge).
/// Returns the Incident's new resourceVersion.
pub async fn set_refs(
    leadership: &Leadership,
    client: &Client,
    inc: &Incident,
    field: &'static str,
    fields: Value,
) -> Result<String, ArtifactError> {
    if !leadership.is_leader() {
        return Err(ArtifactError::NotLeading {
            what: field,
            incident: inc.name_any(),
        });
    }
    status::merge(client, inc, fields)
        .await
        .map_err(|source| ArtifactError::Status {
            field,
            name: format!("{}/{}", inc.namespace().unwrap_or_default(), inc.name_any()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_update_tests_the_owner_before_it_changes_anything() {
        let data = BTreeMap::from([("summary.txt".to_string(), "x".to_string())]);
        let patch = owned_update("uid-1", &data);
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": "uid-1"})
        );
        assert_eq!(patch[1]["path"], "/data");
        let _: json_patch::Patch = serde_json::from_value(patch).expect("a valid JSON patch");
    }

    #[test]
    fn the_created_configmap_is_owned_by_the_incident() {
        let mut inc = Incident::new(
            "checkout-1",
            serde_json::from_value(json!({"title": "t", "severity": "SEV3"})).unwrap(),
        );
        inc.metadata.namespace = Some("shop".into());
        inc.metadata.uid = Some("uid-1".into());
        let cm = owned_configmap(&inc, "checkout-1-evidence", "evidence", &BTreeMap::new())
            .expect("configmap");
        let owners = cm.metadata.owner_references.expect("owner");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("shop"));
    }
}

//! Every write of an Incident's status, in one place (field manager
//! `kube-incident`). Three kinds, each for the fields it owns:
//!
//! - [`apply`]: the reconciler's server-side apply of the whole status the
//!   lifecycle decided ([`apply_if_unchanged`]: the same, with the cached
//!   resourceVersion as a precondition, for the mitigation executor's
//!   intent, which must never be recorded twice from a stale cache).
//! - [`merge_if_unchanged`]: a merge patch guarded by the resourceVersion
//!   that was read, for `status.notifications`. The notifier cannot hand its
//!   records to the reconciler's apply: a delivery must be claimed (stored,
//!   against concurrent writers) *before* anything is sent, and its outcome
//!   stored after, within one reconcile; and the lifecycle's apply never
//!   carries the records (they are not serialized with the status), so a
//!   replayed reconcile cannot regress one (docs/notifications.md).
//! - [`merge`]: a merge patch of fields no other writer sets: the
//!   artifact references (`evidenceRef`, `postmortemRef`,
//!   `postmortemGeneration`), written after their ConfigMap exists.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::api::{Incident, IncidentStatus, FIELD_MANAGER};

fn incidents(client: &Client, inc_ns: &str) -> Api<Incident> {
    Api::namespaced(client.clone(), inc_ns)
}

fn update_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

fn apply_patch(status: &IncidentStatus, resource_version: Option<&str>) -> Value {
    let mut patch = json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    patch
}

/// Server-side apply of the whole status, owned by `kube-incident`.
pub async fn apply(
    client: &Client,
    ns: &str,
    name: &str,
    status: &IncidentStatus,
) -> Result<(), kube::Error> {
    incidents(client, ns)
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply_patch(status, None)),
        )
        .await?;
    Ok(())
}

/// [`apply`] with `base`'s resourceVersion as a precondition.
/// `Ok(false)`: the Incident changed since `base` was read (HTTP 409).
pub async fn apply_if_unchanged(
    client: &Client,
    base: &Incident,
    status: &IncidentStatus,
) -> Result<bool, kube::Error> {
    let ns = base.namespace().unwrap_or_default();
    let patch = apply_patch(status, base.resource_version().as_deref());
    match incidents(client, &ns)
        .patch_status(
            &base.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Merge `status` (a JSON object of status fields) into the stored status,
/// only if the Incident is still at `base`'s resourceVersion (else HTTP
/// 409). Returns the stored Incident.
pub async fn merge_if_unchanged(
    client: &Client,
    base: &Incident,
    status: Value,
) -> Result<Incident, kube::Error> {
    let ns = base.namespace().unwrap_or_default();
    let patch = json!({
        "metadata": {"resourceVersion": base.resource_version()},
        "status": status,
    });
    incidents(client, &ns)
        .patch_status(&base.name_any(), &update_params(), &Patch::Merge(&patch))
        .await
}

/// Merge `status` (a JSON object of status fields) into the stored status.
pub async fn merge(client: &Client, inc: &Incident, status: Value) -> Result<(), kube::Error> {
    let ns = inc.namespace().unwrap_or_default();
    let patch = json!({ "status": status });
    incidents(client, &ns)
        .patch_status(&inc.name_any(), &update_params(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

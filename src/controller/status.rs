//! Every write of an Incident's status, in one place (field manager
//! `kube-incident`). Three kinds, each for the fields it owns:
//!
//! - [`apply`]: the reconciler's server-side apply of the whole status the
//!   lifecycle decided, fenced by the resourceVersion it was computed from
//!   (carried in the applied body's `metadata.resourceVersion`, which
//!   kube-apiserver enforces as a precondition: 409 Conflict when the
//!   Incident changed since). A status computed by a deposed leader, or from
//!   a stale cache, is refused instead of overwriting what the current
//!   leader recorded ([`apply_if_unchanged`]: the same with the read
//!   Incident's resourceVersion, for the mitigation executor's intent, which
//!   must never be recorded twice). There is no unfenced status apply.
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

/// Parameters of an Update (JSON or merge patch) by kube-incident.
pub(crate) fn update_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

fn apply_patch(status: &IncidentStatus, resource_version: &str) -> Value {
    json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "metadata": { "resourceVersion": resource_version },
        "status": status,
    })
}

/// Server-side apply of the whole status, owned by `kube-incident`, only
/// if the Incident is still at `resource_version` (the version the status
/// was computed from). `Ok(Some(rv))`: written, the Incident is now at
/// `rv`; `Ok(None)`: it changed since (HTTP 409), nothing was written.
pub async fn apply(
    client: &Client,
    ns: &str,
    name: &str,
    resource_version: &str,
    status: &IncidentStatus,
) -> Result<Option<String>, kube::Error> {
    let patch = apply_patch(status, resource_version);
    match incidents(client, ns)
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(stored) => Ok(Some(stored.resource_version().unwrap_or_default())),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`apply`] fenced by `base`'s resourceVersion (the Incident as read).
pub async fn apply_if_unchanged(
    client: &Client,
    base: &Incident,
    status: &IncidentStatus,
) -> Result<Option<String>, kube::Error> {
    let ns = base.namespace().unwrap_or_default();
    let rv = base.resource_version().unwrap_or_default();
    apply(client, &ns, &base.name_any(), &rv, status).await
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
/// Returns the Incident's new resourceVersion (a reconcile that wrote it
/// fences its own later status apply with it).
pub async fn merge(client: &Client, inc: &Incident, status: Value) -> Result<String, kube::Error> {
    let ns = inc.namespace().unwrap_or_default();
    let patch = json!({ "status": status });
    let stored = incidents(client, &ns)
        .patch_status(&inc.name_any(), &update_params(), &Patch::Merge(&patch))
        .await?;
    Ok(stored.resource_version().unwrap_or_default())
}

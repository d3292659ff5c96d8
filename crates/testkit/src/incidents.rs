//! Incident and Runbook objects for tests, and waits on an Incident's
//! status that say what they waited for and the last status seen.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use kube_incident::api::{Incident, IncidentStatus, Runbook, StepState};
use serde_json::{json, Value};

use crate::wait::wait_for;

/// An Incident `name` with `spec` (JSON, as a user writes it).
pub fn incident(name: &str, spec: Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("incident {name}: {e}"))
}

/// A Runbook `name` with `spec` (JSON, as a user writes it).
pub fn runbook(name: &str, spec: Value) -> Runbook {
    serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("runbook {name}: {e}"))
}

/// Create the Runbook `name` with `spec` in `ns` (as the client's user).
pub async fn create_runbook(client: &Client, ns: &str, name: &str, spec: Value) {
    Api::<Runbook>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &runbook(name, spec))
        .await
        .unwrap_or_else(|e| panic!("create runbook {name} in {ns}: {e}"));
}

/// The Incident `name` once its status satisfies `pred`, polled for at most
/// `timeout`; panics naming `what` with the last status seen.
pub async fn wait_incident(
    api: &Api<Incident>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&IncidentStatus) -> bool,
) -> Incident {
    let found = wait_for(timeout, || async {
        let inc = api.get(name).await.ok()?;
        inc.status.as_ref().filter(|s| pred(s))?;
        Some(inc)
    })
    .await;
    match found {
        Some(inc) => inc,
        None => {
            let last = api.get(name).await.ok().and_then(|i| i.status);
            panic!("incident {name}: timed out waiting for {what}; last status: {last:#?}")
        }
    }
}

/// [`wait_incident`], returning only the status.
pub async fn wait_status(
    api: &Api<Incident>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&IncidentStatus) -> bool,
) -> IncidentStatus {
    let inc = wait_incident(api, name, timeout, what, pred).await;
    inc.status.expect("a status that satisfied the wait")
}

/// The state of mitigation step `i` (`None` before the step is recorded).
pub fn step_state(s: &IncidentStatus, i: usize) -> Option<StepState> {
    s.mitigations.get(i).map(|m| m.state)
}

/// The Events in `ns` regarding the object named `name`.
pub async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list events in {ns}: {e}"))
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// The holder of Lease `lease` in `ns` (`None`: no Lease, or nobody holds it).
pub async fn lease_holder(client: &Client, ns: &str, lease: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(lease)
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

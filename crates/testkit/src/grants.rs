//! Runbook mandates for hand-made Incidents in tests.
//!
//! A step runs only if the Runbook governing its target grants it
//! (`kube_incident::core::authority`). Scenario tests that are about
//! something else (the executors, the lifecycle, notifications) create
//! their Incidents with [`CreateGranted::create_granted`]: it first makes
//! sure a Runbook in the namespace grants exactly the Incident's steps,
//! then creates the Incident. Tests about authority create Incidents
//! with plain `create` and write their own Runbooks.

use std::collections::BTreeMap;

use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::Api;
use serde_json::{json, Value};

use kube_incident::api::{Incident, Runbook, TargetKind};
use kube_incident::core::selector;

/// Field manager of the grants the test kit writes.
const MANAGER: &str = "testkit-grants";
/// Name prefix of the Runbook the test kit creates when none covers the
/// target (`grants-<target>`).
pub const GRANTS_RUNBOOK: &str = "grants";
/// Annotation on a Runbook: the steps the test kit added (comma-separated).
const GRANTED_ANNOTATION: &str = "testkit.kubeincident.io/granted";

/// `create` for Incidents, after granting their steps (see the module docs).
#[allow(async_fn_in_trait)]
pub trait CreateGranted {
    async fn create_granted(
        &self,
        pp: &PostParams,
        inc: &Incident,
    ) -> Result<Incident, kube::Error>;
}

impl CreateGranted for Api<Incident> {
    async fn create_granted(
        &self,
        pp: &PostParams,
        inc: &Incident,
    ) -> Result<Incident, kube::Error> {
        let ns = self
            .namespace()
            .map(str::to_string)
            .or_else(|| inc.metadata.namespace.clone())
            .unwrap_or_else(|| "default".into());
        grant(&self.clone().into_client(), &ns, inc).await?;
        self.create(pp, inc).await
    }
}

/// Make a Runbook in `ns` grant the steps of `inc`: the Runbook it names,
/// else the first (by name) whose selector and kinds cover the target, else
/// a new `grants-<target>` selecting the target's labels (with `targetKinds:
/// [<kind>]` for a kind other than Deployment and Pod). Steps the Runbook
/// already lists are left as the test wrote them; missing ones are added
/// with bounds that admit exactly what the Incident asks for.
pub async fn grant(client: &kube::Client, ns: &str, inc: &Incident) -> Result<(), kube::Error> {
    let Some(target) = inc.spec.target.as_ref() else {
        return Ok(());
    };
    if inc.spec.mitigations.is_empty() {
        return Ok(());
    }
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), ns);
    let labels = target_labels(client, ns, target.kind, &target.name).await?;
    let mut existing = runbooks.list(&ListParams::default()).await?.items;
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let chosen = match &inc.spec.runbook_ref {
        Some(r) => existing
            .into_iter()
            .find(|rb| rb.metadata.name.as_deref() == Some(r.name.as_str())),
        None => existing.into_iter().find(|rb| {
            !labels.is_empty()
                && selector::covers_kind(&rb.spec, target.kind)
                && selector::matches(&rb.spec.selector, &labels)
        }),
    };
    let (name, mut steps, selector_json) = match &chosen {
        // The test's own Runbook keeps its selector (not part of our apply).
        // (sent again as it is: an apply that leaves out a field it set
        // before would remove it).
        Some(rb) => (
            rb.metadata.name.clone().unwrap_or_default(),
            serde_json::to_value(&rb.spec.mitigations).unwrap_or_else(|_| json!([])),
            serde_json::to_value(&rb.spec.selector).ok(),
        ),
        None => (
            inc.spec
                .runbook_ref
                .as_ref()
                .map_or(format!("{GRANTS_RUNBOOK}-{}", target.name), |r| {
                    r.name.clone()
                }),
            json!([]),
            Some(if labels.is_empty() {
                json!({ "matchLabels": {"app": target.name} })
            } else {
                json!({ "matchLabels": labels })
            }),
        ),
    };
    // Steps the test kit added earlier (widened for later Incidents).
    let mut ours: Vec<String> = chosen
        .as_ref()
        .and_then(|rb| rb.metadata.annotations.as_ref())
        .and_then(|a| a.get(GRANTED_ANNOTATION))
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let list = steps.as_array_mut().expect("a list");
    let mut changed = chosen.is_none();
    for step in &inc.spec.mitigations {
        if let Some(s) = list.iter_mut().find(|s| s["name"] == json!(step.name)) {
            // A step the test kit added widens to admit this Incident too.
            if ours.contains(&step.name) {
                changed |= widen(s, step);
            }
            continue;
        }
        ours.push(step.name.clone());
        changed = true;
        let mut s = json!({
            "name": step.name,
            "action": step.action,
            "approval": "Automatic",
            "allowExplicitRevision": true,
        });
        if let Some(n) = step.replicas {
            s["replicas"] = json!(n);
            s["maxReplicas"] = json!(n);
        }
        if let Some(c) = &step.container {
            s["container"] = json!(c);
        }
        if !step.env.is_empty() {
            s["env"] = serde_json::to_value(&step.env).unwrap_or_else(|_| json!([]));
        }
        list.push(s);
    }
    if !changed {
        return Ok(());
    }
    let mut body: Value = json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": name, "namespace": ns,
                     "annotations": {GRANTED_ANNOTATION: ours.join(",")}},
        "spec": {"mitigations": steps},
    });
    if let Some(sel) = selector_json {
        body["spec"]["selector"] = sel;
    }
    // A Runbook the test kit makes for another kind than the default ones
    // names it in targetKinds (a test's own Runbook keeps its own).
    if chosen.is_none() && !TargetKind::DEFAULT_RUNBOOK_KINDS.contains(&target.kind) {
        body["spec"]["targetKinds"] = json!([target.kind.as_str()]);
    } else if let Some(kinds) = chosen
        .as_ref()
        .filter(|rb| !rb.spec.target_kinds.is_empty())
        .map(|rb| rb.spec.target_kinds.clone())
    {
        body["spec"]["targetKinds"] = serde_json::to_value(kinds).unwrap_or_else(|_| json!([]));
    }
    runbooks
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    Ok(())
}

/// The labels of the target `kind`/`name` (empty when it does not exist).
async fn target_labels(
    client: &kube::Client,
    ns: &str,
    kind: TargetKind,
    name: &str,
) -> Result<BTreeMap<String, String>, kube::Error> {
    let (group, version) = match kind {
        TargetKind::Deployment | TargetKind::StatefulSet | TargetKind::DaemonSet => ("apps", "v1"),
        TargetKind::Job | TargetKind::CronJob => ("batch", "v1"),
        TargetKind::Pod => ("", "v1"),
    };
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind.as_str()));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|o| o.metadata.labels)
        .unwrap_or_default())
}

/// Widen a step of the test kit's own Runbook to admit `step` as well.
fn widen(s: &mut Value, step: &kube_incident::api::MitigationStep) -> bool {
    let before = s.clone();
    if let Some(n) = step.replicas {
        let low = s["replicas"].as_i64().map_or(n as i64, |v| v.min(n as i64));
        let high = s["maxReplicas"]
            .as_i64()
            .map_or(n as i64, |v| v.max(n as i64));
        s["replicas"] = json!(low);
        s["maxReplicas"] = json!(high);
    }
    for e in &step.env {
        let env = s["env"].as_array().cloned().unwrap_or_default();
        if !env.iter().any(|x| x["name"] == json!(e.name)) {
            let mut env = env;
            env.push(json!({"name": e.name, "value": e.value}));
            s["env"] = json!(env);
        }
    }
    if step.container.is_none() {
        if let Some(o) = s.as_object_mut() {
            o.remove("container");
        }
    }
    *s != before
}

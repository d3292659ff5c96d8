//! The Kubernetes writes of one [`Action`]: open, update, reopen or
//! resolve an Incident of the group. Every step is idempotent, so a retried
//! delivery is safe.

use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::episodes::{decide_fire, latest, FireDecision};
use super::payload::Action;
use super::{Intake, ALERT_GROUP_LABEL, RESOLVER};
use crate::api::{Incident, IncidentSource, RECURRED_AT_ANNOTATION};
use crate::controller::detector::EPISODE_LABEL;

/// Why an action could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A server error, a conflict, a timeout: Alertmanager should retry
    /// (503; every step is idempotent).
    #[error("{0}")]
    Retry(String),
    /// Refused in a way no retry fixes (the namespace does not exist, the
    /// Incident would be invalid): 422, Alertmanager does not retry.
    #[error("{0}")]
    Refused(String),
}

/// Classify an API error of `what`: 400, 404 and 422 are refusals no retry
/// fixes; everything else (5xx, 429, 409, 403, transport) is retried.
fn api_error(what: &str, namespace: &str, e: kube::Error) -> ApplyError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ApplyError::Refused(format!(
            "{what}: {} (does namespace {namespace:?} exist?)",
            s.message
        )),
        kube::Error::Api(s) if s.code == 400 || s.code == 422 => {
            ApplyError::Refused(format!("{what}: {}", s.message))
        }
        e => ApplyError::Retry(format!("{what}: {e}")),
    }
}

impl Intake {
    /// The Incidents of a group in a namespace.
    pub(super) async fn group(
        &self,
        namespace: &str,
        group_hash: &str,
    ) -> Result<Vec<Incident>, ApplyError> {
        let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default().labels(&format!("{ALERT_GROUP_LABEL}={group_hash}")))
            .await
            .map(|l| l.items)
            .map_err(|e| api_error("cannot list the incidents of the alert group", namespace, e))
    }

    pub(super) async fn apply(&self, action: &Action) -> Result<String, ApplyError> {
        match action {
            Action::Fire {
                namespace,
                name: first_name,
                group_hash,
                title,
                severity,
                target,
            } => {
                let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
                let group = self.group(namespace, group_hash).await?;
                let now = (self.clock)();
                match decide_fire(first_name, &group, self.reopen_window, now) {
                    FireDecision::Open { name, episode } => {
                        let mut spec = json!({
                            "title": title,
                            "severity": severity.to_string(),
                            "source": IncidentSource::Alertmanager.as_str(),
                        });
                        if let Some((kind, t)) = target {
                            spec["target"] = json!({"kind": kind.as_str(), "name": t});
                        }
                        let inc: Incident = serde_json::from_value(json!({
                            "apiVersion": "kubeincident.io/v1alpha1",
                            "kind": "Incident",
                            "metadata": {
                                "name": name,
                                "namespace": namespace,
                                "labels": {
                                    ALERT_GROUP_LABEL: group_hash,
                                    EPISODE_LABEL: episode.to_string(),
                                },
                            },
                            "spec": spec,
                        }))
                        .map_err(|e| {
                            ApplyError::Refused(format!("cannot build the incident: {e}"))
                        })?;
                        match api.create(&PostParams::default(), &inc).await {
                            Ok(_) => {
                                info!(incident = %name, namespace = %namespace, episode, "incident opened from Alertmanager");
                                Ok(format!("opened {namespace}/{name}"))
                            }
                            // Created concurrently by a retry: fine.
                            Err(kube::Error::Api(s)) if s.code == 409 => {
                                Ok(format!("{namespace}/{name} exists"))
                            }
                            Err(e) => Err(api_error(
                                &format!("cannot create incident {namespace}/{name}"),
                                namespace,
                                e,
                            )),
                        }
                    }
                    FireDecision::Update { name } => {
                        let Some(inc) = group.iter().find(|i| i.name_any() == name) else {
                            return Ok(format!("{namespace}/{name} unchanged"));
                        };
                        if !severity.is_more_severe_than(inc.spec.severity) {
                            return Ok(format!("{namespace}/{name} unchanged"));
                        }
                        let ops = vec![
                            json!({"op": "replace", "path": "/spec/severity", "value": severity.to_string()}),
                        ];
                        self.patch(&api, namespace, &name, ops).await?;
                        Ok(format!("updated {namespace}/{name}"))
                    }
                    FireDecision::Reopen { name } => {
                        let Some(inc) = group.iter().find(|i| i.name_any() == name) else {
                            return Ok(format!("{namespace}/{name} unchanged"));
                        };
                        let mut ops = Vec::new();
                        if let Some(res) = &inc.spec.resolution {
                            // Remove exactly the resolution we saw.
                            ops.push(
                                json!({"op": "test", "path": "/spec/resolution", "value": res}),
                            );
                            ops.push(json!({"op": "remove", "path": "/spec/resolution"}));
                        }
                        // Sub-second precision: a resolution processed
                        // earlier in the same second is still before it.
                        let at = now.to_string();
                        if inc
                            .metadata
                            .annotations
                            .as_ref()
                            .is_some_and(|a| !a.is_empty())
                        {
                            ops.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", RECURRED_AT_ANNOTATION.replace('/', "~1")), "value": at}));
                        } else {
                            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {RECURRED_AT_ANNOTATION: at}}));
                        }
                        if severity.is_more_severe_than(inc.spec.severity) {
                            ops.push(json!({"op": "replace", "path": "/spec/severity", "value": severity.to_string()}));
                        }
                        self.patch(&api, namespace, &name, ops).await?;
                        info!(incident = %name, namespace = %namespace, "incident reopened by Alertmanager");
                        Ok(format!("reopened {namespace}/{name}"))
                    }
                }
            }
            Action::Resolve {
                namespace,
                name: first_name,
                group_hash,
                summary,
            } => {
                let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
                let group = self.group(namespace, group_hash).await?;
                match latest(&group) {
                    None => Ok(format!(
                        "{namespace}/{first_name} unknown; nothing to resolve"
                    )),
                    Some(inc) if inc.spec.resolution.is_some() => {
                        Ok(format!("{namespace}/{} already resolved", inc.name_any()))
                    }
                    Some(inc) => {
                        let name = inc.name_any();
                        let patch =
                            json!({"spec": {"resolution": {"by": RESOLVER, "summary": summary}}});
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map_err(|e| {
                                api_error(
                                    &format!("cannot resolve incident {namespace}/{name}"),
                                    namespace,
                                    e,
                                )
                            })?;
                        info!(incident = %name, namespace = %namespace, "incident resolved by Alertmanager");
                        Ok(format!("resolved {namespace}/{name}"))
                    }
                }
            }
        }
    }

    /// A JSON patch of an Incident of the group. A failed `test` (someone
    /// changed it in between: kube-apiserver answers 422 "the server
    /// rejected our request due to an error in our request") is retried:
    /// the next delivery decides again.
    pub(super) async fn patch(
        &self,
        api: &Api<Incident>,
        namespace: &str,
        name: &str,
        ops: Vec<serde_json::Value>,
    ) -> Result<(), ApplyError> {
        let tested = ops.iter().any(|op| op["op"] == "test");
        let patch: json_patch::Patch = serde_json::from_value(json!(ops))
            .map_err(|e| ApplyError::Refused(format!("cannot build the patch: {e}")))?;
        match api
            .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 422 && tested => Err(ApplyError::Retry(format!(
                "incident {namespace}/{name} changed while it was updated; retry"
            ))),
            Err(e) => Err(api_error(
                &format!("cannot update incident {namespace}/{name}"),
                namespace,
                e,
            )),
        }
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

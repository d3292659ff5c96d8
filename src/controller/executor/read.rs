//! The executor's reads: the target Deployment fresh from the API server,
//! its ReplicaSets and HPAs, and whether the cached Incident is current.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tracing::debug;

use super::error::{read_err, Error};
use crate::api::Incident;
use crate::controller::context::Context;
use crate::core::mitigation::{key, Workload};
use crate::core::selector;

/// One fresh read of the target: the Deployment, its ReplicaSets (when
/// asked for) and the HPAs asked for.
pub(super) struct Read {
    pub(super) deployment: Deployment,
    pub(super) replica_sets: Vec<ReplicaSet>,
    pub(super) hpas: Vec<HorizontalPodAutoscaler>,
}

impl Read {
    pub(super) fn workload(&self) -> Workload<'_> {
        Workload {
            deployment: &self.deployment,
            replica_sets: &self.replica_sets,
            hpas: &self.hpas,
        }
    }
}

/// Which HorizontalPodAutoscalers a read needs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hpas<'a> {
    None,
    /// Every HPA of the namespace (planning a Scale: which one manages the
    /// Deployment?).
    All,
    /// The one a recorded intent names.
    Named(&'a str),
}

impl<'a> Hpas<'a> {
    pub(super) fn of_intent(intent: &'a BTreeMap<String, String>) -> Hpas<'a> {
        intent
            .get(key::HPA)
            .map_or(Hpas::None, |n| Hpas::Named(n.as_str()))
    }
}

/// Read the target Deployment (fresh from the API server, never a cache),
/// its ReplicaSets and the HPAs asked for. `None`: no such Deployment in
/// the Incident's namespace.
pub(super) async fn read(
    ctx: &Context,
    ns: &str,
    name: &str,
    replica_sets: bool,
    hpas: Hpas<'_>,
) -> Result<Option<Read>, Error> {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let Some(deployment) = deployments
        .get_opt(name)
        .await
        .map_err(read_err(format!("deployment {ns}/{name}")))?
    else {
        return Ok(None);
    };
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let lp = replica_set_list_params(&deployment);
    let replica_sets = if replica_sets {
        rs_api
            .list(&lp)
            .await
            .map_err(read_err(format!("replicasets of {ns}/{name}")))?
            .items
    } else {
        Vec::new()
    };
    let hpa_api = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns);
    let hpas = match hpas {
        Hpas::None => Vec::new(),
        Hpas::All => {
            hpa_api
                .list(&ListParams::default())
                .await
                .map_err(read_err(format!("horizontalpodautoscalers in {ns}")))?
                .items
        }
        Hpas::Named(n) => hpa_api
            .get_opt(n)
            .await
            .map_err(read_err(format!("horizontalpodautoscaler {ns}/{n}")))?
            .into_iter()
            .collect(),
    };
    Ok(Some(Read {
        deployment,
        replica_sets,
        hpas,
    }))
}

/// The list parameters of a Deployment's ReplicaSets: its whole
/// `spec.selector` (matchLabels and matchExpressions). A selector the API
/// server would not have accepted lists the namespace's ReplicaSets; either
/// way the core keeps only those the Deployment controls.
fn replica_set_list_params(deployment: &Deployment) -> ListParams {
    match selector::deployment_selector(deployment) {
        Ok(sel) => ListParams::default().labels_from(&sel),
        Err(e) => {
            debug!(deployment = %deployment.name_any(), error = %e, "listing every ReplicaSet of the namespace");
            ListParams::default()
        }
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod selector_tests;

/// Whether the cached Incident is the stored one (same resourceVersion):
/// our previous status write may not have reached the cache yet.
pub(super) async fn cache_is_current(
    ctx: &Context,
    inc: &Incident,
    ns: &str,
) -> Result<bool, Error> {
    let name = inc.name_any();
    let api: Api<Incident> = Api::namespaced(ctx.client.clone(), ns);
    let stored = api
        .get_metadata(&name)
        .await
        .map_err(read_err(format!("incident {ns}/{name}")))?;
    Ok(stored.metadata.resource_version == inc.metadata.resource_version)
}

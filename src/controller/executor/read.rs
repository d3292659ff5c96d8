//! The executor's reads: the target (Deployment, StatefulSet, DaemonSet or
//! CronJob) fresh from the API server, its history (ReplicaSets;
//! ControllerRevisions and pods) and HPAs, and whether the cached Incident
//! is current.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tracing::debug;

use super::error::{read_err, Error};
use crate::api::{Incident, TargetKind};
use crate::controller::context::Context;
use crate::core::mitigation::{key, SetWorkload, Target, Workload};
use crate::core::selector;

/// The target object as read.
pub(super) enum Object {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    CronJob(Box<CronJob>),
}

/// One fresh read of the target: the object, its history when asked for
/// (a Deployment's ReplicaSets; a StatefulSet's or DaemonSet's
/// ControllerRevisions and pods) and the HPAs asked for.
pub(super) struct Read {
    pub(super) object: Object,
    pub(super) replica_sets: Vec<ReplicaSet>,
    pub(super) revisions: Vec<ControllerRevision>,
    pub(super) pods: Vec<Pod>,
    pub(super) hpas: Vec<HorizontalPodAutoscaler>,
}

impl Read {
    pub(super) fn workload(&self) -> Target<'_> {
        match &self.object {
            Object::Deployment(deployment) => Target::Deployment(Workload {
                deployment,
                replica_sets: &self.replica_sets,
                hpas: &self.hpas,
            }),
            Object::StatefulSet(object) => Target::StatefulSet(SetWorkload {
                object,
                revisions: &self.revisions,
                pods: &self.pods,
                hpas: &self.hpas,
            }),
            Object::DaemonSet(object) => Target::DaemonSet(SetWorkload {
                object,
                revisions: &self.revisions,
                pods: &self.pods,
                hpas: &[],
            }),
            Object::CronJob(c) => Target::CronJob(c),
        }
    }

    /// How long a rollout may take before the step fails: a Deployment's
    /// progress deadline; 600s (the Deployment default) for the other kinds.
    pub(super) fn progress_deadline(&self) -> i32 {
        match &self.object {
            Object::Deployment(d) => d
                .spec
                .as_ref()
                .and_then(|s| s.progress_deadline_seconds)
                .unwrap_or(600),
            _ => 600,
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

/// Read the target (fresh from the API server, never a cache): the
/// object of `kind`, its history when `history` is set, and the HPAs asked
/// for. `None`: no such object in the Incident's namespace.
pub(super) async fn read(
    ctx: &Context,
    ns: &str,
    target: (TargetKind, &str),
    history: bool,
    hpas: Hpas<'_>,
) -> Result<Option<Read>, Error> {
    let (kind, name) = target;
    let what = || format!("{} {ns}/{name}", kind.as_str().to_lowercase());
    let object = match kind {
        TargetKind::Deployment => get::<Deployment>(ctx, ns, name)
            .await
            .map_err(read_err(what()))?
            .map(|o| Object::Deployment(Box::new(o))),
        TargetKind::StatefulSet => get::<StatefulSet>(ctx, ns, name)
            .await
            .map_err(read_err(what()))?
            .map(|o| Object::StatefulSet(Box::new(o))),
        TargetKind::DaemonSet => get::<DaemonSet>(ctx, ns, name)
            .await
            .map_err(read_err(what()))?
            .map(|o| Object::DaemonSet(Box::new(o))),
        TargetKind::CronJob => get::<CronJob>(ctx, ns, name)
            .await
            .map_err(read_err(what()))?
            .map(|o| Object::CronJob(Box::new(o))),
        TargetKind::Pod | TargetKind::Job => None,
    };
    let Some(object) = object else {
        return Ok(None);
    };
    let mut read = Read {
        object,
        replica_sets: Vec::new(),
        revisions: Vec::new(),
        pods: Vec::new(),
        hpas: Vec::new(),
    };
    if history {
        match &read.object {
            Object::Deployment(d) => {
                let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
                read.replica_sets = rs_api
                    .list(&replica_set_list_params(d))
                    .await
                    .map_err(read_err(format!("replicasets of {ns}/{name}")))?
                    .items;
            }
            Object::StatefulSet(s) => {
                let sel = s.spec.as_ref().map(|x| x.selector.clone());
                (read.revisions, read.pods) = set_history(ctx, ns, name, sel).await?;
            }
            Object::DaemonSet(d) => {
                let sel = d.spec.as_ref().map(|x| x.selector.clone());
                (read.revisions, read.pods) = set_history(ctx, ns, name, sel).await?;
            }
            Object::CronJob(_) => {}
        }
    }
    let hpa_api = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns);
    read.hpas = match hpas {
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
    Ok(Some(read))
}

async fn get<K>(ctx: &Context, ns: &str, name: &str) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
}

/// A StatefulSet's or DaemonSet's ControllerRevisions and pods, listed by
/// its selector (as kubectl lists its history); the core keeps those the
/// object controls.
async fn set_history(
    ctx: &Context,
    ns: &str,
    name: &str,
    selector: Option<LabelSelector>,
) -> Result<(Vec<ControllerRevision>, Vec<Pod>), Error> {
    let lp = match selector
        .as_ref()
        .map(|s| selector::label_selector(s, "spec.selector"))
    {
        Some(Ok(sel)) => ListParams::default().labels_from(&sel),
        _ => ListParams::default(),
    };
    let revisions = Api::<ControllerRevision>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await
        .map_err(read_err(format!("controllerrevisions of {ns}/{name}")))?
        .items;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await
        .map_err(read_err(format!("pods of {ns}/{name}")))?
        .items;
    Ok((revisions, pods))
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

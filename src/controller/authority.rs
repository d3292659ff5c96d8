//! The I/O around [`crate::core::authority`]: read the target's labels, its
//! namespace's labels and the candidate Runbooks (the target's namespace and
//! the operator's), then let the pure core name the governing Runbook and
//! the mandate of every step.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::context::Context;
use crate::api::{Incident, Runbook, TargetKind};
use crate::core::authority::{self, Plan};

/// A read the mandate needs failed (the reconcile retries; nothing is
/// refused on a transient error).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} for the Runbook mandate: {source}")]
pub struct MandateError {
    what: String,
    #[source]
    source: kube::Error,
}

/// The governing Runbook of an Incident's target and the mandate of its steps.
#[derive(Debug, Clone, Default)]
pub struct Mandate {
    /// The governing Runbook, whole (its policies: dryRun, paused, limits,
    /// monitoring, escalation, sinks).
    pub runbook: Option<Runbook>,
    /// The Runbook whose non-acting policy (monitoring window, escalation,
    /// sinks) applies: the governing one; for an Incident without a
    /// target (or whose target is gone), the Runbook its
    /// `runbookRef` names in the Incident's own namespace.
    pub policy: Option<Runbook>,
    /// When the target does not exist, the steps as written and
    /// nothing refused (a step's turn fails it as not found).
    pub plan: Plan,
}

/// Resolve the mandate of `inc` (in `ns`): the target's labels and the
/// candidate Runbooks are read together.
pub async fn mandate(ctx: &Context, ns: &str, inc: &Incident) -> Result<Mandate, MandateError> {
    let (meta, candidates) = tokio::join!(target_meta(ctx, ns, inc), candidates(ctx, ns, inc));
    let labels = meta?.map(|m| m.labels.unwrap_or_default());
    decide(ctx, ns, inc, labels, candidates?).await
}

/// The metadata of the Incident's target (its labels decide the mandate;
/// its labels and annotations name its GitOps owner). `None`: no target,
/// or it does not exist.
pub async fn target_meta(
    ctx: &Context,
    ns: &str,
    inc: &Incident,
) -> Result<Option<ObjectMeta>, MandateError> {
    let Some(target) = inc.spec.target.as_ref() else {
        return Ok(None);
    };
    target_labels(ctx, ns, target.kind, &target.name)
        .await
        .map_err(|source| MandateError {
            what: format!(
                "{} {ns}/{}",
                target.kind.as_str().to_lowercase(),
                target.name
            ),
            source,
        })
}

/// The Runbooks that may govern the Incident's target, read fresh: those
/// of its namespace, and the cluster-wide ones of the operator's namespace
/// with the labels of the target's namespace. Nothing for an Incident
/// without a target.
pub struct Candidates {
    runbooks: Vec<Runbook>,
    ns_labels: BTreeMap<String, String>,
}

/// Read the [`Candidates`] (both namespaces' Runbooks at once).
pub async fn candidates(
    ctx: &Context,
    ns: &str,
    inc: &Incident,
) -> Result<Candidates, MandateError> {
    let err = |what: String| move |source| MandateError { what, source };
    if inc.spec.target.is_none() {
        return Ok(Candidates {
            runbooks: Vec::new(),
            ns_labels: BTreeMap::new(),
        });
    }
    let op_ns = ctx.operator_namespace.as_deref().filter(|o| *o != ns);
    let lp = ListParams::default();
    let own_api = Api::<Runbook>::namespaced(ctx.client.clone(), ns);
    let (own, global) = tokio::join!(own_api.list(&lp), async {
        match op_ns {
            Some(op_ns) => Some(
                Api::<Runbook>::namespaced(ctx.client.clone(), op_ns)
                    .list(&lp)
                    .await,
            ),
            None => None,
        }
    });
    let mut runbooks = own.map_err(err(format!("runbooks in {ns}")))?.items;
    let mut ns_labels = BTreeMap::new();
    if let (Some(op_ns), Some(global)) = (op_ns, global) {
        let global: Vec<Runbook> = global
            .map_err(err(format!("runbooks in {op_ns}")))?
            .items
            .into_iter()
            .filter(|rb| rb.spec.namespace_selector.is_some())
            .collect();
        if !global.is_empty() && ctx.read_namespaces {
            ns_labels = namespace_labels(ctx, ns).await?;
        }
        runbooks.extend(global);
    }
    Ok(Candidates {
        runbooks,
        ns_labels,
    })
}

/// The mandate of `inc` (in `ns`) from its target's `labels` (`None`: no
/// target, or it does not exist) and the [`Candidates`], both read in this
/// reconcile.
pub async fn decide(
    ctx: &Context,
    ns: &str,
    inc: &Incident,
    labels: Option<BTreeMap<String, String>>,
    candidates: Candidates,
) -> Result<Mandate, MandateError> {
    let Some(target) = inc.spec.target.as_ref() else {
        // No target: every step is refused by the core.
        return Ok(Mandate {
            policy: own_reference(ctx, ns, inc).await?,
            plan: authority::plan(&inc.spec, ns, None),
            ..Mandate::default()
        });
    };
    let Some(labels) = labels else {
        return Ok(Mandate {
            policy: own_reference(ctx, ns, inc).await?,
            plan: Plan {
                steps: inc.spec.mitigations.clone(),
                ..Plan::default()
            },
            ..Mandate::default()
        });
    };
    let governing = authority::governing(
        &candidates.runbooks,
        ns,
        target.kind,
        &candidates.ns_labels,
        &labels,
        ctx.operator_namespace.as_deref(),
    );
    let plan = authority::plan(&inc.spec, ns, governing);
    let runbook = governing.map(|g| g.runbook.clone());
    Ok(Mandate {
        policy: runbook.clone(),
        runbook,
        plan,
    })
}

/// The metadata of the target (`None`: it does not exist).
async fn target_labels(
    ctx: &Context,
    ns: &str,
    kind: TargetKind,
    name: &str,
) -> Result<Option<ObjectMeta>, kube::Error> {
    match kind {
        TargetKind::Deployment => labels_of::<Deployment>(ctx, ns, name).await,
        TargetKind::StatefulSet => labels_of::<StatefulSet>(ctx, ns, name).await,
        TargetKind::DaemonSet => labels_of::<DaemonSet>(ctx, ns, name).await,
        TargetKind::Job => labels_of::<Job>(ctx, ns, name).await,
        TargetKind::CronJob => labels_of::<CronJob>(ctx, ns, name).await,
        TargetKind::Pod => labels_of::<Pod>(ctx, ns, name).await,
    }
}

async fn labels_of<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<ObjectMeta>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(ctx.client.clone(), ns)
        .get_metadata_opt(name)
        .await?
        .map(|m| m.metadata))
}

/// The Runbook an Incident's `runbookRef` names, if it is in the Incident's
/// own namespace (policy only: it grants nothing).
async fn own_reference(
    ctx: &Context,
    ns: &str,
    inc: &Incident,
) -> Result<Option<Runbook>, MandateError> {
    let Some(r) = inc
        .spec
        .runbook_ref
        .as_ref()
        .filter(|r| r.namespace_or(ns) == ns)
    else {
        return Ok(None);
    };
    Api::<Runbook>::namespaced(ctx.client.clone(), ns)
        .get_opt(&r.name)
        .await
        .map_err(|source| MandateError {
            what: format!("runbook {ns}/{}", r.name),
            source,
        })
}

/// A namespace's labels (a list by name: the operator may list and watch
/// namespaces, not get them).
async fn namespace_labels(
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<String, String>, MandateError> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let list = match api
        .list_metadata(&ListParams::default().fields(&format!("metadata.name={ns}")))
        .await
    {
        Ok(list) => list,
        // Namespaced mode may not read Namespaces: no labels known, so only
        // a cluster-wide Runbook selecting every namespace (`{}`) applies.
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(MandateError {
                what: format!("namespace {ns}"),
                source,
            })
        }
    };
    Ok(list
        .items
        .into_iter()
        .next()
        .map(|n| n.labels().clone())
        .unwrap_or_default())
}

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
use crate::api::{Approval, Incident, MitigationAction, MitigationStep, StepState, TargetKind};
use crate::controller::context::Context;
use crate::core::mitigation::{key, SetWorkload, Target, Workload};
use crate::core::selector;

/// The target object as read.
pub enum Object {
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

impl Object {
    /// The object's metadata.
    pub fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Deployment(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::CronJob(o) => &o.metadata,
        }
    }

    /// The object's labels (what the Runbook mandate selects on).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            Object::Deployment(o) => o.labels(),
            Object::StatefulSet(o) => o.labels(),
            Object::DaemonSet(o) => o.labels(),
            Object::CronJob(o) => o.labels(),
        }
    }
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
    let Some(object) = object(ctx, ns, target).await? else {
        return Ok(None);
    };
    complete(ctx, ns, target.1, object, history, hpas)
        .await
        .map(Some)
}

/// The target object alone, fresh from the API server (`None`: no such
/// object, or a kind the executor does not act on).
pub(super) async fn object(
    ctx: &Context,
    ns: &str,
    target: (TargetKind, &str),
) -> Result<Option<Object>, Error> {
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
    if let Some(Object::Deployment(d)) = &object {
        ctx.selectors.remember(ns, name, replica_set_list_params(d));
    }
    Ok(object)
}

/// The rest of a read of `object`: its history when `history` is set, and
/// the HPAs asked for.
async fn complete(
    ctx: &Context,
    ns: &str,
    name: &str,
    object: Object,
    history: bool,
    hpas: Hpas<'_>,
) -> Result<Read, Error> {
    let mut read = Read {
        object,
        replica_sets: Vec::new(),
        revisions: Vec::new(),
        pods: Vec::new(),
        hpas: Vec::new(),
    };
    if history {
        history_of(ctx, ns, name, &mut read).await?;
    }
    read.hpas = hpas_of(ctx, ns, hpas).await?;
    Ok(read)
}

/// The history of `read.object`: a Deployment's ReplicaSets; a
/// StatefulSet's or DaemonSet's ControllerRevisions and pods.
async fn history_of(ctx: &Context, ns: &str, name: &str, read: &mut Read) -> Result<(), Error> {
    match &read.object {
        Object::Deployment(d) => {
            read.replica_sets = replica_sets(ctx, ns, name, &replica_set_list_params(d)).await?;
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
    Ok(())
}

async fn replica_sets(
    ctx: &Context,
    ns: &str,
    name: &str,
    lp: &ListParams,
) -> Result<Vec<ReplicaSet>, Error> {
    Ok(Api::<ReplicaSet>::namespaced(ctx.client.clone(), ns)
        .list(lp)
        .await
        .map_err(read_err(format!("replicasets of {ns}/{name}")))?
        .items)
}

async fn hpas_of(
    ctx: &Context,
    ns: &str,
    hpas: Hpas<'_>,
) -> Result<Vec<HorizontalPodAutoscaler>, Error> {
    let hpa_api = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), ns);
    Ok(match hpas {
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
    })
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

/// What starting a step reads besides the object: its history (RolloutUndo,
/// DeletePods, a `when.rolloutWithin` guard) and every HPA of the namespace
/// (Scale: which one manages the workload?).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Needs {
    pub(super) history: bool,
    pub(super) hpas: bool,
}

impl Needs {
    pub(super) fn of(step: &MitigationStep) -> Needs {
        Needs {
            history: super::needs_history(step.action)
                || step
                    .when
                    .as_ref()
                    .is_some_and(|w| w.rollout_within.is_some()),
            hpas: step.action == MitigationAction::Scale,
        }
    }

    fn covers(self, other: Needs) -> bool {
        (self.history || !other.history) && (self.hpas || !other.hpas)
    }
}

/// The reads of the top of a reconcile, made fresh and in parallel with
/// the Runbook lists: the target object (which the observation and the
/// mandate use too), and when a step may start in this reconcile, what
/// starting it reads (its history, the HPAs, whether the cached Incident
/// is the stored one). The executor plans from them as from its own fresh
/// reads: they are from this reconcile, and every write is fenced anyway
/// (the intent by the Incident's resourceVersion, the workload write by the
/// generation or resourceVersion the plan was made from).
pub struct Prefetch {
    /// `None`: the target does not exist.
    read: Option<Read>,
    /// Set when the reads for a start were made.
    start: Option<(Needs, bool)>,
}

impl Prefetch {
    /// The target object (`None`: it does not exist).
    pub fn object(&self) -> Option<&Object> {
        self.read.as_ref().map(|r| &r.object)
    }

    /// The reads for starting a step that needs `needs`, if they were made
    /// (the read of the target, `None` when it does not exist; whether the
    /// cached Incident is current). Reads the step does not need are
    /// dropped, so the plan sees exactly what a read of its own would give.
    pub(super) fn take_for_start(&mut self, needs: Needs) -> Option<(Option<Read>, bool)> {
        let (_, current) = self.start.filter(|(made, _)| made.covers(needs))?;
        self.start = None;
        let mut read = self.read.take();
        if let Some(r) = read.as_mut() {
            if !needs.history {
                r.replica_sets.clear();
                r.revisions.clear();
                r.pods.clear();
            }
            if !needs.hpas {
                r.hpas.clear();
            }
        }
        Some((read, current))
    }
}

/// Whether a step may start in this reconcile (judged from the cached
/// Incident, before the lifecycle decides): none is running and one that
/// has not started yet is Automatic or approved. What such steps read.
fn may_start(inc: &Incident) -> Option<Needs> {
    let status = inc.status.as_ref();
    if status.is_some_and(|s| {
        s.resolved_at.is_some() || s.mitigations.iter().any(|m| m.state == StepState::Running)
    }) {
        return None;
    }
    let mut needs: Option<Needs> = None;
    for (i, step) in inc.spec.mitigations.iter().enumerate() {
        let state = status.and_then(|s| s.mitigations.get(i)).map(|m| m.state);
        let waiting = matches!(
            state,
            None | Some(StepState::Pending) | Some(StepState::AwaitingApproval)
        );
        let cleared = step.approval == Approval::Automatic
            || step
                .approved_by
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty());
        if waiting && cleared {
            let n = needs.get_or_insert_with(Needs::default);
            let of = Needs::of(step);
            n.history |= of.history;
            n.hpas |= of.hpas;
        }
    }
    needs
}

/// Whether [`prefetch`] reads the Incident's target: a kind the executor
/// acts on.
pub fn reads_target(inc: &Incident) -> bool {
    inc.spec.target.as_ref().is_some_and(|t| {
        matches!(
            t.kind,
            TargetKind::Deployment
                | TargetKind::StatefulSet
                | TargetKind::DaemonSet
                | TargetKind::CronJob
        )
    })
}

/// The reads of the top of a reconcile (see [`Prefetch`]); `None` when the
/// Incident has no target the executor acts on. All go out together: a
/// Deployment's ReplicaSets are listed with the selector its last read
/// had (a Deployment's selector is immutable), and listed again after the
/// read if the selector turns out to differ.
pub async fn prefetch(ctx: &Context, inc: &Incident) -> Result<Option<Prefetch>, Error> {
    let Some(target) = inc.spec.target.as_ref().filter(|_| reads_target(inc)) else {
        return Ok(None);
    };
    let ns = inc.namespace().unwrap_or_default();
    let ns = ns.as_str();
    let (kind, name) = (target.kind, target.name.as_str());
    let needs = if inc.spec.mitigations.is_empty() {
        None
    } else {
        may_start(inc)
    };
    let remembered = needs
        .filter(|n| n.history && kind == TargetKind::Deployment)
        .and_then(|_| ctx.selectors.recall(ns, name));
    let (object, early_rs, hpas, current) = tokio::join!(
        object(ctx, ns, (kind, name)),
        async {
            match &remembered {
                Some(lp) => Some(replica_sets(ctx, ns, name, lp).await),
                None => None,
            }
        },
        async {
            match needs {
                Some(n) if n.hpas => Some(hpas_of(ctx, ns, Hpas::All).await),
                _ => None,
            }
        },
        async {
            match needs {
                Some(_) => Some(cache_is_current(ctx, inc, ns).await),
                None => None,
            }
        },
    );
    // Only the target's read fails the reconcile (as the observation's
    // and the mandate's reads did). A failed read for a start drops the
    // start's reads: if a step does start, the executor reads for itself
    // and reports its own error.
    let mut start_ok = current.as_ref().is_none_or(Result::is_ok);
    let current = current.and_then(Result::ok);
    let Some(object) = object? else {
        return Ok(Some(Prefetch {
            read: None,
            start: needs.zip(current).filter(|_| start_ok),
        }));
    };
    let hpas = match hpas {
        Some(Ok(h)) => h,
        Some(Err(_)) => {
            start_ok = false;
            Vec::new()
        }
        None => Vec::new(),
    };
    let mut read = Read {
        object,
        replica_sets: Vec::new(),
        revisions: Vec::new(),
        pods: Vec::new(),
        hpas,
    };
    if start_ok && needs.is_some_and(|n| n.history) {
        let same_selector = match (&read.object, &remembered) {
            (Object::Deployment(d), Some(lp)) => {
                replica_set_list_params(d).label_selector == lp.label_selector
            }
            _ => false,
        };
        let history = match early_rs {
            Some(Ok(rs)) if same_selector => {
                read.replica_sets = rs;
                Ok(())
            }
            _ => history_of(ctx, ns, name, &mut read).await,
        };
        start_ok = history.is_ok();
    }
    Ok(Some(Prefetch {
        read: Some(read),
        start: needs.zip(current).filter(|_| start_ok),
    }))
}

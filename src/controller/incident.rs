//! The Incident controller: observes the target, runs the lifecycle core,
//! writes status (server-side apply) and publishes Events on transitions.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::artifacts::report;
use super::authority::Mandate;
use super::context::Context;
use super::evidence::{evidence_reason, write_evidence};
use super::executor::{Object, Prefetch};
use super::postmortem::{postmortem_due, write_postmortem};
use crate::api::{Impact, Incident, IncidentStatus, Runbook, TargetKind};
use crate::core::authority::RunbookId;
use crate::core::health::{
    cronjob_health, daemonset_health, deployment_health, job_health, job_of_cronjob, pod_health,
    statefulset_health,
};
use crate::core::lifecycle::{
    self, EventType, IncidentView, Observation, Policy, TargetHealth, Transition,
};

/// Errors of one reconcile. Each maps to a bounded `reason` label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("incident has no namespace")]
    NoNamespace,
    #[error("failed to read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to write the status of incident {name}: {source}")]
    StatusWrite {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Mandate(#[from] super::authority::MandateError),
    #[error(transparent)]
    TargetRead(#[from] super::executor::Error),
}

impl Error {
    /// The metric label for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NoNamespace => "NoNamespace",
            Error::Read { .. } => "Read",
            Error::StatusWrite { .. } => "StatusWrite",
            Error::Mandate(_) => "Mandate",
            Error::TargetRead(_) => "Read",
        }
    }
}

/// Observe the target of an incident: from the detector's assessment when
/// it watches the workload, else from the workload as read in this
/// reconcile (`read`: the executor's read of its target), else by reading it.
async fn observe(
    ctx: &Context,
    ns: &str,
    inc: &Incident,
    read: Option<&Prefetch>,
) -> Result<Observation, Error> {
    let Some(target) = &inc.spec.target else {
        return Ok(Observation::default());
    };
    let detection = ctx
        .detections
        .as_ref()
        .zip(super::detector::workload_of(inc))
        .and_then(|(d, w)| d.get(&w));
    if let Some(d) = detection {
        let a = &d.assessment;
        let target = if a.healthy {
            TargetHealth::Healthy
        } else if !a.symptoms.is_empty() {
            TargetHealth::Unhealthy(a.summary())
        } else {
            TargetHealth::Unknown
        };
        return Ok(Observation {
            target,
            impact: Some(a.impact.clone()),
            impact_severity: a.impact_severity,
            first_observed_at: a.first_observed_at,
            symptoms: a
                .symptoms
                .iter()
                .map(|s| (s.trigger, s.message.clone()))
                .collect(),
            recurrence: d.recurrence,
        });
    }
    let name = target.name.as_str();
    let missing = || (TargetHealth::Missing, Impact::default());
    let (health, impact) = match (target.kind, read.map(Prefetch::object)) {
        (TargetKind::Deployment, Some(None))
        | (TargetKind::StatefulSet, Some(None))
        | (TargetKind::DaemonSet, Some(None))
        | (TargetKind::CronJob, Some(None)) => missing(),
        (_, Some(Some(Object::Deployment(d)))) => deployment_health(d),
        (_, Some(Some(Object::StatefulSet(s)))) => statefulset_health(s),
        (_, Some(Some(Object::DaemonSet(d)))) => daemonset_health(d),
        _ => observe_read(ctx, ns, target.kind, name).await?,
    };
    Ok(Observation {
        target: health,
        impact: Some(impact),
        ..Default::default()
    })
}

/// Observe a target by reading it.
async fn observe_read(
    ctx: &Context,
    ns: &str,
    kind: TargetKind,
    name: &str,
) -> Result<(TargetHealth, Impact), Error> {
    let client = &ctx.client;
    let missing = || (TargetHealth::Missing, Impact::default());
    Ok(match kind {
        TargetKind::Deployment => get::<Deployment>(client, ns, name)
            .await?
            .map_or_else(missing, |d| deployment_health(&d)),
        TargetKind::Pod => get::<Pod>(client, ns, name)
            .await?
            .map_or_else(missing, |p| pod_health(&p)),
        TargetKind::StatefulSet => get::<StatefulSet>(client, ns, name)
            .await?
            .map_or_else(missing, |s| statefulset_health(&s)),
        TargetKind::DaemonSet => get::<DaemonSet>(client, ns, name)
            .await?
            .map_or_else(missing, |d| daemonset_health(&d)),
        TargetKind::Job => get::<Job>(client, ns, name)
            .await?
            .map_or_else(missing, |j| job_health(&j)),
        TargetKind::CronJob => match get::<CronJob>(client, ns, name).await? {
            Some(c) => {
                let jobs = Api::<Job>::namespaced(client.clone(), ns)
                    .list(&ListParams::default())
                    .await
                    .map_err(|source| Error::Read {
                        what: format!("jobs of cronjob {ns}/{name}"),
                        source,
                    })?;
                let own: Vec<Job> = jobs
                    .items
                    .into_iter()
                    .filter(|j| job_of_cronjob(j, name))
                    .collect();
                cronjob_health(&c, &own)
            }
            None => missing(),
        },
    })
}

/// Read a target object (`None`: it does not exist).
async fn get<K>(client: &Client, ns: &str, name: &str) -> Result<Option<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|source| Error::Read {
            what: format!(
                "{} {ns}/{name}",
                K::kind(&K::DynamicType::default()).to_lowercase()
            ),
            source,
        })
}

/// The policy of an incident: flag targets plus the governing Runbook's
/// overrides, the steps it refuses, and whether approvals are verified.
fn policy(ctx: &Context, mandate: &Mandate) -> Policy {
    let mut policy = Policy {
        targets: ctx.targets.clone(),
        monitoring_window: None,
        escalation: Vec::new(),
        refused: mandate.plan.refused.clone(),
        approvals: ctx.approval_trust(),
    };
    if let Some(runbook) = &mandate.policy {
        policy.monitoring_window = runbook
            .spec
            .monitoring
            .as_ref()
            .and_then(|m| m.window.parse().ok());
        policy.escalation = crate::core::escalation::levels(&runbook.spec.escalation);
    }
    policy
}

/// How soon a reconcile whose status write met a newer Incident (409) runs
/// again, from the fresher copy the watch brings.
const CONFLICT_REQUEUE: Duration = Duration::from_millis(200);

/// One reconcile of one Incident, as long as this instance leads: losing
/// the lease cancels it where it stands (the future is dropped, so nothing
/// after that point is written; a request already sent is fenced by the
/// resourceVersion it carries), and every write checks leadership again
/// just before it goes out.
pub async fn reconcile(inc: Arc<Incident>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.leadership.is_leader() {
        // A follower keeps its cache warm and waits: becoming the leader
        // reconciles every Incident (`reconcile_all_on` in `run`).
        return Ok(Action::await_change());
    }
    let leadership = ctx.leadership.clone();
    let name = inc.name_any();
    tokio::select! {
        biased;
        () = leadership.lost() => {
            info!(incident = %name, "leadership lost: reconcile cancelled before writing anything more");
            Ok(Action::await_change())
        }
        result = reconcile_leading(inc, ctx) => result,
    }
}

/// [`reconcile`] while leading.
async fn reconcile_leading(inc: Arc<Incident>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let ns = inc.namespace().ok_or(Error::NoNamespace)?;
    let name = inc.name_any();
    if inc.metadata.deletion_timestamp.is_some() {
        // Being deleted: only the GitOps pauses its steps hold are let go
        // (its finalizer), nothing else is decided.
        let holds = inc
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == super::executor::PAUSE_FINALIZER));
        if holds {
            match super::executor::release_on_delete(&ctx, &inc).await {
                Ok(true) => {}
                Ok(false) => return Ok(Action::requeue(Duration::from_secs(2))),
                Err(e) => {
                    warn!(incident = %name, error = %e, "giving GitOps owners back before deletion failed; retrying");
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
            }
        }
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    // Every read of this reconcile goes out at once: the target (for the
    // observation, the mandate and the executor, with what starting a step
    // reads when one may start), the candidate Runbooks, and the target's
    // labels when the executor does not read it.
    let (prefetch, candidates, meta) = tokio::join!(
        super::executor::prefetch(&ctx, &inc),
        super::authority::candidates(&ctx, &ns, &inc),
        async {
            if super::executor::reads_target(&inc) {
                Ok(None)
            } else {
                super::authority::target_meta(&ctx, &ns, &inc).await
            }
        },
    );
    let prefetch = prefetch?;
    let (candidates, mut meta) = (candidates?, meta?);
    if let Some(p) = &prefetch {
        meta = p.object().map(|o| o.meta().clone());
    }
    let labels = meta.as_ref().map(|m| m.labels.clone().unwrap_or_default());
    debug!(incident = %name, ms = started.elapsed().as_secs_f64() * 1e3, "read");
    let mut observation = observe(&ctx, &ns, &inc, prefetch.as_ref()).await?;
    // A recurrence recorded on the Incident itself (Alertmanager firing
    // again after the resolution) reopens it like a detector recurrence.
    if let Some(t) = lifecycle::recurred_at(inc.annotations()) {
        observation.recurrence = Some(observation.recurrence.map_or(t, |r| r.max(t)));
    }
    // Power flows only from Runbooks: the governing Runbook's mandate
    // decides which steps may run, with which parameters.
    let mandate = super::authority::decide(&ctx, &ns, &inc, labels, candidates).await?;
    let policy = policy(&ctx, &mandate);
    let mut governed = Incident {
        spec: mandate.plan.effective_spec(&inc.spec),
        ..(*inc).clone()
    };
    if let Some(rb) = &mandate.policy {
        governed.spec.runbook_ref = Some(RunbookId::of(rb).reference());
    }
    let now = (ctx.clock)();
    let mut decision = lifecycle::reconcile(
        IncidentView {
            spec: &governed.spec,
            generation: inc.metadata.generation,
            created_at: inc.metadata.creation_timestamp.as_ref().map(|t| t.0),
            status: inc.status.as_ref(),
        },
        &observation,
        &policy,
        now,
    );
    // The target's GitOps owner, as its labels and annotations name it.
    if let (Some(m), Some(t)) = (meta.as_ref(), inc.spec.target.as_ref()) {
        decision.status.git_ops_owner = crate::core::gitops::discover(
            crate::core::gitops::Workload {
                kind: t.kind,
                namespace: &ns,
                name: &t.name,
                meta: m,
            },
            &ctx.argocd_namespace,
        );
    }
    // Mitigations: run the cleared step, drive a running one, watch for
    // external changes, revert on resolve (see executor/).
    let window = policy.monitoring_window(decision.status.severity.unwrap_or(inc.spec.severity));
    debug!(incident = %name, ms = started.elapsed().as_secs_f64() * 1e3, "lifecycle decided");
    let exec = match super::executor::execute(
        &ctx,
        &governed,
        mandate.runbook.as_ref(),
        &ns,
        &mut decision,
        window,
        prefetch,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            warn!(incident = %name, error = %e, "mitigation executor failed; retrying");
            ctx.metrics.reconcile_error(e.reason());
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
    };
    if exec.stale {
        // The cached Incident is older than the stored one: start over.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }

    let current = inc.status.clone().unwrap_or_default();
    if decision.status != current {
        // Fenced by the version this status was computed from: the cached
        // Incident, or the executor's own status writes in this reconcile.
        let rv = exec
            .resource_version
            .clone()
            .or_else(|| inc.resource_version())
            .unwrap_or_default();
        if !ctx.leadership.is_leader() {
            return Ok(Action::await_change());
        }
        if !write_status(&ctx.client, &ns, &name, &rv, &decision.status).await? {
            // Someone wrote the Incident since it was read (a deposed
            // leader's late write, a person, the detector): nothing was
            // written; decide again from the newer copy.
            debug!(incident = %name, "status write conflicted (409); requeued");
            return Ok(Action::requeue(CONFLICT_REQUEUE));
        }
    }
    // Events and metrics only after the status that records the transition
    // is stored: a crash in between loses an Event, never duplicates one.
    publish_events(&ctx, &inc, &decision.transitions).await;
    notify(
        &ctx,
        &governed,
        mandate.policy.as_ref(),
        &decision.transitions,
    )
    .await;
    // Evidence copies logs and Events into a ConfigMap: only for targets a
    // Runbook governs or the detector itself sees in trouble, never as a
    // deputy for whoever wrote an Incident.
    let evidence_allowed = mandate.runbook.is_some() || detector_sees(&ctx, &inc);
    record_artifacts(
        &ctx,
        &inc,
        &decision.transitions,
        exec.evidence_taken || !evidence_allowed,
    )
    .await;
    observe_detection_time(&ctx, &decision);

    let resolved = decision.status.resolved_at.is_some();
    let requeue = match decision.requeue_after {
        // One second late so the deadline has passed at whole-second precision.
        Some(d) => Some(d + Duration::from_secs(1)),
        None if !resolved && inc.spec.target.is_some() => Some(ctx.resync),
        None => None,
    };
    let requeue = match (requeue, exec.requeue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(match requeue {
        Some(d) => Action::requeue(d.min(ctx.resync)),
        None => Action::await_change(),
    })
}

/// The detector watches the Incident's target and finds it in trouble.
fn detector_sees(ctx: &Context, inc: &Incident) -> bool {
    ctx.detections
        .as_ref()
        .zip(super::detector::workload_of(inc))
        .and_then(|(d, w)| d.get(&w))
        .is_some_and(|d| !d.assessment.symptoms.is_empty() || !d.assessment.healthy)
}

/// The reconciler's status write, fenced by `resource_version` (see
/// [`super::status::apply`]). `Ok(false)`: the Incident changed since
/// (409), nothing was written.
pub async fn write_status(
    client: &Client,
    ns: &str,
    name: &str,
    resource_version: &str,
    status: &IncidentStatus,
) -> Result<bool, Error> {
    super::status::apply(client, ns, name, resource_version, status)
        .await
        .map(|written| written.is_some())
        .map_err(|source| Error::StatusWrite {
            name: format!("{ns}/{name}"),
            source,
        })
}

/// MTTD: recorded once, when `firstObservedAt` first appears next to `openedAt`.
fn observe_detection_time(ctx: &Context, decision: &lifecycle::Decision) {
    let opened = decision
        .transitions
        .iter()
        .any(|t| matches!(t, Transition::Opened { .. }));
    if let (true, Some(first), Some(opened_at), Some(sev)) = (
        opened,
        decision.status.first_observed_at.as_ref(),
        decision.status.opened_at.as_ref(),
        decision.status.severity,
    ) {
        let d = opened_at.0.duration_since(first.0);
        ctx.metrics
            .detected(sev, Duration::try_from(d).unwrap_or(Duration::ZERO));
    }
}

/// Transitions as Events on the Incident (and their metrics).
async fn publish_events(ctx: &Context, inc: &Incident, transitions: &[Transition]) {
    let reference = inc.object_ref(&());
    for t in transitions {
        match t {
            Transition::Opened { severity, source } => ctx.metrics.opened(*severity, *source),
            Transition::Acknowledged {
                after, severity, ..
            } => ctx.metrics.acknowledged(*severity, *after),
            Transition::Resolved {
                after, severity, ..
            } => ctx.metrics.resolved(*severity, *after),
            _ => {}
        }
        let Some((type_, reason, note)) = t.event() else {
            continue;
        };
        info!(incident = %inc.name_any(), namespace = ?inc.namespace(), reason, "{note}");
        let event = Event {
            type_: match type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: reason.to_string(),
            note: Some(note),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(incident = %inc.name_any(), error = %e, "failed to publish event");
        }
    }
}

/// Notifications for the transitions: recorded on the Incident before
/// sending, so a replay, a restart or another replica never sends one twice.
async fn notify(
    ctx: &Context,
    inc: &Incident,
    runbook: Option<&Runbook>,
    transitions: &[Transition],
) {
    if let Some(notifier) = &ctx.notifier {
        notifier
            .notify(
                &ctx.client,
                &ctx.recorder,
                inc,
                runbook,
                transitions,
                (ctx.clock)(),
            )
            .await;
    }
}

/// Evidence (at open, when severity rises) and the post-mortem draft (on
/// Resolved), as the transitions call for. Failures become a Warning Event
/// on the Incident and a log line; they never fail the reconcile. `evidence_taken`: the executor already
/// captured evidence in this reconcile, before it changed the workload;
/// collecting again now would describe the repaired state.
async fn record_artifacts(
    ctx: &Context,
    inc: &Incident,
    transitions: &[Transition],
    evidence_taken: bool,
) {
    let (client, recorder, caps) = (&ctx.client, &ctx.recorder, ctx.evidence.as_ref());
    let reason = caps
        .filter(|_| !evidence_taken)
        .and_then(|_| evidence_reason(inc, transitions));
    let pm = postmortem_due(inc, transitions);
    if reason.is_none() && !pm {
        return;
    }
    let ns = inc.namespace().unwrap_or_default();
    let name = inc.name_any();
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    // The stored status (with this reconcile's transition in it).
    let fresh = match incidents.get(&name).await {
        Ok(i) => i,
        Err(source) => {
            warn!(incident = %name, error = %source, "cannot read incident for artifacts");
            return;
        }
    };
    if let (Some(reason), Some(caps)) = (reason, caps) {
        let result = write_evidence(ctx, &fresh, &reason, caps, (ctx.clock)()).await;
        report(recorder, &fresh, "Evidence", result.map(|w| w.note)).await;
    }
    if pm {
        let result = write_postmortem(&ctx.leadership, client, &fresh).await;
        report(recorder, &fresh, "Postmortem", result).await;
    }
}

fn error_policy(_inc: Arc<Incident>, err: &Error, ctx: Arc<Context>) -> Action {
    warn!(error = %err, "reconcile failed");
    ctx.metrics.reconcile_error(err.reason());
    Action::requeue(Duration::from_secs(5))
}

/// Run the Incident controller on `incidents` (one namespace or all) until
/// `shutdown` resolves. `on_ready` receives the Incident cache once it has
/// synced.
pub async fn run(
    incidents: Api<Incident>,
    deployments: Option<Api<Deployment>>,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    on_ready: impl FnOnce(Store<Incident>) + Send + 'static,
    triggers: Option<tokio::sync::broadcast::Receiver<ObjectRef<Incident>>>,
) {
    let scope = incidents.namespace().map(str::to_string);
    let mut controller = Controller::new(incidents, watcher::Config::default().any_semantic());
    if let Some(rx) = triggers {
        // Requests from the detector, for this controller's namespace.
        let requests = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(r) => return Some((r, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |r: &ObjectRef<Incident>| {
            futures::future::ready(scope.is_none() || r.namespace == scope)
        });
        controller = controller.reconcile_on(requests);
    }
    // A new leader looks at every Incident: as a follower it skipped them.
    controller = controller.reconcile_all_on(ctx.leadership.gains());
    let store = controller.store();
    let mapper_store = store.clone();
    let ready_store = store.clone();
    tokio::spawn(async move {
        // kube-runtime's store readiness is a oneshot that remembers only
        // the last waker (the controller waits on it too), so re-poll it
        // periodically instead of awaiting it once.
        loop {
            match tokio::time::timeout(Duration::from_millis(100), ready_store.wait_until_ready())
                .await
            {
                Ok(Ok(())) => {
                    on_ready(ready_store);
                    break;
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "incident cache never became ready");
                    break;
                }
                Err(_) => continue,
            }
        }
    });
    // Without the detector, Deployment changes wake the Incidents that
    // target them (with it, the detector asks for reconciles itself).
    if let Some(deployments) = deployments {
        controller = controller.watches(
            deployments,
            watcher::Config::default().any_semantic(),
            move |d: Deployment| {
                let ns = d.namespace();
                let name = d.name_any();
                mapper_store
                    .state()
                    .into_iter()
                    .filter(|i| {
                        i.namespace() == ns
                            && i.status.as_ref().is_none_or(|s| s.resolved_at.is_none())
                            && i.spec
                                .target
                                .as_ref()
                                .is_some_and(|t| t.kind == TargetKind::Deployment && t.name == name)
                    })
                    .map(|i| ObjectRef::from_obj(&*i))
                    .collect::<Vec<_>>()
            },
        );
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(incident = %obj.name, "reconciled"),
                Err(e) => debug!(error = %e, "controller error"),
            }
        })
        .await;
}

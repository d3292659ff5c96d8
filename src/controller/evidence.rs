//! Evidence kept with an Incident: the failing pods' logs, their Events
//! and a Deployment's rollout history (pods of StatefulSets, DaemonSets,
//! Jobs and CronJobs in [`kinds`]), gathered within a time budget into
//! `<incident>-evidence` (an owned ConfigMap, see [`super::artifacts`]) at
//! open, when severity rises, and before a mitigation's first workload
//! write. Formatting and caps in [`crate::core::evidence`].

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tracing::info;

use super::artifacts::{report, set_refs, write_configmap, ArtifactError};
use super::context::Context;
use crate::api::{Incident, TargetKind};
use crate::core::evidence::{self, Caps, ContainerLogs, EventLine, Gathered, Revision};
use crate::core::lifecycle::Transition;
use crate::core::selector::{self, SelectorError};

/// The evidence ConfigMap's name.
pub fn evidence_name(incident: &str) -> String {
    format!("{incident}-evidence")
}

/// Whether a mitigation step of this episode has changed the workload (a
/// step that recorded a real intent: started, not a dry run).
fn workload_changed(inc: &Incident) -> bool {
    inc.status.as_ref().is_some_and(|s| {
        s.mitigations.iter().any(|m| {
            m.started_at.is_some()
                && !m.intent.is_empty()
                && !m.intent.contains_key(crate::core::mitigation::key::DRY_RUN)
        })
    })
}

/// Why evidence should be (re)collected now, if at all. A severity rise
/// after a mitigation changed the workload keeps the evidence taken before
/// the change (collecting again would replace the failing pods' logs with
/// those of the repaired ones).
pub fn evidence_reason(inc: &Incident, transitions: &[Transition]) -> Option<String> {
    inc.spec.target.as_ref()?;
    for t in transitions {
        match t {
            Transition::Opened { .. } => return Some("incident opened".into()),
            Transition::Reopened { occurrences } => {
                return Some(format!("incident reopened (occurrence {occurrences})"))
            }
            Transition::SeverityChanged { from, to, .. }
                if to.is_more_severe_than(*from)
                    && !(workload_changed(inc)
                        && inc
                            .status
                            .as_ref()
                            .is_some_and(|s| s.evidence_ref.is_some())) =>
            {
                return Some(format!("severity rose {from} -> {to}"))
            }
            _ => {}
        }
    }
    let status = inc.status.as_ref()?;
    (status.opened_at.is_some() && status.resolved_at.is_none() && status.evidence_ref.is_none())
        .then(|| "incident open without evidence".into())
}

/// Evidence before a mitigation's first workload write, so that it shows
/// the failing state (the crashing pods' logs, their Events, the rollout
/// history with the bad revision), not the repaired one. Bounded: reads
/// take at most `caps.max_wait` (what is not read by then is recorded as
/// missing), writing it at most as long again; then the mitigation goes
/// ahead whatever happened. The outcome is an Event on the Incident
/// (`EvidenceWritten` or `EvidenceFailed`).
pub async fn before_first_write(ctx: &Context, inc: &Incident, step: &str, caps: &Caps) -> Taken {
    let reason = format!("before mitigation {step:?}, the first change to the workload");
    let limit = caps.max_wait.saturating_mul(2);
    let now = (ctx.clock)();
    let result =
        match tokio::time::timeout(limit, write_evidence(ctx, inc, &reason, caps, now)).await {
            Ok(r) => r,
            Err(_) => Err(ArtifactError::TimedOut {
                name: inc.name_any(),
                after: crate::api::format_duration(limit),
            }),
        };
    let taken = Taken {
        written: result.is_ok(),
        resource_version: result
            .as_ref()
            .ok()
            .and_then(|w| w.resource_version.clone()),
    };
    report(&ctx.recorder, inc, "Evidence", result.map(|w| w.note)).await;
    taken
}

/// What [`before_first_write`] did.
#[derive(Debug, Default)]
pub struct Taken {
    /// The evidence ConfigMap was written.
    pub written: bool,
    /// The Incident's resourceVersion after `status.evidenceRef` was set
    /// (None: not set now).
    pub resource_version: Option<String>,
}

/// Evidence written by [`write_evidence`].
#[derive(Debug)]
pub struct Written {
    /// What the `EvidenceWritten` Event says.
    pub note: String,
    /// The Incident's resourceVersion after `status.evidenceRef` was set
    /// (None: it already pointed there).
    pub resource_version: Option<String>,
}

/// Gather and store evidence into `<incident>-evidence` (created, never
/// adopted: see [`super::artifacts::write_configmap`]).
pub async fn write_evidence(
    ctx: &Context,
    inc: &Incident,
    reason: &str,
    caps: &Caps,
    now: Timestamp,
) -> Result<Written, ArtifactError> {
    let client = &ctx.client;
    let gathered = gather(client, inc, reason, caps).await;
    let data = evidence::build(&gathered, caps, now);
    let cm_name = evidence_name(&inc.name_any());
    write_configmap(&ctx.leadership, client, inc, &cm_name, "evidence", &data).await?;
    let mut resource_version = None;
    if inc
        .status
        .as_ref()
        .and_then(|s| s.evidence_ref.as_ref())
        .map(|r| r.name.as_str())
        != Some(cm_name.as_str())
    {
        let refs = json!({"evidenceRef": {"name": cm_name}});
        resource_version = Some(set_refs(&ctx.leadership, client, inc, "evidenceRef", refs).await?);
    }
    info!(incident = %inc.name_any(), configmap = %cm_name, reason, "evidence written");
    let note = format!(
        "evidence ({reason}) written to ConfigMap {cm_name}: {} log excerpts, {} events, {} revisions{}",
        gathered.logs.iter().filter(|l| l.text.is_ok()).count(),
        gathered.events.len(),
        gathered.history.len(),
        if gathered.missing.is_empty() {
            String::new()
        } else {
            format!(", {} missing (see missing.txt)", gathered.missing.len())
        }
    );
    Ok(Written {
        note,
        resource_version,
    })
}

/// What a Deployment's selector lists.
#[derive(Debug)]
enum SelectedBy {
    /// Its whole `spec.selector` (matchLabels and matchExpressions).
    Selector(ListParams),
    /// An empty selector: it would gather every pod of the namespace.
    Everything,
    /// A selector the API server would not have accepted.
    Invalid(SelectorError),
}

fn list_params_of(d: &Deployment) -> SelectedBy {
    match selector::deployment_selector(d) {
        Ok(sel) if sel.selects_all() => SelectedBy::Everything,
        Ok(sel) => SelectedBy::Selector(ListParams::default().labels_from(&sel)),
        Err(e) => SelectedBy::Invalid(e),
    }
}

mod kinds;

#[cfg(test)]
mod selector_tests;

/// A pod is failing when not ready, restarting, or waiting with a reason.
fn failing_score(p: &Pod) -> i32 {
    let Some(st) = &p.status else { return 0 };
    let mut score = 0;
    for c in st.container_statuses.iter().flatten() {
        score += c.restart_count.min(1000);
        if !c.ready {
            score += 1;
        }
        if c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_ref())
            .is_some()
        {
            score += 1;
        }
    }
    if st.phase.as_deref() == Some("Pending") || st.phase.as_deref() == Some("Failed") {
        score += 1;
    }
    score
}

/// The time budget of one collection ([`Caps::max_wait`]): a read that
/// has not finished by the deadline is abandoned and recorded as missing,
/// so collection never holds up what comes after it (a mitigation).
struct Budget {
    deadline: tokio::time::Instant,
    wait: std::time::Duration,
}

impl Budget {
    fn new(caps: &Caps) -> Budget {
        Budget {
            deadline: tokio::time::Instant::now() + caps.max_wait,
            wait: caps.max_wait,
        }
    }

    /// Run one read within the budget. `None`: it failed or ran out of
    /// time, and `what` is recorded as missing with the reason.
    async fn read<T, E: std::fmt::Display>(
        &self,
        missing: &mut Vec<String>,
        what: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Option<T> {
        match tokio::time::timeout_at(self.deadline, fut).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                missing.push(format!("{}: {e}", what()));
                None
            }
            Err(_) => {
                missing.push(format!(
                    "{}: not captured within {}",
                    what(),
                    crate::api::format_duration(self.wait)
                ));
                None
            }
        }
    }
}

async fn gather(client: &Client, inc: &Incident, reason: &str, caps: &Caps) -> Gathered {
    let budget = Budget::new(caps);
    let ns = inc.namespace().unwrap_or_default();
    let mut g = Gathered {
        reason: reason.to_string(),
        ..Default::default()
    };
    let Some(target) = &inc.spec.target else {
        g.target = "no target".into();
        return g;
    };
    g.target = format!("{} {ns}/{}", target.kind.as_str(), target.name);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut objects: Vec<(String, String)> = Vec::new(); // (kind, name) for Events
    let mut pods: Vec<Pod> = Vec::new();
    match target.kind {
        TargetKind::Deployment => {
            objects.push(("Deployment".into(), target.name.clone()));
            let deploy = budget
                .read(
                    &mut g.missing,
                    || format!("deployment {} (pods, logs, rollout history)", target.name),
                    Api::<Deployment>::namespaced(client.clone(), &ns).get_opt(&target.name),
                )
                .await;
            match deploy {
                Some(Some(d)) => match list_params_of(&d) {
                    SelectedBy::Selector(lp) => {
                        // The pods and the rollout history, concurrently.
                        let (mut missing_pods, mut missing_history) = (Vec::new(), Vec::new());
                        let (listed, hist) = futures::join!(
                            budget.read(
                                &mut missing_pods,
                                || format!("pods of deployment {} (and their logs)", target.name),
                                pods_api.list(&lp),
                            ),
                            history(client, &ns, &d, &lp, &budget, &mut missing_history)
                        );
                        g.missing.extend(missing_pods);
                        g.missing.extend(missing_history);
                        if let Some(list) = listed {
                            pods = list.items;
                        }
                        g.history = hist;
                    }
                    SelectedBy::Everything => {}
                    SelectedBy::Invalid(e) => g.problems.push(format!(
                        "deployment {}: {e}; its pods and rollout history are not gathered",
                        target.name
                    )),
                },
                Some(None) => g
                    .problems
                    .push(format!("deployment {} not found", target.name)),
                None => {}
            }
        }
        TargetKind::Pod => match budget
            .read(
                &mut g.missing,
                || format!("pod {} (and its logs)", target.name),
                pods_api.get_opt(&target.name),
            )
            .await
        {
            Some(Some(p)) => pods.push(p),
            Some(None) => g.problems.push(format!("pod {} not found", target.name)),
            None => {}
        },
        kind @ (TargetKind::StatefulSet
        | TargetKind::DaemonSet
        | TargetKind::Job
        | TargetKind::CronJob) => {
            pods = kinds::pods_of(
                client,
                &ns,
                kind,
                &target.name,
                &budget,
                &mut g,
                &mut objects,
            )
            .await;
        }
    }
    let mut failing: Vec<(i32, Pod)> = pods
        .into_iter()
        .map(|p| (failing_score(&p), p))
        .filter(|(s, _)| *s > 0)
        .collect();
    failing.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.name_any().cmp(&b.1.name_any())));
    failing.truncate(caps.pods);
    // Logs and Events are read concurrently (each within the budget), then
    // recorded in a stable order: pods by score, containers in order, objects
    // in order.
    let mut log_reads = Vec::new();
    for (_, pod) in &failing {
        let pod_name = pod.name_any();
        objects.push(("Pod".into(), pod_name.clone()));
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for c in statuses {
            let previous = c.restart_count > 0;
            let params = LogParams {
                container: Some(c.name.clone()),
                previous,
                tail_lines: Some(caps.log_lines),
                limit_bytes: Some((caps.log_bytes as i64) * 2),
                ..Default::default()
            };
            let pods_api = pods_api.clone();
            let pod_name = pod_name.clone();
            let deadline = budget.deadline;
            let wait = budget.wait;
            log_reads.push(async move {
                let text = match tokio::time::timeout_at(
                    deadline,
                    pods_api.logs(&pod_name, &params),
                )
                .await
                {
                    Ok(r) => r.map_err(|e| match e {
                        kube::Error::Api(s) => s.message,
                        other => other.to_string(),
                    }),
                    Err(_) => Err(format!(
                        "not captured within {}",
                        crate::api::format_duration(wait)
                    )),
                };
                (pod_name, c.name, previous, text)
            });
        }
    }
    let events_api: Api<CoreEvent> = Api::namespaced(client.clone(), &ns);
    let event_reads = objects.into_iter().map(|(kind, name)| {
        let events_api = events_api.clone();
        let budget = &budget;
        async move {
            let lp = ListParams::default()
                .fields(&format!(
                    "involvedObject.kind={kind},involvedObject.name={name}"
                ))
                .limit(caps.events as u32 * 2);
            let mut missing = Vec::new();
            let listed = budget
                .read(
                    &mut missing,
                    || format!("events of {kind}/{name}"),
                    events_api.list(&lp),
                )
                .await;
            (kind, name, listed, missing)
        }
    });
    let (logs, events) = futures::join!(
        futures::future::join_all(log_reads),
        futures::future::join_all(event_reads)
    );
    for (pod_name, container, previous, text) in logs {
        if let Err(e) = &text {
            g.missing.push(format!(
                "logs of pod {pod_name} container {container}{}: {e}",
                if previous { " (previous instance)" } else { "" }
            ));
        }
        g.logs.push(ContainerLogs {
            pod: pod_name,
            container,
            previous,
            text,
        });
    }
    for (kind, name, listed, missing) in events {
        g.missing.extend(missing);
        if let Some(list) = listed {
            g.events.extend(list.items.into_iter().map(|e| {
                EventLine {
                    time: e
                        .last_timestamp
                        .as_ref()
                        .or(e.first_timestamp.as_ref())
                        .map(|t| t.0)
                        .or_else(|| e.event_time.as_ref().map(|t| t.0))
                        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0)),
                    type_: e.type_.unwrap_or_default(),
                    reason: e.reason.unwrap_or_default(),
                    object: format!("{kind}/{name}"),
                    message: e.message.unwrap_or_default(),
                    count: e.count.unwrap_or(1),
                }
            }));
        }
    }
    g
}

async fn history(
    client: &Client,
    ns: &str,
    d: &Deployment,
    lp: &ListParams,
    budget: &Budget,
    missing: &mut Vec<String>,
) -> Vec<Revision> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let rs_api = Api::<ReplicaSet>::namespaced(client.clone(), ns);
    let Some(list) = budget
        .read(
            missing,
            || "rollout history (replicasets)".to_string(),
            rs_api.list(lp),
        )
        .await
    else {
        return Vec::new();
    };
    let list = list.items;
    list.into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|rs| {
            let ann = rs.metadata.annotations.clone().unwrap_or_default();
            let revision = ann.get("deployment.kubernetes.io/revision")?.parse().ok()?;
            let images = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default();
            Some(Revision {
                revision,
                images,
                change_cause: ann.get("kubernetes.io/change-cause").cloned(),
                created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                replicas: rs.status.as_ref().map_or(0, |s| s.replicas),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IncidentSource, IncidentStatus, LocalObjectReference, Severity};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn inc(target: bool) -> Incident {
        let mut spec = serde_json::json!({"title": "t", "severity": "SEV3"});
        if target {
            spec["target"] = serde_json::json!({"kind": "Deployment", "name": "checkout"});
        }
        let mut i = Incident::new("checkout-1", serde_json::from_value(spec).unwrap());
        i.metadata.generation = Some(2);
        i
    }

    #[test]
    fn evidence_at_open_on_severity_rise_and_to_catch_up() {
        let opened = [Transition::Opened {
            severity: Severity::SEV3,
            source: IncidentSource::Detector,
        }];
        assert_eq!(
            evidence_reason(&inc(true), &opened).as_deref(),
            Some("incident opened")
        );
        assert_eq!(evidence_reason(&inc(false), &opened), None);
        let rise = [Transition::SeverityChanged {
            from: Severity::SEV3,
            to: Severity::SEV1,
            by_impact: true,
        }];
        assert_eq!(
            evidence_reason(&inc(true), &rise).as_deref(),
            Some("severity rose SEV3 -> SEV1")
        );
        let fall = [Transition::SeverityChanged {
            from: Severity::SEV1,
            to: Severity::SEV3,
            by_impact: false,
        }];
        let mut i = inc(true);
        i.status = Some(IncidentStatus {
            opened_at: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            evidence_ref: Some(LocalObjectReference {
                name: "checkout-1-evidence".into(),
            }),
            ..Default::default()
        });
        assert_eq!(evidence_reason(&i, &fall), None);
        assert_eq!(
            evidence_reason(&i, &rise).as_deref(),
            Some("severity rose SEV3 -> SEV1")
        );
        // After a mitigation changed the workload, the evidence taken before
        // it stays (a dry run changed nothing).
        let mut step: crate::api::MitigationStatus = serde_json::from_value(serde_json::json!({
            "name": "rollback", "state": "Succeeded", "startedAt": "2026-01-01T00:00:00Z",
            "intent": {"action": "RolloutUndo", "dryRun": "true"}
        }))
        .unwrap();
        i.status.as_mut().unwrap().mitigations = vec![step.clone()];
        assert!(
            evidence_reason(&i, &rise).is_some(),
            "a dry run changed nothing"
        );
        step.intent.remove("dryRun");
        i.status.as_mut().unwrap().mitigations = vec![step];
        assert_eq!(evidence_reason(&i, &rise), None);
        let reopened = [Transition::Reopened { occurrences: 2 }];
        assert!(evidence_reason(&i, &reopened).is_some(), "a new episode");
        // Open without evidence (the operator stopped before writing it).
        i.status.as_mut().unwrap().evidence_ref = None;
        assert_eq!(
            evidence_reason(&i, &[]).as_deref(),
            Some("incident open without evidence")
        );
    }
}

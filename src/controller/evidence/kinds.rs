//! Evidence for StatefulSet, DaemonSet, Job and CronJob targets: the pods
//! they run (a StatefulSet's or DaemonSet's by its `spec.selector`, a Job's
//! by the `batch.kubernetes.io/job-name` label, a CronJob's through its
//! newest Jobs) and the objects whose Events are read. Within the same
//! time budget and caps as a Deployment's.

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::{Api, Client, ResourceExt};

use super::Budget;
use crate::api::TargetKind;
use crate::core::evidence::Gathered;
use crate::core::health::controlled_by_cronjob;
use crate::core::selector;

/// The label the Job controller puts on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Jobs of a CronJob whose pods and Events are gathered, newest first.
const CRONJOB_JOBS: usize = 3;

/// The pods of a target of a new kind; the objects whose Events are read
/// go to `objects` as (kind, name).
pub(super) async fn pods_of(
    client: &Client,
    ns: &str,
    kind: TargetKind,
    name: &str,
    budget: &Budget,
    g: &mut Gathered,
    objects: &mut Vec<(String, String)>,
) -> Vec<Pod> {
    objects.push((kind.as_str().to_string(), name.to_string()));
    let selected = match kind {
        TargetKind::StatefulSet => {
            let s = budget
                .read(
                    &mut g.missing,
                    || format!("statefulset {name} (pods, logs)"),
                    Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(name),
                )
                .await;
            match s {
                Some(Some(s)) => Some(s.spec.map(|s| s.selector).unwrap_or_default()),
                Some(None) => {
                    g.problems.push(format!("statefulset {name} not found"));
                    None
                }
                None => None,
            }
        }
        TargetKind::DaemonSet => {
            let d = budget
                .read(
                    &mut g.missing,
                    || format!("daemonset {name} (pods, logs)"),
                    Api::<DaemonSet>::namespaced(client.clone(), ns).get_opt(name),
                )
                .await;
            match d {
                Some(Some(d)) => Some(d.spec.map(|s| s.selector).unwrap_or_default()),
                Some(None) => {
                    g.problems.push(format!("daemonset {name} not found"));
                    None
                }
                None => None,
            }
        }
        TargetKind::Job => {
            return list(
                client,
                ns,
                &format!("{JOB_NAME_LABEL}={name}"),
                &format!("pods of job {name} (and their logs)"),
                budget,
                g,
            )
            .await;
        }
        TargetKind::CronJob => return cronjob_pods(client, ns, name, budget, g, objects).await,
        TargetKind::Deployment | TargetKind::Pod => None,
    };
    let Some(sel) = selected else {
        return Vec::new();
    };
    match by_selector(&sel) {
        Ok(labels) => {
            list(
                client,
                ns,
                &labels,
                &format!(
                    "pods of {} {name} (and their logs)",
                    kind.as_str().to_lowercase()
                ),
                budget,
                g,
            )
            .await
        }
        Err(why) => {
            g.problems.push(format!(
                "{} {name}: {why}; its pods are not gathered",
                kind.as_str().to_lowercase()
            ));
            Vec::new()
        }
    }
}

/// A workload's `spec.selector` as list parameters; an empty one (it would
/// gather every pod of the namespace) or an invalid one is refused.
fn by_selector(sel: &LabelSelector) -> Result<String, String> {
    match selector::label_selector(sel, "spec.selector") {
        Ok(s) if s.selects_all() => Err("spec.selector is empty".into()),
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn list(
    client: &Client,
    ns: &str,
    labels: &str,
    what: &str,
    budget: &Budget,
    g: &mut Gathered,
) -> Vec<Pod> {
    budget
        .read(
            &mut g.missing,
            || what.to_string(),
            Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default().labels(labels)),
        )
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The pods of a CronJob's newest Jobs (and those Jobs' Events).
async fn cronjob_pods(
    client: &Client,
    ns: &str,
    name: &str,
    budget: &Budget,
    g: &mut Gathered,
    objects: &mut Vec<(String, String)>,
) -> Vec<Pod> {
    let cj = budget
        .read(
            &mut g.missing,
            || format!("cronjob {name} (its jobs, their pods and logs)"),
            Api::<CronJob>::namespaced(client.clone(), ns).get_opt(name),
        )
        .await;
    match cj {
        Some(Some(_)) => {}
        Some(None) => {
            g.problems.push(format!("cronjob {name} not found"));
            return Vec::new();
        }
        None => return Vec::new(),
    }
    let Some(jobs) = budget
        .read(
            &mut g.missing,
            || format!("jobs of cronjob {name} (their pods and logs)"),
            // Metadata only: a namespace may hold many Jobs.
            Api::<Job>::namespaced(client.clone(), ns).list_metadata(&ListParams::default()),
        )
        .await
    else {
        return Vec::new();
    };
    let mut own: Vec<PartialObjectMeta<Job>> = jobs
        .items
        .into_iter()
        .filter(|j| controlled_by_cronjob(&j.metadata, name))
        .collect();
    own.sort_by(|a, b| {
        (
            b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            b.name_any(),
        )
            .cmp(&(
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                a.name_any(),
            ))
    });
    own.truncate(CRONJOB_JOBS);
    if own.is_empty() {
        g.problems
            .push(format!("cronjob {name} has no jobs left to gather"));
        return Vec::new();
    }
    let names: Vec<String> = own.iter().map(ResourceExt::name_any).collect();
    objects.extend(names.iter().map(|j| ("Job".to_string(), j.clone())));
    list(
        client,
        ns,
        &format!("{JOB_NAME_LABEL} in ({})", names.join(",")),
        &format!("pods of the jobs of cronjob {name} (and their logs)"),
        budget,
        g,
    )
    .await
}

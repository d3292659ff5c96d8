//! StatefulSets, DaemonSets, Jobs and CronJobs as detection sees them:
//! lean wire types (metadata and the status fields detection reads; the pod
//! template and the rest of the spec are skipped without allocating them,
//! as for [`super::PodLite`]) and the compact views the core judges. A
//! cluster may hold thousands of finished Jobs: a [`JobView`] is a few
//! hundred bytes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::NamespaceResourceScope;
use kube::Resource;
use serde::Deserialize;

use super::key::WorkloadKey;
use super::view::CondView;
use super::wire::{cap, cond, lite_meta, CondLite};

/// `impl kube::Resource` for a lean wire type, so `Api<T>` can watch it.
macro_rules! lite_resource {
    ($t:ty, $kind:literal, $group:literal, $plural:literal) => {
        impl Resource for $t {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct RollingLite {
    partition: Option<i32>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct StrategyLite {
    #[serde(rename = "type")]
    type_: Option<String>,
    rolling_update: Option<RollingLite>,
}

// ---- StatefulSet ----

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpecLite {
    replicas: Option<i32>,
    update_strategy: Option<StrategyLite>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatusLite {
    observed_generation: Option<i64>,
    #[serde(default)]
    replicas: i32,
    ready_replicas: Option<i32>,
    available_replicas: Option<i32>,
    updated_replicas: Option<i32>,
    current_revision: Option<String>,
    update_revision: Option<String>,
}

/// A StatefulSet decoded for detection only.
#[derive(Deserialize, Clone, Debug)]
pub struct StatefulSetLite {
    #[serde(deserialize_with = "lite_meta", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<StatefulSetSpecLite>,
    #[serde(default)]
    pub status: Option<StatefulSetStatusLite>,
}
lite_resource!(StatefulSetLite, "StatefulSet", "apps", "statefulsets");

/// What detection needs of one StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatefulSetView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// `spec.replicas` (default 1).
    pub desired: i32,
    pub replicas: i32,
    pub ready: i32,
    /// `availableReplicas` (ready for `minReadySeconds`).
    pub available: i32,
    pub updated: i32,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    /// `updateStrategy: OnDelete`: pods are updated only when deleted.
    pub on_delete: bool,
    /// `rollingUpdate.partition`: ordinals below it keep the old revision.
    pub partition: i32,
}

impl StatefulSetView {
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey::new(&self.namespace, "StatefulSet", &self.name)
    }
}

impl From<&StatefulSetLite> for StatefulSetView {
    fn from(s: &StatefulSetLite) -> Self {
        let spec = s.spec.clone().unwrap_or_default();
        let st = s.status.clone().unwrap_or_default();
        let strategy = spec.update_strategy.unwrap_or_default();
        let ready = st.ready_replicas.unwrap_or(0);
        StatefulSetView {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            name: s.metadata.name.clone().unwrap_or_default(),
            labels: s.metadata.labels.clone().unwrap_or_default(),
            generation: s.metadata.generation,
            observed_generation: st.observed_generation,
            desired: spec.replicas.unwrap_or(1),
            replicas: st.replicas,
            ready,
            available: st.available_replicas.unwrap_or(ready),
            updated: st.updated_replicas.unwrap_or(0),
            current_revision: st.current_revision,
            update_revision: st.update_revision,
            on_delete: strategy.type_.as_deref() == Some("OnDelete"),
            partition: strategy
                .rolling_update
                .and_then(|r| r.partition)
                .unwrap_or(0)
                .max(0),
        }
    }
}

// ---- DaemonSet ----

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpecLite {
    update_strategy: Option<StrategyLite>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatusLite {
    observed_generation: Option<i64>,
    #[serde(default)]
    desired_number_scheduled: i32,
    #[serde(default)]
    number_ready: i32,
    number_available: Option<i32>,
    number_unavailable: Option<i32>,
    updated_number_scheduled: Option<i32>,
}

/// A DaemonSet decoded for detection only.
#[derive(Deserialize, Clone, Debug)]
pub struct DaemonSetLite {
    #[serde(deserialize_with = "lite_meta", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<DaemonSetSpecLite>,
    #[serde(default)]
    pub status: Option<DaemonSetStatusLite>,
}
lite_resource!(DaemonSetLite, "DaemonSet", "apps", "daemonsets");

/// What detection needs of one DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonSetView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    /// `desiredNumberScheduled`: nodes that should run a pod.
    pub desired: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
    pub updated: i32,
    pub on_delete: bool,
}

impl DaemonSetView {
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey::new(&self.namespace, "DaemonSet", &self.name)
    }
}

impl From<&DaemonSetLite> for DaemonSetView {
    fn from(d: &DaemonSetLite) -> Self {
        let st = d.status.clone().unwrap_or_default();
        let available = st.number_available.unwrap_or(0);
        DaemonSetView {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            labels: d.metadata.labels.clone().unwrap_or_default(),
            generation: d.metadata.generation,
            observed_generation: st.observed_generation,
            desired: st.desired_number_scheduled,
            ready: st.number_ready,
            available,
            unavailable: st
                .number_unavailable
                .unwrap_or((st.desired_number_scheduled - available).max(0)),
            updated: st.updated_number_scheduled.unwrap_or(0),
            on_delete: d
                .spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|s| s.type_.as_deref())
                == Some("OnDelete"),
        }
    }
}

// ---- Job ----

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobSpecLite {
    suspend: Option<bool>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusLite {
    conditions: Option<Vec<CondLite>>,
    #[serde(default)]
    active: i32,
    #[serde(default)]
    succeeded: i32,
    #[serde(default)]
    failed: i32,
    completion_time: Option<Time>,
}

/// A Job decoded for detection only.
#[derive(Deserialize, Clone, Debug)]
pub struct JobLite {
    #[serde(deserialize_with = "lite_meta", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<JobSpecLite>,
    #[serde(default)]
    pub status: Option<JobStatusLite>,
}
lite_resource!(JobLite, "Job", "batch", "jobs");

/// How a Job finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// The Job's name.
    pub job: String,
    pub failed: bool,
    /// When it finished (the condition's transition, or completion time).
    pub at: Option<Timestamp>,
    /// `BackoffLimitExceeded: Job has reached the specified backoff limit`.
    pub detail: String,
}

/// What detection needs of one Job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobView {
    pub namespace: String,
    pub name: String,
    /// Only a Job no CronJob controls is its own workload and keeps its
    /// labels (for Runbook selectors); the ignore label is always kept.
    pub labels: BTreeMap<String, String>,
    /// The CronJob that controls it.
    pub cronjob: Option<String>,
    pub created: Option<Timestamp>,
    pub suspended: bool,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    /// `Complete=True`.
    pub complete: Option<CondView>,
    /// `Failed=True` (reason BackoffLimitExceeded, DeadlineExceeded, ...).
    pub failed_cond: Option<CondView>,
    pub completion_time: Option<Timestamp>,
}

impl JobView {
    pub fn key(&self) -> WorkloadKey {
        match &self.cronjob {
            Some(cj) => WorkloadKey::new(&self.namespace, "CronJob", cj),
            None => WorkloadKey::new(&self.namespace, "Job", &self.name),
        }
    }

    /// How it finished; `None` while it runs (or is suspended).
    pub fn outcome(&self) -> Option<JobOutcome> {
        if let Some(f) = &self.failed_cond {
            let detail = match (&f.reason, &f.message) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => "Failed".into(),
            };
            return Some(JobOutcome {
                job: self.name.clone(),
                failed: true,
                at: f.since.or(self.created),
                detail,
            });
        }
        self.complete.as_ref().map(|c| JobOutcome {
            job: self.name.clone(),
            failed: false,
            at: self.completion_time.or(c.since).or(self.created),
            detail: "Complete".into(),
        })
    }
}

impl From<&JobLite> for JobView {
    fn from(j: &JobLite) -> Self {
        let st = j.status.clone().unwrap_or_default();
        let find = |t: &str| {
            st.conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == t))
                .map(cond)
                .filter(|c| c.status)
        };
        let cronjob = j
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "CronJob")
            .map(|o| o.name.clone());
        let labels = j.metadata.labels.clone().unwrap_or_default();
        let labels = if cronjob.is_some() {
            labels
                .into_iter()
                .filter(|(k, _)| k == crate::api::IGNORE_LABEL)
                .collect()
        } else {
            labels
        };
        JobView {
            namespace: j.metadata.namespace.clone().unwrap_or_default(),
            name: j.metadata.name.clone().unwrap_or_default(),
            labels,
            cronjob,
            created: j.metadata.creation_timestamp.as_ref().map(|t| t.0),
            suspended: j.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false),
            active: st.active,
            succeeded: st.succeeded,
            failed: st.failed,
            complete: find("Complete"),
            failed_cond: find("Failed").map(|mut c| {
                c.message = cap(c.message);
                c
            }),
            completion_time: st.completion_time.map(|t| t.0),
        }
    }
}

// ---- CronJob ----

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpecLite {
    suspend: Option<bool>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatusLite {
    last_schedule_time: Option<Time>,
    last_successful_time: Option<Time>,
}

/// A CronJob decoded for detection only.
#[derive(Deserialize, Clone, Debug)]
pub struct CronJobLite {
    #[serde(deserialize_with = "lite_meta", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CronJobSpecLite>,
    #[serde(default)]
    pub status: Option<CronJobStatusLite>,
}
lite_resource!(CronJobLite, "CronJob", "batch", "cronjobs");

/// What detection needs of one CronJob.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronJobView {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub suspended: bool,
    pub last_schedule: Option<Timestamp>,
    pub last_successful: Option<Timestamp>,
}

impl CronJobView {
    pub fn key(&self) -> WorkloadKey {
        WorkloadKey::new(&self.namespace, "CronJob", &self.name)
    }
}

impl From<&CronJobLite> for CronJobView {
    fn from(c: &CronJobLite) -> Self {
        let st = c.status.clone().unwrap_or_default();
        CronJobView {
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            name: c.metadata.name.clone().unwrap_or_default(),
            labels: c.metadata.labels.clone().unwrap_or_default(),
            suspended: c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false),
            last_schedule: st.last_schedule_time.map(|t| t.0),
            last_successful: st.last_successful_time.map(|t| t.0),
        }
    }
}

/// The newest finished Jobs of a CronJob, newest last, at most
/// [`CronHistory::CAP`]: the CronJob controller keeps only
/// `failedJobsHistoryLimit` (default 1) failed Jobs, so a failure streak
/// must be remembered outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronHistory(Vec<JobOutcome>);

impl CronHistory {
    /// Outcomes remembered per CronJob.
    pub const CAP: usize = 10;

    /// Record a finished Job (once per Job; a later view of the same Job
    /// replaces its entry). Kept ordered by finish time, bounded.
    pub fn record(&mut self, o: JobOutcome) {
        self.0.retain(|x| x.job != o.job);
        let pos = self
            .0
            .iter()
            .position(|x| (x.at, &x.job) > (o.at, &o.job))
            .unwrap_or(self.0.len());
        self.0.insert(pos, o);
        if self.0.len() > Self::CAP {
            self.0.remove(0);
        }
    }

    /// The outcomes, oldest first.
    pub fn outcomes(&self) -> &[JobOutcome] {
        &self.0
    }

    /// The current failure streak: the newest finished Jobs that all
    /// failed, newest first (a success ends it).
    pub fn failure_streak(&self) -> Vec<&JobOutcome> {
        self.0.iter().rev().take_while(|o| o.failed).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

//! Detection: which workloads are in trouble, since when, how badly.
//!
//! Pure functions over [`PodView`] projections and those of the workload's
//! controller ([`Controller`]: a Deployment, StatefulSet, DaemonSet, Job or
//! CronJob; per-kind rules in `detection/kinds.rs`), a
//! resolved [`DetectionPolicy`] (the built-in default or a Runbook's), and
//! the time. `for:` durations are measured from the cluster's own
//! timestamps (condition `lastTransitionTime`, termination times, pod
//! creation), so an operator restart neither delays nor repeats a verdict,
//! and `firstObservedAt` (MTTD) is honest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use jiff::Timestamp;

use super::workload::{
    CronHistory, CronJobView, DaemonSetView, DeploymentView, JobView, PodView, StatefulSetView,
    WorkloadKey,
};
use crate::api::{Impact, MitigationStep, Runbook, Severity, SeverityRule, Trigger, TriggerType};

/// A trigger with every parameter resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTrigger {
    pub type_: TriggerType,
    /// CrashLoopBackOff: restarts before it counts.
    pub min_restarts: i32,
    /// How long the symptom must hold.
    pub for_: Duration,
    /// RestartStorm: restarts within `window`.
    pub restarts: i32,
    pub window: Duration,
    /// Unavailable: ratio of unavailable replicas.
    pub min_unavailable_ratio: f64,
    /// JobFailed on a CronJob: newest finished Jobs that must all have failed.
    pub min_failures: i32,
}

impl ResolvedTrigger {
    /// The built-in defaults of a trigger type.
    pub fn default_for(type_: TriggerType) -> Self {
        let secs = Duration::from_secs;
        let for_ = match type_ {
            TriggerType::ImagePullBackOff => secs(60),
            TriggerType::CreateContainerConfigError => secs(30),
            TriggerType::Unavailable => secs(120),
            TriggerType::Unschedulable | TriggerType::NotReady | TriggerType::RolloutStuck => {
                secs(300)
            }
            // BadRollout: the grace of a new pod that runs but is not Ready
            // (past minReadySeconds); its other failures fire at once.
            TriggerType::BadRollout => secs(60),
            _ => Duration::ZERO,
        };
        // BadRollout: a new pod's container that crashed once and then
        // runs is not a bad rollout; a second crash is.
        let min_restarts = match type_ {
            TriggerType::BadRollout => 2,
            _ => 3,
        };
        // JobFailed: a failure older than the window is history, not an
        // incident (an operator installed today ignores last week's Jobs).
        let window = match type_ {
            TriggerType::JobFailed => secs(24 * 3600),
            _ => secs(600),
        };
        ResolvedTrigger {
            type_,
            min_restarts,
            for_,
            restarts: 5,
            window,
            min_unavailable_ratio: 0.5,
            min_failures: 2,
        }
    }

    /// Resolve a Runbook trigger over the defaults. Invalid values were
    /// reported by the Runbook's validation; here they fall back to defaults.
    pub fn resolve(t: &Trigger) -> Self {
        let mut r = Self::default_for(t.type_);
        if let Some(n) = t.min_restarts {
            r.min_restarts = n;
        }
        if let Some(d) = t.for_.as_ref().and_then(|d| d.parse().ok()) {
            r.for_ = d;
        }
        if let Some(n) = t.restarts {
            r.restarts = n;
        }
        if let Some(d) = t.window.as_ref().and_then(|d| d.parse().ok()) {
            r.window = d;
        }
        if let Some(n) = t.min_failures.filter(|n| *n >= 1) {
            r.min_failures = n;
        }
        if let Some(v) = t
            .min_unavailable_ratio
            .as_ref()
            .and_then(|r| r.value().ok())
        {
            r.min_unavailable_ratio = v;
        }
        r
    }
}

/// The detection policy for a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionPolicy {
    /// The Runbook it comes from (`None`: the built-in default policy).
    pub runbook: Option<crate::core::authority::RunbookId>,
    pub triggers: Vec<ResolvedTrigger>,
    pub default_severity: Severity,
    /// (min unavailable ratio, severity), first match wins.
    pub severity_rules: Vec<(f64, Severity)>,
    pub mitigations: Vec<MitigationStep>,
    pub reopen_window: Duration,
    pub paused: bool,
}

impl Default for DetectionPolicy {
    /// The built-in policy: every trigger with its defaults; SEV1 when every
    /// replica is down, SEV2 from half, else SEV3; no mitigations; 1h reopen.
    fn default() -> Self {
        DetectionPolicy {
            runbook: None,
            triggers: TriggerType::ALL
                .iter()
                .map(|t| ResolvedTrigger::default_for(*t))
                .collect(),
            default_severity: Severity::SEV3,
            severity_rules: vec![(1.0, Severity::SEV1), (0.5, Severity::SEV2)],
            mitigations: Vec::new(),
            reopen_window: Duration::from_secs(3600),
            paused: false,
        }
    }
}

impl DetectionPolicy {
    /// The policy a Runbook defines.
    pub fn from_runbook(rb: &Runbook) -> Self {
        let default = DetectionPolicy::default();
        let spec = &rb.spec;
        let mut triggers: Vec<ResolvedTrigger> = if spec.triggers.is_empty() {
            default.triggers.clone()
        } else {
            spec.triggers
                .iter()
                .filter(|t| t.enabled != Some(false))
                .map(ResolvedTrigger::resolve)
                .collect()
        };
        // A Runbook that may undo a rollout watches rollouts by default
        // (unless it names BadRollout itself, e.g. to turn it off).
        let named = spec
            .triggers
            .iter()
            .any(|t| t.type_ == TriggerType::BadRollout);
        let undoes = spec
            .mitigations
            .iter()
            .any(|m| m.action == crate::api::MitigationAction::RolloutUndo);
        if undoes && !named {
            triggers.push(ResolvedTrigger::default_for(TriggerType::BadRollout));
        }
        let (default_severity, severity_rules) = match &spec.severity {
            Some(p) => (
                p.default,
                p.rules
                    .iter()
                    .filter_map(
                        |SeverityRule {
                             min_unavailable_ratio,
                             severity,
                         }| {
                            min_unavailable_ratio.value().ok().map(|v| (v, *severity))
                        },
                    )
                    .collect(),
            ),
            None => (default.default_severity, default.severity_rules.clone()),
        };
        DetectionPolicy {
            runbook: Some(crate::core::authority::RunbookId::of(rb)),
            triggers,
            default_severity,
            severity_rules,
            mitigations: spec.mitigations.clone(),
            reopen_window: spec
                .reopen_window
                .as_ref()
                .and_then(|d| d.parse().ok())
                .unwrap_or(default.reopen_window),
            paused: spec.paused,
        }
    }

    pub(crate) fn trigger(&self, t: TriggerType) -> Option<&ResolvedTrigger> {
        self.triggers.iter().find(|r| r.type_ == t)
    }

    /// Severity for an unavailable ratio.
    pub fn severity_for(&self, unavailable_ratio: f64) -> Severity {
        self.severity_rules
            .iter()
            .find(|(min, _)| unavailable_ratio >= *min)
            .map_or(self.default_severity, |(_, s)| *s)
    }
}

/// A pod restart recorded for RestartStorm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRecord {
    pub at: Timestamp,
    pub count: i32,
    /// `namespace/name` of the pod that restarted.
    pub pod: String,
}

/// Restart history per workload, kept by the detector between events.
#[derive(Debug, Default, Clone)]
pub struct RestartLedger {
    /// Restarts recorded per workload, oldest first.
    history: HashMap<WorkloadKey, Vec<RestartRecord>>,
    /// pod -> the workload its restarts are recorded under.
    pod_workload: HashMap<String, WorkloadKey>,
}

impl RestartLedger {
    /// Record a pod's restarts: increases of a container's restart count
    /// from `previous` (the last view of the same pod) to `current` count
    /// as restarts at `now`. The first view of a pod records none.
    pub fn observe(
        &mut self,
        workload: &WorkloadKey,
        previous: Option<&PodView>,
        current: &PodView,
        now: Timestamp,
    ) {
        let Some(previous) = previous else {
            return;
        };
        let restarts: i32 = current
            .containers
            .iter()
            .filter_map(|c| {
                let before = previous.containers.iter().find(|p| p.name == c.name)?;
                (c.restart_count > before.restart_count)
                    .then(|| c.restart_count - before.restart_count)
            })
            .sum();
        if restarts > 0 {
            let pod_key = format!("{}/{}", current.namespace, current.name);
            self.history
                .entry(workload.clone())
                .or_default()
                .push(RestartRecord {
                    at: now,
                    count: restarts,
                    pod: pod_key.clone(),
                });
            self.pod_workload.insert(pod_key, workload.clone());
        }
    }

    /// Forget a deleted pod, and its restarts: a storm is measured across
    /// the workload's current pods, so replacing them (a rollback) ends it.
    pub fn forget_pod(&mut self, namespace: &str, name: &str) {
        let pod_key = format!("{namespace}/{name}");
        if let Some(w) = self.pod_workload.remove(&pod_key) {
            if let Some(h) = self.history.get_mut(&w) {
                h.retain(|r| r.pod != pod_key);
                if h.is_empty() {
                    self.history.remove(&w);
                }
            }
        }
    }

    /// Forget every restart of a workload (it is no longer judged: not
    /// covered by any policy, ignored, or gone).
    pub fn forget_workload(&mut self, workload: &WorkloadKey) {
        if self.history.remove(workload).is_some() {
            self.pod_workload.retain(|_, w| w != workload);
        }
    }

    /// Pods with restarts on record (for the memory bound and its tests).
    pub fn pods(&self) -> usize {
        self.pod_workload.len()
    }

    /// Restart records held, across workloads.
    pub fn records(&self) -> usize {
        self.history.values().map(Vec::len).sum()
    }

    /// Restarts of a workload within `window` before `now`, and the time of
    /// the earliest of them (older records are dropped).
    pub fn restarts_within(
        &mut self,
        workload: &WorkloadKey,
        window: Duration,
        now: Timestamp,
    ) -> (i32, Option<Timestamp>) {
        let Some(h) = self.history.get_mut(workload) else {
            return (0, None);
        };
        let cutoff = now.checked_sub(window).unwrap_or(Timestamp::MIN);
        h.retain(|r| r.at > cutoff);
        (h.iter().map(|r| r.count).sum(), h.first().map(|r| r.at))
    }
}

/// One kind of trouble seen on a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symptom {
    pub trigger: TriggerType,
    /// The symptom and its extent, nothing pod-specific (titles, the
    /// Incident's target health): `CrashLoopBackOff (3 of 4 pods)`.
    pub headline: String,
    /// The details (the timeline's `Symptom` entries, after the trigger):
    /// which pods, and what the kubelet or scheduler says, without pod
    /// UIDs: `pods checkout-7f9c-a, checkout-7f9c-b; container app: back-off
    /// 40s restarting failed container=app`.
    pub message: String,
    /// When the trouble became visible on the cluster.
    pub since: Timestamp,
}

/// The verdict on one workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    /// Symptoms whose grace (`for:`) has passed: an Incident is warranted.
    pub symptoms: Vec<Symptom>,
    /// Symptoms still within their grace period, and when they mature.
    pub pending: Vec<(Symptom, Timestamp)>,
    pub impact: Impact,
    pub impact_severity: Option<Severity>,
    /// Earliest `since` of the firing symptoms.
    pub first_observed_at: Option<Timestamp>,
    /// No symptom at all and every desired replica available.
    pub healthy: bool,
}

impl Assessment {
    /// The next time the verdict can change without a new event.
    pub fn wake_at(&self) -> Option<Timestamp> {
        self.pending.iter().map(|(_, t)| *t).min()
    }

    /// A one-line summary: the headlines of the symptoms, e.g.
    /// `CrashLoopBackOff (3 of 3 pods); Unavailable (3 of 3 replicas)`.
    pub fn summary(&self) -> String {
        self.symptoms
            .iter()
            .map(|s| s.headline.clone())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The title of an Incident about `workload`: the workload and the
    /// symptoms, e.g. `web: CrashLoopBackOff (3 of 3 pods)`; nothing
    /// pod-specific, at most [`TITLE_MAX`] characters.
    pub fn title(&self, workload: &str) -> String {
        let full = format!("{workload}: {}", self.summary());
        if full.chars().count() <= TITLE_MAX {
            return full;
        }
        let mut t: String = full.chars().take(TITLE_MAX - 1).collect();
        t.push('…');
        t
    }
}

/// The longest title the detector writes.
pub const TITLE_MAX: usize = 200;

/// A kubelet message without what names one pod: the kubelet's
/// `pod=<name>_<namespace>(<uid>)` token goes.
pub fn without_pod_identity(message: &str) -> String {
    message
        .split(' ')
        .filter(|t| !t.starts_with("pod="))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

/// `pod a`, `pods a, b and c`, `pods a, b, c and 4 more`.
fn pod_list(names: &BTreeSet<String>) -> String {
    const SHOWN: usize = 3;
    let shown: Vec<&str> = names.iter().take(SHOWN).map(String::as_str).collect();
    match names.len() {
        0 => "no pods".into(),
        1 => format!("pod {}", shown[0]),
        n if n <= SHOWN => format!("pods {} and {}", shown[..n - 1].join(", "), shown[n - 1]),
        n => format!("pods {} and {} more", shown.join(", "), n - SHOWN),
    }
}

/// `(1 pod)`, `(3 of 4 pods)`.
fn pod_extent(n: usize, of: usize) -> String {
    if of <= 1 && n <= 1 {
        "(1 pod)".into()
    } else {
        format!("({n} of {} pods)", of.max(n))
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Per-pod symptoms: (trigger, pod name, since, detail).
fn pod_symptoms(
    pod: &PodView,
    policy: &DetectionPolicy,
    now: Timestamp,
) -> Vec<(TriggerType, Timestamp, String)> {
    let mut out = Vec::new();
    if pod.deleting || pod.phase == "Succeeded" {
        return out;
    }
    // When the pod stopped being ready (or was created, if it never was).
    let unready_since = pod
        .ready
        .as_ref()
        .filter(|r| !r.status)
        .and_then(|r| r.since)
        .or(pod.created)
        .unwrap_or(now);
    for c in &pod.containers {
        let waiting = c.waiting.as_ref().map(|(r, _)| r.as_str());
        // `container app`, `init container migrate`, `sidecar proxy`.
        let who = c.role.describe(&c.name);
        let detail = |what: &str| match c
            .waiting
            .as_ref()
            .and_then(|(_, m)| m.as_deref())
            .map(without_pod_identity)
        {
            Some(m) if !m.is_empty() => format!("{who}: {m}"),
            _ => format!("{who}: {what}"),
        };
        if let (Some("CrashLoopBackOff"), Some(t)) =
            (waiting, policy.trigger(TriggerType::CrashLoopBackOff))
        {
            if c.restart_count >= t.min_restarts {
                let since = c
                    .last_termination
                    .as_ref()
                    .and_then(|l| l.finished_at)
                    .map_or(unready_since, |f| f.min(unready_since));
                out.push((
                    TriggerType::CrashLoopBackOff,
                    since,
                    detail("CrashLoopBackOff"),
                ));
            }
        }
        if matches!(waiting, Some("ImagePullBackOff" | "ErrImagePull"))
            && policy.trigger(TriggerType::ImagePullBackOff).is_some()
        {
            out.push((
                TriggerType::ImagePullBackOff,
                unready_since,
                detail("ImagePullBackOff"),
            ));
        }
        if matches!(
            waiting,
            Some("CreateContainerConfigError" | "CreateContainerError")
        ) && policy
            .trigger(TriggerType::CreateContainerConfigError)
            .is_some()
        {
            out.push((
                TriggerType::CreateContainerConfigError,
                unready_since,
                detail("CreateContainerConfigError"),
            ));
        }
        if let Some(t) = policy.trigger(TriggerType::OOMKilled) {
            let oom = [c.terminated.as_ref(), c.last_termination.as_ref()]
                .into_iter()
                .flatten()
                .find(|term| term.reason.as_deref() == Some("OOMKilled"));
            if let Some(term) = oom {
                let at = term.finished_at.unwrap_or(now);
                // A recent OOM kill (within the RestartStorm window).
                if add(at, t.window) > now {
                    out.push((
                        TriggerType::OOMKilled,
                        at,
                        format!("{who}: OOMKilled, exit code {}", term.exit_code),
                    ));
                }
            }
        }
    }
    if let (Some(s), Some(_)) = (&pod.scheduled, policy.trigger(TriggerType::Unschedulable)) {
        if !s.status && s.reason.as_deref() == Some("Unschedulable") {
            let msg = s.message.clone().unwrap_or_default();
            out.push((
                TriggerType::Unschedulable,
                s.since.or(pod.created).unwrap_or(now),
                if msg.is_empty() {
                    "the scheduler finds no node".into()
                } else {
                    format!("the scheduler says: {msg}")
                },
            ));
        }
    }
    if pod.phase == "Running" && policy.trigger(TriggerType::NotReady).is_some() {
        // A pod with a more specific symptom (or a waiting reason that may
        // become one) is not reported as merely NotReady.
        let explained = !out.is_empty()
            || pod.containers.iter().any(|c| {
                c.waiting
                    .as_ref()
                    .is_some_and(|(r, _)| r != PODINITIALIZING)
            });
        if !explained && pod.ready.as_ref().is_some_and(|r| !r.status) {
            out.push((
                TriggerType::NotReady,
                unready_since,
                "Running but not Ready".into(),
            ));
        }
    }
    out
}

/// An app container's waiting reason while init containers run: not trouble.
const PODINITIALIZING: &str = "PodInitializing";

/// The controller of a workload, as detection sees it.
#[derive(Debug, Clone, Copy)]
pub enum Controller<'a> {
    Deployment(&'a DeploymentView),
    StatefulSet(&'a StatefulSetView),
    DaemonSet(&'a DaemonSetView),
    Job(&'a JobView),
    /// A CronJob and the outcomes of its newest finished Jobs.
    CronJob(&'a CronJobView, &'a CronHistory),
}

impl Controller<'_> {
    /// Whether its pods run to completion (a Job's, a CronJob's Jobs'):
    /// a Failed pod is judged through its Job, not as a broken replica.
    fn runs_to_completion(&self) -> bool {
        matches!(self, Controller::Job(_) | Controller::CronJob(..))
    }
}

/// A symptom before its grace is applied: (trigger, since, headline, details).
pub(crate) type Candidate = (TriggerType, Timestamp, String, String);

/// Assess a Deployment (or, with `None`, a bare pod) and its pods.
pub fn assess(
    workload: &WorkloadKey,
    deployment: Option<&DeploymentView>,
    pods: &[&PodView],
    policy: &DetectionPolicy,
    ledger: &mut RestartLedger,
    now: Timestamp,
) -> Assessment {
    assess_workload(
        workload,
        deployment.map(Controller::Deployment),
        pods,
        policy,
        ledger,
        now,
    )
}

/// Assess a workload: its controller (`None`: a bare pod) and its pods.
/// Pods that do not count as replicas (Succeeded, Evicted, being deleted;
/// Failed pods of Jobs) are neither judged nor counted.
pub fn assess_workload(
    workload: &WorkloadKey,
    controller: Option<Controller<'_>>,
    pods: &[&PodView],
    policy: &DetectionPolicy,
    ledger: &mut RestartLedger,
    now: Timestamp,
) -> Assessment {
    assess_with_rollout(workload, controller, pods, policy, ledger, None, now)
}

/// [`assess_workload`], and, for a Deployment whose policy has the
/// BadRollout trigger, its rollout (`rollout`: what the detector knows of
/// it; see `detection/rollout.rs`).
pub fn assess_with_rollout(
    workload: &WorkloadKey,
    controller: Option<Controller<'_>>,
    pods: &[&PodView],
    policy: &DetectionPolicy,
    ledger: &mut RestartLedger,
    rollout: Option<&RolloutFacts<'_>>,
    now: Timestamp,
) -> Assessment {
    let batch = controller.is_some_and(|c| c.runs_to_completion());
    let pods: Vec<&PodView> = pods
        .iter()
        .copied()
        .filter(|p| p.counts() && !(batch && p.phase == "Failed"))
        .collect();
    // Per-trigger aggregation across pods: (pods affected, earliest since, sample detail).
    let mut by_trigger: BTreeMap<TriggerType, (BTreeSet<String>, Timestamp, String)> =
        BTreeMap::new();
    let mut reasons: BTreeSet<String> = BTreeSet::new();
    let mut unhealthy_pods: BTreeSet<&str> = BTreeSet::new();
    for pod in &pods {
        for (t, since, detail) in pod_symptoms(pod, policy, now) {
            let e = by_trigger
                .entry(t)
                .or_insert_with(|| (BTreeSet::new(), since, detail.clone()));
            e.0.insert(pod.name.clone());
            e.1 = e.1.min(since);
            unhealthy_pods.insert(pod.name.as_str());
        }
        for c in &pod.containers {
            if let Some((r, _)) = &c.waiting {
                if r != PODINITIALIZING {
                    reasons.insert(r.clone());
                }
            }
            if let Some(r) = c.last_termination.as_ref().and_then(|t| t.reason.clone()) {
                if r == "OOMKilled" {
                    reasons.insert(r);
                }
            }
        }
    }
    let live_pods = pods.len();

    let mut candidates: Vec<Candidate> = by_trigger
        .into_iter()
        .map(|(t, (names, since, detail))| {
            let headline = format!("{} {}", t.as_str(), pod_extent(names.len(), live_pods));
            (
                t,
                since,
                headline,
                format!("{}; {detail}", pod_list(&names)),
            )
        })
        .collect();

    // RestartStorm across the workload's pods.
    if let Some(t) = policy.trigger(TriggerType::RestartStorm) {
        let (n, first) = ledger.restarts_within(workload, t.window, now);
        if n >= t.restarts {
            let window = crate::api::format_duration(t.window);
            candidates.push((
                TriggerType::RestartStorm,
                first.unwrap_or(now),
                format!("RestartStorm ({n} restarts in {window})"),
                format!(
                    "{n} container restarts within {window} across {}'s current pods (threshold {})",
                    workload.name, t.restarts
                ),
            ));
        }
    }

    // Controller-level triggers and impact.
    let mut impact = Impact {
        reasons: reasons.into_iter().collect(),
        ..Default::default()
    };
    let judged = match controller {
        Some(c) => kinds::judge(
            c,
            &pods,
            policy,
            &mut candidates,
            &mut impact,
            unhealthy_pods.len(),
            now,
        ),
        None => {
            // A bare pod is its own target.
            impact.desired_replicas = Some(1);
            let ready = pods
                .iter()
                .any(|p| p.ready.as_ref().is_some_and(|r| r.status));
            impact.ready_replicas = Some(i32::from(ready));
            impact.unhealthy_pods = Some(i32::from(!ready));
            kinds::Judged {
                ratio: if ready { 0.0 } else { 1.0 },
                fully_available: true,
            }
        }
    };
    let ratio = judged.ratio;

    let mut a = Assessment {
        impact,
        ..Default::default()
    };
    // BadRollout carries its own due time (its `for` is only the grace of
    // a new pod that is not Ready).
    if let (Some(Controller::Deployment(d)), Some(facts), Some(t)) =
        (controller, rollout, policy.trigger(TriggerType::BadRollout))
    {
        match rollout::judge(d, facts, &pods, t, now) {
            Some(rollout::RolloutVerdict::Failing((trigger, since, headline, message))) => {
                a.symptoms.push(Symptom {
                    trigger,
                    headline,
                    message,
                    since,
                })
            }
            Some(rollout::RolloutVerdict::Pending((trigger, since, headline, message), due)) => {
                a.pending.push((
                    Symptom {
                        trigger,
                        headline,
                        message,
                        since,
                    },
                    due,
                ))
            }
            None => {}
        }
    }
    for (trigger, since, headline, message) in candidates {
        let for_ = policy.trigger(trigger).map_or(Duration::ZERO, |t| t.for_);
        let symptom = Symptom {
            trigger,
            headline,
            message,
            since,
        };
        let due = add(since, for_);
        if due <= now {
            a.symptoms.push(symptom);
        } else {
            a.pending.push((symptom, due));
        }
    }
    a.first_observed_at = a.symptoms.iter().map(|s| s.since).min();
    if !a.symptoms.is_empty() {
        a.impact_severity = Some(policy.severity_for(ratio));
        a.impact.severity = a.impact_severity;
    }
    a.healthy =
        a.symptoms.is_empty() && a.pending.is_empty() && judged.fully_available && ratio == 0.0;
    a
}

/// Where a pod belongs: its Deployment (through its ReplicaSet), its
/// CronJob (through its Job), its StatefulSet, DaemonSet or Job, or itself.
/// `owner_of(kind, namespace, name)` gives the controller of a ReplicaSet
/// (its Deployment) or of a Job (its CronJob), when known. A pod whose
/// ReplicaSet's owner is not known yet is attributed to the ReplicaSet (no
/// target kind: not judged) until it is; a pod whose Job is not known yet,
/// to the Job.
pub fn attribute(
    pod: &PodView,
    owner_of: impl Fn(&str, &str, &str) -> Option<String>,
) -> WorkloadKey {
    let ns = pod.namespace.as_str();
    match &pod.owner {
        Some(o) if o.kind == "ReplicaSet" => match owner_of("ReplicaSet", ns, &o.name) {
            Some(deploy) => WorkloadKey::deployment(ns, deploy),
            None => WorkloadKey::new(ns, "ReplicaSet", &o.name),
        },
        Some(o) if o.kind == "Job" => match owner_of("Job", ns, &o.name) {
            Some(cronjob) => WorkloadKey::new(ns, "CronJob", &cronjob),
            None => WorkloadKey::new(ns, "Job", &o.name),
        },
        Some(o) => WorkloadKey::new(ns, &o.kind, &o.name),
        None => WorkloadKey::new(ns, "Pod", &pod.name),
    }
}

mod kinds;
mod rollout;

pub use rollout::{Baseline, RolloutFacts};

#[cfg(test)]
#[path = "detection_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "detection_kinds_tests.rs"]
mod kinds_tests;

#[cfg(test)]
#[path = "detection_rollout_tests.rs"]
mod rollout_tests;

//! BadRollout: a Deployment's rollout that produces failing pods, seen at
//! once. The other triggers wait for restart counts (CrashLoopBackOff's
//! `minRestarts: 3` is about 30 s of the kubelet's back-off) or `for:`
//! windows, because a pod in trouble may recover by itself. During a
//! rollout the detector knows more: the pods of the newest ReplicaSet run
//! the change just made, and the previous revision was healthy, so their
//! failure is evidence against the change itself.
//!
//! It fires when all of these hold:
//! - the Deployment is not paused (a paused rollout is a person's canary);
//! - its rollout is in progress (not every desired replica is updated and
//!   available, or the controller has not observed the spec yet);
//! - it was healthy before the rollout: the detector saw an earlier
//!   revision complete and available (its [`Baseline`]), or, with no such
//!   memory (after an operator restart), its `Available` condition is True
//!   (the old pods still serve);
//! - a pod of the newest ReplicaSet (the Deployment's revision) fails:
//!   a container restarted `minRestarts` times (default 2: a container that
//!   crashes once and then runs is not a bad rollout), an image that cannot
//!   be pulled, a container config error, or a pod Running but not Ready
//!   past `minReadySeconds` + `for` (default 1m, for slow starters).
//!
//! Pure: the detector supplies the baseline and each pod's revision.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::{add, pod_list, without_pod_identity, Candidate, ResolvedTrigger};
use crate::api::TriggerType;
use crate::core::workload::{DeploymentView, PodView};

/// A Deployment's last revision seen complete and available, and the
/// images of its template then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub revision: i64,
    pub images: Vec<(String, String)>,
}

impl Baseline {
    /// The baseline `d` sets: its revision, if its rollout is complete and
    /// every desired replica is available.
    pub fn of(d: &DeploymentView) -> Option<Baseline> {
        let revision = revision_of(d)?;
        (complete(d) && !d.paused).then(|| Baseline {
            revision,
            images: d.images.clone(),
        })
    }
}

/// What BadRollout needs beyond a Deployment's view and its pods.
pub struct RolloutFacts<'a> {
    /// The last revision the detector saw complete (None: not seen, e.g.
    /// after an operator restart).
    pub baseline: Option<&'a Baseline>,
    /// The revision of a pod's ReplicaSet, when known.
    pub pod_revision: &'a dyn Fn(&PodView) -> Option<i64>,
}

/// The verdict on a rollout: a symptom now, or when one will be due.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RolloutVerdict {
    Failing(Candidate),
    /// Not Ready new pods within their grace: the symptom and its due time.
    Pending(Candidate, Timestamp),
}

fn revision_of(d: &DeploymentView) -> Option<i64> {
    d.revision.as_deref().and_then(|r| r.parse().ok())
}

/// Every desired replica updated and available, the spec observed.
fn complete(d: &DeploymentView) -> bool {
    let observed = match (d.observed_generation, d.generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    observed && d.updated >= d.desired && d.available >= d.desired && d.replicas <= d.updated
}

/// Image pull failures: the image the rollout introduced cannot be run.
const PULL: [&str; 4] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Container config failures (a missing ConfigMap/Secret key, a bad command).
const CONFIG: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];

/// How a new pod fails: (since, due, detail). `due` > `now`: not Ready
/// within its grace.
fn failure(
    pod: &PodView,
    t: &ResolvedTrigger,
    min_ready: Duration,
    now: Timestamp,
) -> Option<(Timestamp, Timestamp, String)> {
    if !pod.counts() {
        return None;
    }
    let created = pod.created.unwrap_or(now);
    for c in &pod.containers {
        let who = c.role.describe(&c.name);
        let waiting = c.waiting.as_ref();
        let said = waiting
            .and_then(|(_, m)| m.as_deref())
            .map(without_pod_identity)
            .filter(|m| !m.is_empty());
        if c.restart_count >= t.min_restarts {
            let last = c.last_termination.as_ref().or(c.terminated.as_ref());
            let since = last.and_then(|l| l.finished_at).unwrap_or(now);
            let how = last
                .map(|l| match &l.reason {
                    Some(r) => format!(", last {r} (exit code {})", l.exit_code),
                    None => format!(", last exit code {}", l.exit_code),
                })
                .unwrap_or_default();
            let detail = match said {
                Some(m) => format!("{who}: restarted {} times{how}; {m}", c.restart_count),
                None => format!("{who}: restarted {} times{how}", c.restart_count),
            };
            return Some((since, since, detail));
        }
        if let Some((reason, _)) = waiting {
            if PULL.contains(&reason.as_str()) || CONFIG.contains(&reason.as_str()) {
                let detail = match said {
                    Some(m) => format!("{who}: {reason}: {m}"),
                    None => format!("{who}: {reason}"),
                };
                return Some((created, created, detail));
            }
        }
    }
    // Running, every container running, but not Ready: a grace for slow
    // starters, counted from the pod's creation.
    let unready = pod.phase == "Running"
        && pod.ready.as_ref().is_some_and(|r| !r.status)
        && pod.containers.iter().all(|c| c.waiting.is_none());
    if unready {
        let due = add(add(created, min_ready), t.for_);
        let grace = crate::api::format_duration(t.for_);
        return Some((
            created,
            due,
            format!("Running but not Ready {grace} past minReadySeconds"),
        ));
    }
    None
}

/// `app: shop:1.4 → shop:1.5`; the images of the template when the
/// baseline does not say what ran before.
fn image_change(baseline: Option<&Baseline>, now: &[(String, String)]) -> String {
    let changed: Vec<String> = now
        .iter()
        .filter_map(|(name, image)| {
            let before = baseline?
                .images
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, i)| i)?;
            (before != image).then(|| format!("{name}: {before} → {image}"))
        })
        .collect();
    if !changed.is_empty() {
        return changed.join(", ");
    }
    now.iter()
        .map(|(n, i)| format!("{n}: {i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Judge a Deployment's rollout (see the module's documentation).
pub(crate) fn judge(
    d: &DeploymentView,
    facts: &RolloutFacts<'_>,
    pods: &[&PodView],
    t: &ResolvedTrigger,
    now: Timestamp,
) -> Option<RolloutVerdict> {
    let revision = revision_of(d)?;
    if d.paused || complete(d) {
        return None;
    }
    let healthy_before = match facts.baseline {
        // This revision already completed once: not a new rollout.
        Some(b) if b.revision >= revision => return None,
        Some(_) => true,
        None => d.available_cond.as_ref().is_some_and(|c| c.status),
    };
    if !healthy_before {
        return None;
    }
    let min_ready = Duration::from_secs(u64::try_from(d.min_ready_seconds).unwrap_or(0));
    let new_pods: Vec<&PodView> = pods
        .iter()
        .copied()
        .filter(|p| (facts.pod_revision)(p) == Some(revision))
        .collect();
    let mut failing: BTreeSet<String> = BTreeSet::new();
    let mut since: Option<Timestamp> = None;
    let mut sample: Option<String> = None;
    // The earliest due not-Ready pod: (due, pod, detail, since).
    let mut pending: Option<(Timestamp, String, String, Timestamp)> = None;
    for p in &new_pods {
        let Some((s, due, detail)) = failure(p, t, min_ready, now) else {
            continue;
        };
        if due <= now {
            failing.insert(p.name.clone());
            since = Some(since.map_or(s, |x| x.min(s)));
            sample.get_or_insert(detail);
        } else if pending.as_ref().is_none_or(|(d, ..)| due < *d) {
            pending = Some((due, p.name.clone(), detail, s));
        }
    }
    let cause = d
        .change_cause
        .as_deref()
        .map(|c| format!("; change-cause: {c}"))
        .unwrap_or_default();
    let what = format!(
        "rollout to revision {revision} ({}{cause})",
        image_change(facts.baseline, &d.images)
    );
    if let (Some(since), Some(detail)) = (since, sample) {
        let headline = format!(
            "BadRollout (revision {revision}: {} of {} new pods failing)",
            failing.len(),
            new_pods.len()
        );
        let message = format!("{what}: {}; {detail}", pod_list(&failing));
        return Some(RolloutVerdict::Failing((
            TriggerType::BadRollout,
            since,
            headline,
            message,
        )));
    }
    let (due, pod, detail, since) = pending?;
    let headline = format!("BadRollout (revision {revision}: new pod {pod} not Ready)");
    Some(RolloutVerdict::Pending(
        (
            TriggerType::BadRollout,
            since,
            headline,
            format!("{what}: pod {pod}; {detail}"),
        ),
        due,
    ))
}

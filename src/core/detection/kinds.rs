//! Controller-level detection per workload kind: what each controller's
//! status says about the workload (Unavailable, ProgressDeadlineExceeded,
//! RolloutStuck, JobFailed), its impact, and the unavailable ratio that
//! sets the severity. Pure, like the rest of [`super`].

use jiff::Timestamp;

use super::{add, Candidate, Controller, DetectionPolicy};
use crate::api::{Impact, TriggerType};
use crate::core::workload::{
    CronHistory, CronJobView, DaemonSetView, DeploymentView, JobView, PodView, StatefulSetView,
};

/// What the controller's status says beyond the pods' own symptoms.
pub(crate) struct Judged {
    /// Unavailable share of the desired replicas (the severity's input).
    pub ratio: f64,
    /// Every desired replica updated and available (a Job: not failed; a
    /// CronJob: its newest finished Job did not fail).
    pub fully_available: bool,
}

/// Judge a workload's controller: push its candidates, fill the impact.
pub(crate) fn judge(
    c: Controller<'_>,
    pods: &[&PodView],
    policy: &DetectionPolicy,
    candidates: &mut Vec<Candidate>,
    impact: &mut Impact,
    unhealthy: usize,
    now: Timestamp,
) -> Judged {
    match c {
        Controller::Deployment(d) => deployment(d, policy, candidates, impact, unhealthy, now),
        Controller::StatefulSet(s) => statefulset(s, pods, policy, candidates, impact, unhealthy),
        Controller::DaemonSet(d) => daemonset(d, pods, policy, candidates, impact, unhealthy),
        Controller::Job(j) => job(j, policy, candidates, impact, unhealthy, now),
        Controller::CronJob(cj, h) => cronjob(cj, h, policy, candidates, impact, unhealthy, now),
    }
}

/// When the earliest of the pods that are not Ready stopped being Ready
/// (or was created, if it never was): dates a controller-level symptom
/// when the controller's status carries no time of its own.
fn unready_since(pods: &[&PodView]) -> Option<Timestamp> {
    pods.iter()
        .filter(|p| !p.ready.as_ref().is_some_and(|r| r.status))
        .filter_map(|p| {
            p.ready
                .as_ref()
                .filter(|r| !r.status)
                .and_then(|r| r.since)
                .or(p.created)
        })
        .min()
}

fn ratio_of(unavailable: i32, desired: i32) -> f64 {
    if desired > 0 {
        f64::from(unavailable) / f64::from(desired)
    } else {
        0.0
    }
}

/// Unavailable: at least the trigger's ratio of the desired replicas.
fn unavailable_candidate(
    policy: &DetectionPolicy,
    (unavailable, desired): (i32, i32),
    since: Option<Timestamp>,
    details: String,
    candidates: &mut Vec<Candidate>,
) {
    let Some(t) = policy.trigger(TriggerType::Unavailable) else {
        return;
    };
    let ratio = ratio_of(unavailable, desired);
    if desired > 0 && ratio > 0.0 && ratio >= t.min_unavailable_ratio {
        if let Some(since) = since {
            candidates.push((
                TriggerType::Unavailable,
                since,
                format!("Unavailable ({unavailable} of {desired} replicas)"),
                details,
            ));
        }
    }
}

fn earliest(candidates: &[Candidate]) -> Option<Timestamp> {
    candidates.iter().map(|(_, s, _, _)| *s).min()
}

fn deployment(
    d: &DeploymentView,
    policy: &DetectionPolicy,
    candidates: &mut Vec<Candidate>,
    impact: &mut Impact,
    unhealthy: usize,
    now: Timestamp,
) -> Judged {
    let desired = d.desired.max(0);
    let unavailable = (desired - d.available).max(0);
    impact.desired_replicas = Some(desired);
    impact.ready_replicas = Some(d.ready);
    impact.unhealthy_pods = Some(unavailable.max(unhealthy as i32));
    // Available stays True within maxUnavailable: then the pods' own times.
    let since = d
        .available_cond
        .as_ref()
        .filter(|c| !c.status)
        .and_then(|c| c.since)
        .or_else(|| earliest(candidates))
        .unwrap_or(now);
    unavailable_candidate(
        policy,
        (unavailable, desired),
        Some(since),
        format!(
            "{unavailable}/{desired} replicas of {} unavailable ({} ready, {} up to date)",
            d.name, d.ready, d.updated
        ),
        candidates,
    );
    if let (Some(c), Some(_)) = (
        &d.progressing_cond,
        policy.trigger(TriggerType::ProgressDeadlineExceeded),
    ) {
        if !c.status && c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            candidates.push((
                TriggerType::ProgressDeadlineExceeded,
                c.since.unwrap_or(now),
                "ProgressDeadlineExceeded".to_string(),
                format!(
                    "rollout of {} exceeded its progress deadline{}",
                    d.name,
                    c.message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    Judged {
        ratio: ratio_of(unavailable, desired),
        fully_available: d.available >= d.desired && d.updated >= d.desired,
    }
}

/// Whether the controller has seen its latest spec (a status about an
/// older spec says nothing about the current rollout).
fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    match (generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

fn statefulset(
    s: &StatefulSetView,
    pods: &[&PodView],
    policy: &DetectionPolicy,
    candidates: &mut Vec<Candidate>,
    impact: &mut Impact,
    unhealthy: usize,
) -> Judged {
    let desired = s.desired.max(0);
    let unavailable = (desired - s.available).max(0);
    impact.desired_replicas = Some(desired);
    impact.ready_replicas = Some(s.ready);
    impact.unhealthy_pods = Some(unavailable.max(unhealthy as i32));
    let since = earliest(candidates).or_else(|| unready_since(pods));
    unavailable_candidate(
        policy,
        (unavailable, desired),
        since,
        format!(
            "{unavailable}/{desired} replicas of statefulset {} unavailable ({} ready, {} updated)",
            s.name, s.ready, s.updated
        ),
        candidates,
    );
    // Ordinals below the partition keep the old revision on purpose; an
    // OnDelete StatefulSet updates a pod only when someone deletes it.
    let expected_updated = (desired - s.partition).max(0);
    let revision_pending =
        s.partition == 0 && s.update_revision.is_some() && s.update_revision != s.current_revision;
    let update_pending = !s.on_delete && (revision_pending || s.updated < expected_updated);
    let stuck_since = unready_since(pods);
    if policy.trigger(TriggerType::RolloutStuck).is_some()
        && observed(s.generation, s.observed_generation)
        && update_pending
        && unavailable > 0
    {
        if let Some(since) = stuck_since {
            candidates.push((
                TriggerType::RolloutStuck,
                since,
                format!("RolloutStuck ({} of {desired} replicas updated)", s.updated),
                format!(
                    "update of statefulset {} to revision {} does not finish: {}/{expected_updated} replicas updated, {unavailable} unavailable",
                    s.name,
                    s.update_revision.as_deref().unwrap_or("?"),
                    s.updated
                ),
            ));
        }
    }
    Judged {
        ratio: ratio_of(unavailable, desired),
        fully_available: unavailable == 0 && !update_pending,
    }
}

fn daemonset(
    d: &DaemonSetView,
    pods: &[&PodView],
    policy: &DetectionPolicy,
    candidates: &mut Vec<Candidate>,
    impact: &mut Impact,
    unhealthy: usize,
) -> Judged {
    let desired = d.desired.max(0);
    let unavailable = d.unavailable.max((desired - d.available).max(0));
    impact.desired_replicas = Some(desired);
    impact.ready_replicas = Some(d.ready);
    impact.unhealthy_pods = Some(unavailable.max(unhealthy as i32));
    let since = earliest(candidates).or_else(|| unready_since(pods));
    unavailable_candidate(
        policy,
        (unavailable, desired),
        since,
        format!(
            "{unavailable}/{desired} pods of daemonset {} unavailable ({} ready, {} updated)",
            d.name, d.ready, d.updated
        ),
        candidates,
    );
    let update_pending = !d.on_delete && d.updated < desired;
    if policy.trigger(TriggerType::RolloutStuck).is_some()
        && observed(d.generation, d.observed_generation)
        && (update_pending || unavailable > 0)
    {
        // Dated by the pods that are not Ready: a rolling update that
        // keeps moving replaces them, so the date keeps moving too.
        if let Some(since) = unready_since(pods) {
            candidates.push((
                TriggerType::RolloutStuck,
                since,
                format!("RolloutStuck ({unavailable} of {desired} nodes unavailable)"),
                format!(
                    "daemonset {} does not finish rolling out: {}/{desired} pods updated, {unavailable} unavailable",
                    d.name, d.updated
                ),
            ));
        }
    }
    Judged {
        ratio: ratio_of(unavailable, desired),
        fully_available: unavailable == 0 && !update_pending,
    }
}

fn job(
    j: &JobView,
    policy: &DetectionPolicy,
    candidates: &mut Vec<Candidate>,
    impact: &mut Impact,
    unhealthy: usize,
    now: Timestamp,
) -> Judged {
    impact.desired_replicas = None;
    impact.ready_replicas = Some(j.active);
    impact.unhealthy_pods = Some(unhealthy as i32);
    let outcome = j.outcome();
    let failed = outcome.as_ref().filter(|o| o.failed);
    if let (Some(o), Some(t)) = (failed, policy.trigger(TriggerType::JobFailed)) {
        let at = o.at.unwrap_or(now);
        // A failure older than the window is history.
        if add(at, t.window) > now {
            let reason = j
                .failed_cond
                .as_ref()
                .and_then(|c| c.reason.clone())
                .unwrap_or_else(|| "Failed".into());
            candidates.push((
                TriggerType::JobFailed,
                at,
                format!("JobFailed ({reason})"),
                format!(
                    "job {} failed: {} ({} failed pods, {} succeeded)",
                    j.name, o.detail, j.failed, j.succeeded
                ),
            ));
        }
    }
    // A failed Job has no serving capacity to lose: its severity is the
    // policy's default (SEV3 built in), raised by a Runbook's `severity`.
    let ratio = if failed.is_some() {
        0.0
    } else if j.active > 0 {
        (unhealthy as f64 / f64::from(j.active)).min(1.0)
    } else {
        0.0
    };
    Judged {
        ratio,
        fully_available: failed.is_none(),
    }
}

fn cronjob(
    cj: &CronJobView,
    history: &CronHistory,
    policy: &DetectionPolicy,
    candidates: &mut Vec<Candidate>,
    impact: &mut Impact,
    unhealthy: usize,
    now: Timestamp,
) -> Judged {
    impact.desired_replicas = None;
    impact.unhealthy_pods = Some(unhealthy as i32);
    let streak = history.failure_streak();
    if let Some(t) = policy.trigger(TriggerType::JobFailed) {
        let min = usize::try_from(t.min_failures.max(1)).unwrap_or(1);
        // The streak became one with its `min`-th newest failure.
        let since = streak.len().checked_sub(min).and_then(|i| streak.get(i));
        let newest = streak.first().and_then(|o| o.at).unwrap_or(now);
        if let Some(since) = since.filter(|_| !cj.suspended && add(newest, t.window) > now) {
            let shown: Vec<String> = streak
                .iter()
                .take(3)
                .map(|o| format!("{} ({})", o.job, o.detail))
                .collect();
            let more = streak.len().saturating_sub(shown.len());
            candidates.push((
                TriggerType::JobFailed,
                since.at.unwrap_or(now),
                format!("JobFailed ({} Jobs in a row)", streak.len()),
                format!(
                    "the last {} Jobs of cronjob {} failed: {}{}",
                    streak.len(),
                    cj.name,
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }
    // As for a Job: the policy's default severity, not "every replica down".
    Judged {
        ratio: 0.0,
        fully_available: streak.is_empty(),
    }
}

//! From the index to decisions: assess a workload with the pure detection
//! core, publish the detection, and decide what to write (open an Incident
//! with a deterministic name, reopen a recently resolved one, or nothing).
//! Pure: the watcher ([`super::actor`]) performs the writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::debug;

use super::detections::Detection;
use super::index::{key_of, Index};
use super::workloads::{Judge, OwnedController};
use super::{episode, workload_of, EPISODE_LABEL};
use crate::api::{
    Incident, IncidentSource, IncidentSpec, TargetKind, TargetRef, FINGERPRINT_LABEL,
};
use crate::core::authority::RunbookId;
use crate::core::detection::{self, Assessment, DetectionPolicy};
use crate::core::lifecycle::truncate_to_seconds;
use crate::core::workload::PodView;
use crate::core::workload::WorkloadKey;

/// How long a created Incident the cache does not show yet holds back
/// another create of the same name. Only an optimisation (the API server's
/// `AlreadyExists` makes creation exactly-once): it must not outlive the
/// Incident, or a deleted Incident would never be opened again.
pub const IN_FLIGHT: Duration = Duration::from_secs(10);

/// How soon a workload with symptoms is looked at again even without a
/// change (a symptom older than the RestartStorm window may end by itself;
/// a deleted Incident is opened again).
pub const RECHECK: Duration = Duration::from_secs(30);

/// Incidents this process created that the Incident cache has not shown
/// yet, by fingerprint: (name, when created). An entry goes as soon as the
/// cache shows that name (from then on the cache decides), or after
/// [`IN_FLIGHT`]. So when the Incident is deleted (or its namespace is
/// deleted and re-created), the next detection creates it again.
#[derive(Debug, Default)]
pub struct InFlight(HashMap<String, (String, Timestamp)>);

impl InFlight {
    /// Forget the entry of `fp` once the cache shows it (or it is old).
    pub fn settle<'a>(
        &mut self,
        fp: &str,
        cached: impl IntoIterator<Item = &'a str>,
        now: Timestamp,
    ) {
        let Some((name, at)) = self.0.get(fp) else {
            return;
        };
        let expired = at.checked_add(IN_FLIGHT).is_ok_and(|end| now >= end);
        if expired || cached.into_iter().any(|n| n == name) {
            self.0.remove(fp);
        }
    }

    /// Whether `name` was created moments ago and is not in the cache yet.
    pub fn pending(&self, fp: &str, name: &str) -> bool {
        self.0.get(fp).is_some_and(|(n, _)| n == name)
    }

    pub fn record(&mut self, fp: &str, name: &str, now: Timestamp) {
        self.0.insert(fp.to_string(), (name.to_string(), now));
    }

    /// The create of `name` failed: the next detection may try again.
    pub fn forget(&mut self, fp: &str, name: &str) {
        if self.pending(fp, name) {
            self.0.remove(fp);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the watcher writes for one workload.
#[derive(Debug, Clone)]
pub enum Write {
    Nothing,
    /// Remove `spec.resolution` from this recently resolved Incident.
    Reopen(Arc<Incident>),
    /// Create this Incident (the next episode); `summary` is for the log.
    Create {
        incident: Box<Incident>,
        summary: String,
    },
}

/// The outcome of evaluating one workload.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub write: Write,
    /// Incidents to reconcile again (the detection changed), after the write.
    pub reconcile: Vec<ObjectRef<Incident>>,
}

impl Verdict {
    fn nothing() -> Verdict {
        Verdict {
            write: Write::Nothing,
            reconcile: Vec::new(),
        }
    }
}

impl Index {
    /// Evaluate workload `w` at `now`. `incidents` gives the Incidents of a
    /// namespace (the Incident controller's caches); `leading`: only the
    /// leader writes (a follower keeps its detections warm).
    pub fn evaluate(
        &mut self,
        w: WorkloadKey,
        incidents: impl FnOnce(&str) -> Vec<Arc<Incident>>,
        leading: bool,
        now: Timestamp,
    ) -> Verdict {
        let controller = match self.judge_of(&w) {
            Judge::Controller(c) => Some(c),
            Judge::Pod => None,
            Judge::Waiting => {
                // Gone, or not seen yet: nothing to judge (yet).
                self.ledger.forget_workload(&w);
                self.detections.set(w, None);
                return Verdict::nothing();
            }
            Judge::Never => {
                // Ignored, or not a target kind: nothing kept either.
                self.prune(&w);
                self.detections.set(w, None);
                return Verdict::nothing();
            }
        };
        let runbook = self.runbook_for(&w).cloned();
        let policy = match &runbook {
            Some(rb) => DetectionPolicy::from_runbook(rb),
            None if self.builtin_policy => DetectionPolicy::default(),
            None => {
                // No policy covers it: its pods and restarts are not kept.
                self.prune(&w);
                self.detections.set(w, None);
                return Verdict::nothing();
            }
        };
        let names = self.workload_pods.get(&w).cloned().unwrap_or_default();
        let pods: Vec<&PodView> = names
            .iter()
            .filter_map(|n| {
                self.pods
                    .get(&(w.namespace.clone(), n.clone()))
                    .map(|(v, _)| v)
            })
            .collect();
        // BadRollout: what the detector knows of a Deployment's rollout.
        // (Only looked up where the policy has the trigger.)
        let watches_rollouts = w.kind == "Deployment"
            && policy
                .triggers
                .iter()
                .any(|t| t.type_ == crate::api::TriggerType::BadRollout);
        let baseline = watches_rollouts
            .then(|| self.baselines.get(&(w.namespace.clone(), w.name.clone())))
            .flatten();
        let revisions = &self.rs_revision;
        let pod_revision = |p: &PodView| super::index::pod_revision(revisions, p);
        let facts = detection::RolloutFacts {
            baseline,
            pod_revision: &pod_revision,
        };
        let assessment = detection::assess_with_rollout(
            &w,
            controller.as_deref().map(OwnedController::as_controller),
            &pods,
            &policy,
            &mut self.ledger,
            watches_rollouts.then_some(&facts),
            now,
        );
        if let Some(at) = assessment.wake_at() {
            self.timers.insert((at, w.clone()));
        }
        if !assessment.symptoms.is_empty() {
            self.timers
                .insert((now.checked_add(RECHECK).unwrap_or(now), w.clone()));
        }

        // A quiet workload whose detection did not change (most of a
        // busy cluster's pod events) needs no Incident: nothing to write,
        // nobody to tell. Skip the Incident caches and the fingerprint.
        let quiet = assessment.symptoms.is_empty()
            && self
                .detections
                .get(&w)
                .is_some_and(|d| d.recurrence.is_none() && d.assessment == assessment);
        if quiet {
            return Verdict::nothing();
        }
        let fp = w.fingerprint();
        let in_namespace = incidents(&w.namespace);
        // Every Incident about this workload (hand-declared ones too) is
        // told when the detection changes.
        let concerned: Vec<Arc<Incident>> = in_namespace
            .iter()
            .filter(|i| workload_of(i).as_ref() == Some(&w))
            .cloned()
            .collect();
        // The detector's own episodes, by fingerprint.
        let mut episodes: Vec<Arc<Incident>> = in_namespace
            .into_iter()
            .filter(|i| i.labels().get(FINGERPRINT_LABEL).map(String::as_str) == Some(fp.as_str()))
            .collect();
        episodes.sort_by_key(|i| episode(i));
        self.created.settle(
            &fp,
            episodes.iter().filter_map(|i| i.metadata.name.as_deref()),
            now,
        );
        let open = episodes.iter().find(|i| is_open(i)).cloned();
        let latest = episodes.last().cloned();
        // Decide first, publish the detection, then act: the Incident's
        // first reconcile must already see what the detector saw.
        let mut write = Write::Nothing;
        let mut recurrence = None;
        if !assessment.symptoms.is_empty() {
            if let Some(rb) = &runbook {
                self.last_triggered.insert(key_of(rb), now);
                self.runbooks_dirty = true;
            }
            write = match (&open, &latest) {
                (Some(_), _) => Write::Nothing,
                (None, Some(last)) if within_reopen(last, policy.reopen_window, now) => {
                    recurrence = Some(truncate_to_seconds(now));
                    Write::Reopen(last.clone())
                }
                _ if policy.paused => {
                    debug!(workload = ?w, "runbook paused: no new incident");
                    Write::Nothing
                }
                _ => {
                    let n = latest.as_ref().map_or(0, |l| episode(l)) + 1;
                    let incident = new_incident(&w, n, &assessment, &policy);
                    let name = incident.name_any();
                    if self.created.pending(&fp, &name) {
                        Write::Nothing
                    } else {
                        Write::Create {
                            incident: Box::new(incident),
                            summary: assessment.summary(),
                        }
                    }
                }
            };
        }
        let detection = Detection {
            assessment,
            recurrence: recurrence.or_else(|| {
                self.detections
                    .get(&w)
                    .and_then(|d| d.recurrence)
                    .filter(|_| open.is_none())
            }),
        };
        let changed = self.detections.set(w, Some(detection));
        if !leading {
            // Followers keep detections warm but never write.
            write = Write::Nothing;
        }
        let reconcile = if changed {
            concerned
                .iter()
                .filter(|i| is_open(i))
                .chain(latest.iter())
                .map(|i| ObjectRef::from_obj(&**i))
                .collect()
        } else {
            Vec::new()
        };
        Verdict { write, reconcile }
    }

    /// The watcher created `name` for workload `w`: hold back another
    /// create of it until the cache shows it (see [`InFlight`]).
    pub fn record_created(&mut self, w: &WorkloadKey, name: &str, now: Timestamp) {
        self.created.record(&w.fingerprint(), name, now);
    }

    /// The create of `name` for `w` failed: do not hold back the next one.
    pub fn forget_created(&mut self, w: &WorkloadKey, name: &str) {
        self.created.forget(&w.fingerprint(), name);
    }
}

/// An unresolved Incident that is not being deleted (one that waits on
/// its GitOps pause finalizer is no longer the open episode).
fn is_open(inc: &Incident) -> bool {
    inc.metadata.deletion_timestamp.is_none()
        && inc.status.as_ref().is_none_or(|s| s.resolved_at.is_none())
}

fn within_reopen(inc: &Incident, window: Duration, now: Timestamp) -> bool {
    inc.status
        .as_ref()
        .and_then(|s| s.resolved_at.as_ref())
        .and_then(|r| r.0.checked_add(window).ok())
        .is_some_and(|end| now < end)
}

/// Episode `n` of the Incident about workload `w`: deterministic name,
/// fingerprint and episode labels, the policy's Runbook and mitigations.
pub fn new_incident(w: &WorkloadKey, n: u32, a: &Assessment, policy: &DetectionPolicy) -> Incident {
    let severity = a.impact_severity.unwrap_or(policy.default_severity);
    // Only workloads of a target kind are evaluated.
    let kind = TargetKind::parse(&w.kind).unwrap_or(TargetKind::Deployment);
    let mut inc = Incident::new(
        &w.incident_name(n),
        IncidentSpec {
            title: a.title(&w.name),
            severity,
            source: IncidentSource::Detector,
            target: Some(TargetRef {
                kind,
                name: w.name.clone(),
            }),
            runbook_ref: policy.runbook.as_ref().map(RunbookId::reference),
            commander: None,
            acknowledged_by: None,
            root_cause: None,
            mitigations: policy.mitigations.clone(),
            resolution: None,
            resume_git_ops: None,
        },
    );
    inc.metadata.namespace = Some(w.namespace.clone());
    inc.metadata.labels = Some(BTreeMap::from([
        (FINGERPRINT_LABEL.to_string(), w.fingerprint()),
        (EPISODE_LABEL.to_string(), n.to_string()),
    ]));
    inc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + s).unwrap()
    }

    #[test]
    fn a_created_incident_is_forgotten_once_the_cache_shows_it() {
        let mut f = InFlight::default();
        f.record("fp", "web-1234abcd-1", at(0));
        // Not in the cache yet: no second create.
        f.settle("fp", [], at(1));
        assert!(f.pending("fp", "web-1234abcd-1"));
        // The cache shows it: from now on the cache decides.
        f.settle("fp", ["web-1234abcd-1"], at(2));
        assert!(!f.pending("fp", "web-1234abcd-1"));
        // Deleted (the cache no longer has it): the same name is created again.
        f.settle("fp", [], at(3));
        assert!(!f.pending("fp", "web-1234abcd-1"));
    }

    #[test]
    fn an_incident_deleted_before_the_cache_saw_it_is_not_blocked_forever() {
        let mut f = InFlight::default();
        f.record("fp", "web-1234abcd-1", at(0));
        f.record("other", "api-99999999-1", at(0));
        f.settle("fp", [], at(9));
        assert!(f.pending("fp", "web-1234abcd-1"));
        f.settle("fp", [], at(10));
        assert!(!f.pending("fp", "web-1234abcd-1"));
        // Entries are per workload.
        assert!(f.pending("other", "api-99999999-1"));
        assert!(!f.pending("other", "api-99999999-2"));
    }

    #[test]
    fn a_failed_create_is_not_held_back() {
        let mut f = InFlight::default();
        f.record("fp", "web-1234abcd-1", at(0));
        // Another name of the workload: the entry stays.
        f.forget("fp", "web-1234abcd-2");
        assert!(f.pending("fp", "web-1234abcd-1"));
        f.forget("fp", "web-1234abcd-1");
        assert!(!f.pending("fp", "web-1234abcd-1"));
        assert!(f.is_empty());
    }

    fn bare_pod(ready: bool) -> crate::core::workload::PodLite {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "solo", "namespace": "shop", "creationTimestamp": "2026-09-21T00:00:00Z"},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": "2026-09-21T00:00:00Z"}],
                "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 4,
                    "state": if ready { serde_json::json!({"running": {}}) } else {
                        serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}}) }}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_quiet_unchanged_workload_skips_the_incident_caches() {
        let detections = Arc::new(super::super::Detections::default());
        let mut index = Index::new(None, true, detections.clone());
        let w = WorkloadKey::new("shop", "Pod", "solo");
        let lookups = std::cell::Cell::new(0);
        let lookup = |_: &str| {
            lookups.set(lookups.get() + 1);
            Vec::new()
        };
        index.apply_pod(&bare_pod(true), at(0));
        // First look: the detection is new, so the caches are read.
        index.evaluate(w.clone(), lookup, true, at(1));
        assert_eq!(lookups.get(), 1);
        assert!(detections.get(&w).is_some());
        // Nothing changed and nothing is wrong: no lookup, no write.
        let v = index.evaluate(w.clone(), lookup, true, at(2));
        assert_eq!(lookups.get(), 1);
        assert!(matches!(v.write, Write::Nothing) && v.reconcile.is_empty());
        // Trouble: the caches are read and an Incident is created.
        index.apply_pod(&bare_pod(false), at(3));
        let v = index.evaluate(w.clone(), lookup, true, at(4));
        assert_eq!(lookups.get(), 2);
        assert!(matches!(v.write, Write::Create { .. }), "{v:?}");
    }
}

//! The write path: a workload write fenced by its precondition (`send`),
//! the intent recorded in the Incident status before it, the evidence taken
//! before the first write, and what the step makes of the write's result.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use tracing::{debug, warn};

use super::error::Error;
use super::{Run, RETRY_INTERVAL, VERIFY_INTERVAL};
use crate::api::{Incident, IncidentStatus, MitigationStep, FIELD_MANAGER};
use crate::controller::artifacts::ArtifactError;
use crate::controller::context::Context;
use crate::core::evidence::Caps;
use crate::core::lifecycle::StepOutcome;
use crate::core::mitigation::{self, PodDelete, Write, WriteTarget};

/// The result of a workload write.
pub(super) enum Written {
    Ok,
    /// 409: the object changed since it was read; plan again.
    Conflict,
    /// 5xx, 429 or a transport error: retry the same.
    Transient(String),
    /// 422: a generation precondition failed, or the change is invalid.
    Unprocessable(String),
    /// The server refused it (4xx): the step fails with this reason.
    Rejected(String),
}

pub(super) async fn send(ctx: &Context, ns: &str, write: &Write) -> Written {
    if !ctx.leadership.is_leader() {
        // Deposed since the plan was made: write nothing. Like a conflict,
        // the step is looked at again, by whoever leads then.
        return Written::Conflict;
    }
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    if let WriteTarget::Pods(pods) = &write.target {
        return delete_pods(ctx, ns, pods).await;
    }
    let patch: Result<json_patch::Patch, _> = serde_json::from_value(write.patch.clone());
    let patch = match patch {
        Ok(p) => p,
        Err(e) => return Written::Rejected(format!("cannot encode the patch: {e}")),
    };
    let patch = Patch::<()>::Json(patch);
    let res = match &write.target {
        WriteTarget::Deployment(name) => json_patch::<Deployment>(ctx, ns, name, &pp, &patch).await,
        WriteTarget::Hpa(name) => {
            json_patch::<HorizontalPodAutoscaler>(ctx, ns, name, &pp, &patch).await
        }
        WriteTarget::StatefulSet(name) => {
            json_patch::<StatefulSet>(ctx, ns, name, &pp, &patch).await
        }
        WriteTarget::DaemonSet(name) => json_patch::<DaemonSet>(ctx, ns, name, &pp, &patch).await,
        WriteTarget::CronJob(name) => json_patch::<CronJob>(ctx, ns, name, &pp, &patch).await,
        WriteTarget::Pods(_) => Ok(()),
    };
    written(res)
}

/// What a write's result means for the step.
fn written(res: Result<(), kube::Error>) -> Written {
    match res {
        Ok(()) => Written::Ok,
        Err(kube::Error::Api(s)) if s.code == 409 => Written::Conflict,
        Err(kube::Error::Api(s)) if s.code == 422 => Written::Unprocessable(format!(
            "the API server refused the change: {} ({} {})",
            s.message, s.code, s.reason
        )),
        Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {
            Written::Transient(format!("{} ({})", s.message, s.code))
        }
        Err(kube::Error::Api(s)) => Written::Rejected(format!(
            "the API server refused the change: {} ({} {})",
            s.message, s.code, s.reason
        )),
        Err(e) => Written::Transient(e.to_string()),
    }
}

async fn json_patch<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    pp: &PatchParams,
    patch: &Patch<()>,
) -> Result<(), kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(ctx.client.clone(), ns)
        .patch(name, pp, patch)
        .await
        .map(|_| ())
}

/// The deletes of a DeletePods step, each with the recorded uid and the
/// resourceVersion read just before as preconditions. A pod already gone
/// (404) is done; a precondition that failed (409: the pod was replaced or
/// changed) makes the step look again (a replacement has another uid and is
/// never deleted).
async fn delete_pods(ctx: &Context, ns: &str, pods: &[PodDelete]) -> Written {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut conflict = false;
    for p in pods {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(p.uid.clone()),
                resource_version: Some(p.resource_version.clone()),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&p.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!(pod = %p.name, "delete precondition failed: {}", s.message);
                conflict = true;
            }
            Err(e) => return written(Err(e)),
        }
    }
    if conflict {
        Written::Conflict
    } else {
        Written::Ok
    }
}

/// Server-side apply of the status carrying the cached Incident's
/// resourceVersion (kube-apiserver enforces it as a precondition).
/// `Ok(None)`: the cache was stale (or this instance no longer leads);
/// else the Incident's new resourceVersion.
pub(super) async fn record_intent(
    ctx: &Context,
    inc: &Incident,
    ns: &str,
    status: &IncidentStatus,
    step: &str,
) -> Result<Option<String>, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(None);
    }
    crate::controller::status::apply_if_unchanged(&ctx.client, inc, status)
        .await
        .map_err(|source| Error::RecordIntent {
            incident: format!("{ns}/{}", inc.name_any()),
            step: step.to_string(),
            source,
        })
}

/// Evidence taken before a workload write: the Incident's resourceVersion
/// after `status.evidenceRef` was set (None: not set now), and what its
/// Event says, published after the workload write (it is not part of the
/// evidence, and the write need not wait for it).
pub(super) struct Evidence {
    pub(super) resource_version: Option<String>,
    report: Result<String, ArtifactError>,
}

/// Gather and store evidence before a mitigation's first workload write
/// (see [`crate::controller::evidence::before_first_write`], whose bound
/// this keeps: reads take at most `caps.max_wait`, writing it as long
/// again, then the write goes ahead).
pub(super) async fn take_evidence(
    ctx: &Context,
    inc: &Incident,
    step: &str,
    caps: &Caps,
) -> Evidence {
    let reason = format!("before mitigation {step:?}, the first change to the workload");
    let limit = caps.max_wait.saturating_mul(2);
    let now = (ctx.clock)();
    let result = match tokio::time::timeout(
        limit,
        crate::controller::evidence::write_evidence(ctx, inc, &reason, caps, now),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ArtifactError::TimedOut {
            name: inc.name_any(),
            after: crate::api::format_duration(limit),
        }),
    };
    match result {
        Ok(w) => Evidence {
            resource_version: w.resource_version,
            report: Ok(w.note),
        },
        Err(e) => Evidence {
            resource_version: None,
            report: Err(e),
        },
    }
}

impl Run<'_> {
    /// Whether the next workload write must first take evidence: the
    /// Incident has none (collected at open, before anything was changed)
    /// and none was taken in this reconcile.
    pub(super) fn evidence_due(&self) -> Option<&Caps> {
        self.ctx
            .evidence
            .as_ref()
            .filter(|_| !self.out.evidence_taken && self.decision.status.evidence_ref.is_none())
    }

    /// Evidence taken (or given up on within its bound): not again in this
    /// reconcile; its Event is published once the workload write is sent.
    pub(super) fn evidence_taken(&mut self, evidence: Evidence) {
        if evidence.resource_version.is_some() {
            self.out.resource_version = evidence.resource_version;
        }
        self.out.evidence_taken = true;
        self.evidence_report = Some(evidence.report);
    }

    /// The Event of the evidence taken before the write, if any.
    pub(super) async fn publish_evidence_report(&mut self) {
        if let Some(result) = self.evidence_report.take() {
            crate::controller::artifacts::report(&self.ctx.recorder, self.inc, "Evidence", result)
                .await;
        }
    }

    /// Evidence before the incident's first workload write: the failing
    /// state, not the repaired one. Taken unless the Incident already has
    /// evidence (collected at open, before anything was changed); bounded
    /// by the evidence timeout, after which the write goes ahead.
    async fn evidence_before_write(&mut self, step: &MitigationStep) {
        let Some(caps) = self.evidence_due() else {
            return;
        };
        let t = std::time::Instant::now();
        let evidence = take_evidence(self.ctx, self.inc, &step.name, caps).await;
        debug!(step = %step.name, written = evidence.report.is_ok(), ms = t.elapsed().as_secs_f64() * 1e3, "evidence before the first workload write");
        // Taken (or given up on within the bound): either way not again now.
        self.evidence_taken(evidence);
    }

    pub(super) async fn apply(&mut self, index: usize, step: &MitigationStep, write: &Write) {
        self.evidence_before_write(step).await;
        let written = send(self.ctx, self.ns, write).await;
        self.publish_evidence_report().await;
        match written {
            Written::Ok => {
                self.ctx.metrics.mitigation(step.action.as_str(), "applied");
                self.requeue(VERIFY_INTERVAL);
            }
            Written::Conflict => {
                debug!(step = %step.name, "workload changed since read; will plan again");
                self.requeue(RETRY_INTERVAL);
            }
            Written::Transient(e) => {
                warn!(step = %step.name, error = %e, "mitigation write failed; will retry");
                self.set_message(index, format!("retrying after a server error: {e}"));
                self.requeue(RETRY_INTERVAL);
            }
            Written::Unprocessable(message) => {
                // Did the generation precondition fail (the spec moved on:
                // the next reconcile sees it and reports the change) or is
                // the change itself invalid? Writes without a generation
                // test (HPAs: fenced by resourceVersion, a 409) can only be
                // invalid: the step fails, it is never retried.
                if self.generation_moved(write).await {
                    self.requeue(RETRY_INTERVAL);
                } else {
                    warn!(step = %step.name, error = %message, "mitigation write refused");
                    self.record(index, StepOutcome::Failed { message });
                    self.ctx.metrics.mitigation(step.action.as_str(), "failed");
                }
            }
            Written::Rejected(message) => {
                warn!(step = %step.name, error = %message, "mitigation write refused");
                self.record(index, StepOutcome::Failed { message });
                self.ctx.metrics.mitigation(step.action.as_str(), "failed");
            }
        }
    }

    /// After a 422: whether the write tested a generation and the object's
    /// generation differs from it now (the precondition failed; the next
    /// reconcile sees the change). A write without a generation test, or an
    /// object that is gone, did not fail on a precondition. A failed read
    /// counts as moved: the next reconcile reads again and decides.
    pub(super) async fn generation_moved(&self, write: &Write) -> bool {
        let Some(expected) = mitigation::expected_generation(write) else {
            return false;
        };
        let meta = match &write.target {
            WriteTarget::Deployment(n) => self.metadata::<Deployment>(n).await,
            WriteTarget::StatefulSet(n) => self.metadata::<StatefulSet>(n).await,
            WriteTarget::DaemonSet(n) => self.metadata::<DaemonSet>(n).await,
            WriteTarget::CronJob(n) => self.metadata::<CronJob>(n).await,
            WriteTarget::Hpa(_) | WriteTarget::Pods(_) => return false,
        };
        match meta {
            Ok(Some(generation)) => generation != Some(expected),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The generation of object `name` of kind `K` (`None`: no such object).
    async fn metadata<K>(&self, name: &str) -> Result<Option<Option<i64>>, kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::<K>::namespaced(self.ctx.client.clone(), self.ns)
            .get_metadata_opt(name)
            .await
            .map(|m| m.map(|m| m.metadata.generation))
    }
}

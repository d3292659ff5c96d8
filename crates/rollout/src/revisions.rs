//! StatefulSet and DaemonSet rollout history: their ControllerRevisions,
//! the target of `kubectl rollout undo sts/x` / `ds/x` (kubectl's
//! `statefulSetRollbacker` / `daemonSetRollbacker`), and "rollout complete"
//! as `kubectl rollout status` decides it for them.
//!
//! A ControllerRevision's `data` is the strategic-merge patch
//! `{"spec":{"template":{..., "$patch":"replace"}}}` that restores its pod
//! template; kubectl sends it as it is. The pod template it carries is
//! [`revision_template`].

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::hash::{normalize, template_value};

/// The pod label naming the revision a StatefulSet or DaemonSet pod was
/// created from (for StatefulSets the ControllerRevision's name, for
/// DaemonSets its hash label).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The DaemonSet pod label carrying the DaemonSet generation it was made from.
pub const POD_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Why a StatefulSet or DaemonSet cannot be rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionRollbackError {
    /// `toRevision` 0 with fewer than two revisions (kubectl: "no last revision to roll back to").
    #[error("no last revision to roll back to: {kind} {name} has {count} ControllerRevision(s)")]
    NoLastRevision {
        kind: String,
        name: String,
        count: usize,
    },
    /// An explicit `toRevision` that no ControllerRevision holds.
    #[error("unable to find specified revision {revision} in the history of {kind} {name}")]
    RevisionNotFound {
        kind: String,
        name: String,
        revision: i64,
    },
    /// The revision's data holds no `spec.template`.
    #[error("ControllerRevision {revision} has no pod template in its data")]
    NoTemplate { revision: String },
}

/// `metav1.IsControlledBy` for a ControllerRevision: its controller
/// reference has this uid.
pub fn revision_controlled_by(cr: &ControllerRevision, uid: &str) -> bool {
    cr.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| r.uid == uid)
}

/// The ControllerRevisions controlled by `uid`, oldest revision first
/// (kubectl's `historiesByRevision`; ties by name).
pub fn owned_revisions<'a>(
    uid: &str,
    revisions: &'a [ControllerRevision],
) -> Vec<&'a ControllerRevision> {
    let mut out: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|cr| revision_controlled_by(cr, uid))
        .collect();
    out.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    out
}

/// The newest ControllerRevision controlled by `uid` (the highest `.revision`).
pub fn newest_revision<'a>(
    uid: &str,
    revisions: &'a [ControllerRevision],
) -> Option<&'a ControllerRevision> {
    owned_revisions(uid, revisions).pop()
}

/// kubectl's `findHistory`: `to_revision` 0 is the previous revision (the
/// second highest); an explicit one must exist.
pub fn revision_rollback_target<'a>(
    kind: &str,
    name: &str,
    uid: &str,
    revisions: &'a [ControllerRevision],
    to_revision: i64,
) -> Result<&'a ControllerRevision, RevisionRollbackError> {
    let owned = owned_revisions(uid, revisions);
    if to_revision == 0 {
        if owned.len() <= 1 {
            return Err(RevisionRollbackError::NoLastRevision {
                kind: kind.to_string(),
                name: name.to_string(),
                count: owned.len(),
            });
        }
        return owned
            .get(owned.len() - 2)
            .copied()
            .ok_or(RevisionRollbackError::NoLastRevision {
                kind: kind.to_string(),
                name: name.to_string(),
                count: owned.len(),
            });
    }
    owned
        .into_iter()
        .find(|cr| cr.revision == to_revision)
        .ok_or(RevisionRollbackError::RevisionNotFound {
            kind: kind.to_string(),
            name: name.to_string(),
            revision: to_revision,
        })
}

/// The pod template a ControllerRevision restores: `data.spec.template`
/// without its `$patch` directive.
pub fn revision_template(cr: &ControllerRevision) -> Result<Value, RevisionRollbackError> {
    let no_template = || RevisionRollbackError::NoTemplate {
        revision: cr.metadata.name.clone().unwrap_or_default(),
    };
    let data = cr.data.as_ref().ok_or_else(no_template)?;
    let mut t = data
        .0
        .get("spec")
        .and_then(|s| s.get("template"))
        .filter(|t| t.is_object())
        .cloned()
        .ok_or_else(no_template)?;
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    Ok(t)
}

/// kubectl's `statefulsetMatch` / `daemonSetMatch`: the current template is
/// the revision's (compared as JSON, nulls and empty fields ignored).
pub fn template_matches_revision(
    cr: &ControllerRevision,
    current: Option<&PodTemplateSpec>,
) -> bool {
    revision_template(cr).is_ok_and(|t| normalize(&t) == normalize(&template_value(current)))
}

/// The revision hash a ControllerRevision stands for: its
/// `controller-revision-hash` label, else the suffix of its name after the
/// owner's name (`<owner>-<hash>`).
pub fn revision_hash(cr: &ControllerRevision, owner: &str) -> String {
    cr.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
        .cloned()
        .unwrap_or_else(|| {
            let name = cr.metadata.name.clone().unwrap_or_default();
            name.strip_prefix(&format!("{owner}-"))
                .map(str::to_string)
                .unwrap_or(name)
        })
}

/// Where the rollout of a StatefulSet or DaemonSet stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRolloutStatus {
    pub complete: bool,
    /// kubectl's words for it.
    pub message: String,
}

fn waiting(message: String) -> SetRolloutStatus {
    SetRolloutStatus {
        complete: false,
        message,
    }
}

/// `kubectl rollout status sts/x` (kubectl's `StatefulSetStatusViewer`):
/// the spec observed, every replica ready, `updatedReplicas` at least
/// `replicas - partition`, and without a partition `currentRevision ==
/// updateRevision`. kubectl refuses `OnDelete`; here an `OnDelete`
/// StatefulSet is complete when every replica is ready and updated (its
/// controller never advances `currentRevision`).
pub fn statefulset_status(s: &StatefulSet) -> SetRolloutStatus {
    let name = s.metadata.name.clone().unwrap_or_default();
    let st = s.status.clone().unwrap_or_default();
    let spec = s.spec.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return waiting("Waiting for statefulset spec update to be observed...".into());
    }
    let replicas = spec.replicas.unwrap_or(1);
    let ready = st.ready_replicas.unwrap_or(0);
    if ready < replicas {
        return waiting(format!(
            "Waiting for {} pods of statefulset {name:?} to be ready...",
            replicas - ready
        ));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let partition = partition(s);
    if updated < replicas - partition {
        return waiting(if partition > 0 {
            format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                replicas - partition
            )
        } else {
            format!(
                "Waiting for statefulset {name:?} rolling update to finish: {updated} out of {replicas} pods have been updated..."
            )
        });
    }
    if on_delete(s) {
        // The controller never advances currentRevision under OnDelete.
        return SetRolloutStatus {
            complete: true,
            message: format!(
                "statefulset {name:?}: {updated} pods at the update revision (OnDelete)"
            ),
        };
    }
    if partition > 0 {
        return SetRolloutStatus {
            complete: true,
            message: format!(
                "partitioned roll out complete: {updated} new pods have been updated..."
            ),
        };
    }
    let update = st.update_revision.clone().unwrap_or_default();
    if st.current_revision.as_deref() != Some(update.as_str()) {
        return waiting(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update}..."
        ));
    }
    SetRolloutStatus {
        complete: true,
        message: format!(
            "statefulset rolling update complete {} pods at revision {update}...",
            st.current_replicas.unwrap_or(updated)
        ),
    }
}

/// Whether the StatefulSet's updateStrategy is `OnDelete`.
pub fn on_delete(s: &StatefulSet) -> bool {
    s.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

/// The partition of a RollingUpdate StatefulSet (0 without one).
pub fn partition(s: &StatefulSet) -> i32 {
    s.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .filter(|u| u.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate")
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

/// `kubectl rollout status ds/x` (kubectl's `DaemonSetStatusViewer`): the
/// spec observed, every scheduled pod updated and available.
pub fn daemonset_status(d: &DaemonSet) -> SetRolloutStatus {
    let name = d.metadata.name.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return waiting("Waiting for daemon set spec update to be observed...".into());
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    if updated < desired {
        return waiting(format!(
            "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
        ));
    }
    let available = st.number_available.unwrap_or(0);
    if available < desired {
        return waiting(format!(
            "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
        ));
    }
    SetRolloutStatus {
        complete: true,
        message: format!("daemon set {name:?} successfully rolled out"),
    }
}

#[cfg(test)]
#[path = "revisions_tests.rs"]
mod tests;

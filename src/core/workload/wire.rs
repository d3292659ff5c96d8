//! Lean wire types for watching Pods at scale: serde decodes only the
//! fields detection needs and skips the rest of each object (spec,
//! managedFields, annotations, ...) without allocating it. A full `Pod`
//! allocates tens of KB while decoding; a `PodLite` a few hundred bytes.
//! Serde and the `kube::Resource` trait only (so `Api<PodLite>` can watch
//! it): no client here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::NamespaceResourceScope;
use kube::Resource;
use serde::{Deserialize, Deserializer};

use super::view::{CondView, ContainerRole, ContainerView, OwnerView, PodView, Termination};

/// The metadata fields detection reads; everything else is skipped.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaLite {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerLite>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerLite {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    controller: Option<bool>,
}

pub(super) fn lite_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = MetaLite::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        labels: m.labels,
        owner_references: m.owner_references.map(|os| {
            os.into_iter()
                .map(|o| OwnerReference {
                    api_version: o.api_version,
                    kind: o.kind,
                    name: o.name,
                    uid: o.uid,
                    controller: o.controller,
                    block_owner_deletion: None,
                })
                .collect()
        }),
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        ..Default::default()
    })
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct CondLite {
    #[serde(rename = "type")]
    pub(super) type_: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
    last_transition_time: Option<Time>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct TerminatedLite {
    reason: Option<String>,
    exit_code: i32,
    finished_at: Option<Time>,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct WaitingLite {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct RunningLite {
    started_at: Option<Time>,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct StateLite {
    waiting: Option<WaitingLite>,
    running: Option<RunningLite>,
    terminated: Option<TerminatedLite>,
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct ContainerLite {
    name: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: i32,
    state: Option<StateLite>,
    last_state: Option<StateLite>,
}

/// The status fields detection reads.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusLite {
    phase: Option<String>,
    /// Why the pod is in its phase (`Evicted`, ...).
    reason: Option<String>,
    conditions: Option<Vec<CondLite>>,
    container_statuses: Option<Vec<ContainerLite>>,
    init_container_statuses: Option<Vec<ContainerLite>>,
}

/// An init container's name and restart policy (`Always`: a native sidecar).
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct InitContainerLite {
    name: String,
    restart_policy: Option<String>,
}

/// The only spec fields detection reads: which init containers are
/// native sidecars. Everything else of the spec is skipped.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecLite {
    init_containers: Option<Vec<InitContainerLite>>,
}

/// A Pod decoded for detection only. Watch it with `Api<PodLite>`.
#[derive(Deserialize, Clone, Debug)]
pub struct PodLite {
    #[serde(deserialize_with = "lite_meta", default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<PodSpecLite>,
    #[serde(default)]
    pub status: Option<PodStatusLite>,
}

impl Resource for PodLite {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Messages are kept short: they go into titles and timeline entries.
const MESSAGE_CAP: usize = 160;

pub(super) fn cap(s: Option<String>) -> Option<String> {
    s.map(|mut m| {
        if m.len() > MESSAGE_CAP {
            let mut end = MESSAGE_CAP;
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m.truncate(end);
            m.push('…');
        }
        m.shrink_to_fit();
        m
    })
}

pub(super) fn cond(c: &CondLite) -> CondView {
    CondView {
        status: c.status == "True",
        reason: c.reason.clone(),
        message: cap(c.message.clone()),
        since: c.last_transition_time.as_ref().map(|t| t.0),
    }
}

fn term(t: &TerminatedLite) -> Termination {
    Termination {
        reason: t.reason.clone(),
        exit_code: t.exit_code,
        finished_at: t.finished_at.as_ref().map(|t| t.0),
    }
}

fn container(c: &ContainerLite, role: ContainerRole) -> ContainerView {
    let state = c.state.as_ref();
    ContainerView {
        name: c.name.clone(),
        role,
        ready: c.ready,
        restart_count: c.restart_count,
        waiting: state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone().map(|r| (r, cap(w.message.clone())))),
        running_since: state
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref().map(|t| t.0)),
        terminated: state.and_then(|s| s.terminated.as_ref()).map(term),
        last_termination: c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(term),
    }
}

impl From<&PodLite> for PodView {
    fn from(p: &PodLite) -> Self {
        let owner = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| OwnerView {
                kind: o.kind.clone(),
                name: o.name.clone(),
            });
        let status = p.status.as_ref();
        let conds = status.and_then(|s| s.conditions.as_ref());
        let find = |t: &str| {
            conds
                .and_then(|cs| cs.iter().find(|c| c.type_ == t))
                .map(cond)
        };
        // Only a bare pod is its own workload; owned pods need no labels
        // beyond the ignore label.
        let labels = match (&owner, &p.metadata.labels) {
            (None, Some(l)) => l.clone(),
            (Some(_), Some(l)) => l
                .iter()
                .filter(|(k, _)| k.as_str() == crate::api::IGNORE_LABEL)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            (_, None) => BTreeMap::new(),
        };
        PodView {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            labels,
            owner,
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into()),
            created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            deleting: p.metadata.deletion_timestamp.is_some(),
            scheduled: find("PodScheduled"),
            ready: find("Ready"),
            reason: status.and_then(|s| s.reason.clone()),
            containers: {
                let sidecars: Vec<&str> = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.init_containers.as_ref())
                    .into_iter()
                    .flatten()
                    .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                    .map(|c| c.name.as_str())
                    .collect();
                let init = status
                    .and_then(|s| s.init_container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let role = if sidecars.contains(&c.name.as_str()) {
                            ContainerRole::Sidecar
                        } else {
                            ContainerRole::Init
                        };
                        container(c, role)
                    });
                let app = status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|c| container(c, ContainerRole::App));
                init.chain(app).collect()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_what_detection_needs_and_agrees_with_the_full_pod() {
        let v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "creationTimestamp": "2026-11-22T02:00:00Z",
                "labels": {"app": "web", "kubeincident.io/ignore": "false"},
                "annotations": {"big": "x".repeat(10_000)},
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7f", "uid": "r1", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}]}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-22T02:59:00Z"},
                               {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": "2026-11-22T02:59:30Z"}}}]}
        });
        let lite: PodLite = serde_json::from_value(v.clone()).unwrap();
        assert!(lite.metadata.managed_fields.is_none());
        assert!(lite.metadata.annotations.is_none());
        assert_eq!(lite.metadata.resource_version.as_deref(), Some("7"));
        let view = PodView::from(&lite);
        let at = |s: &str| Some(s.parse::<jiff::Timestamp>().unwrap());
        let expected = PodView {
            namespace: "shop".into(),
            name: "web-1".into(),
            // Owned pods keep only the ignore label.
            labels: BTreeMap::from([("kubeincident.io/ignore".into(), "false".into())]),
            owner: Some(OwnerView {
                kind: "ReplicaSet".into(),
                name: "web-7f".into(),
            }),
            phase: "Running".into(),
            created: at("2026-11-22T02:00:00Z"),
            deleting: false,
            scheduled: Some(CondView {
                status: true,
                reason: None,
                message: None,
                since: None,
            }),
            ready: Some(CondView {
                status: false,
                reason: None,
                message: None,
                since: at("2026-11-22T02:59:00Z"),
            }),
            reason: None,
            containers: vec![ContainerView {
                name: "app".into(),
                role: ContainerRole::App,
                ready: false,
                restart_count: 4,
                waiting: Some(("CrashLoopBackOff".into(), Some("back-off 1m20s".into()))),
                running_since: None,
                terminated: None,
                last_termination: Some(Termination {
                    reason: Some("Error".into()),
                    exit_code: 1,
                    finished_at: at("2026-11-22T02:59:30Z"),
                }),
            }],
        };
        assert_eq!(view, expected);
        // A bare pod keeps its labels (it is its own workload).
        let mut bare = lite.clone();
        bare.metadata.owner_references = None;
        assert_eq!(PodView::from(&bare).labels.len(), 2);
    }

    #[test]
    fn long_messages_are_capped() {
        let lite: PodLite = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "n"},
            "status": {"containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "é".repeat(500)}}}]}
        }))
        .unwrap();
        let v = PodView::from(&lite);
        let msg = v.containers[0]
            .waiting
            .as_ref()
            .unwrap()
            .1
            .as_ref()
            .unwrap();
        assert!(msg.len() <= MESSAGE_CAP + '…'.len_utf8());
    }
}

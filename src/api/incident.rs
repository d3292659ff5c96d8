//! The `Incident` custom resource: one episode of trouble with one workload.

// clippy reads the repeated `type_ = "string"` inside the derive's
// `printcolumn(...)` attributes as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{LocalObjectReference, MitigationStep, RunbookReference, Severity};

/// Where an Incident came from.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum IncidentSource {
    /// Opened by kube-incident's own detector.
    Detector,
    /// Declared by a person (`kubectl apply`, `kubectl incident declare`).
    #[default]
    Manual,
    /// Opened from an Alertmanager webhook.
    Alertmanager,
}

impl IncidentSource {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The kinds of workload an Incident can target.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum TargetKind {
    Deployment,
    /// A bare pod (no controller): its own workload.
    Pod,
    StatefulSet,
    DaemonSet,
    Job,
    /// A CronJob, judged through the Jobs it launches.
    CronJob,
}

impl TargetKind {
    /// Every kind, in API order.
    pub const ALL: [TargetKind; 6] = [
        TargetKind::Deployment,
        TargetKind::Pod,
        TargetKind::StatefulSet,
        TargetKind::DaemonSet,
        TargetKind::Job,
        TargetKind::CronJob,
    ];

    /// What a Runbook without `targetKinds` covers (v1alpha1 behaviour).
    pub const DEFAULT_RUNBOOK_KINDS: [TargetKind; 2] = [TargetKind::Deployment, TargetKind::Pod];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The kind named `s` (its API spelling).
    pub fn parse(s: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The workload in trouble, in the Incident's own namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub name: String,
}

/// A manual resolution: setting it resolves the Incident.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// Who resolved it.
    pub by: String,
    /// What was done; goes into the timeline and the post-mortem.
    #[serde(default)]
    pub summary: String,
}

/// One episode of trouble with one workload (or none, when declared by hand
/// without a target).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "kubeincident.io",
    version = "v1alpha1",
    kind = "Incident",
    namespaced,
    status = "IncidentStatus",
    shortname = "inc",
    category = "kube-incident",
    doc = "One episode of trouble with one workload: detected, triaged, acknowledged, mitigated, resolved.",
    printcolumn(name = "Severity", type_ = "string", json_path = ".status.severity"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.target.name"),
    printcolumn(
        name = "Acknowledged",
        type_ = "string",
        json_path = ".spec.acknowledgedBy"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Title",
        type_ = "string",
        json_path = ".spec.title",
        priority = "1"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    /// One line saying what is wrong.
    pub title: String,
    /// Declared severity. The effective severity is `status.severity`.
    pub severity: Severity,
    /// Detector, Manual (default) or Alertmanager.
    #[serde(default)]
    pub source: IncidentSource,
    /// The workload in trouble; same namespace as the Incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetRef>,
    /// The Runbook whose policy applies (`{name, namespace}`; namespace
    /// defaults to the Incident's). Optional: the operator finds the
    /// governing Runbook of the target itself; when set, it must name that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_ref: Option<RunbookReference>,
    /// The incident commander.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander: Option<String>,
    /// Setting it acknowledges the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// Free text; setting it moves an investigating incident to Identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    /// The mitigation plan, run in order, one step at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub mitigations: Vec<MitigationStep>,
    /// Setting it resolves the incident by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// `true`: give the GitOps owner that a step suspended its automation
    /// back now (once Git matches what is running), without waiting for
    /// the resolution. See docs/gitops.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_git_ops: Option<bool>,
}

/// Lifecycle phase.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum Phase {
    Investigating,
    Identified,
    Mitigating,
    Monitoring,
    Resolved,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How bad it is on the cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pods: Option<i32>,
    /// Waiting/termination reasons seen, e.g. CrashLoopBackOff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The severity the Runbook's impact rules gave at the worst point of
    /// this episode; the effective severity is never below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// State of one mitigation step.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum StepState {
    /// Not its turn yet.
    #[default]
    Pending,
    /// A Manual step whose turn it is, waiting for `approvedBy`.
    AwaitingApproval,
    /// Intent recorded; the change is being applied and verified.
    Running,
    /// Applied and verified.
    Succeeded,
    /// Could not be applied; `message` says why.
    Failed,
    /// Not run (guard not met, dry-run, incident resolved first).
    Skipped,
    /// Applied, but the target relapsed during monitoring.
    Ineffective,
    /// Applied, then restored on resolve (`revertOnResolve`).
    Reverted,
    /// Never run: no Runbook governing the target grants it (or not with
    /// these parameters); `message` names what is missing.
    Refused,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A step in this state will not run (again).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Succeeded
                | StepState::Failed
                | StepState::Skipped
                | StepState::Ineffective
                | StepState::Reverted
                | StepState::Refused
        )
    }
}

/// A prior environment variable value recorded before SetEnv acted, so a
/// revert restores it exactly. `value: null` means the variable was absent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEnvVar {
    pub container: String,
    pub name: String,
    /// The prior value; absent when the variable did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Status of one mitigation step (same order as `spec.mitigations`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MitigationStatus {
    pub name: String,
    pub state: StepState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the step was approved (or, for Automatic steps, cleared to run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// What was there before the action, recorded BEFORE acting.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub before: BTreeMap<String, String>,
    /// What the action set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub after: BTreeMap<String, String>,
    /// The concrete intent (e.g. target revision and pod-template hash),
    /// recorded before mutating so a restarted operator never acts twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intent: BTreeMap<String, String>,
    /// SetEnv: prior values of every variable it changes (for `revertOnResolve`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_env: Vec<RecordedEnvVar>,
}

/// The kinds of GitOps owner kube-incident knows.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum GitOpsOwnerKind {
    /// Argo CD `Application` (argoproj.io/v1alpha1).
    Application,
    /// Flux `Kustomization` (kustomize.toolkit.fluxcd.io/v1).
    Kustomization,
    /// Flux `HelmRelease` (helm.toolkit.fluxcd.io/v2).
    HelmRelease,
}

impl GitOpsOwnerKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The tool behind the owner ("Argo CD", "Flux").
    pub fn tool(self) -> &'static str {
        match self {
            GitOpsOwnerKind::Application => "Argo CD",
            GitOpsOwnerKind::Kustomization | GitOpsOwnerKind::HelmRelease => "Flux",
        }
    }
}

/// The GitOps object that applies the target from Git, found from the
/// labels and annotations the tool writes on what it manages.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
pub struct GitOpsOwner {
    pub kind: GitOpsOwnerKind,
    pub namespace: String,
    pub name: String,
    /// The label or annotation it was found from.
    pub via: String,
}

impl std::fmt::Display for GitOpsOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}/{}",
            self.kind.tool(),
            self.kind.as_str(),
            self.namespace,
            self.name
        )
    }
}

/// Escalation progress.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EscalationStatus {
    /// Escalation levels reached (0: none).
    pub level: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Time>,
}

/// Kinds of timeline entries.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimelineType {
    Opened,
    Reopened,
    Symptom,
    SeverityChanged,
    Acknowledged,
    Identified,
    CommanderAssigned,
    AwaitingApproval,
    Approved,
    MitigationStarted,
    MitigationSucceeded,
    MitigationFailed,
    MitigationSkipped,
    MitigationRefused,
    MitigationIneffective,
    MitigationReverted,
    ExternalChange,
    /// A GitOps owner's automation was paused before a mitigation.
    GitOpsSuspended,
    /// A suspended GitOps owner got its automation back (or did not, and why).
    GitOpsRestored,
    /// A resolved Incident's owner stays paused until Git matches what runs.
    GitOpsWaiting,
    Monitoring,
    Relapse,
    ResponseOverdue,
    ResolutionOverdue,
    Escalated,
    Resolved,
    Invalid,
    Truncated,
}

/// One entry of the append-only timeline.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    pub time: Time,
    #[serde(rename = "type")]
    pub type_: TimelineType,
    pub message: String,
}

/// Observed state of an Incident, written only by kube-incident.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Effective severity: the declared one, raised by the detector as impact grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Time>,
    /// When the trouble was first visible on the cluster (for MTTD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_observed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Time>,
    /// When the first mitigation succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// openedAt + the response target for the severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_deadline: Option<Time>,
    /// openedAt + the resolution target for the severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_deadline: Option<Time>,
    /// Since when the target has been continuously healthy (drives the
    /// monitoring window and auto-resolution); absent while unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// Times this episode recurred while open or was reopened (1 at open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mitigations: Vec<MitigationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationStatus>,
    /// The GitOps owner of the target (Argo CD Application, Flux
    /// Kustomization or HelmRelease), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ops_owner: Option<GitOpsOwner>,
    /// ConfigMap (owned by the Incident) holding logs, events and rollout history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_ref: Option<LocalObjectReference>,
    /// ConfigMap (owned by the Incident) holding the post-mortem draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem_ref: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Append-only, oldest first, capped (see docs/api.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
    /// Entries dropped from the middle of the timeline by the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_dropped: Option<i64>,
    /// Notification deliveries (one per message and sink), written only by
    /// the notifier with resourceVersion-guarded patches. Never serialized
    /// by the lifecycle's status apply, so a replayed reconcile cannot
    /// regress a delivery record (see docs/notifications.md).
    #[serde(default, skip_serializing)]
    pub notifications: Vec<NotificationRecord>,
    /// The Incident generation the post-mortem draft was rendered from
    /// (it is re-rendered when the spec changes after resolution, e.g. a
    /// rootCause added later). Written only by the post-mortem writer.
    #[serde(default, skip_serializing)]
    pub postmortem_generation: Option<i64>,
}

/// What a notification is about.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum NotificationEvent {
    Declared,
    Reopened,
    Acknowledged,
    MitigationAwaitingApproval,
    MitigationApplied,
    /// A GitOps owner was suspended: Git no longer matches what runs.
    GitOpsSuspended,
    Escalated,
    ResponseOverdue,
    ResolutionOverdue,
    Resolved,
}

impl NotificationEvent {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// State of one delivery.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Claimed (recorded before the first byte is sent); being delivered.
    Sending,
    /// The sink answered 2xx.
    Sent,
    /// Every attempt failed; `message` says why (never the URL).
    Failed,
    /// The operator stopped while delivering: it may or may not have
    /// arrived. Not resent (at most once).
    Unknown,
}

/// One message to one sink.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// Delivery id, also sent as the `Idempotency-Key` header.
    pub id: String,
    /// The Runbook `notify` sink name.
    pub sink: String,
    pub event: NotificationEvent,
    /// The step name or escalation level the message is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub state: DeliveryState,
    #[serde(default)]
    pub attempts: i32,
    /// When the delivery was claimed.
    pub claimed_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Outcome, e.g. `HTTP 503` or `connection failed` (never the URL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

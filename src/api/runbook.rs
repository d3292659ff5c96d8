//! The `Runbook` custom resource: policy kept in Git.

// See incident.rs: `printcolumn(...)` arguments look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{GoDuration, MitigationStep, Ratio, SecretKeyReference, Severity};

/// Built-in kinds of trouble.
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
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum TriggerType {
    CrashLoopBackOff,
    ImagePullBackOff,
    OOMKilled,
    CreateContainerConfigError,
    RestartStorm,
    Unavailable,
    ProgressDeadlineExceeded,
    Unschedulable,
    NotReady,
    /// StatefulSet / DaemonSet: an update that does not finish (pods not
    /// updated, or unavailable) past `for` (default 5m).
    RolloutStuck,
    /// Job: the `Failed` condition (BackoffLimitExceeded, DeadlineExceeded,
    /// ...). CronJob: its newest `minFailures` finished Jobs all failed.
    JobFailed,
    /// Deployment: the newest ReplicaSet of a rollout in progress, from a
    /// Deployment that was healthy before it, produces failing pods (a
    /// container restarted `minRestarts` times (default 2), an image that
    /// cannot be pulled, a config error, or Running but not Ready past
    /// `minReadySeconds` + `for` (default 1m)). Fires at once, without the
    /// other triggers' restart counts or `for:` windows. On by default in
    /// a Runbook with a RolloutUndo step; not part of the built-in policy.
    BadRollout,
}

impl TriggerType {
    /// Every built-in trigger (what an empty `triggers` list means).
    pub const ALL: [TriggerType; 11] = [
        TriggerType::CrashLoopBackOff,
        TriggerType::ImagePullBackOff,
        TriggerType::OOMKilled,
        TriggerType::CreateContainerConfigError,
        TriggerType::RestartStorm,
        TriggerType::Unavailable,
        TriggerType::ProgressDeadlineExceeded,
        TriggerType::Unschedulable,
        TriggerType::NotReady,
        TriggerType::RolloutStuck,
        TriggerType::JobFailed,
    ];

    /// Every trigger type a Runbook may name: [`Self::ALL`] and the
    /// opt-in ones (BadRollout).
    pub const EVERY: [TriggerType; 12] = [
        TriggerType::CrashLoopBackOff,
        TriggerType::ImagePullBackOff,
        TriggerType::OOMKilled,
        TriggerType::CreateContainerConfigError,
        TriggerType::RestartStorm,
        TriggerType::Unavailable,
        TriggerType::ProgressDeadlineExceeded,
        TriggerType::Unschedulable,
        TriggerType::NotReady,
        TriggerType::RolloutStuck,
        TriggerType::JobFailed,
        TriggerType::BadRollout,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What counts as trouble. Parameters apply to the trigger types that use them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    #[serde(rename = "type")]
    pub type_: TriggerType,
    /// CrashLoopBackOff: restarts before it counts (default 3). BadRollout:
    /// restarts of a new pod's container before it counts (default 2: a
    /// container that crashes once and then runs is not a bad rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_restarts: Option<i32>,
    /// How long the condition must hold before an Incident opens.
    /// BadRollout: how long past `minReadySeconds` a new pod may run
    /// without being Ready (default 1m); its other failures fire at once.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<GoDuration>,
    /// RestartStorm: restarts across the workload's pods within `window` (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub restarts: Option<i32>,
    /// RestartStorm: the window (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<GoDuration>,
    /// Unavailable: ratio of unavailable replicas that counts (default "0.5").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_unavailable_ratio: Option<Ratio>,
    /// JobFailed on a CronJob: how many of its newest finished Jobs must
    /// all have failed (default 2). A Job's own failure always counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_failures: Option<i32>,
    /// `false` turns the trigger off: for BadRollout, which a Runbook with
    /// a RolloutUndo step gets without listing it. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// One impact rule: when at least this ratio of replicas is unavailable.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityRule {
    pub min_unavailable_ratio: Ratio,
    pub severity: Severity,
}

fn default_severity() -> Severity {
    Severity::SEV3
}

/// How severe an incident is: a default and an impact matrix (first match wins).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityPolicy {
    #[serde(default = "default_severity")]
    pub default: Severity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<SeverityRule>,
}

/// Monitoring after a mitigation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct MonitoringPolicy {
    /// How long the target must stay healthy; overrides the severity default.
    pub window: GoDuration,
}

/// Rate limits on actions.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Minimum time between two actions on the same workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<GoDuration>,
    /// Maximum actions per hour from this Runbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_actions_per_hour: Option<i32>,
}

/// One escalation level.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct EscalationLevel {
    /// Time after the response deadline was missed.
    pub after: GoDuration,
    /// Names of `notify` sinks to alert.
    #[serde(default)]
    pub notify: Vec<String>,
}

/// Message format of a sink.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyFormat {
    Slack,
    Webhook,
}

/// A notification sink. The URL is read from a Secret in the Runbook's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotifySink {
    pub name: String,
    pub format: NotifyFormat,
    pub url_secret_ref: SecretKeyReference,
}

/// Policy kept in Git: which workloads it covers, what counts as trouble,
/// how bad it is, and what may be done about it.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "kubeincident.io",
    version = "v1alpha1",
    kind = "Runbook",
    namespaced,
    status = "RunbookStatus",
    shortname = "rb",
    category = "kube-incident",
    doc = "Incident policy for a set of Deployments: triggers, severity, mitigations, approvals, notifications.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        json_path = ".status.matchedWorkloads"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RunbookSpec {
    /// Workloads in the Runbook's namespace it covers (`{}` selects all),
    /// matched against the labels of the workload object itself.
    pub selector: LabelSelector,
    /// The kinds of workload the selector applies to. Empty (the v1alpha1
    /// default): `[Deployment, Pod]` (Deployments and bare pods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub target_kinds: Vec<crate::api::TargetKind>,
    /// Honoured only for Runbooks in the operator's own namespace: extends
    /// the Runbook to Deployments of the selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Empty: every built-in trigger with its defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<SeverityPolicy>,
    /// Steps copied into each Incident this Runbook opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub mitigations: Vec<MitigationStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringPolicy>,
    /// A recurrence within this window reopens the resolved Incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopen_window: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<EscalationLevel>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub notify: Vec<NotifySink>,
    /// What to do when a step's target is owned by a GitOps tool (Argo CD,
    /// Flux) that would put Git's state back (see docs/gitops.md). Absent:
    /// `{policy: Suspend, restore: OnResolve}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ops: Option<GitOpsPolicy>,
    /// Plan and record, never act.
    #[serde(default)]
    pub dry_run: bool,
    /// No new incidents or actions from this Runbook.
    #[serde(default)]
    pub paused: bool,
}

/// What a step does when its target has a GitOps owner.
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
pub enum GitOpsMode {
    /// Pause the owner's automation first (Flux `spec.suspend: true`; Argo
    /// CD: automated sync off), record what was changed, then act.
    #[default]
    Suspend,
    /// Do not act: the step fails naming the owner; a person decides.
    Refuse,
    /// Act anyway (for owners that do not self-heal). If the owner puts
    /// its state back, the step is recorded as changed by it, never fought.
    Ignore,
}

/// When a suspended owner gets its automation back.
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
pub enum GitOpsRestore {
    /// When the Incident is resolved (or earlier on `spec.resumeGitOps`).
    #[default]
    OnResolve,
    /// Only on a person's command (`spec.resumeGitOps: true`).
    Manual,
}

/// The Runbook's GitOps policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsPolicy {
    #[serde(default)]
    pub policy: GitOpsMode,
    #[serde(default)]
    pub restore: GitOpsRestore,
}

/// Observed state of a Runbook.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunbookStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_workloads: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_triggered_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

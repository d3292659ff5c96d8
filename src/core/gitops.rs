//! GitOps owners of a workload, as pure decisions: who applies the target
//! from Git (found from the labels and annotations Argo CD and Flux write
//! on what they manage), whether the owner really lists the target, how to
//! pause its automation the way its own CLI does, when and how to give it
//! back, and what differs between Git and what runs (for the post-mortem).
//! See docs/gitops.md.
//!
//! Owner objects are read as JSON (`DynamicObject`): the operator does not
//! depend on the tools' crates, and reads only the few fields below.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use crate::api::{GitOpsMode, GitOpsOwner, GitOpsOwnerKind, TargetKind, FIELD_MANAGER};

/// Argo CD's default tracking label (`application.instanceLabelKey`).
pub const ARGOCD_INSTANCE_LABEL: &str = "argocd.argoproj.io/instance";
/// Argo CD's annotation tracking (`<app>:<group>/<kind>:<namespace>/<name>`).
pub const ARGOCD_TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Flux kustomize-controller's labels on what a Kustomization applied.
pub const FLUX_KUSTOMIZE_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_KUSTOMIZE_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Flux helm-controller's labels on what a HelmRelease installed.
pub const FLUX_HELM_NAME: &str = "helm.toolkit.fluxcd.io/name";
pub const FLUX_HELM_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
/// Helm's own release annotations on what it installed.
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// Keys of a step's `before`, `intent` and `after` about its owner.
pub mod key {
    /// `before`: the owner (`Flux Kustomization flux-system/apps`).
    pub const OWNER: &str = "gitopsOwner";
    /// `before`: the policy applied (Suspend, Ignore).
    pub const POLICY: &str = "gitopsPolicy";
    /// `before`: the owner field kube-incident changed.
    pub const FIELD: &str = "gitopsField";
    /// `before`: the field's prior value, as JSON (`<absent>`: absent).
    pub const VALUE: &str = "gitopsValue";
    /// `before`: what differs between Git and what the step makes run.
    pub const DIFF: &str = "gitopsDiff";
    /// `intent`: the owner to suspend before the workload write (set only
    /// when kube-incident changes the owner, so only then is it restored).
    pub const SUSPEND: &str = "gitopsSuspend";
    /// `after`: what became of the owner on restore.
    pub const RESTORE: &str = "gitopsRestore";
    /// `intent`: when the owner is given back (the Runbook's
    /// `gitOps.restore` when the step paused it).
    pub const RESTORE_POLICY: &str = "gitopsRestorePolicy";
}

/// Who holds a pause: step `step` of Incident `namespace/incident` with
/// uid `uid` (a later Incident of the same name is someone else).
pub fn holder(namespace: &str, incident: &str, uid: &str, step: &str) -> String {
    format!("{namespace}/{incident}/{step}#{uid}")
}

/// The field managers the tools write with, and the tool each one is.
const MANAGERS: &[(&str, &str)] = &[
    ("argocd-controller", "Argo CD"),
    ("argocd-application-controller", "Argo CD"),
    ("kustomize-controller", "Flux"),
    ("helm-controller", "Flux"),
];

/// The GitOps tool behind a field manager, if it is one.
pub fn tool_of_manager(manager: &str) -> Option<&'static str> {
    MANAGERS
        .iter()
        .find(|(m, _)| *m == manager)
        .map(|(_, t)| *t)
}

/// `(group, version, plural)` of an owner kind.
pub fn resource(kind: GitOpsOwnerKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        GitOpsOwnerKind::Application => ("argoproj.io", "v1alpha1", "applications"),
        GitOpsOwnerKind::Kustomization => ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
        GitOpsOwnerKind::HelmRelease => ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    }
}

/// The API group of a target kind (for Argo CD and Flux resource ids).
fn group_of(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Deployment | TargetKind::StatefulSet | TargetKind::DaemonSet => "apps",
        TargetKind::Job | TargetKind::CronJob => "batch",
        TargetKind::Pod => "",
    }
}

/// The workload an owner is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub kind: TargetKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub meta: &'a ObjectMeta,
}

fn label<'a>(meta: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    meta.labels
        .as_ref()?
        .get(k)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn annotation<'a>(meta: &'a ObjectMeta, k: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()?
        .get(k)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// An Argo CD application name as it appears in labels and tracking ids:
/// `<namespace>_<name>` for applications outside the control plane's
/// namespace, else `<name>` in `argocd_ns`.
fn argocd_app(value: &str, argocd_ns: &str) -> (String, String) {
    match value.split_once('_') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => (ns.into(), name.into()),
        _ => (argocd_ns.into(), value.into()),
    }
}

/// The GitOps owner of a workload, from what the tools write on it. Flux's
/// labels name their owner exactly; Argo CD's tracking annotation counts
/// only when it names this very object (a copied annotation does not);
/// Argo CD's instance label names the application. `app.kubernetes.io/instance`
/// is not read: Helm and many charts set it too.
pub fn discover(w: Workload<'_>, argocd_ns: &str) -> Option<GitOpsOwner> {
    let m = w.meta;
    if let (Some(name), Some(ns)) = (
        label(m, FLUX_HELM_NAME),
        label(m, FLUX_HELM_NAMESPACE).or(Some(w.namespace)),
    ) {
        return Some(GitOpsOwner {
            kind: GitOpsOwnerKind::HelmRelease,
            namespace: ns.into(),
            name: name.into(),
            via: format!("label {FLUX_HELM_NAME}"),
        });
    }
    if let (Some(name), Some(ns)) = (
        label(m, FLUX_KUSTOMIZE_NAME),
        label(m, FLUX_KUSTOMIZE_NAMESPACE).or(Some(w.namespace)),
    ) {
        return Some(GitOpsOwner {
            kind: GitOpsOwnerKind::Kustomization,
            namespace: ns.into(),
            name: name.into(),
            via: format!("label {FLUX_KUSTOMIZE_NAME}"),
        });
    }
    if let Some(id) = annotation(m, ARGOCD_TRACKING_ANNOTATION) {
        // <app>:<group>/<kind>:<namespace>/<name>
        let mut parts = id.splitn(3, ':');
        let (app, gk, nn) = (parts.next(), parts.next(), parts.next());
        let this = format!("{}/{}", group_of(w.kind), w.kind.as_str());
        let here = format!("{}/{}", w.namespace, w.name);
        if let (Some(app), Some(gk), Some(nn)) = (app, gk, nn) {
            if !app.is_empty() && gk == this && nn == here {
                let (namespace, name) = argocd_app(app, argocd_ns);
                return Some(GitOpsOwner {
                    kind: GitOpsOwnerKind::Application,
                    namespace,
                    name,
                    via: format!("annotation {ARGOCD_TRACKING_ANNOTATION}"),
                });
            }
        }
    }
    if let Some(app) = label(m, ARGOCD_INSTANCE_LABEL) {
        let (namespace, name) = argocd_app(app, argocd_ns);
        return Some(GitOpsOwner {
            kind: GitOpsOwnerKind::Application,
            namespace,
            name,
            via: format!("label {ARGOCD_INSTANCE_LABEL}"),
        });
    }
    None
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Whether the owner object itself lists the workload among what it
/// manages: labels can be copied or left behind, and kube-incident never
/// pauses an owner on a label's word alone. `Err`: why it does not.
pub fn confirm(owner: &GitOpsOwner, obj: &Value, w: Workload<'_>) -> Result<(), String> {
    let group = group_of(w.kind);
    let kind = w.kind.as_str();
    let flux_id = format!("{}_{}_{}_{}", w.namespace, w.name, group, kind);
    let in_inventory = |v: &Value| {
        v.pointer("/status/inventory/entries")
            .and_then(Value::as_array)
            .is_some_and(|es| {
                es.iter()
                    .any(|e| e.get("id").and_then(Value::as_str) == Some(flux_id.as_str()))
            })
    };
    match owner.kind {
        GitOpsOwnerKind::Application => {
            let listed = obj
                .pointer("/status/resources")
                .and_then(Value::as_array)
                .is_some_and(|rs| {
                    rs.iter().any(|r| {
                        s(r, "/group").unwrap_or("") == group
                            && s(r, "/kind") == Some(kind)
                            && s(r, "/namespace").unwrap_or("") == w.namespace
                            && s(r, "/name") == Some(w.name)
                    })
                });
            if listed {
                Ok(())
            } else {
                Err(format!(
                    "{owner} does not list {kind} {}/{} in status.resources",
                    w.namespace, w.name
                ))
            }
        }
        GitOpsOwnerKind::Kustomization => {
            if in_inventory(obj) {
                Ok(())
            } else {
                Err(format!(
                    "{owner} does not list {kind} {}/{} in status.inventory",
                    w.namespace, w.name
                ))
            }
        }
        GitOpsOwnerKind::HelmRelease => {
            if in_inventory(obj) {
                return Ok(());
            }
            let hr_ns = s(obj, "/metadata/namespace").unwrap_or(&owner.namespace);
            let hr_name = s(obj, "/metadata/name").unwrap_or(&owner.name);
            let target_ns = s(obj, "/spec/targetNamespace").filter(|t| !t.is_empty());
            let release = s(obj, "/spec/releaseName")
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .or_else(|| s(obj, "/status/history/0/name").map(str::to_string))
                .unwrap_or_else(|| match target_ns {
                    Some(t) => format!("{t}-{hr_name}"),
                    None => hr_name.to_string(),
                });
            let release_ns = s(obj, "/status/history/0/namespace")
                .or(target_ns)
                .unwrap_or(hr_ns);
            let (rn, rns) = (
                annotation(w.meta, HELM_RELEASE_NAME),
                annotation(w.meta, HELM_RELEASE_NAMESPACE),
            );
            // The workload's own annotations are a claim its editor can
            // write: they count only for a release installed into the
            // workload's namespace, so a label cannot point at a
            // HelmRelease that installs elsewhere.
            if release_ns != w.namespace {
                Err(format!(
                    "{owner} installs into namespace {release_ns}, not {}",
                    w.namespace
                ))
            } else if rn == Some(release.as_str()) && rns == Some(release_ns) {
                Ok(())
            } else {
                Err(format!(
                    "{owner} installs release {release_ns}/{release}, but {kind} {}/{} belongs to Helm release {}/{}",
                    w.namespace,
                    w.name,
                    rns.unwrap_or("?"),
                    rn.unwrap_or("?")
                ))
            }
        }
    }
}

/// The JSON pointer and dotted name of the field that pauses an owner.
fn field(kind: GitOpsOwnerKind) -> (&'static str, &'static str) {
    match kind {
        GitOpsOwnerKind::Application => ("/spec/syncPolicy/automated", "spec.syncPolicy.automated"),
        GitOpsOwnerKind::Kustomization | GitOpsOwnerKind::HelmRelease => {
            ("/spec/suspend", "spec.suspend")
        }
    }
}

/// The value recorded for a field that did not exist.
pub const ABSENT: &str = "<absent>";

/// Whether the owner's automation would put Git's state back now.
pub fn automated(kind: GitOpsOwnerKind, obj: &Value) -> bool {
    match kind {
        GitOpsOwnerKind::Application => obj
            .pointer("/spec/syncPolicy/automated")
            .is_some_and(|a| a.is_object() && a.get("enabled") != Some(&Value::Bool(false))),
        GitOpsOwnerKind::Kustomization | GitOpsOwnerKind::HelmRelease => {
            obj.pointer("/spec/suspend") != Some(&Value::Bool(true))
        }
    }
}

/// The first op of every owner patch: the owner is the one read (its
/// resourceVersion, which kube-apiserver enforces as an optimistic lock: a
/// newer owner is a 409). The generation would not do: the pause record is
/// an annotation, which does not move it.
fn precondition(obj: &Value) -> Value {
    json!({"op": "replace", "path": "/metadata/resourceVersion", "value": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)})
}

/// Annotation kube-incident writes on an owner it paused, in the same
/// patch as the pause: who holds the pause (`<namespace>/<incident>/<step>`,
/// one per step) and the value to put back when the last one lets go. A
/// pause without it is a person's, never given back by kube-incident.
pub const PAUSED_ANNOTATION: &str = "kubeincident.io/gitops-paused";

/// The value of [`PAUSED_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Paused {
    /// The field paused (`spec.suspend`, `spec.syncPolicy.automated`).
    pub field: String,
    /// Its value before the first pause, as JSON (or [`ABSENT`]).
    pub prior: String,
    /// The steps that hold the pause.
    pub by: Vec<String>,
}

/// The pause record on an owner, if kube-incident paused it.
pub fn paused(obj: &Value) -> Option<Paused> {
    let a = obj
        .pointer("/metadata/annotations")?
        .get(PAUSED_ANNOTATION)?
        .as_str()?;
    serde_json::from_str(a).ok()
}

/// The JSON patch op that sets (or, with `None`, removes) the pause record.
fn paused_op(obj: &Value, record: Option<&Paused>) -> Value {
    let has_annotations = obj
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object);
    let path = format!(
        "/metadata/annotations/{}",
        PAUSED_ANNOTATION.replace('~', "~0").replace('/', "~1")
    );
    match record {
        None => json!({"op": "remove", "path": path}),
        Some(r) => {
            let v = serde_json::to_string(r).unwrap_or_default();
            if has_annotations {
                json!({"op": "add", "path": path, "value": v})
            } else {
                json!({"op": "add", "path": "/metadata/annotations", "value": {PAUSED_ANNOTATION: v}})
            }
        }
    }
}

/// How to pause an owner for step `holder`.
#[derive(Debug, Clone, PartialEq)]
pub enum Suspension {
    /// Send this JSON patch (the pause and its record); `prior` is the
    /// value the field had.
    Patch {
        patch: Value,
        field: &'static str,
        prior: String,
        description: String,
    },
    /// Already paused by kube-incident for other steps: this patch adds
    /// `holder` to the record (`prior`: the value before the first pause).
    Join {
        patch: Value,
        field: &'static str,
        prior: String,
        description: String,
    },
    /// Already paused and `holder` holds it: nothing to send.
    Held { field: &'static str, prior: String },
    /// Its automation is off, and not by kube-incident: nothing to change,
    /// nothing to give back.
    AlreadyOff { field: &'static str, value: String },
}

/// The pause of an owner, the way its CLI does it (`flux suspend` sets
/// `spec.suspend: true`; `argocd app set --sync-policy none` removes
/// `spec.syncPolicy.automated`), with its [`PAUSED_ANNOTATION`] record.
pub fn suspend(owner: &GitOpsOwner, obj: &Value, holder: &str) -> Suspension {
    let (pointer, name) = field(owner.kind);
    let current = obj
        .pointer(pointer)
        .map_or_else(|| ABSENT.to_string(), Value::to_string);
    if !automated(owner.kind, obj) {
        return match paused(obj) {
            Some(r) if r.by.iter().any(|h| h == holder) => Suspension::Held {
                field: name,
                prior: r.prior,
            },
            Some(mut r) if !r.by.is_empty() => {
                let others = r.by.join(", ");
                r.by.push(holder.to_string());
                Suspension::Join {
                    patch: json!([precondition(obj), paused_op(obj, Some(&r))]),
                    field: name,
                    description: format!(
                        "{owner} is already paused by kube-incident (for {others}); this step holds the pause too"
                    ),
                    prior: r.prior,
                }
            }
            _ => Suspension::AlreadyOff {
                field: name,
                value: current,
            },
        };
    }
    let (op, description) = match owner.kind {
        GitOpsOwnerKind::Application => (
            json!({"op": "remove", "path": pointer}),
            format!("turned off automated sync of {owner} (removed {name}: {current})"),
        ),
        _ => (
            json!({"op": "add", "path": pointer, "value": true}),
            format!("suspended {owner} ({name}: true, was {current})"),
        ),
    };
    let record = Paused {
        field: name.to_string(),
        prior: current.clone(),
        by: vec![holder.to_string()],
    };
    Suspension::Patch {
        patch: json!([precondition(obj), op, paused_op(obj, Some(&record))]),
        field: name,
        prior: current,
        description,
    }
}

/// Whether the paused field still holds kube-incident's value: Argo CD's
/// automated sync still off; Flux's `spec.suspend` still true and last
/// written by kube-incident (a person's own `flux suspend` is theirs).
pub fn holds_our_value(kind: GitOpsOwnerKind, obj: &Value) -> bool {
    match kind {
        GitOpsOwnerKind::Application => obj.pointer("/spec/syncPolicy/automated").is_none(),
        GitOpsOwnerKind::Kustomization | GitOpsOwnerKind::HelmRelease => {
            obj.pointer("/spec/suspend") == Some(&Value::Bool(true))
                && suspend_manager(obj).as_deref() == Some(FIELD_MANAGER)
        }
    }
}

/// The field manager that owns `spec.suspend` of a Flux object.
fn suspend_manager(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .filter(|m| s(m, "/subresource").unwrap_or("").is_empty())
        .find(|m| m.pointer("/fieldsV1/f:spec/f:suspend").is_some())
        .and_then(|m| s(m, "/manager").map(str::to_string))
}

/// Letting go of a pause held by step `holder`.
#[derive(Debug, Clone, PartialEq)]
pub enum Restore {
    /// Send this JSON patch. `restored`: the owner gets its automation
    /// back; else only the record changes (other steps still hold the
    /// pause, or someone changed the field since, which is left as it is).
    Patch {
        patch: Value,
        description: String,
        restored: bool,
    },
    /// Nothing to send: `holder` does not hold a pause of this owner (it
    /// was given back already). `restored`: its automation is on now.
    Done { message: String, restored: bool },
}

/// The restore of an owner paused for `holder`: the record's prior value
/// put back when `holder` is the last to let go, and only while the field
/// still holds kube-incident's value.
pub fn restore(owner: &GitOpsOwner, obj: &Value, holder: &str) -> Restore {
    let (pointer, name) = field(owner.kind);
    let now = obj
        .pointer(pointer)
        .map_or_else(|| ABSENT.to_string(), Value::to_string);
    let Some(mut record) = paused(obj).filter(|r| r.by.iter().any(|h| h == holder)) else {
        let on = automated(owner.kind, obj);
        return Restore::Done {
            message: if on {
                format!("{owner} has its automation already ({name}: {now})")
            } else {
                format!("{owner} is paused, but not by this step ({name}: {now}); left as it is")
            },
            restored: on,
        };
    };
    record.by.retain(|h| h != holder);
    if !record.by.is_empty() {
        return Restore::Patch {
            patch: json!([precondition(obj), paused_op(obj, Some(&record))]),
            description: format!(
                "left {owner} paused: {} still hold(s) the pause",
                record.by.join(", ")
            ),
            restored: false,
        };
    }
    if !holds_our_value(owner.kind, obj) {
        return Restore::Patch {
            patch: json!([precondition(obj), paused_op(obj, None)]),
            description: format!(
                "{owner} was changed since kube-incident paused it ({name} is now {now}); left as it is"
            ),
            restored: false,
        };
    }
    let prior = record.prior.as_str();
    let op = if prior == ABSENT {
        match owner.kind {
            // Argo CD: it was automated, so a prior value exists.
            GitOpsOwnerKind::Application => None,
            _ => Some(json!({"op": "remove", "path": pointer})),
        }
    } else {
        match serde_json::from_str::<Value>(prior) {
            Ok(v) => Some(json!({"op": "add", "path": pointer, "value": v})),
            Err(_) => None,
        }
    };
    let Some(op) = op else {
        return Restore::Patch {
            patch: json!([precondition(obj), paused_op(obj, None)]),
            description: format!(
                "the recorded {name} of {owner} cannot be put back ({prior}); left paused, restore it by hand"
            ),
            restored: false,
        };
    };
    let mut ops = vec![precondition(obj)];
    if owner.kind == GitOpsOwnerKind::Application && obj.pointer("/spec/syncPolicy").is_none() {
        ops.push(json!({"op": "add", "path": "/spec/syncPolicy", "value": {}}));
    }
    ops.push(op);
    ops.push(paused_op(obj, None));
    Restore::Patch {
        patch: Value::Array(ops),
        description: format!("gave {owner} its automation back ({name}: {prior})"),
        restored: true,
    }
}

/// Whether the owner itself reports that Git differs from what runs for
/// the target: Argo CD keeps comparing while automated sync is off (the
/// target's entry in `status.resources`, else the Application's
/// `status.sync.status`: OutOfSync). Flux does not look while suspended,
/// so a Flux owner never reports it.
pub fn reports_git_differs(kind: GitOpsOwnerKind, obj: &Value, w: &Workload<'_>) -> bool {
    if kind != GitOpsOwnerKind::Application {
        return false;
    }
    let own = obj
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .and_then(|rs| {
            rs.iter().find(|r| {
                s(r, "/kind") == Some(w.kind.as_str())
                    && s(r, "/namespace").unwrap_or("") == w.namespace
                    && s(r, "/name") == Some(w.name)
            })
        })
        .and_then(|r| s(r, "/status"));
    own.or_else(|| s(obj, "/status/sync/status")) == Some("OutOfSync")
}

/// Whether an Argo CD sync is under way (`operation`, or an operation
/// state Running): turning automated sync off does not stop it, and it
/// would apply Git over the step.
pub fn sync_running(kind: GitOpsOwnerKind, obj: &Value) -> bool {
    kind == GitOpsOwnerKind::Application
        && (obj.get("operation").is_some_and(|o| !o.is_null())
            || s(obj, "/status/operationState/phase") == Some("Running"))
}

/// The parent that manages an Argo CD Application and would put its
/// `syncPolicy` back (an ApplicationSet; an app-of-apps Application), so
/// that pausing the child would not hold.
pub fn managed_by_parent(kind: GitOpsOwnerKind, obj: &Value) -> Option<String> {
    if kind != GitOpsOwnerKind::Application {
        return None;
    }
    let set = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|os| {
            os.iter()
                .find(|o| s(o, "/kind") == Some("ApplicationSet"))
                .map(|o| format!("ApplicationSet {}", s(o, "/name").unwrap_or("?")))
        });
    set.or_else(|| {
        let parent = obj
            .pointer("/metadata/labels")
            .and_then(|l| l.get(ARGOCD_INSTANCE_LABEL))
            .and_then(Value::as_str)
            .or_else(|| {
                obj.pointer("/metadata/annotations")
                    .and_then(|a| a.get(ARGOCD_TRACKING_ANNOTATION))
                    .and_then(Value::as_str)
                    .and_then(|t| t.split(':').next())
            })?;
        Some(format!("the Argo CD Application {parent} (app of apps)"))
    })
}

/// Whether the governing Runbook may pause an owner in `owner_ns`: one in
/// its own namespace, or any when it is a cluster-wide Runbook (kept in
/// the operator's namespace by whoever runs the platform). A namespace's
/// Runbook never pauses a shared owner that also applies other namespaces.
pub fn may_pause(
    owner: &GitOpsOwner,
    runbook: Option<(&str, &str)>,
    operator_ns: Option<&str>,
) -> Result<(), String> {
    match runbook {
        Some((ns, _)) if ns == owner.namespace => Ok(()),
        Some((ns, _)) if Some(ns) == operator_ns => Ok(()),
        Some((ns, name)) => Err(format!(
            "{owner} is in namespace {}, and Runbook {ns}/{name} may pause only owners in its own namespace (a cluster-wide Runbook in the operator's namespace may pause any): not acting",
            owner.namespace
        )),
        None => Err(format!("no Runbook governs the target, so nothing may pause {owner}")),
    }
}

/// What a step does about a GitOps-owned target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stance {
    /// Pause the owner first.
    Suspend,
    /// Act without touching the owner.
    Ignore,
    /// Do not act; the reason is the step's message.
    Refuse(String),
}

/// The Runbook policy applied to an owner; `enabled`: the operator runs
/// with GitOps support (`--gitops`), without which it cannot pause one.
pub fn stance(mode: GitOpsMode, owner: &GitOpsOwner, enabled: bool) -> Stance {
    match mode {
        GitOpsMode::Ignore => Stance::Ignore,
        GitOpsMode::Refuse => Stance::Refuse(format!(
            "the target is applied from Git by {owner} (named by its {}), and the Runbook's gitOps.policy is Refuse: kube-incident does not change what its GitOps owner would put back; change it in Git, or a person acts",
            owner.via
        )),
        GitOpsMode::Suspend if !enabled => Stance::Refuse(format!(
            "the target is applied from Git by {owner} (named by its {}); the Runbook's gitOps.policy is Suspend, but the operator runs without GitOps support (--gitops, chart value gitops.enabled), so it cannot pause the owner and does not act (set gitOps.policy: Ignore for an owner that does not self-heal)",
            owner.via
        )),
        GitOpsMode::Suspend => Stance::Suspend,
    }
}

/// A pod template (or any spec) flattened to `path: value` leaves.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                // Containers, env vars and ports are keyed by name.
                let k = x
                    .get("name")
                    .and_then(Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_string);
                flatten(&format!("{prefix}[{k}]"), x, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// At most this many lines of difference are recorded.
pub const MAX_DIFF_LINES: usize = 20;

/// What differs between Git (`git`: the state the owner applies) and what
/// the step makes run (`running`), one `path: git → running` line per
/// leaf, at most [`MAX_DIFF_LINES`].
pub fn diff(git: &Value, running: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", git, &mut a);
    flatten("", running, &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    let mut more = 0;
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            continue;
        }
        if out.len() == MAX_DIFF_LINES {
            more += 1;
            continue;
        }
        out.push(format!(
            "{k}: {} (Git) → {} (running)",
            x.map_or(ABSENT, String::as_str),
            y.map_or(ABSENT, String::as_str)
        ));
    }
    if more > 0 {
        out.push(format!("… and {more} more"));
    }
    out
}

#[cfg(test)]
#[path = "gitops_tests.rs"]
mod tests;

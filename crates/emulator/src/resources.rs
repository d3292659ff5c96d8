//! The table of served resources: the built-in kinds plus the custom
//! resources of every installed CRD.

use serde_json::{json, Value};

/// Where `/scale` reads and writes replicas (JSON paths split on `.`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDef {
    /// e.g. `spec.replicas`.
    pub spec_replicas_path: String,
    /// e.g. `status.replicas`.
    pub status_replicas_path: String,
    /// e.g. `status.selector` for CRDs; `None` for built-ins (selector
    /// rendered from `spec.selector`).
    pub label_selector_path: Option<String>,
}

/// One served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: String,
    /// Served versions; the first one is the preferred/storage version.
    pub versions: Vec<String>,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment`.
    pub singular: String,
    /// Namespaced or cluster scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Categories (`all`, ...).
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub has_status: bool,
    /// Has a `/scale` subresource.
    pub scale: Option<ScaleDef>,
    /// Built-in (strategic merge patch accepted) vs custom resource.
    pub builtin: bool,
    /// Sets and bumps `metadata.generation`.
    pub tracks_generation: bool,
    /// Field selector labels accepted besides `metadata.name`/`metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// CRD validation schema (`openAPIV3Schema`) per version.
    pub schemas: Vec<(String, Value)>,
    /// CRD `additionalPrinterColumns` of the storage version.
    pub printer_columns: Vec<Value>,
}

impl ResourceDef {
    /// `group/version` or `version` for core.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }
    /// The storage (first) version.
    pub fn storage_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }
    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
    /// The schema of a version (CRDs).
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, s)| s)
    }
    /// Whether a field selector label is supported.
    pub fn field_supported(&self, field: &str) -> bool {
        field == "metadata.name"
            || (field == "metadata.namespace")
            || self.selectable_fields.iter().any(|f| f == field)
    }
    /// The value of a selectable field in an object (`""` when absent).
    pub fn field_value(&self, obj: &Value, field: &str) -> String {
        let mut cur = obj;
        for part in field.split('.') {
            match cur.get(part) {
                Some(v) => cur = v,
                None => return String::new(),
            }
        }
        match cur {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }
    /// Whether an annotation change bumps `metadata.generation` too: the
    /// Deployment strategy does so because the deployment controller copies
    /// annotations to ReplicaSets (label changes do not).
    pub fn annotations_bump_generation(&self) -> bool {
        self.builtin && self.group == "apps" && self.kind == "Deployment"
    }
    /// The `metadata` fields a write to the `status` subresource may not
    /// change (kube-apiserver's per-kind status strategies; server-owned
    /// metadata such as uid or generation is never writable). The others
    /// (labels, annotations, finalizers, ownerReferences) are taken from the
    /// request, as for the main resource.
    pub fn status_keeps_metadata(&self) -> &'static [&'static str] {
        if !self.builtin {
            // Custom resources: the status strategy copies the old object
            // and sets only `status`.
            return &["labels", "annotations", "finalizers", "ownerReferences"];
        }
        match (self.group.as_str(), self.kind.as_str()) {
            ("apps", "Deployment") => &["labels"],
            ("", "Pod") => &["ownerReferences"],
            _ => &[],
        }
    }
    /// The `APIResource` entries (main resource + subresources) for discovery.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let verbs = json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]);
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        if self.builtin {
            main["storageVersionHash"] = json!(storage_hash(&self.group, &self.kind));
        }
        let mut out = vec![main];
        if self.has_status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "",
                "namespaced": self.namespaced, "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.scale.is_some() {
            out.push(
                json!({"name": format!("{}/scale", self.plural), "singularName": "",
                "namespaced": self.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"]}),
            );
        }
        if self.plural == "pods" && self.group.is_empty() {
            out.push(
                json!({"name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"]}),
            );
        }
        out
    }
}

fn storage_hash(group: &str, kind: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{group}/{kind}").as_bytes());
    let h = hex::encode(&d[..8]);
    h.chars().take(11).collect()
}

struct B<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    plural: &'a str,
    namespaced: bool,
    short: &'a [&'a str],
    status: bool,
    scale: bool,
    generation: bool,
    fields: &'a [&'a str],
    all: bool,
}

fn build(b: B<'_>) -> ResourceDef {
    ResourceDef {
        group: b.group.to_string(),
        versions: vec![b.version.to_string()],
        kind: b.kind.to_string(),
        plural: b.plural.to_string(),
        singular: b.kind.to_lowercase(),
        namespaced: b.namespaced,
        short_names: b.short.iter().map(|s| s.to_string()).collect(),
        categories: if b.all {
            vec!["all".to_string()]
        } else {
            vec![]
        },
        has_status: b.status,
        scale: b.scale.then(|| ScaleDef {
            spec_replicas_path: "spec.replicas".to_string(),
            status_replicas_path: "status.replicas".to_string(),
            label_selector_path: None,
        }),
        builtin: true,
        tracks_generation: b.generation,
        selectable_fields: b.fields.iter().map(|s| s.to_string()).collect(),
        schemas: vec![],
        printer_columns: vec![],
    }
}

/// The built-in resources served by the emulator.
pub fn builtin() -> Vec<ResourceDef> {
    let ev_fields: &[&str] = &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    let d = |group,
             version,
             kind,
             plural,
             namespaced,
             short,
             status,
             scale,
             generation,
             fields,
             all| {
        build(B {
            group,
            version,
            kind,
            plural,
            namespaced,
            short,
            status,
            scale,
            generation,
            fields,
            all,
        })
    };
    vec![
        d(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &["ns"],
            true,
            false,
            false,
            &["status.phase"],
            false,
        ),
        d(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            &["po"],
            true,
            false,
            // Pods have a generation since v1.33 (PodObservedGenerationTracking).
            true,
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            true,
        ),
        d(
            "",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            false,
            false,
            ev_fields,
            false,
        ),
        d(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            false,
            false,
            &[],
            false,
        ),
        d(
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            &[],
            false,
            false,
            false,
            &["type"],
            false,
        ),
        d(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
            false,
            false,
            &[],
            false,
        ),
        d(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            true,
            true,
            &[],
            true,
        ),
        d(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            true,
            true,
            true,
            &["status.replicas"],
            true,
        ),
        // Stored and served without a controller: what the operator watches
        // and patches. Their controllers run on the real server only.
        d(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            true,
            true,
            true,
            &[],
            true,
        ),
        d(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            &["ds"],
            true,
            false,
            true,
            &[],
            true,
        ),
        d(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
            &[],
            false,
            false,
            false,
            &[],
            false,
        ),
        d(
            "batch",
            "v1",
            "Job",
            "jobs",
            true,
            &[],
            true,
            false,
            true,
            &["status.successful"],
            true,
        ),
        d(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            &["cj"],
            true,
            false,
            true,
            &[],
            true,
        ),
        d(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            false,
            false,
            &[],
            false,
        ),
        d(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            false,
            false,
            &[],
            false,
        ),
        d(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            true,
            false,
            // kube-apiserver's HPA strategy never sets `metadata.generation`.
            false,
            &[],
            true,
        ),
        d(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            false,
            true,
            &[],
            false,
        ),
    ]
}

/// Preferred version per built-in group (for `/apis`), in discovery order.
pub fn builtin_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("apps", vec!["v1"]),
        ("events.k8s.io", vec!["v1"]),
        ("autoscaling", vec!["v2"]),
        ("coordination.k8s.io", vec!["v1"]),
        ("apiextensions.k8s.io", vec!["v1"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let defs = builtin();
        let deploy = defs
            .iter()
            .find(|d| d.plural == "deployments")
            .map(|d| d.discovery_entries());
        let entries = deploy.unwrap_or_default();
        let names: Vec<&str> = entries.iter().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(
            names,
            vec!["deployments", "deployments/status", "deployments/scale"]
        );
        let pods = defs.iter().find(|d| d.plural == "pods");
        assert!(
            pods.is_some_and(|p| p.field_supported("status.phase") && !p.field_supported("spec.x"))
        );
        // As kube-apiserver v1.36 does (checked against the real server):
        // generation on workloads, Pods and CRDs; none on HPAs, ConfigMaps,
        // Secrets, ServiceAccounts, Namespaces, Events or Leases.
        let tracks: Vec<(&str, &str, bool)> = defs
            .iter()
            .map(|d| (d.group.as_str(), d.plural.as_str(), d.tracks_generation))
            .collect();
        for (group, plural, want) in [
            ("apps", "deployments", true),
            ("apps", "replicasets", true),
            ("", "pods", true),
            ("apiextensions.k8s.io", "customresourcedefinitions", true),
            ("autoscaling", "horizontalpodautoscalers", false),
            ("", "configmaps", false),
            ("", "secrets", false),
            ("", "serviceaccounts", false),
            ("", "namespaces", false),
            ("", "events", false),
            ("events.k8s.io", "events", false),
            ("coordination.k8s.io", "leases", false),
        ] {
            assert!(
                tracks.contains(&(group, plural, want)),
                "{group}/{plural} generation {want}"
            );
        }
    }
}

//! Every Kubernetes API permission the operator uses, in one list. The Helm
//! chart's RBAC rules must grant exactly these (a test compares them); code
//! that adds an API call adds its permission here.

/// One permission: verbs on resources of an API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Plural resource, with `/subresource` where needed.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Why the operator needs it (shown in the README's permission table).
    pub why: &'static str,
}

/// The operator's permissions in the namespaces it watches (namespaced
/// mode grants these per namespace with a Role).
pub const NAMESPACED: &[Permission] = &[
    Permission {
        group: "kubeincident.io",
        resource: "incidents",
        verbs: &["get", "list", "watch", "create", "patch"],
        why: "read Incidents, open them (detector), reopen them (remove spec.resolution)",
    },
    Permission {
        group: "kubeincident.io",
        resource: "incidents/status",
        verbs: &["patch"],
        why: "write Incident status (server-side apply)",
    },
    Permission {
        group: "kubeincident.io",
        resource: "runbooks",
        verbs: &["get", "list", "watch"],
        why: "read policy",
    },
    Permission {
        group: "kubeincident.io",
        resource: "runbooks/status",
        verbs: &["patch"],
        why: "write Runbook status (Ready, matchedWorkloads, lastTriggeredAt)",
    },
    Permission {
        group: "",
        resource: "pods",
        verbs: &["get", "list", "watch"],
        why: "detect unhealthy pods; observe a Pod target",
    },
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "list", "watch"],
        why: "detect unhealthy Deployments; observe a Deployment target",
    },
    Permission {
        group: "apps",
        resource: "replicasets",
        verbs: &["list", "watch"],
        why: "attribute pods to their Deployment (metadata only)",
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        why: "publish Events on Incidents",
    },
];

/// Cluster-scoped permissions (cluster-wide mode only).
pub const CLUSTER: &[Permission] = &[Permission {
    group: "",
    resource: "namespaces",
    verbs: &["list", "watch"],
    why: "honour the ignore label and Runbook namespaceSelectors (metadata only)",
}];

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
        verbs: &["get", "list", "watch", "delete"],
        why: "detect unhealthy pods; observe a Pod target; DeletePods mitigations (pods of a StatefulSet or DaemonSet not on its update revision, with a uid and resourceVersion precondition)",
    },
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "list", "watch", "patch"],
        why: "detect unhealthy Deployments; observe a Deployment target; run mitigations (JSON patches: rollout undo, scale, env, restart)",
    },
    Permission {
        group: "apps",
        resource: "statefulsets",
        verbs: &["get", "list", "watch", "patch"],
        why: "detect stuck StatefulSet rollouts; observe a StatefulSet target; run mitigations (rollout undo, scale, env, restart)",
    },
    Permission {
        group: "apps",
        resource: "daemonsets",
        verbs: &["get", "list", "watch", "patch"],
        why: "detect stuck DaemonSet rollouts; observe a DaemonSet target; run mitigations (rollout undo, env, restart)",
    },
    Permission {
        group: "apps",
        resource: "controllerrevisions",
        verbs: &["list"],
        why: "the rollout history of StatefulSets and DaemonSets (RolloutUndo picks the revision to go back to)",
    },
    Permission {
        group: "batch",
        resource: "jobs",
        verbs: &["get", "list", "watch"],
        why: "detect failed Jobs; attribute Job pods to their CronJob",
    },
    Permission {
        group: "batch",
        resource: "cronjobs",
        verbs: &["get", "list", "watch", "patch"],
        why: "detect CronJobs whose Jobs keep failing; Suspend mitigations (spec.suspend)",
    },
    Permission {
        group: "autoscaling",
        resource: "horizontalpodautoscalers",
        verbs: &["get", "list", "patch"],
        why: "Scale mitigations on a Deployment an HPA manages: raise (and on revert restore) its minReplicas",
    },
    Permission {
        group: "apps",
        resource: "replicasets",
        verbs: &["list", "watch"],
        why: "attribute pods to their Deployment (metadata only); find the revision to roll back to (RolloutUndo)",
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        why: "publish Events on Incidents",
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        why: "read notification sink URLs (Runbook notify[].urlSecretRef) at send time",
    },
    Permission {
        group: "",
        resource: "configmaps",
        verbs: &["create", "patch"],
        why: "write the evidence and post-mortem ConfigMaps owned by an Incident (server-side apply)",
    },
    Permission {
        group: "",
        resource: "pods/log",
        verbs: &["get"],
        why: "evidence: the tail of the previous container's logs of failing pods",
    },
    Permission {
        group: "",
        resource: "events",
        verbs: &["list"],
        why: "evidence: recent Events of the failing pods and the Deployment",
    },
];

/// Reading the admission policies (cluster-scoped) that verify approvals.
const READ_POLICIES: Permission = Permission {
    group: "admissionregistration.k8s.io",
    resource: "validatingadmissionpolicies",
    verbs: &["get", "list", "watch"],
    why: "check that the verified-approvals admission policy is installed as this version generates it (admission::check_installed)",
};

/// Reading the bindings of those policies.
const READ_POLICY_BINDINGS: Permission = Permission {
    group: "admissionregistration.k8s.io",
    resource: "validatingadmissionpolicybindings",
    verbs: &["get", "list", "watch"],
    why: "check that the admission policy is bound and denies (admission::check_installed)",
};

/// Cluster-scoped permissions (cluster-wide mode; [`POLICY_READ`] is the
/// part namespaced mode grants too).
pub const CLUSTER: &[Permission] = &[
    Permission {
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        why: "honour the ignore label and Runbook namespaceSelectors (metadata only)",
    },
    READ_POLICIES,
    READ_POLICY_BINDINGS,
];

/// In namespaced mode, the only cluster-scoped grant: reading the admission
/// policies (a ClusterRole of its own), so the operator can tell whether
/// approvals are verified. Cluster-wide mode has these through [`CLUSTER`].
pub const POLICY_READ: &[Permission] = &[READ_POLICIES, READ_POLICY_BINDINGS];

/// Why the operator needs [`GITOPS`] (one reason for the three owner kinds).
const GITOPS_WHY: &str = "GitOps support (--gitops): read the owner of a target; suspend its automation before a mitigation and restore it after (spec.suspend / spec.syncPolicy.automated)";

/// GitOps support (`--gitops`, off by default): the owners of a target,
/// Argo CD Applications and Flux Kustomizations and HelmReleases. They live
/// in other namespaces than the workloads (Applications in the Argo CD
/// namespace), so the chart grants these cluster-wide (a ClusterRole of
/// their own) in both modes, and only with `gitops.enabled`.
pub const GITOPS: &[Permission] = &[
    Permission {
        group: "argoproj.io",
        resource: "applications",
        verbs: &["get", "patch"],
        why: GITOPS_WHY,
    },
    Permission {
        group: "kustomize.toolkit.fluxcd.io",
        resource: "kustomizations",
        verbs: &["get", "patch"],
        why: GITOPS_WHY,
    },
    Permission {
        group: "helm.toolkit.fluxcd.io",
        resource: "helmreleases",
        verbs: &["get", "patch"],
        why: GITOPS_WHY,
    },
];

/// In the operator's own namespace, when leader election is on (a Role
/// there, in both modes).
pub const LEADER_ELECTION: &[Permission] = &[Permission {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["get", "create", "update"],
    why: "leader election (--leader-elect): create, read, renew and release the Lease",
}];

/// In the operator's own namespace in namespaced mode when it is not one of
/// the watched namespaces: the Runbooks kept there apply to the watched
/// namespaces (namespaceSelector). Cluster-wide mode has these through
/// [`NAMESPACED`].
pub const OPERATOR_RUNBOOKS: &[Permission] = &[
    Permission {
        group: "kubeincident.io",
        resource: "runbooks",
        verbs: &["get", "list", "watch"],
        why: "read the cluster-wide Runbooks in the operator's namespace",
    },
    Permission {
        group: "kubeincident.io",
        resource: "runbooks/status",
        verbs: &["patch"],
        why: "write the status of those Runbooks",
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        why: "read the Alertmanager intake's bearer token Secret (--alertmanager-token-secret) kept in the operator's namespace",
    },
];

{{- /*
GENERATED from src/rbac.rs: do not edit. After changing src/rbac.rs run
  KUBE_INCIDENT_REGENERATE=1 cargo test --test suite rbac::
*/ -}}

{{- define "kube-incident.rules.namespaced" }}
# read Incidents, open them (detector), reopen them (remove spec.resolution)
- apiGroups: ["kubeincident.io"]
  resources: ["incidents"]
  verbs: ["get", "list", "watch", "create", "patch"]
# write Incident status (server-side apply)
- apiGroups: ["kubeincident.io"]
  resources: ["incidents/status"]
  verbs: ["patch"]
# read policy
- apiGroups: ["kubeincident.io"]
  resources: ["runbooks"]
  verbs: ["get", "list", "watch"]
# write Runbook status (Ready, matchedWorkloads, lastTriggeredAt)
- apiGroups: ["kubeincident.io"]
  resources: ["runbooks/status"]
  verbs: ["patch"]
# detect unhealthy pods; observe a Pod target; DeletePods mitigations (pods of a StatefulSet or DaemonSet not on its update revision, with a uid and resourceVersion precondition)
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
# detect unhealthy Deployments; observe a Deployment target; run mitigations (JSON patches: rollout undo, scale, env, restart)
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
# detect stuck StatefulSet rollouts; observe a StatefulSet target; run mitigations (rollout undo, scale, env, restart)
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "patch"]
# detect stuck DaemonSet rollouts; observe a DaemonSet target; run mitigations (rollout undo, env, restart)
- apiGroups: ["apps"]
  resources: ["daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
# the rollout history of StatefulSets and DaemonSets (RolloutUndo picks the revision to go back to)
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["list"]
# detect failed Jobs; attribute Job pods to their CronJob
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch"]
# detect CronJobs whose Jobs keep failing; Suspend mitigations (spec.suspend)
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "patch"]
# Scale mitigations on a Deployment an HPA manages: raise (and on revert restore) its minReplicas
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "patch"]
# attribute pods to their Deployment (metadata only); find the revision to roll back to (RolloutUndo)
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
# publish Events on Incidents
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# read notification sink URLs (Runbook notify[].urlSecretRef) at send time
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# write the evidence and post-mortem ConfigMaps owned by an Incident (server-side apply)
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch"]
# evidence: the tail of the previous container's logs of failing pods
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# evidence: recent Events of the failing pods and the Deployment
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end }}

{{- define "kube-incident.rules.cluster" }}
# honour the ignore label and Runbook namespaceSelectors (metadata only)
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
# check that the verified-approvals admission policy is installed as this version generates it (admission::check_installed)
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingadmissionpolicies"]
  verbs: ["get", "list", "watch"]
# check that the admission policy is bound and denies (admission::check_installed)
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingadmissionpolicybindings"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "kube-incident.rules.leaderElection" }}
# leader election (--leader-elect): create, read, renew and release the Lease
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}

{{- define "kube-incident.rules.operatorRunbooks" }}
# read the cluster-wide Runbooks in the operator's namespace
- apiGroups: ["kubeincident.io"]
  resources: ["runbooks"]
  verbs: ["get", "list", "watch"]
# write the status of those Runbooks
- apiGroups: ["kubeincident.io"]
  resources: ["runbooks/status"]
  verbs: ["patch"]
# read the Alertmanager intake's bearer token Secret (--alertmanager-token-secret) kept in the operator's namespace
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}

{{- define "kube-incident.rules.policyRead" }}
# check that the verified-approvals admission policy is installed as this version generates it (admission::check_installed)
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingadmissionpolicies"]
  verbs: ["get", "list", "watch"]
# check that the admission policy is bound and denies (admission::check_installed)
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingadmissionpolicybindings"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "kube-incident.rules.gitops" }}
# GitOps support (--gitops): read the owner of a target; suspend its automation before a mitigation and restore it after (spec.suspend / spec.syncPolicy.automated)
- apiGroups: ["argoproj.io"]
  resources: ["applications"]
  verbs: ["get", "patch"]
# GitOps support (--gitops): read the owner of a target; suspend its automation before a mitigation and restore it after (spec.suspend / spec.syncPolicy.automated)
- apiGroups: ["kustomize.toolkit.fluxcd.io"]
  resources: ["kustomizations"]
  verbs: ["get", "patch"]
# GitOps support (--gitops): read the owner of a target; suspend its automation before a mitigation and restore it after (spec.suspend / spec.syncPolicy.automated)
- apiGroups: ["helm.toolkit.fluxcd.io"]
  resources: ["helmreleases"]
  verbs: ["get", "patch"]
{{- end }}

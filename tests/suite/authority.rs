//! Authority: power flows only from Runbooks. A user who can write an
//! Incident cannot make kube-incident change a workload the governing
//! Runbook does not let it change; a tenant's Runbook never shadows a
//! cluster-wide one; a cluster-wide dry-run writes nothing. Workload writes
//! are counted from the API server's audit log (the emulator's write log).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::detection::deployment;
use crate::harness::{Cluster, RunningOperator};
use kube_incident::api::{Incident, IncidentStatus, StepState};
use testkit::incidents::{create_runbook, incident, wait_status};

const WAIT: Duration = Duration::from_secs(60);

fn step(s: &IncidentStatus, i: usize) -> (StepState, String) {
    s.mitigations
        .get(i)
        .map(|m| (m.state, m.message.clone()))
        .unwrap_or_default()
}

fn condition<'a>(s: &'a IncidentStatus, type_: &str) -> Option<(&'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.message.as_str()))
}

/// A client for the user mallory bound (in `ns`) to a Role that allows
/// Incidents and nothing else; `None` on the emulator.
async fn tenant_client(cluster: &Cluster, ns: &str) -> Option<kube::Client> {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    if cluster.is_emulator() {
        return None;
    }
    let path = crate::admission::user_kubeconfig("mallory")?;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "incident-writer"},
        "rules": [{"apiGroups": ["kubeincident.io"], "resources": ["incidents"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(cluster.client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "mallory-incident-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "incident-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(cluster.client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let client = crate::admission::client_for(&path).await;
    // What `kubectl auth can-i patch deployments` asks: no.
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {"group": "apps", "resource": "deployments",
                                        "verb": "patch", "namespace": ns}}
    }))
    .unwrap();
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    assert!(
        !answer.status.is_some_and(|s| s.allowed),
        "mallory must not be able to patch deployments"
    );
    Some(client)
}

/// The three attacks of a tenant who may only write Incidents, and the
/// parameters a Runbook bounds: every one ends without a Deployment write.
#[tokio::test]
async fn incident_writers_cannot_borrow_the_operators_power() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ns = cluster.namespace("authority").await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("web", 2, "healthy"))
        .await
        .unwrap();
    // On a real API server the tenant is the user mallory, who may write
    // Incidents in this namespace and nothing else (`kubectl auth can-i
    // patch deployments` says no); on the emulator (no users), the admin.
    let api: Api<Incident> = match tenant_client(&cluster, &ns).await {
        Some(c) => Api::namespaced(c, &ns),
        None => Api::namespaced(cluster.client.clone(), &ns),
    };
    // Approvals are not verified (no admission policy in this test), and
    // the operator does not accept unverified ones.
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--accept-unverified-approvals=false"],
    )
    .await;

    // 1. No Runbook at all: an Automatic SetEnv of the tenant's own.
    api.create(
        &PostParams::default(),
        &incident(
            "pwn",
            json!({"title": "x", "severity": "SEV3",
                   "target": {"kind": "Deployment", "name": "web"},
                   "mitigations": [{"name": "flag", "action": "SetEnv", "approval": "Automatic",
                                    "env": [{"name": "FOO", "value": "pwned"}]}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "pwn", WAIT, "refused", |s| {
        step(s, 0).0 == StepState::Refused
    })
    .await;
    assert!(
        step(&s, 0).1.contains("no Runbook governs Deployment web"),
        "{:?}",
        step(&s, 0)
    );
    let (status, message) = condition(&s, "MitigationRefused").expect("condition");
    assert_eq!(status, "True");
    assert!(message.contains("\"flag\""), "{message}");

    // The platform team's Runbook: Manual steps with bounds.
    create_runbook(
        &cluster.client,
        &ns,
        "web",
        json!({"selector": {"matchLabels": {"app": "web"}}, "mitigations": [
            {"name": "capacity", "action": "Scale", "replicas": 3, "maxReplicas": 4},
            {"name": "restart", "action": "RolloutRestart"},
            {"name": "flag", "action": "SetEnv", "env": [{"name": "FEATURE_X", "value": "off"}]},
            {"name": "rollback", "action": "RolloutUndo"}
        ]}),
    )
    .await;

    // 2. A Manual step flipped to Automatic stays Manual.
    api.create(
        &PostParams::default(),
        &incident(
            "flip",
            json!({"title": "x", "severity": "SEV3",
                   "target": {"kind": "Deployment", "name": "web"},
                   "mitigations": [{"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    wait_status(&api, "flip", WAIT, "awaits approval", |s| {
        step(s, 0).0 == StepState::AwaitingApproval
    })
    .await;

    // 3. A forged approval (no admission policy verified it) is not honoured.
    api.create(
        &PostParams::default(),
        &incident(
            "forged",
            json!({"title": "x", "severity": "SEV3",
                   "target": {"kind": "Deployment", "name": "web"},
                   "mitigations": [{"name": "capacity", "action": "Scale", "replicas": 4,
                                    "approvedBy": "alice"}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "forged", WAIT, "approval not honoured", |s| {
        condition(s, "ApprovalsVerified").is_some_and(|(st, _)| st == "False")
    })
    .await;
    assert_eq!(step(&s, 0).0, StepState::AwaitingApproval);
    assert!(step(&s, 0).1.contains("not honoured"), "{:?}", step(&s, 0));

    // 4. Parameters beyond the Runbook's bounds are refused, naming them.
    for (name, m, expect) in [
        (
            "too-big",
            json!({"name": "capacity", "action": "Scale", "replicas": 50, "approval": "Automatic"}),
            "replicas 50 is outside",
        ),
        (
            "node-options",
            json!({"name": "flag", "action": "SetEnv", "approval": "Automatic",
                   "env": [{"name": "NODE_OPTIONS", "value": "--require /tmp/x"}]}),
            "variables NODE_OPTIONS are not listed",
        ),
        (
            "old-revision",
            json!({"name": "rollback", "action": "RolloutUndo", "toRevision": 1, "approval": "Automatic"}),
            "allowExplicitRevision",
        ),
        (
            "unknown-step",
            json!({"name": "nuke", "action": "Scale", "replicas": 0, "approval": "Automatic"}),
            "has no mitigation named \"nuke\"",
        ),
    ] {
        api.create(
            &PostParams::default(),
            &incident(
                name,
                json!({"title": "x", "severity": "SEV3",
                       "target": {"kind": "Deployment", "name": "web"},
                       "mitigations": [m]}),
            ),
        )
        .await
        .unwrap();
        let s = wait_status(&api, name, WAIT, "refused", |s| {
            step(s, 0).0 == StepState::Refused
        })
        .await;
        assert!(step(&s, 0).1.contains(expect), "{name}: {:?}", step(&s, 0));
    }
    // Let any wrongly started step show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.assert_writes(&ns, "deployments", 0);
    op.stop().await.unwrap();
}

/// A cluster-wide Runbook (operator namespace, namespaceSelector) governs
/// the tenant's Deployment: its `dryRun: true` holds, and a Runbook the
/// tenant creates with the same name and steps cannot be borrowed.
#[tokio::test]
async fn a_tenant_runbook_never_shadows_a_cluster_wide_dry_run() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    let ops = cluster.namespace("ops").await;
    let ns = cluster.namespace("tenant").await;
    Api::<Namespace>::all(cluster.client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "prod"}}})),
        )
        .await
        .unwrap();
    create_runbook(
        &cluster.client,
        &ops,
        "platform",
        json!({"selector": {}, "namespaceSelector": {},
               "dryRun": true,
               "mitigations": [{"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]}),
    )
    .await;
    // The tenant's own Runbook, same name, acting for real.
    create_runbook(
        &cluster.client,
        &ns,
        "platform",
        json!({"selector": {},
               "mitigations": [{"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]}),
    )
    .await;
    let deps: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deps.create(&PostParams::default(), &deployment("web", 2, "healthy"))
        .await
        .unwrap();
    let op = RunningOperator::start(
        &cluster.operator_client,
        &ns,
        &["--detect=false", "--operator-namespace", &ops],
    )
    .await;
    let api: Api<Incident> = Api::namespaced(cluster.client.clone(), &ns);
    // Governed by the cluster-wide Runbook: planned and recorded, never applied.
    api.create(
        &PostParams::default(),
        &incident(
            "planned",
            json!({"title": "x", "severity": "SEV3",
                   "target": {"kind": "Deployment", "name": "web"},
                   "mitigations": [{"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "planned", WAIT, "dry-run recorded", |s| {
        s.mitigations
            .first()
            .is_some_and(|m| m.state.is_final() || m.message.contains("dry-run"))
    })
    .await;
    let m = &s.mitigations[0];
    assert!(
        m.message.contains("dry-run") || m.intent.contains_key("dryRun"),
        "{m:?}"
    );
    assert!(m.message.contains(&format!("{ops}/platform")) || m.state != StepState::Refused);
    // Naming the tenant's same-named Runbook does not borrow its mandate.
    api.create(
        &PostParams::default(),
        &incident(
            "borrowed",
            json!({"title": "x", "severity": "SEV3",
                   "target": {"kind": "Deployment", "name": "web"},
                   "runbookRef": {"name": "platform"},
                   "mitigations": [{"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}]}),
        ),
    )
    .await
    .unwrap();
    let s = wait_status(&api, "borrowed", WAIT, "refused", |s| {
        step(s, 0).0 == StepState::Refused
    })
    .await;
    assert!(
        step(&s, 0)
            .1
            .contains(&format!("governed by Runbook {ops}/platform")),
        "{:?}",
        step(&s, 0)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.assert_writes(&ns, "deployments", 0);
    op.stop().await.unwrap();
}

//! GitOps-owned targets end to end (docs/gitops.md), with the Argo CD and
//! Flux CRDs installed and their controllers simulated by the test kit
//! (`testkit::gitops`: the Git state re-applied with the tool's field
//! manager while the owner is not paused). A bad revision is "pushed to
//! Git" (the simulated owner applies it); BadRollout opens the Incident and
//! the Runbook's Automatic RolloutUndo meets the Runbook's `gitOps` policy:
//! - Suspend (Flux Kustomization, restore OnResolve): the owner is paused
//!   first, the rollback sticks, the owner is given back on resolve;
//! - Suspend (Argo CD Application, restore Manual): automated sync is off
//!   until a person sets `spec.resumeGitOps`, then back as it was;
//! - Refuse (Flux HelmRelease): no Deployment write (audit log);
//! - Ignore (Flux Kustomization): the owner's self-heal is recorded as an
//!   external change naming `kustomize-controller`, never fought.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use kube_incident::api::{Incident, IncidentSource, StepState};
use kube_incident::core::conditions::get_condition;
use serde_json::json;

use crate::harness::{wait_for, Cluster, RunningOperator};
use testkit::fixtures::{available, deployment, template};
use testkit::gitops::{
    application, create_owner, get_owner, helm_release, install_gitops_crds, kustomization,
    OwnerKind, OwnerSpec, SimulatedOwner,
};
use testkit::incidents::{create_runbook, step_state, wait_incident, wait_status};

const WAIT: Duration = Duration::from_secs(120);
const GOOD: &str = "registry.example/web:v1";
const CONDITION: &str = "GitOpsSuspended";

/// Git's Deployment `web` in `ns`: 2 replicas, healthy on v1, or `bad`:
/// an image that cannot be pulled (v2).
fn git(ns: &str, bad: bool) -> Deployment {
    let mut d = deployment("web", 2, "healthy");
    d.metadata.namespace = Some(ns.to_string());
    if bad {
        let t = template("web", "registry.example/web:v2", "imagepull");
        if let Some(spec) = d.spec.as_mut() {
            spec.template = serde_json::from_value(t).expect("template");
        }
    }
    d
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn live(client: &Client, ns: &str) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get("web")
        .await
        .expect("deployment web")
}

/// A Runbook for `web` whose only step is an Automatic RolloutUndo, with
/// `gitOps` as given. The monitoring window leaves the test time to make
/// Git match before the resolution gives the owner back.
fn runbook(git_ops: serde_json::Value) -> serde_json::Value {
    let mut rb = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "mitigations": [{"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}],
        "monitoring": {"window": "20s"},
    });
    if !git_ops.is_null() {
        rb["gitOps"] = git_ops;
    }
    rb
}

/// The detector's Incident about `web`, once it exists.
async fn detected(client: &Client, ns: &str) -> Incident {
    wait_for(WAIT, || async {
        Api::<Incident>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|i| i.spec.source == IncidentSource::Detector)
    })
    .await
    .expect("the detector opens an Incident about web")
}

/// The test bed: CRDs (ours with the workload simulation, Argo CD's and
/// Flux's), a namespace, the owner created and its controller started on
/// the good Git state, `web` available, and the Runbook.
async fn setup(
    prefix: &str,
    owner: impl FnOnce(&str) -> kube::api::DynamicObject,
    kind: OwnerKind,
    name: &str,
    git_ops: serde_json::Value,
) -> Option<(Cluster, String, OwnerSpec, SimulatedOwner)> {
    let cluster = Cluster::with_crds(true).await?;
    install_gitops_crds(&cluster.client).await;
    let client = cluster.client.clone();
    let ns = cluster.namespace(prefix).await;
    create_owner(&client, &owner(&ns)).await;
    let spec = OwnerSpec::new(kind, &ns, name);
    let sim = SimulatedOwner::start(&client, spec.clone(), git(&ns, false)).await;
    available(&client, &ns, "web", 2, WAIT).await;
    create_runbook(&client, &ns, "web", runbook(git_ops)).await;
    Some((cluster, ns, spec, sim))
}

/// The operator started (with `args`), then the "git push" of the bad
/// revision (the owner's controller applies it), and the detector's
/// Incident about it: the operator, the owner's controller on the bad Git
/// state, the Incident and the Incidents API of `ns`.
async fn run_and_push_bad(
    cluster: &Cluster,
    ns: &str,
    spec: &OwnerSpec,
    sim: SimulatedOwner,
    args: &[&str],
) -> (RunningOperator, SimulatedOwner, Incident, Api<Incident>) {
    let client = &cluster.client;
    let op = RunningOperator::start(&cluster.operator_client, ns, args).await;
    sim.stop().await;
    let sim = SimulatedOwner::start(client, spec.clone(), git(ns, true)).await;
    let inc = detected(client, ns).await;
    (op, sim, inc, Api::namespaced(client.clone(), ns))
}

#[tokio::test]
async fn suspend_pauses_flux_first_the_rollback_sticks_and_flux_is_given_back_on_resolve() {
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-suspend",
        |ns| kustomization(ns, "apps", false),
        OwnerKind::Kustomization,
        "apps",
        json!({"policy": "Suspend"}),
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    let s = wait_status(
        &api,
        &inc.name_any(),
        WAIT,
        "rollback succeeded, Flux paused",
        |s| {
            step_state(s, 0) == Some(StepState::Succeeded)
                && get_condition(&s.conditions, CONDITION).is_some_and(|c| c.status == "True")
        },
    )
    .await;
    let owner = s.git_ops_owner.clone().expect("status.gitOpsOwner");
    assert_eq!(owner.to_string(), format!("Flux Kustomization {ns}/apps"));
    let step = &s.mitigations[0];
    assert_eq!(
        step.before.get("gitopsField").map(String::as_str),
        Some("spec.suspend")
    );
    assert_eq!(
        step.before.get("gitopsValue").map(String::as_str),
        Some("<absent>")
    );
    assert!(
        step.before
            .get("gitopsDiff")
            .is_some_and(|d| d.contains("nopull-v2") && d.contains(GOOD)),
        "the difference from Git names both images: {:?}",
        step.before
    );
    let ks = get_owner(&client, &spec).await;
    assert_eq!(ks.data["spec"]["suspend"], json!(true), "Flux is paused");
    // Flux, paused, leaves the rollback alone.
    sim.wait_passes(3).await;
    assert_eq!(
        image(&live(&client, &ns).await),
        GOOD,
        "the rollback sticks"
    );
    assert_eq!(
        sim.applies(),
        1,
        "the paused owner applied nothing after the bad push"
    );

    // A person makes Git match what runs; on resolve Flux is given back.
    sim.stop().await;
    let sim = SimulatedOwner::start(&client, spec.clone(), git(&ns, false)).await;
    let s = wait_status(
        &api,
        &inc.name_any(),
        WAIT,
        "resolved, Flux given back",
        |s| {
            s.resolved_at.is_some()
                && get_condition(&s.conditions, CONDITION).is_some_and(|c| c.reason == "Restored")
        },
    )
    .await;
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message.contains("gave Flux Kustomization")),
        "{:#?}",
        s.timeline
    );
    let ks = get_owner(&client, &spec).await;
    assert!(
        ks.data["spec"].get("suspend").is_none(),
        "spec.suspend removed again: {:?}",
        ks.data["spec"]
    );
    let after = api.get(&inc.name_any()).await.unwrap();
    assert!(
        after
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(|f| !f.iter().any(|x| x == "kubeincident.io/gitops-pause")),
        "no pause held, no finalizer: {:?}",
        after.metadata.finalizers
    );
    sim.wait_passes(3).await;
    assert_eq!(image(&live(&client, &ns).await), GOOD);
    assert_eq!(sim.applies(), 0, "Git matches what runs: nothing to apply");
    // The post-mortem asks to make Git match, with the difference.
    let pm = wait_for(WAIT, || async {
        let inc = api.get(&inc.name_any()).await.ok()?;
        let r = inc.status?.postmortem_ref?;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get(&r.name)
            .await
            .ok()?;
        cm.data?.get("postmortem.md").cloned()
    })
    .await
    .expect("the post-mortem draft");
    assert!(pm.contains("Make Git match what is running"), "{pm}");
    assert!(pm.contains("nopull-v2"), "{pm}");
    // One Deployment write by the operator: the rollback.
    cluster.assert_writes(&ns, "deployments", 1);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn suspend_turns_argocd_automated_sync_off_until_a_person_resumes_it() {
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-argocd",
        |ns| application(ns, "shop", ns, true),
        OwnerKind::Application,
        "shop",
        json!({"policy": "Suspend", "restore": "Manual"}),
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    let s = wait_status(
        &api,
        &inc.name_any(),
        WAIT,
        "resolved with Argo CD still paused",
        |s| {
            s.resolved_at.is_some()
                && get_condition(&s.conditions, CONDITION).is_some_and(|c| c.status == "True")
        },
    )
    .await;
    assert_eq!(
        s.git_ops_owner.as_ref().map(ToString::to_string),
        Some(format!("Argo CD Application {ns}/shop"))
    );
    let app = get_owner(&client, &spec).await;
    assert!(
        app.data["spec"]["syncPolicy"].get("automated").is_none(),
        "automated sync off: {:?}",
        app.data["spec"]
    );
    sim.wait_passes(3).await;
    assert_eq!(
        image(&live(&client, &ns).await),
        GOOD,
        "the rollback sticks"
    );

    // Git fixed; a person gives Argo CD back.
    sim.stop().await;
    let sim = SimulatedOwner::start(&client, spec.clone(), git(&ns, false)).await;
    api.patch(
        &inc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"resumeGitOps": true}})),
    )
    .await
    .unwrap();
    wait_status(&api, &inc.name_any(), WAIT, "Argo CD given back", |s| {
        get_condition(&s.conditions, CONDITION).is_some_and(|c| c.reason == "Restored")
    })
    .await;
    let app = get_owner(&client, &spec).await;
    assert_eq!(
        app.data["spec"]["syncPolicy"]["automated"],
        json!({"prune": true, "selfHeal": true}),
        "exactly the automated block it had"
    );
    sim.wait_passes(3).await;
    assert_eq!(image(&live(&client, &ns).await), GOOD);
    cluster.assert_writes(&ns, "deployments", 1);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn refuse_writes_nothing_and_names_the_owner() {
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-refuse",
        |ns| helm_release(ns, "web", ns),
        OwnerKind::HelmRelease,
        "web",
        json!({"policy": "Refuse"}),
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    let s = wait_status(&api, &inc.name_any(), WAIT, "the step refused", |s| {
        step_state(s, 0) == Some(StepState::Failed)
    })
    .await;
    let m = &s.mitigations[0].message;
    assert!(
        m.contains(&format!("Flux HelmRelease {ns}/web")) && m.contains("Refuse"),
        "{m}"
    );
    assert!(get_condition(&s.conditions, "MitigationFailed").is_some_and(|c| c.status == "True"));
    let hr = get_owner(&client, &spec).await;
    assert!(
        hr.data["spec"].get("suspend").is_none(),
        "the owner is untouched"
    );
    assert!(image(&live(&client, &ns).await).contains("nopull-v2"));
    cluster.assert_writes(&ns, "deployments", 0);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn ignore_acts_and_records_the_owner_putting_git_back() {
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-ignore",
        |ns| kustomization(ns, "apps", false),
        OwnerKind::Kustomization,
        "apps",
        json!({"policy": "Ignore"}),
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    let s = wait_status(
        &api,
        &inc.name_any(),
        WAIT,
        "the external change recorded",
        |s| step_state(s, 0) == Some(StepState::Failed),
    )
    .await;
    let m = &s.mitigations[0].message;
    assert!(
        m.starts_with("changed by another manager") && m.contains("kustomize-controller"),
        "{m}"
    );
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message.contains("not fighting it")),
        "{:#?}",
        s.timeline
    );
    let ks = get_owner(&client, &spec).await;
    assert!(
        ks.data["spec"].get("suspend").is_none(),
        "the owner is untouched"
    );
    // Not fought: one rollback, never repeated.
    sim.wait_passes(5).await;
    cluster.assert_writes(&ns, "deployments", 1);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn without_gitops_support_the_default_suspend_does_not_act() {
    // No `gitOps` in the Runbook: Suspend, the default.
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-off",
        |ns| kustomization(ns, "apps", false),
        OwnerKind::Kustomization,
        "apps",
        serde_json::Value::Null,
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &[]).await;
    let s = wait_status(&api, &inc.name_any(), WAIT, "the step refused", |s| {
        step_state(s, 0) == Some(StepState::Failed)
    })
    .await;
    let m = &s.mitigations[0].message;
    assert!(
        m.contains("--gitops") && m.contains(&format!("Flux Kustomization {ns}/apps")),
        "{m}"
    );
    assert_eq!(
        s.git_ops_owner.as_ref().map(|o| o.via.as_str()),
        Some("label kustomize.toolkit.fluxcd.io/name"),
        "the owner shows even without GitOps support"
    );
    let ks = get_owner(&client, &spec).await;
    assert!(
        ks.data["spec"].get("suspend").is_none(),
        "the owner is untouched"
    );
    cluster.assert_writes(&ns, "deployments", 0);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn on_resolve_argocd_stays_paused_while_git_differs_then_is_given_back() {
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-argo-wait",
        |ns| application(ns, "shop", ns, true),
        OwnerKind::Application,
        "shop",
        json!({"policy": "Suspend", "restore": "OnResolve"}),
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    // Resolved while Git still holds the bad revision: Argo CD reports
    // OutOfSync, so it is not given back (it would sync v2 again).
    wait_status(
        &api,
        &inc.name_any(),
        WAIT,
        "resolved, waiting for Git",
        |s| {
            s.resolved_at.is_some()
                && get_condition(&s.conditions, CONDITION)
                    .is_some_and(|c| c.reason == "WaitingForGit")
        },
    )
    .await;
    let app = get_owner(&client, &spec).await;
    assert!(app.data["spec"]["syncPolicy"].get("automated").is_none());
    assert_eq!(image(&live(&client, &ns).await), GOOD);
    // Git is made to match: Argo CD reports Synced and gets its automation back.
    sim.stop().await;
    let sim = SimulatedOwner::start(&client, spec.clone(), git(&ns, false)).await;
    wait_status(&api, &inc.name_any(), WAIT, "Argo CD given back", |s| {
        get_condition(&s.conditions, CONDITION).is_some_and(|c| c.reason == "Restored")
    })
    .await;
    let app = get_owner(&client, &spec).await;
    assert_eq!(
        app.data["spec"]["syncPolicy"]["automated"],
        json!({"prune": true, "selfHeal": true})
    );
    assert!(
        app.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("kubeincident.io/gitops-paused")),
        "the pause record is gone"
    );
    sim.wait_passes(3).await;
    assert_eq!(image(&live(&client, &ns).await), GOOD);
    cluster.assert_writes(&ns, "deployments", 1);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn a_namespace_runbook_does_not_pause_an_owner_in_another_namespace() {
    let Some(cluster) = Cluster::with_crds(true).await else {
        return;
    };
    install_gitops_crds(&cluster.client).await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("gitops-tenant").await;
    // The platform's Kustomization, in its own namespace, applies the
    // tenant's Deployment.
    let platform = cluster.namespace("gitops-platform").await;
    create_owner(&client, &kustomization(&platform, "tenants", false)).await;
    let spec = OwnerSpec::new(OwnerKind::Kustomization, &platform, "tenants");
    let sim = SimulatedOwner::start(&client, spec.clone(), git(&ns, false)).await;
    available(&client, &ns, "web", 2, WAIT).await;
    create_runbook(&client, &ns, "web", runbook(json!({"policy": "Suspend"}))).await;
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    let s = wait_status(&api, &inc.name_any(), WAIT, "the step refused", |s| {
        step_state(s, 0) == Some(StepState::Failed)
    })
    .await;
    let m = &s.mitigations[0].message;
    assert!(
        m.contains(&format!(
            "Runbook {ns}/web may pause only owners in its own namespace"
        )),
        "{m}"
    );
    let ks = get_owner(&client, &spec).await;
    assert!(
        ks.data["spec"].get("suspend").is_none(),
        "the platform's owner is untouched"
    );
    cluster.assert_writes(&ns, "deployments", 0);
    sim.stop().await;
    op.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_an_incident_that_holds_a_pause_gives_the_owner_back_first() {
    let Some((cluster, ns, spec, sim)) = setup(
        "gitops-delete",
        |ns| kustomization(ns, "apps", false),
        OwnerKind::Kustomization,
        "apps",
        json!({"policy": "Suspend", "restore": "Manual"}),
    )
    .await
    else {
        return;
    };
    let client = cluster.client.clone();
    let (op, sim, inc, api) = run_and_push_bad(&cluster, &ns, &spec, sim, &["--gitops"]).await;
    let held = wait_incident(&api, &inc.name_any(), WAIT, "Flux paused", |s| {
        get_condition(&s.conditions, CONDITION).is_some_and(|c| c.status == "True")
    })
    .await;
    assert!(
        held.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == "kubeincident.io/gitops-pause")),
        "the Incident carries the pause finalizer: {:?}",
        held.metadata.finalizers
    );
    assert_eq!(
        get_owner(&client, &spec).await.data["spec"]["suspend"],
        json!(true)
    );
    api.delete(&inc.name_any(), &Default::default())
        .await
        .unwrap();
    wait_for(WAIT, || async {
        api.get_opt(&inc.name_any())
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .expect("the Incident is deleted once its pause is let go");
    let ks = get_owner(&client, &spec).await;
    assert!(
        ks.data["spec"].get("suspend").is_none(),
        "Flux given back: {:?}",
        ks.data["spec"]
    );
    assert!(
        ks.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("kubeincident.io/gitops-paused")),
        "the pause record is gone"
    );
    sim.stop().await;
    op.stop().await.unwrap();
}

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::api::{IncidentSpec, Runbook};

fn runbook(ns: &str, name: &str, spec: Value) -> Runbook {
    serde_json::from_value(json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .unwrap()
}

fn step(v: Value) -> MitigationStep {
    serde_json::from_value(v).unwrap()
}

fn spec(v: Value) -> IncidentSpec {
    let mut base = json!({"title": "t", "severity": "SEV3",
                          "target": {"kind": "Deployment", "name": "web"}});
    for (k, val) in v.as_object().unwrap() {
        base[k] = val.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shop_runbook() -> Runbook {
    runbook(
        "shop",
        "web",
        json!({"selector": {"matchLabels": {"app": "web"}}, "mitigations": [
            {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"},
            {"name": "capacity", "action": "Scale", "replicas": 4, "maxReplicas": 8},
            {"name": "flag", "action": "SetEnv", "container": "app",
             "env": [{"name": "FEATURE_X", "value": "off"}]},
            {"name": "restart", "action": "RolloutRestart"}
        ]}),
    )
}

fn gov(rb: &Runbook) -> Option<Governing<'_>> {
    Some(Governing {
        runbook: rb,
        cluster_wide: false,
    })
}

fn target() -> TargetRef {
    TargetRef {
        kind: TargetKind::Deployment,
        name: "web".into(),
    }
}

fn refused(m: Mandate) -> String {
    match m {
        Mandate::Refused(why) => why,
        Mandate::Granted(s) => panic!("granted: {s:?}"),
    }
}

fn granted(m: Mandate) -> MitigationStep {
    match m {
        Mandate::Granted(s) => s,
        Mandate::Refused(why) => panic!("refused: {why}"),
    }
}

#[test]
fn without_a_governing_runbook_nothing_is_granted() {
    let s = step(
        json!({"name": "flag", "action": "SetEnv", "approval": "Automatic",
                        "env": [{"name": "FOO", "value": "pwned"}]}),
    );
    let why = refused(grant(&s, Some(&target()), None));
    assert!(why.contains("no Runbook governs Deployment web"), "{why}");
    // No target, or a Pod target: nothing to act on.
    let rb = shop_runbook();
    assert!(refused(grant(&s, None, gov(&rb))).contains("no target"));
    let pod = TargetRef {
        kind: TargetKind::Pod,
        name: "web-1".into(),
    };
    let why = refused(grant(&s, Some(&pod), gov(&rb)));
    assert!(why.contains("not on a Pod"), "{why}");
}

#[test]
fn a_step_the_runbook_does_not_list_is_refused() {
    let rb = shop_runbook();
    let s = step(json!({"name": "nuke", "action": "Scale", "replicas": 0}));
    let why = refused(grant(&s, Some(&target()), gov(&rb)));
    assert!(
        why.contains("Runbook shop/web has no mitigation named \"nuke\""),
        "{why}"
    );
    assert!(why.contains("\"rollback\" (RolloutUndo)"), "{why}");
    // Same name, other action.
    let s = step(json!({"name": "rollback", "action": "Scale", "replicas": 4}));
    let why = refused(grant(&s, Some(&target()), gov(&rb)));
    assert!(why.contains("is Scale here but RolloutUndo"), "{why}");
}

#[test]
fn manual_in_the_runbook_cannot_be_loosened() {
    let rb = shop_runbook();
    let s = step(json!({"name": "restart", "action": "RolloutRestart", "approval": "Automatic"}));
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&rb))).approval,
        Approval::Manual
    );
    // An Automatic Runbook step stays Manual when the Incident asks for a person.
    let s = step(json!({"name": "rollback", "action": "RolloutUndo", "approval": "Manual"}));
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&rb))).approval,
        Approval::Manual
    );
    let s = step(json!({"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}));
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&rb))).approval,
        Approval::Automatic
    );
    // The approver travels with the step.
    let s = step(json!({"name": "restart", "action": "RolloutRestart", "approvedBy": "alice"}));
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&rb)))
            .approved_by
            .as_deref(),
        Some("alice")
    );
}

#[test]
fn scale_stays_within_the_runbook_bounds() {
    let rb = shop_runbook();
    let at = |n: i32| {
        grant(
            &step(json!({"name": "capacity", "action": "Scale", "replicas": n})),
            Some(&target()),
            gov(&rb),
        )
    };
    assert_eq!(granted(at(6)).replicas, Some(6));
    assert_eq!(granted(at(8)).max_replicas, Some(8));
    assert!(refused(at(9)).contains("replicas 9 is outside"));
    // Scaling to 0 is not "more capacity".
    assert!(refused(at(0)).contains("(4..=8"));
    // No replicas in the Incident: the Runbook's.
    let s = step(json!({"name": "capacity", "action": "Scale"}));
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&rb))).replicas,
        Some(4)
    );
    // Without maxReplicas, exactly the Runbook's replicas.
    let exact = runbook(
        "shop",
        "web",
        json!({"selector": {}, "mitigations": [{"name": "capacity", "action": "Scale", "replicas": 4}]}),
    );
    let s = step(json!({"name": "capacity", "action": "Scale", "replicas": 5}));
    assert!(refused(grant(&s, Some(&target()), gov(&exact))).contains("set maxReplicas there"));
}

#[test]
fn set_env_only_to_the_variables_the_runbook_lists() {
    let rb = shop_runbook();
    let s = step(json!({"name": "flag", "action": "SetEnv",
                        "env": [{"name": "FEATURE_X", "value": "on"}]}));
    let g = granted(grant(&s, Some(&target()), gov(&rb)));
    assert_eq!(g.env[0].value, "on");
    assert_eq!(g.container.as_deref(), Some("app"));
    let s = step(json!({"name": "flag", "action": "SetEnv",
                        "env": [{"name": "NODE_OPTIONS", "value": "--require /tmp/x"}]}));
    let why = refused(grant(&s, Some(&target()), gov(&rb)));
    assert!(
        why.contains("variables NODE_OPTIONS are not listed"),
        "{why}"
    );
    assert!(why.contains("it allows: FEATURE_X"), "{why}");
    let s = step(
        json!({"name": "flag", "action": "SetEnv", "container": "sidecar",
                        "env": [{"name": "FEATURE_X", "value": "on"}]}),
    );
    assert!(refused(grant(&s, Some(&target()), gov(&rb))).contains("container \"sidecar\""));
    // Requested by name only: the Runbook's values.
    let s = step(json!({"name": "flag", "action": "SetEnv"}));
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&rb))).env[0].value,
        "off"
    );
}

#[test]
fn explicit_revisions_only_where_the_runbook_allows_them() {
    let rb = shop_runbook();
    let s = step(json!({"name": "rollback", "action": "RolloutUndo", "toRevision": 1}));
    assert!(refused(grant(&s, Some(&target()), gov(&rb))).contains("allowExplicitRevision"));
    let open = runbook(
        "shop",
        "web",
        json!({"selector": {}, "mitigations": [
            {"name": "rollback", "action": "RolloutUndo", "allowExplicitRevision": true}]}),
    );
    assert_eq!(
        granted(grant(&s, Some(&target()), gov(&open))).to_revision,
        1
    );
    let s = step(json!({"name": "rollback", "action": "RolloutUndo"}));
    assert_eq!(granted(grant(&s, Some(&target()), gov(&rb))).to_revision, 0);
}

#[test]
fn the_runbook_guard_applies_and_only_tightens() {
    let rb = runbook(
        "shop",
        "web",
        json!({"selector": {}, "mitigations": [
            {"name": "rollback", "action": "RolloutUndo", "when": {"rolloutWithin": "30m"}}]}),
    );
    let within = |v: Value| {
        granted(grant(&step(v), Some(&target()), gov(&rb)))
            .when
            .and_then(|w| w.rollout_within)
            .map(|d| d.0)
    };
    assert_eq!(
        within(json!({"name": "rollback", "action": "RolloutUndo"})).as_deref(),
        Some("30m")
    );
    assert_eq!(
        within(
            json!({"name": "rollback", "action": "RolloutUndo", "when": {"rolloutWithin": "24h"}})
        )
        .as_deref(),
        Some("30m")
    );
    assert_eq!(
        within(
            json!({"name": "rollback", "action": "RolloutUndo", "when": {"rolloutWithin": "5m"}})
        )
        .as_deref(),
        Some("5m")
    );
}

#[test]
fn a_tenant_runbook_never_shadows_a_cluster_wide_one() {
    let platform = runbook(
        "kube-incident",
        "platform",
        json!({"selector": {}, "namespaceSelector": {"matchLabels": {"tier": "prod"}},
               "dryRun": true,
               "mitigations": [{"name": "rollback", "action": "RolloutUndo"}]}),
    );
    let tenant = runbook(
        "shop",
        "platform",
        json!({"selector": {}, "mitigations": [
            {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}]}),
    );
    let rbs = [tenant.clone(), platform.clone()];
    let g = governing(
        &rbs,
        "shop",
        TargetKind::Deployment,
        &labels(&[("tier", "prod")]),
        &labels(&[("app", "web")]),
        Some("kube-incident"),
    )
    .unwrap();
    assert!(g.cluster_wide);
    assert_eq!(g.id().to_string(), "kube-incident/platform");
    assert!(g.spec().dry_run);
    // The Incident's step, Automatic, stays Manual under the platform's step.
    let s = spec(json!({"mitigations": [
        {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}]}));
    let p = plan(&s, "shop", Some(g));
    assert!(p.refused.is_empty());
    assert_eq!(p.steps[0].approval, Approval::Manual);
    // A reference to the tenant's same-named Runbook does not borrow it.
    let s = spec(json!({"runbookRef": {"name": "platform"}, "mitigations": [
        {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}]}));
    let p = plan(&s, "shop", Some(g));
    let why = &p.refused["rollback"];
    assert!(
        why.contains("names Runbook shop/platform, but the target is governed by Runbook kube-incident/platform"),
        "{why}"
    );
    // With the namespace, it is the governing one.
    let s = spec(
        json!({"runbookRef": {"name": "platform", "namespace": "kube-incident"},
                        "mitigations": [{"name": "rollback", "action": "RolloutUndo"}]}),
    );
    assert!(plan(&s, "shop", Some(g)).refused.is_empty());
    // Outside the selected namespaces, the tenant's own Runbook governs.
    let g = governing(
        &rbs,
        "shop",
        TargetKind::Deployment,
        &labels(&[("tier", "dev")]),
        &labels(&[("app", "web")]),
        Some("kube-incident"),
    )
    .unwrap();
    assert!(!g.cluster_wide);
    assert_eq!(g.id().to_string(), "shop/platform");
}

#[test]
fn plan_keeps_refused_steps_in_place_and_names_the_runbook() {
    let rb = shop_runbook();
    let s = spec(json!({"mitigations": [
        {"name": "capacity", "action": "Scale", "replicas": 50},
        {"name": "rollback", "action": "RolloutUndo", "approval": "Automatic"}]}));
    let p = plan(&s, "shop", gov(&rb));
    assert_eq!(p.steps.len(), 2);
    assert_eq!(
        p.steps[0].replicas,
        Some(50),
        "refused steps stay as written"
    );
    assert!(p.refused.contains_key("capacity"));
    assert!(!p.refused.contains_key("rollback"));
    assert_eq!(p.runbook.unwrap().to_string(), "shop/web");
    let eff = Plan {
        steps: vec![step(json!({"name": "x", "action": "RolloutRestart"}))],
        ..Plan::default()
    }
    .effective_spec(&s);
    assert_eq!(eff.mitigations.len(), 1);
    assert_eq!(eff.title, "t");
}

#[test]
fn suspend_and_delete_pods_are_granted_on_their_kinds_with_the_runbook_approval() {
    let rb = runbook(
        "shop",
        "batch",
        json!({"selector": {"matchLabels": {"app": "web"}},
               "targetKinds": ["CronJob", "StatefulSet"], "mitigations": [
            {"name": "pause", "action": "Suspend", "approval": "Automatic"},
            {"name": "replace", "action": "DeletePods"}
        ]}),
    );
    let cj = TargetRef {
        kind: TargetKind::CronJob,
        name: "nightly".into(),
    };
    let sts = TargetRef {
        kind: TargetKind::StatefulSet,
        name: "db".into(),
    };
    let pause = step(
        json!({"name": "pause", "action": "Suspend", "approval": "Automatic", "revertOnResolve": true}),
    );
    let g = granted(grant(&pause, Some(&cj), gov(&rb)));
    assert_eq!(g.approval, Approval::Automatic);
    assert!(g.revert_on_resolve);
    // The Incident cannot loosen the Runbook's Manual approval.
    let del = step(json!({"name": "replace", "action": "DeletePods", "approval": "Automatic"}));
    assert_eq!(
        granted(grant(&del, Some(&sts), gov(&rb))).approval,
        Approval::Manual
    );
    // Each action on its kinds only.
    let why = refused(grant(&pause, Some(&sts), gov(&rb)));
    assert!(
        why.contains("Suspend acts on a CronJob, not on a StatefulSet"),
        "{why}"
    );
    let why = refused(grant(&del, Some(&cj), gov(&rb)));
    assert!(why.contains("not on a CronJob"), "{why}");
    let why = refused(grant(&del, Some(&sts), None));
    assert!(why.contains("no Runbook governs StatefulSet db"), "{why}");
}

//! Semantic validation the CRD schema cannot express. Each problem names
//! the field, so a status condition can tell the user exactly what to fix.

use std::collections::HashSet;

use crate::api::{IncidentSpec, MitigationAction, MitigationStep};
use crate::core::mitigation;

/// One problem with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.mitigations[1].replicas`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Join errors into one condition message.
pub fn summarize(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Problems of one mitigation step, with `prefix` like `spec.mitigations[0]`.
pub fn validate_step(step: &MitigationStep, prefix: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |field: &str, message: String| {
        errs.push(FieldError {
            field: format!("{prefix}.{field}"),
            message,
        })
    };
    if step.name.trim().is_empty() {
        err("name", "must not be empty".into());
    }
    match step.action {
        MitigationAction::Scale => match step.replicas {
            None => err("replicas", "required for action Scale".into()),
            Some(r) if r < 0 => err("replicas", format!("must be >= 0, got {r}")),
            Some(r) => {
                if let Some(max) = step.max_replicas {
                    if r > max {
                        err(
                            "replicas",
                            format!("{r} exceeds the guard maxReplicas {max}"),
                        );
                    }
                }
            }
        },
        MitigationAction::SetEnv => {
            if step.env.is_empty() {
                err(
                    "env",
                    "at least one variable is required for action SetEnv".into(),
                );
            }
            let mut seen = HashSet::new();
            for (i, e) in step.env.iter().enumerate() {
                if e.name.is_empty() || e.name.contains('=') {
                    err(
                        &format!("env[{i}].name"),
                        format!("{:?} is not a valid environment variable name", e.name),
                    );
                }
                if !seen.insert(e.name.as_str()) {
                    err(
                        &format!("env[{i}].name"),
                        format!("duplicate variable {:?}", e.name),
                    );
                }
            }
        }
        MitigationAction::RolloutUndo
        | MitigationAction::RolloutRestart
        | MitigationAction::Suspend
        | MitigationAction::DeletePods => {}
    }
    if step.to_revision < 0 {
        err(
            "toRevision",
            format!("must be >= 0, got {}", step.to_revision),
        );
    }
    if step.to_revision != 0 && step.action != MitigationAction::RolloutUndo {
        err(
            "toRevision",
            format!("only applies to RolloutUndo, not {}", step.action),
        );
    }
    if step.revert_on_resolve
        && !matches!(
            step.action,
            MitigationAction::Scale | MitigationAction::SetEnv | MitigationAction::Suspend
        )
    {
        err(
            "revertOnResolve",
            format!(
                "only Scale, SetEnv and Suspend can be reverted, not {}",
                step.action
            ),
        );
    }
    if let Some(within) = step.when.as_ref().and_then(|w| w.rollout_within.as_ref()) {
        if let Err(e) = within.parse() {
            err("when.rolloutWithin", e.to_string());
        }
    }
    errs
}

/// Problems of an Incident's spec that the schema cannot catch. Errors on
/// step `i` are prefixed `spec.mitigations[i]`.
pub fn validate_incident(spec: &IncidentSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.title.trim().is_empty() {
        errs.push(FieldError {
            field: "spec.title".into(),
            message: "must not be empty".into(),
        });
    }
    if let Some(t) = &spec.target {
        if t.name.trim().is_empty() {
            errs.push(FieldError {
                field: "spec.target.name".into(),
                message: "must not be empty".into(),
            });
        }
    }
    let mut names = HashSet::new();
    for (i, step) in spec.mitigations.iter().enumerate() {
        let prefix = format!("spec.mitigations[{i}]");
        if !names.insert(step.name.as_str()) {
            errs.push(FieldError {
                field: format!("{prefix}.name"),
                message: format!("duplicate step name {:?}", step.name),
            });
        }
        match &spec.target {
            None => errs.push(FieldError {
                field: format!("{prefix}.action"),
                message: format!(
                    "{} needs a target {}, but spec.target is not set",
                    step.action,
                    mitigation::kinds_of(step.action)
                ),
            }),
            Some(t) if !mitigation::action_applies(step.action, t.kind) => errs.push(FieldError {
                field: format!("{prefix}.action"),
                message: format!(
                    "{} acts on a {}, but spec.target.kind is {}",
                    step.action,
                    mitigation::kinds_of(step.action),
                    t.kind.as_str()
                ),
            }),
            Some(_) => {}
        }
        errs.extend(validate_step(step, &prefix));
    }
    errs
}

/// The errors that concern step `index` (to fail just that step).
pub fn step_errors(errors: &[FieldError], index: usize) -> Vec<FieldError> {
    let prefix = format!("spec.mitigations[{index}].");
    errors
        .iter()
        .filter(|e| e.field.starts_with(&prefix))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EnvVarSetting, Severity, TargetKind, TargetRef};

    fn spec(target: Option<TargetRef>, steps: Vec<MitigationStep>) -> IncidentSpec {
        IncidentSpec {
            title: "t".into(),
            severity: Severity::SEV2,
            source: Default::default(),
            target,
            runbook_ref: None,
            commander: None,
            acknowledged_by: None,
            root_cause: None,
            mitigations: steps,
            resolution: None,
            resume_git_ops: None,
        }
    }

    fn deploy() -> Option<TargetRef> {
        Some(TargetRef {
            kind: TargetKind::Deployment,
            name: "web".into(),
        })
    }

    #[test]
    fn valid_plan() {
        let mut scale = MitigationStep::new("more", MitigationAction::Scale);
        scale.replicas = Some(4);
        scale.max_replicas = Some(10);
        let undo = MitigationStep::new("undo", MitigationAction::RolloutUndo);
        assert_eq!(
            validate_incident(&spec(deploy(), vec![undo, scale])),
            vec![]
        );
    }

    #[test]
    fn names_the_bad_field() {
        let scale = MitigationStep::new("more", MitigationAction::Scale);
        let errs = validate_incident(&spec(deploy(), vec![scale]));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.mitigations[0].replicas");
        assert!(errs[0].message.contains("required"));

        let mut over = MitigationStep::new("more", MitigationAction::Scale);
        over.replicas = Some(20);
        over.max_replicas = Some(10);
        let errs = validate_incident(&spec(deploy(), vec![over]));
        assert_eq!(errs[0].field, "spec.mitigations[0].replicas");

        let env = MitigationStep::new("flag", MitigationAction::SetEnv);
        let errs = validate_incident(&spec(deploy(), vec![env]));
        assert_eq!(errs[0].field, "spec.mitigations[0].env");

        let mut env = MitigationStep::new("flag", MitigationAction::SetEnv);
        env.env = vec![EnvVarSetting {
            name: "A=B".into(),
            value: "x".into(),
        }];
        let errs = validate_incident(&spec(deploy(), vec![env]));
        assert_eq!(errs[0].field, "spec.mitigations[0].env[0].name");
    }

    #[test]
    fn target_kind_we_cannot_act_on() {
        let undo = MitigationStep::new("undo", MitigationAction::RolloutUndo);
        let pod = Some(TargetRef {
            kind: TargetKind::Pod,
            name: "p".into(),
        });
        let errs = validate_incident(&spec(pod, vec![undo.clone()]));
        assert_eq!(errs[0].field, "spec.mitigations[0].action");
        assert!(errs[0].message.contains("spec.target.kind is Pod"));
        let errs = validate_incident(&spec(None, vec![undo]));
        assert!(errs[0].message.contains("spec.target is not set"));
    }

    #[test]
    fn each_action_on_its_kinds() {
        use MitigationAction as A;
        use TargetKind as K;
        let on = |kind: K, action: A| {
            let mut st = MitigationStep::new("s", action);
            if action == A::Scale {
                st.replicas = Some(2);
            }
            if action == A::SetEnv {
                st.env = vec![EnvVarSetting {
                    name: "A".into(),
                    value: "1".into(),
                }];
            }
            let t = Some(TargetRef {
                kind,
                name: "x".into(),
            });
            validate_incident(&spec(t, vec![st]))
        };
        for (action, kinds) in [
            (
                A::RolloutUndo,
                vec![K::Deployment, K::StatefulSet, K::DaemonSet],
            ),
            (
                A::RolloutRestart,
                vec![K::Deployment, K::StatefulSet, K::DaemonSet],
            ),
            (A::SetEnv, vec![K::Deployment, K::StatefulSet, K::DaemonSet]),
            (A::Scale, vec![K::Deployment, K::StatefulSet]),
            (A::Suspend, vec![K::CronJob]),
            (A::DeletePods, vec![K::StatefulSet, K::DaemonSet]),
        ] {
            for kind in K::ALL {
                let errs = on(kind, action);
                if kinds.contains(&kind) {
                    assert_eq!(errs, vec![], "{action} on {kind:?}");
                } else {
                    assert_eq!(errs.len(), 1, "{action} on {kind:?}: {errs:?}");
                    assert_eq!(errs[0].field, "spec.mitigations[0].action");
                    assert!(
                        errs[0]
                            .message
                            .contains(&format!("spec.target.kind is {}", kind.as_str())),
                        "{}",
                        errs[0].message
                    );
                }
            }
        }
        let errs = on(K::DaemonSet, A::Scale);
        assert!(errs[0]
            .message
            .contains("Scale acts on a Deployment or StatefulSet"));
        let mut suspend = MitigationStep::new("pause", A::Suspend);
        suspend.revert_on_resolve = true;
        let cj = Some(TargetRef {
            kind: K::CronJob,
            name: "c".into(),
        });
        assert_eq!(validate_incident(&spec(cj, vec![suspend])), vec![]);
        let mut del = MitigationStep::new("del", A::DeletePods);
        del.revert_on_resolve = true;
        let errs = validate_step(&del, "p");
        assert_eq!(errs[0].field, "p.revertOnResolve");
    }

    #[test]
    fn duplicates_and_misplaced_fields() {
        let a = MitigationStep::new("x", MitigationAction::RolloutRestart);
        let mut b = MitigationStep::new("x", MitigationAction::RolloutRestart);
        b.to_revision = 3;
        b.revert_on_resolve = true;
        let errs = validate_incident(&spec(deploy(), vec![a, b]));
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.mitigations[1].name",
                "spec.mitigations[1].toRevision",
                "spec.mitigations[1].revertOnResolve"
            ]
        );
        assert_eq!(step_errors(&errs, 1).len(), 3);
        assert_eq!(step_errors(&errs, 0).len(), 0);
    }
}

/// Problems of a Runbook's spec that the schema cannot catch.
pub fn validate_runbook(spec: &crate::api::RunbookSpec) -> Vec<FieldError> {
    use crate::api::TriggerType;
    let mut errs = Vec::new();
    let mut push = |field: String, message: String| errs.push(FieldError { field, message });
    if let Err(e) = crate::core::selector::validate_selector(&spec.selector, "spec.selector") {
        push(e.field, e.message);
    }
    if let Some(ns) = &spec.namespace_selector {
        if let Err(e) = crate::core::selector::validate_selector(ns, "spec.namespaceSelector") {
            push(e.field, e.message);
        }
    }
    let mut seen = HashSet::new();
    for (i, t) in spec.triggers.iter().enumerate() {
        let f = |name: &str| format!("spec.triggers[{i}].{name}");
        if !seen.insert(t.type_) {
            push(f("type"), format!("duplicate trigger {}", t.type_.as_str()));
        }
        let misplaced = |set: bool, name: &str, applies: &[TriggerType]| {
            (set && !applies.contains(&t.type_)).then(|| {
                (
                    f(name),
                    format!("does not apply to trigger {}", t.type_.as_str()),
                )
            })
        };
        for (field, message) in [
            misplaced(
                t.min_restarts.is_some(),
                "minRestarts",
                &[TriggerType::CrashLoopBackOff, TriggerType::BadRollout],
            ),
            misplaced(
                t.restarts.is_some(),
                "restarts",
                &[TriggerType::RestartStorm],
            ),
            misplaced(
                t.window.is_some(),
                "window",
                &[
                    TriggerType::RestartStorm,
                    TriggerType::OOMKilled,
                    TriggerType::JobFailed,
                ],
            ),
            misplaced(
                t.min_failures.is_some(),
                "minFailures",
                &[TriggerType::JobFailed],
            ),
            misplaced(
                t.min_unavailable_ratio.is_some(),
                "minUnavailableRatio",
                &[TriggerType::Unavailable],
            ),
        ]
        .into_iter()
        .flatten()
        {
            push(field, message);
        }
        for (name, d) in [("for", &t.for_), ("window", &t.window)] {
            if let Some(Err(e)) = d.as_ref().map(|d| d.parse()) {
                push(f(name), e.to_string());
            }
        }
        if let Some(Err(e)) = t.min_unavailable_ratio.as_ref().map(|r| r.value()) {
            push(f("minUnavailableRatio"), e.to_string());
        }
    }
    if let Some(sev) = &spec.severity {
        for (i, r) in sev.rules.iter().enumerate() {
            if let Err(e) = r.min_unavailable_ratio.value() {
                push(
                    format!("spec.severity.rules[{i}].minUnavailableRatio"),
                    e.to_string(),
                );
            }
        }
    }
    let mut names = HashSet::new();
    for (i, step) in spec.mitigations.iter().enumerate() {
        let prefix = format!("spec.mitigations[{i}]");
        if !names.insert(step.name.as_str()) {
            push(
                format!("{prefix}.name"),
                format!("duplicate step name {:?}", step.name),
            );
        }
        if step.approved_by.is_some() {
            push(
                format!("{prefix}.approvedBy"),
                "approvals belong on an Incident, not on a Runbook".into(),
            );
        }
        for e in validate_step(step, &prefix) {
            push(e.field, e.message);
        }
    }
    for (name, d) in [
        (
            "spec.monitoring.window",
            spec.monitoring.as_ref().map(|m| &m.window),
        ),
        ("spec.reopenWindow", spec.reopen_window.as_ref()),
        (
            "spec.limits.cooldown",
            spec.limits.as_ref().and_then(|l| l.cooldown.as_ref()),
        ),
    ] {
        if let Some(Err(e)) = d.map(|d| d.parse()) {
            push(name.to_string(), e.to_string());
        }
    }
    let mut sinks = HashSet::new();
    for (i, s) in spec.notify.iter().enumerate() {
        if !sinks.insert(s.name.as_str()) {
            push(
                format!("spec.notify[{i}].name"),
                format!("duplicate sink {:?}", s.name),
            );
        }
    }
    for (i, level) in spec.escalation.iter().enumerate() {
        if let Err(e) = level.after.parse() {
            push(format!("spec.escalation[{i}].after"), e.to_string());
        }
        for (j, n) in level.notify.iter().enumerate() {
            if !sinks.contains(n.as_str()) {
                push(
                    format!("spec.escalation[{i}].notify[{j}]"),
                    format!("no sink named {n:?} in spec.notify"),
                );
            }
        }
    }
    errs
}

#[cfg(test)]
mod runbook_tests {
    use super::*;
    use crate::api::Runbook;
    use serde_json::json;

    fn rb(spec: serde_json::Value) -> Runbook {
        serde_json::from_value(json!({
            "apiVersion": "kubeincident.io/v1alpha1", "kind": "Runbook",
            "metadata": {"name": "r", "namespace": "n"}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn the_example_runbook_is_valid() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/examples/runbook.yaml"
        ))
        .unwrap();
        let r: Runbook = serde_yaml::from_str(&text).unwrap();
        assert_eq!(validate_runbook(&r.spec), vec![]);
    }

    #[test]
    fn names_bad_fields() {
        let r = rb(json!({
            "selector": {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]},
            "triggers": [
                {"type": "OOMKilled", "minRestarts": 2},
                {"type": "OOMKilled"}
            ],
            "mitigations": [{"name": "scale", "action": "Scale", "approvedBy": "eve"}],
            "notify": [{"name": "slack", "format": "Slack", "urlSecretRef": {"name": "s", "key": "url"}}],
            "escalation": [{"after": "15m", "notify": ["pager"]}]
        }));
        let fields: Vec<String> = validate_runbook(&r.spec)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "spec.selector.matchExpressions[0]",
                "spec.triggers[0].minRestarts",
                "spec.triggers[1].type",
                "spec.mitigations[0].approvedBy",
                "spec.mitigations[0].replicas",
                "spec.escalation[0].notify[0]",
            ]
        );
    }
}

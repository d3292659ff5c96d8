//! Semantic validation the CRD schema cannot express. Each problem names
//! the field, so a status condition can tell the user exactly what to fix.

use std::collections::HashSet;

use crate::api::{IncidentSpec, MitigationAction, MitigationStep, TargetKind};

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
                err("env", "at least one variable is required for action SetEnv".into());
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
                    err(&format!("env[{i}].name"), format!("duplicate variable {:?}", e.name));
                }
            }
        }
        MitigationAction::RolloutUndo | MitigationAction::RolloutRestart => {}
    }
    if step.to_revision < 0 {
        err("toRevision", format!("must be >= 0, got {}", step.to_revision));
    }
    if step.to_revision != 0 && step.action != MitigationAction::RolloutUndo {
        err("toRevision", format!("only applies to RolloutUndo, not {}", step.action));
    }
    if step.revert_on_resolve
        && !matches!(step.action, MitigationAction::Scale | MitigationAction::SetEnv)
    {
        err(
            "revertOnResolve",
            format!("only Scale and SetEnv can be reverted, not {}", step.action),
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
                    "{} needs a target Deployment, but spec.target is not set",
                    step.action
                ),
            }),
            Some(t) if t.kind != TargetKind::Deployment => errs.push(FieldError {
                field: format!("{prefix}.action"),
                message: format!(
                    "{} acts on a Deployment, but spec.target.kind is {}",
                    step.action,
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
    use crate::api::{EnvVarSetting, Severity, TargetRef};

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
        assert_eq!(validate_incident(&spec(deploy(), vec![undo, scale])), vec![]);
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
        env.env = vec![EnvVarSetting { name: "A=B".into(), value: "x".into() }];
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

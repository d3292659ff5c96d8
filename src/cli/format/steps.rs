//! Mitigation steps: what a step does, who approved it, what it changed,
//! and the `Mitigations:` table of `describe`.

use crate::api::{
    Approval, Incident, MitigationAction, MitigationStatus, MitigationStep, StepState,
};

use super::cell;

/// What a step does, in a few words: `Scale to 6`, `SetEnv A=b (container app)`.
pub fn action_text(step: &MitigationStep) -> String {
    match step.action {
        MitigationAction::RolloutUndo if step.to_revision > 0 => {
            format!("RolloutUndo to revision {}", step.to_revision)
        }
        MitigationAction::RolloutUndo => "RolloutUndo".to_string(),
        MitigationAction::Scale => match step.replicas {
            Some(r) => format!("Scale to {r}"),
            None => "Scale".to_string(),
        },
        MitigationAction::SetEnv => {
            let vars: Vec<String> = step
                .env
                .iter()
                .map(|e| format!("{}={}", e.name, e.value))
                .collect();
            let mut s = format!("SetEnv {}", vars.join(","));
            if let Some(c) = &step.container {
                s.push_str(&format!(" (container {c})"));
            }
            cell(s.trim_end())
        }
        MitigationAction::RolloutRestart => "RolloutRestart".to_string(),
        MitigationAction::Suspend => "Suspend".to_string(),
        MitigationAction::DeletePods => "DeletePods".to_string(),
    }
}

fn approval_text(step: &MitigationStep) -> String {
    match (step.approval, &step.approved_by) {
        (Approval::Automatic, _) => "Automatic".to_string(),
        (Approval::Manual, Some(by)) => format!("approved by {}", cell(by)),
        (Approval::Manual, None) => "Manual, not approved".to_string(),
    }
}

fn map_text(m: &std::collections::BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", cell(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn change_text(status: Option<&MitigationStatus>) -> String {
    let Some(s) = status else {
        return String::new();
    };
    match (s.before.is_empty(), s.after.is_empty()) {
        (true, true) => String::new(),
        _ => format!(
            "{} -> {}",
            if s.before.is_empty() {
                "?".to_string()
            } else {
                map_text(&s.before)
            },
            if s.after.is_empty() {
                "?".to_string()
            } else {
                map_text(&s.after)
            }
        ),
    }
}

/// The state of each step: `status.mitigations` by name, else `Pending`.
pub fn step_state(incident: &Incident, step: &str) -> StepState {
    step_status(incident, step).map_or(StepState::Pending, |s| s.state)
}

/// The status entry of a step, by name.
pub fn step_status<'a>(incident: &'a Incident, step: &str) -> Option<&'a MitigationStatus> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.mitigations.iter().find(|m| m.name == step))
}

/// The rows of the `Mitigations:` table of `describe` (header first).
pub(super) fn rows(incident: &Incident) -> Vec<Vec<String>> {
    let mut rows = vec![["NAME", "ACTION", "APPROVAL", "STATE", "MESSAGE", "CHANGE"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for step in &incident.spec.mitigations {
        let st = step_status(incident, &step.name);
        rows.push(vec![
            step.name.clone(),
            action_text(step),
            approval_text(step),
            st.map_or(StepState::Pending, |s| s.state)
                .as_str()
                .to_string(),
            st.map_or(String::new(), |s| cell(&s.message)),
            change_text(st),
        ]);
    }
    rows
}

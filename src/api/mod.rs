//! The kube-incident API (`kubeincident.io/v1alpha1`): `Incident` and
//! `Runbook`, exactly per `shared/design/api-v1alpha1.md`.

pub mod common;
pub mod incident;
pub mod runbook;

pub use common::*;
pub use incident::*;
pub use runbook::*;

use kube::CustomResourceExt;

/// API group of both kinds.
pub const GROUP: &str = "kubeincident.io";
/// API version of both kinds.
pub const VERSION: &str = "v1alpha1";
/// The field manager of every write kube-incident makes.
pub const FIELD_MANAGER: &str = "kube-incident";
/// Label on Incidents: the detector's dedup key.
pub const FINGERPRINT_LABEL: &str = "kubeincident.io/fingerprint";
/// Label on a Deployment, Pod or Namespace: never detect there.
pub const IGNORE_LABEL: &str = "kubeincident.io/ignore";
/// Annotation on workloads naming the Incident and step of the last change.
pub const LAST_ACTION_ANNOTATION: &str = "kubeincident.io/last-action";
/// When the trouble of a resolved Incident recurred (RFC 3339), written by
/// the Alertmanager intake together with the removal of `spec.resolution`:
/// the lifecycle reopens the Incident when it is later than `resolvedAt`.
pub const RECURRED_AT_ANNOTATION: &str = "kubeincident.io/recurred-at";

/// The CRD YAML of both kinds, as printed by `kube-incident crds` and stored in `crds/`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [Incident::crd(), Runbook::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod names_tests {
    use super::*;

    /// The names in messages, metrics and printer columns are the
    /// serialized ones (strum derives them from the variant names).
    #[test]
    fn as_str_and_display_match_serde() {
        fn check<T: serde::Serialize + std::fmt::Display>(v: T, s: &str) {
            assert_eq!(serde_json::to_value(&v).unwrap(), serde_json::json!(s));
            assert_eq!(v.to_string(), s);
        }
        check(Severity::SEV1, "SEV1");
        check(MitigationAction::RolloutRestart, "RolloutRestart");
        check(Phase::Monitoring, "Monitoring");
        check(StepState::AwaitingApproval, "AwaitingApproval");
        check(StepState::Refused, "Refused");
        check(TargetKind::Deployment, "Deployment");
        check(IncidentSource::Alertmanager, "Alertmanager");
        check(
            NotificationEvent::MitigationAwaitingApproval,
            "MitigationAwaitingApproval",
        );
        check(
            TriggerType::CreateContainerConfigError,
            "CreateContainerConfigError",
        );
        assert_eq!(StepState::Ineffective.as_str(), "Ineffective");
        assert_eq!(TriggerType::OOMKilled.as_str(), "OOMKilled");
    }
}

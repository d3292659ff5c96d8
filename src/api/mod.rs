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

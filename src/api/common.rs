//! Types shared by `Incident` and `Runbook`: severity, durations, ratios,
//! references and the mitigation step shape.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Incident severity. `SEV1` is the most severe.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum Severity {
    SEV1,
    SEV2,
    SEV3,
    SEV4,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL: [Severity; 4] = [
        Severity::SEV1,
        Severity::SEV2,
        Severity::SEV3,
        Severity::SEV4,
    ];

    /// `true` when `self` is strictly more severe than `other` (SEV1 > SEV2).
    pub fn is_more_severe_than(self, other: Severity) -> bool {
        (self as u8) < (other as u8)
    }

    /// The more severe of the two.
    pub fn max_severity(self, other: Severity) -> Severity {
        if other.is_more_severe_than(self) {
            other
        } else {
            self
        }
    }

    /// The label value used in metrics and messages.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "SEV1" => Ok(Severity::SEV1),
            "SEV2" => Ok(Severity::SEV2),
            "SEV3" => Ok(Severity::SEV3),
            "SEV4" => Ok(Severity::SEV4),
            _ => Err(format!(
                "unknown severity {s:?}: expected SEV1, SEV2, SEV3 or SEV4"
            )),
        }
    }
}

/// The regular expression of a Go-style duration as accepted by the CRD schema:
/// one or more `<number><unit>` groups, units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
pub const GO_DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A Go-style duration string such as `90s`, `10m` or `1h30m`.
///
/// Kept as the string the user wrote (so status and `kubectl get -o yaml`
/// show it unchanged); [`GoDuration::parse`] turns it into a
/// [`std::time::Duration`]. The CRD schema rejects malformed values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct GoDuration(pub String);

/// A duration string that is not a Go-style duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (expected a Go-style duration such as 90s, 10m or 1h30m)"
)]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl GoDuration {
    pub fn new(s: impl Into<String>) -> Self {
        GoDuration(s.into())
    }

    /// Format a duration the way Go's `time.Duration.String` would for whole
    /// seconds (`1h30m0s` becomes the shorter `1h30m`).
    pub fn from_duration(d: std::time::Duration) -> Self {
        GoDuration(format_duration(d))
    }

    /// Parse the string.
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        parse_go_duration(&self.0)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": GO_DURATION_PATTERN,
        })
    }
}

/// Parse a Go-style duration (`300ms`, `1.5h`, `2h45m`). Negative durations
/// and a bare `0` are not accepted: every duration in this API is a positive span.
pub fn parse_go_duration(input: &str) -> Result<std::time::Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("empty"));
    }
    let mut rest = input;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("missing unit"))?;
        if !is_decimal(&rest[..num_len]) {
            return Err(err("malformed number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total_nanos += number * scale;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(err("too large"));
    }
    Ok(std::time::Duration::from_nanos(total_nanos.round() as u64))
}

/// `digits` or `digits.digits`, as in the schema patterns.
fn is_decimal(s: &str) -> bool {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// Format whole-second durations as Go does, without trailing zero units:
/// 90s -> `1m30s`, 3600s -> `1h`, 0 -> `0s`. Sub-second parts are dropped.
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The regular expression of a ratio between 0 and 1 written as a string (`"0.5"`, `"1.0"`).
pub const RATIO_PATTERN: &str = r"^(0(\.[0-9]+)?|1(\.0+)?)$";

/// A ratio in `[0, 1]`, written as a string (`"0.5"`) as Kubernetes APIs avoid floats.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct Ratio(pub String);

/// A ratio string that is not a number in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ratio {0:?}: expected a decimal between 0 and 1 such as \"0.5\"")]
pub struct RatioError(pub String);

impl Ratio {
    pub fn new(s: impl Into<String>) -> Self {
        Ratio(s.into())
    }
    /// The ratio as a float in `[0, 1]`.
    pub fn value(&self) -> Result<f64, RatioError> {
        if !is_decimal(&self.0) {
            return Err(RatioError(self.0.clone()));
        }
        let v: f64 = self.0.parse().map_err(|_| RatioError(self.0.clone()))?;
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(RatioError(self.0.clone()))
        }
    }
}

impl JsonSchema for Ratio {
    fn schema_name() -> Cow<'static, str> {
        "Ratio".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": RATIO_PATTERN,
        })
    }
}

/// A reference to an object in the same namespace, by name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
pub struct LocalObjectReference {
    pub name: String,
}

/// The Runbook whose policy governs an Incident. `namespace` defaults to
/// the Incident's own; a cluster-wide Runbook lives in the operator's
/// namespace. The operator checks that it names the Runbook that actually
/// governs the target (a reference cannot borrow another Runbook's mandate).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RunbookReference {
    pub name: String,
    /// Default: the Incident's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl RunbookReference {
    /// The namespace this reference points into, given the Incident's.
    pub fn namespace_or<'a>(&'a self, incident_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(incident_namespace)
    }
}

/// A key of a Secret in the Runbook's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// What a mitigation step does to the target Deployment.
#[derive(
    Serialize,
    Deserialize,
    JsonSchema,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::Display,
)]
pub enum MitigationAction {
    /// Like `kubectl rollout undo`: back to the previous revision or `toRevision`.
    RolloutUndo,
    /// Set the Deployment's replicas to `replicas` (bounded by `maxReplicas`).
    Scale,
    /// Set environment variables (feature flags) on one or every container.
    SetEnv,
    /// Like `kubectl rollout restart`: bump the `kubectl.kubernetes.io/restartedAt` template annotation.
    RolloutRestart,
    /// CronJob: set `spec.suspend` (no new Jobs); `revertOnResolve` resumes it.
    Suspend,
    /// StatefulSet / DaemonSet: delete the pods that are not on the update
    /// revision, so the controller recreates them from the current template
    /// (the documented remedy after a rollback under `OnDelete`, or when an
    /// `OrderedReady` StatefulSet waits on a broken pod). Never implied by
    /// RolloutUndo: a separate step, separately approved.
    DeletePods,
}

impl MitigationAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Whether a step needs a person's approval.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Approval {
    /// Waits in `AwaitingApproval` until `approvedBy` is set (the default: safe).
    #[default]
    Manual,
    /// Runs as soon as it is the step's turn.
    Automatic,
}

/// An environment variable to set.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct EnvVarSetting {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Guards that must hold for a step to run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StepGuard {
    /// Only if the Deployment's current revision rolled out within this duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_within: Option<GoDuration>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_manual(a: &Approval) -> bool {
    *a == Approval::Manual
}

/// One mitigation step: the same shape in `Incident.spec.mitigations` and
/// `Runbook.spec.mitigations` (where the guards `maxReplicas` and `when` are
/// usually written; the detector copies them into the Incident as a snapshot).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MitigationStep {
    /// Unique within the Incident (the list is a map keyed by name).
    pub name: String,
    pub action: MitigationAction,
    /// RolloutUndo: the revision to go back to; 0 (default) is the previous revision.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0), extend("default" = 0))]
    pub to_revision: i64,
    /// Scale: the absolute desired replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Scale guard: never scale above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_replicas: Option<i32>,
    /// SetEnv: the container to change; default every container of the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// SetEnv: the variables to set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVarSetting>,
    /// Scale / SetEnv / Suspend: restore the recorded prior value (resume the CronJob) when the Incident is resolved.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub revert_on_resolve: bool,
    /// Manual (default) or Automatic.
    #[serde(default, skip_serializing_if = "is_manual")]
    #[schemars(extend("default" = "Manual"))]
    pub approval: Approval,
    /// Set by a person (or `kubectl incident approve`) to approve a Manual step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Guards that must hold for the step to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<StepGuard>,
    /// Runbook guard for RolloutUndo: an Incident may ask for an explicit
    /// `toRevision` other than the Runbook's. Off by default: a hand-made
    /// Incident cannot roll a Deployment back to an arbitrary old revision.
    #[serde(default, skip_serializing_if = "is_false")]
    #[schemars(extend("default" = false))]
    pub allow_explicit_revision: bool,
}

impl MitigationStep {
    /// A step with only name and action set (the rest default).
    pub fn new(name: impl Into<String>, action: MitigationAction) -> Self {
        MitigationStep {
            name: name.into(),
            action,
            to_revision: 0,
            replicas: None,
            max_replicas: None,
            container: None,
            env: Vec::new(),
            revert_on_resolve: false,
            approval: Approval::Manual,
            approved_by: None,
            when: None,
            allow_explicit_revision: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(
            parse_go_duration("2h45m10s").unwrap(),
            Duration::from_secs(9910)
        );
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "10", "m", "10x", "-5m", "1h 30m", "10 m", "h1"] {
            assert!(
                parse_go_duration(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn duration_pattern_agrees_with_parser() {
        // The CRD schema pattern (what the API server enforces) and the parser
        // (what the controller uses) must accept exactly the same strings.
        let re = regex::Regex::new(GO_DURATION_PATTERN).unwrap();
        for s in [
            "90s", "1h30m", "1.5h", "300ms", "10", "1h 30m", "x", "5µs", "5us", ".5s", "1.s", "0s",
        ] {
            assert_eq!(re.is_match(s), parse_go_duration(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn ratio_pattern_agrees_with_parser() {
        let re = regex::Regex::new(RATIO_PATTERN).unwrap();
        for s in [
            "0", "0.5", "1", "1.0", "1.5", ".25", "2", "abc", "-0.1", "0.", "1.00",
        ] {
            assert_eq!(re.is_match(s), Ratio::new(s).value().is_ok(), "{s}");
        }
    }

    #[test]
    fn formats_durations_like_go() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
        assert_eq!(format_duration(Duration::from_secs(7322)), "2h2m2s");
    }

    #[test]
    fn ratios() {
        assert_eq!(Ratio::new("0.5").value().unwrap(), 0.5);
        assert_eq!(Ratio::new("1.0").value().unwrap(), 1.0);
        assert!(Ratio::new("1.5").value().is_err());
        assert!(Ratio::new("abc").value().is_err());
    }

    #[test]
    fn severity_order() {
        assert!(Severity::SEV1.is_more_severe_than(Severity::SEV2));
        assert!(!Severity::SEV3.is_more_severe_than(Severity::SEV3));
        assert_eq!(Severity::SEV3.max_severity(Severity::SEV2), Severity::SEV2);
        assert_eq!("sev2".parse::<Severity>().unwrap(), Severity::SEV2);
    }
}

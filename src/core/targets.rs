//! Severity targets: how fast an incident must be acknowledged and resolved,
//! and how long the target must stay healthy after a mitigation.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{parse_go_duration, DurationError, Severity};

/// The targets of one severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    /// Acknowledge within this long after opening.
    pub response: Duration,
    /// Resolve within this long after opening.
    pub resolution: Duration,
    /// How long the target must stay healthy before the incident resolves.
    pub monitoring_window: Duration,
}

/// Targets per severity (the contract's table, overridable by flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityTargets {
    by_severity: BTreeMap<Severity, Targets>,
}

const MIN: u64 = 60;
const HOUR: u64 = 3600;

impl Default for SeverityTargets {
    /// The contract's defaults: SEV1 5m/2h/30m, SEV2 15m/4h/15m, SEV3 1h/24h/10m, SEV4 24h/72h/5m.
    fn default() -> Self {
        let t = |r, res, m| Targets {
            response: Duration::from_secs(r),
            resolution: Duration::from_secs(res),
            monitoring_window: Duration::from_secs(m),
        };
        SeverityTargets {
            by_severity: BTreeMap::from([
                (Severity::SEV1, t(5 * MIN, 2 * HOUR, 30 * MIN)),
                (Severity::SEV2, t(15 * MIN, 4 * HOUR, 15 * MIN)),
                (Severity::SEV3, t(HOUR, 24 * HOUR, 10 * MIN)),
                (Severity::SEV4, t(24 * HOUR, 72 * HOUR, 5 * MIN)),
            ]),
        }
    }
}

/// Which of the [`Targets`] an override sets (not to be confused with
/// [`crate::api::TargetKind`], the kind of an Incident's target object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetField {
    Response,
    Resolution,
    MonitoringWindow,
}

/// A malformed `--response-target`-style override.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetOverrideError {
    #[error("invalid target override {0:?}: expected SEVERITY=DURATION, e.g. SEV1=10m")]
    Syntax(String),
    #[error("invalid target override {input:?}: {reason}")]
    Severity { input: String, reason: String },
    #[error("invalid target override: {0}")]
    Duration(#[from] DurationError),
}

impl SeverityTargets {
    /// The targets of a severity.
    pub fn get(&self, severity: Severity) -> Targets {
        // Every severity has an entry: `Default` fills all four and
        // `set` only replaces existing ones.
        self.by_severity
            .get(&severity)
            .copied()
            .unwrap_or_else(|| SeverityTargets::default_for(severity))
    }

    fn default_for(severity: Severity) -> Targets {
        let defaults = SeverityTargets::default();
        defaults.by_severity[&severity]
    }

    /// Replace one target of one severity.
    pub fn set(&mut self, severity: Severity, field: TargetField, value: Duration) {
        let entry = self
            .by_severity
            .entry(severity)
            .or_insert_with(|| SeverityTargets::default_for(severity));
        match field {
            TargetField::Response => entry.response = value,
            TargetField::Resolution => entry.resolution = value,
            TargetField::MonitoringWindow => entry.monitoring_window = value,
        }
    }

    /// Apply overrides written as `SEV1=10m` (as the `--response-target`,
    /// `--resolution-target` and `--monitoring-window` flags take them).
    pub fn apply_overrides(
        &mut self,
        field: TargetField,
        overrides: &[String],
    ) -> Result<(), TargetOverrideError> {
        for o in overrides {
            let (sev, dur) = o
                .split_once('=')
                .ok_or_else(|| TargetOverrideError::Syntax(o.clone()))?;
            let severity: Severity =
                sev.trim()
                    .parse()
                    .map_err(|reason| TargetOverrideError::Severity {
                        input: o.clone(),
                        reason,
                    })?;
            let d = parse_go_duration(dur.trim())?;
            self.set(severity, field, d);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_defaults() {
        let t = SeverityTargets::default();
        assert_eq!(t.get(Severity::SEV1).response, Duration::from_secs(300));
        assert_eq!(t.get(Severity::SEV1).resolution, Duration::from_secs(7200));
        assert_eq!(
            t.get(Severity::SEV1).monitoring_window,
            Duration::from_secs(1800)
        );
        assert_eq!(t.get(Severity::SEV2).response, Duration::from_secs(900));
        assert_eq!(
            t.get(Severity::SEV2).resolution,
            Duration::from_secs(4 * 3600)
        );
        assert_eq!(
            t.get(Severity::SEV2).monitoring_window,
            Duration::from_secs(900)
        );
        assert_eq!(t.get(Severity::SEV3).response, Duration::from_secs(3600));
        assert_eq!(
            t.get(Severity::SEV3).resolution,
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(
            t.get(Severity::SEV3).monitoring_window,
            Duration::from_secs(600)
        );
        assert_eq!(
            t.get(Severity::SEV4).response,
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(
            t.get(Severity::SEV4).resolution,
            Duration::from_secs(72 * 3600)
        );
        assert_eq!(
            t.get(Severity::SEV4).monitoring_window,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn overrides() {
        let mut t = SeverityTargets::default();
        t.apply_overrides(
            TargetField::Response,
            &["SEV1=2m".into(), "sev4=12h".into()],
        )
        .unwrap();
        assert_eq!(t.get(Severity::SEV1).response, Duration::from_secs(120));
        assert_eq!(
            t.get(Severity::SEV4).response,
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(t.get(Severity::SEV1).resolution, Duration::from_secs(7200));
        assert!(matches!(
            t.apply_overrides(TargetField::Response, &["SEV1".into()]),
            Err(TargetOverrideError::Syntax(_))
        ));
        assert!(matches!(
            t.apply_overrides(TargetField::Response, &["SEV9=1m".into()]),
            Err(TargetOverrideError::Severity { .. })
        ));
        assert!(matches!(
            t.apply_overrides(TargetField::Response, &["SEV1=soon".into()]),
            Err(TargetOverrideError::Duration(_))
        ));
    }
}

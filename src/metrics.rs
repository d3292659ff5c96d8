//! Prometheus metrics (prometheus-client). Label cardinality is bounded:
//! severity, source, reason — never namespace or name.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{IncidentSource, Severity};

/// Severity label values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum SeverityLabel {
    SEV1,
    SEV2,
    SEV3,
    SEV4,
}

impl From<Severity> for SeverityLabel {
    fn from(s: Severity) -> Self {
        match s {
            Severity::SEV1 => SeverityLabel::SEV1,
            Severity::SEV2 => SeverityLabel::SEV2,
            Severity::SEV3 => SeverityLabel::SEV3,
            Severity::SEV4 => SeverityLabel::SEV4,
        }
    }
}

/// Source label values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum SourceLabel {
    Detector,
    Manual,
    Alertmanager,
}

impl From<IncidentSource> for SourceLabel {
    fn from(s: IncidentSource) -> Self {
        match s {
            IncidentSource::Detector => SourceLabel::Detector,
            IncidentSource::Manual => SourceLabel::Manual,
            IncidentSource::Alertmanager => SourceLabel::Alertmanager,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub severity: SeverityLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpenedLabels {
    pub severity: SeverityLabel,
    pub source: SourceLabel,
}

/// `mitigations_total{action,result}`: action is one of the four actions,
/// result one of `succeeded`, `failed`, `skipped`, `ineffective`, `reverted`, `dry_run`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MitigationLabels {
    pub action: String,
    pub result: String,
}

/// `notifications_total{format,result}`: format `Slack` or `Webhook`,
/// result `sent`, `failed`, `retried`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub format: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// A short, bounded reason such as `StatusWrite`, `Kube`, `Serialization`.
    pub reason: String,
}

/// Histogram buckets for incident durations: 10s .. 3 days.
pub const DURATION_BUCKETS: [f64; 15] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
    86400.0, 172800.0, 259200.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Buckets for time to detect: 0.1s .. 1h (detection is meant to be fast).
pub const DETECT_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

fn detect_histogram() -> Histogram {
    Histogram::new(DETECT_BUCKETS)
}

type HistogramFamily = Family<SeverityLabels, Histogram, fn() -> Histogram>;

/// Buckets for the detector's own work (one batch, one Incident create):
/// 0.1 ms .. 1 s.
pub const WORK_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.5, 1.0,
];

/// Where the detector's time goes (its profile, read from `/metrics`).
pub struct DetectorMetrics {
    /// Watch deltas applied to the index.
    pub events: Counter,
    /// Passes of the detector loop (each applies what is buffered, then evaluates).
    pub batches: Counter,
    /// Workload evaluations.
    pub evaluations: Counter,
    /// Evaluations that read the Incident caches.
    pub lookups: Counter,
    /// Seconds spent applying deltas to the index.
    pub apply_seconds: Counter<f64, AtomicU64>,
    /// Seconds spent evaluating workloads.
    pub evaluate_seconds: Counter<f64, AtomicU64>,
    /// One pass of the detector loop (apply and evaluate), wall time.
    pub batch_duration: Histogram,
    /// The Incident create round trip.
    pub create_duration: Histogram,
}

impl DetectorMetrics {
    fn new() -> Self {
        DetectorMetrics {
            events: Counter::default(),
            batches: Counter::default(),
            evaluations: Counter::default(),
            lookups: Counter::default(),
            apply_seconds: Counter::default(),
            evaluate_seconds: Counter::default(),
            batch_duration: Histogram::new(WORK_BUCKETS),
            create_duration: Histogram::new(WORK_BUCKETS),
        }
    }

    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("detector");
        r.register(
            "events",
            "Watch deltas applied to the index",
            self.events.clone(),
        );
        r.register(
            "batches",
            "Passes of the detector loop",
            self.batches.clone(),
        );
        r.register(
            "evaluations",
            "Workload evaluations",
            self.evaluations.clone(),
        );
        r.register(
            "lookups",
            "Evaluations that read the Incident caches",
            self.lookups.clone(),
        );
        r.register(
            "apply_seconds",
            "Time spent applying watch deltas to the index",
            self.apply_seconds.clone(),
        );
        r.register(
            "evaluate_seconds",
            "Time spent evaluating workloads",
            self.evaluate_seconds.clone(),
        );
        r.register(
            "batch_duration_seconds",
            "One pass of the detector loop (apply, then evaluate)",
            self.batch_duration.clone(),
        );
        r.register(
            "create_duration_seconds",
            "The Incident create round trip",
            self.create_duration.clone(),
        );
    }
}

/// All metrics of the operator.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub incidents_open: Family<SeverityLabels, Gauge>,
    pub incidents_opened: Family<OpenedLabels, Counter>,
    pub time_to_acknowledge: HistogramFamily,
    pub time_to_resolve: HistogramFamily,
    /// From `firstObservedAt` (trouble visible on the cluster) to `openedAt`.
    pub time_to_detect: HistogramFamily,
    /// From `openedAt` to the first successful mitigation.
    pub time_to_mitigate: HistogramFamily,
    pub mitigations: Family<MitigationLabels, Counter>,
    pub notifications: Family<NotificationLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconciliations: Counter,
    /// The detector's profile.
    pub detector: DetectorMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kube_incident");
        let incidents_open = Family::<SeverityLabels, Gauge>::default();
        let incidents_opened = Family::<OpenedLabels, Counter>::default();
        let time_to_acknowledge: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let time_to_resolve: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let time_to_detect: HistogramFamily = Family::new_with_constructor(detect_histogram);
        let time_to_mitigate: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let mitigations = Family::<MitigationLabels, Counter>::default();
        let notifications = Family::<NotificationLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconciliations = Counter::default();
        registry.register(
            "incidents_open",
            "Incidents not yet resolved, by effective severity",
            incidents_open.clone(),
        );
        registry.register(
            "incidents_opened",
            "Incidents opened, by severity and source",
            incidents_opened.clone(),
        );
        registry.register(
            "time_to_acknowledge_seconds",
            "Time from opening to acknowledgement",
            time_to_acknowledge.clone(),
        );
        registry.register(
            "time_to_resolve_seconds",
            "Time from opening to resolution",
            time_to_resolve.clone(),
        );
        registry.register(
            "time_to_detect_seconds",
            "Time from the trouble being visible on the cluster to the incident opening",
            time_to_detect.clone(),
        );
        registry.register(
            "time_to_mitigate_seconds",
            "Time from opening to the first successful mitigation",
            time_to_mitigate.clone(),
        );
        registry.register(
            "mitigations",
            "Mitigation steps finished, by action and result",
            mitigations.clone(),
        );
        registry.register(
            "notifications",
            "Notifications, by sink format and result",
            notifications.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile failures by reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconciliations",
            "Incident reconciliations",
            reconciliations.clone(),
        );
        let detector = DetectorMetrics::new();
        detector.register(&mut registry);
        Metrics {
            registry: Mutex::new(registry),
            incidents_open,
            incidents_opened,
            time_to_acknowledge,
            time_to_resolve,
            time_to_detect,
            time_to_mitigate,
            mitigations,
            notifications,
            reconcile_errors,
            reconciliations,
            detector,
        }
    }

    /// Record a newly opened incident.
    pub fn opened(&self, severity: Severity, source: IncidentSource) {
        self.incidents_opened
            .get_or_create(&OpenedLabels {
                severity: severity.into(),
                source: source.into(),
            })
            .inc();
    }

    pub fn acknowledged(&self, severity: Severity, after: Duration) {
        self.time_to_acknowledge
            .get_or_create(&SeverityLabels {
                severity: severity.into(),
            })
            .observe(after.as_secs_f64());
    }

    pub fn resolved(&self, severity: Severity, after: Duration) {
        self.time_to_resolve
            .get_or_create(&SeverityLabels {
                severity: severity.into(),
            })
            .observe(after.as_secs_f64());
    }

    pub fn detected(&self, severity: Severity, after: Duration) {
        self.time_to_detect
            .get_or_create(&SeverityLabels {
                severity: severity.into(),
            })
            .observe(after.as_secs_f64());
    }

    pub fn mitigated(&self, severity: Severity, after: Duration) {
        self.time_to_mitigate
            .get_or_create(&SeverityLabels {
                severity: severity.into(),
            })
            .observe(after.as_secs_f64());
    }

    pub fn mitigation(&self, action: &str, result: &str) {
        self.mitigations
            .get_or_create(&MitigationLabels {
                action: action.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn notification(&self, format: &str, result: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                format: format.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Replace the open-incidents gauge with fresh counts.
    pub fn set_open(&self, counts: &[(Severity, i64)]) {
        for sev in Severity::ALL {
            let n = counts
                .iter()
                .filter(|(s, _)| *s == sev)
                .map(|(_, n)| *n)
                .sum();
            self.incidents_open
                .get_or_create(&SeverityLabels {
                    severity: sev.into(),
                })
                .set(n);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_bounded_families() {
        let m = Metrics::new();
        m.opened(Severity::SEV2, IncidentSource::Detector);
        m.acknowledged(Severity::SEV2, Duration::from_secs(90));
        m.resolved(Severity::SEV2, Duration::from_secs(3600));
        m.reconcile_error("StatusWrite");
        m.set_open(&[(Severity::SEV1, 2)]);
        let text = m.encode().unwrap();
        assert!(
            text.contains(
                r#"kube_incident_incidents_opened_total{severity="SEV2",source="Detector"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"kube_incident_incidents_open{severity="SEV1"} 2"#));
        assert!(text.contains(r#"kube_incident_incidents_open{severity="SEV4"} 0"#));
        assert!(
            text.contains(
                r#"kube_incident_time_to_acknowledge_seconds_bucket{le="120.0",severity="SEV2"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"kube_incident_time_to_resolve_seconds_count{severity="SEV2"} 1"#));
        assert!(text.contains(r#"kube_incident_reconcile_errors_total{reason="StatusWrite"} 1"#));
        assert!(!text.contains("namespace="));
    }
}

//! Fixtures of the format tests.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Incident, IncidentSource, IncidentSpec, IncidentStatus, Severity};

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn time(s: &str) -> Option<Time> {
    Some(Time(t(s)))
}

pub fn spec(title: &str, severity: Severity) -> IncidentSpec {
    IncidentSpec {
        title: title.into(),
        severity,
        source: IncidentSource::Manual,
        target: None,
        runbook_ref: None,
        commander: None,
        acknowledged_by: None,
        root_cause: None,
        mitigations: vec![],
        resolution: None,
        resume_git_ops: None,
    }
}

pub fn incident(
    ns: &str,
    name: &str,
    spec: IncidentSpec,
    status: Option<IncidentStatus>,
) -> Incident {
    let mut inc = Incident::new(name, spec);
    inc.metadata.namespace = Some(ns.into());
    inc.status = status;
    inc
}

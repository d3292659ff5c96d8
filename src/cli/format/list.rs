//! The `list` table.

use jiff::Timestamp;

use super::time::{human_duration, span};
use super::{cell, effective_severity, opened_at, phase, table, target_text, NONE};
use crate::api::Incident;

/// Sort for `list`: effective severity (SEV1 first), then oldest first,
/// then namespace and name.
pub fn sort_for_list(incidents: &mut [Incident]) {
    incidents.sort_by(|a, b| {
        effective_severity(a)
            .cmp(&effective_severity(b))
            .then_with(|| opened_at(a).cmp(&opened_at(b)))
            .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The `list` table (rows in the given order). `all_namespaces` adds a
/// leading NAMESPACE column.
pub fn list_table(incidents: &[Incident], all_namespaces: bool, now: Timestamp) -> String {
    let mut header: Vec<String> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".into());
    }
    header.extend(
        ["NAME", "SEVERITY", "PHASE", "TARGET", "ACK", "AGE", "TITLE"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut rows = vec![header];
    for inc in incidents {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(inc.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(inc.metadata.name.clone().unwrap_or_default());
        row.push(effective_severity(inc).to_string());
        row.push(phase(inc).map_or(NONE.to_string(), |p| p.to_string()));
        row.push(target_text(inc.spec.target.as_ref()));
        row.push(
            inc.spec
                .acknowledged_by
                .as_deref()
                .map_or(NONE.to_string(), cell),
        );
        row.push(opened_at(inc).map_or(NONE.to_string(), |t| {
            if t > now {
                "0s".to_string()
            } else {
                human_duration(span(now, t))
            }
        }));
        row.push(cell(&inc.spec.title));
        rows.push(row);
    }
    table(&rows, "")
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;

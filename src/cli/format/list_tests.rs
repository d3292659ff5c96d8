use super::*;
use crate::api::{IncidentStatus, Phase, Severity, TargetKind, TargetRef};
use crate::cli::format::fixtures::{incident, spec, t, time};

#[test]
fn targets() {
    let web = TargetRef {
        kind: TargetKind::Deployment,
        name: "web".into(),
    };
    assert_eq!(target_text(Some(&web)), "deployment/web");
    assert_eq!(target_text(None), "<none>");
}

fn list_fixture() -> Vec<Incident> {
    let mut a = spec("web: 502s after deploy", Severity::SEV2);
    a.target = Some(TargetRef {
        kind: TargetKind::Deployment,
        name: "web".into(),
    });
    a.acknowledged_by = Some("alice".into());
    let a = incident(
        "shop",
        "web-abc123",
        a,
        Some(IncidentStatus {
            phase: Some(Phase::Mitigating),
            severity: Some(Severity::SEV2),
            opened_at: time("2026-11-22T10:00:00Z"),
            ..Default::default()
        }),
    );
    // declared SEV3, raised to SEV1 by impact: sorts first
    let b = incident(
        "pay",
        "payments-down-1a2b3c",
        spec("payments failing", Severity::SEV3),
        Some(IncidentStatus {
            phase: Some(Phase::Investigating),
            severity: Some(Severity::SEV1),
            opened_at: time("2026-11-22T10:10:00Z"),
            ..Default::default()
        }),
    );
    // no status yet: creation time is its age
    let mut c = incident(
        "shop",
        "batch-9f9f9f",
        spec("batch slow", Severity::SEV2),
        None,
    );
    c.metadata.creation_timestamp = time("2026-11-22T08:00:00Z");
    vec![a, b, c]
}

#[test]
fn list_golden() {
    let mut items = list_fixture();
    sort_for_list(&mut items);
    let now = t("2026-11-22T10:12:00Z");
    let want = "\
NAME                   SEVERITY   PHASE           TARGET           ACK      AGE    TITLE
payments-down-1a2b3c   SEV1       Investigating   <none>           <none>   2m     payments failing
batch-9f9f9f           SEV2       <none>          <none>           <none>   132m   batch slow
web-abc123             SEV2       Mitigating      deployment/web   alice    12m    web: 502s after deploy
";
    assert_eq!(list_table(&items, false, now), want);
    let all = list_table(&items, true, now);
    assert!(
        all.starts_with("NAMESPACE   NAME                   SEVERITY"),
        "{all}"
    );
    assert!(
        all.contains("\npay         payments-down-1a2b3c   SEV1"),
        "{all}"
    );
}

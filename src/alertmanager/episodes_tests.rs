use std::time::Duration;

use serde_json::json;

use super::*;
use crate::alertmanager::{ALERT_GROUP_LABEL, RESOLVER};

fn episode(name: &str, n: Option<u32>, resolved_at: Option<&str>, resolution: bool) -> Incident {
    let mut labels = json!({ALERT_GROUP_LABEL: "abc"});
    if let Some(n) = n {
        labels[EPISODE_LABEL] = json!(n.to_string());
    }
    let mut spec = json!({"title": "t", "severity": "SEV3", "source": "Alertmanager"});
    if resolution {
        spec["resolution"] = json!({"by": RESOLVER, "summary": "all resolved"});
    }
    let mut v = json!({
        "apiVersion": "kubeincident.io/v1alpha1", "kind": "Incident",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": spec,
    });
    if let Some(at) = resolved_at {
        v["status"] = json!({"resolvedAt": at});
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn firing_again_reopens_within_the_window_and_opens_a_new_episode_after() {
    let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
    let hour = Duration::from_secs(3600);
    assert_eq!(
        decide_fire("am-abc", &[], hour, now),
        FireDecision::Open {
            name: "am-abc".into(),
            episode: 1
        }
    );
    // Open (no resolution): update it.
    let open = episode("am-abc", None, None, false);
    assert_eq!(
        decide_fire("am-abc", std::slice::from_ref(&open), hour, now),
        FireDecision::Update {
            name: "am-abc".into()
        }
    );
    // Resolved by the intake, not yet processed by the controller: reopen.
    let just = episode("am-abc", None, None, true);
    assert_eq!(
        decide_fire("am-abc", std::slice::from_ref(&just), hour, now),
        FireDecision::Reopen {
            name: "am-abc".into()
        }
    );
    // Resolved 30 minutes ago: reopen (the page is not lost).
    let recent = episode("am-abc", None, Some("2026-01-01T11:30:00Z"), true);
    assert_eq!(
        decide_fire("am-abc", std::slice::from_ref(&recent), hour, now),
        FireDecision::Reopen {
            name: "am-abc".into()
        }
    );
    // Resolved (also automatically, without spec.resolution) 2h ago: a new episode.
    let old = episode("am-abc", None, Some("2026-01-01T10:00:00Z"), false);
    assert_eq!(
        decide_fire("am-abc", std::slice::from_ref(&old), hour, now),
        FireDecision::Open {
            name: "am-abc-2".into(),
            episode: 2
        }
    );
    // The latest episode decides.
    let second = episode("am-abc-2", Some(2), None, false);
    assert_eq!(
        decide_fire("am-abc", &[second.clone(), old.clone()], hour, now),
        FireDecision::Update {
            name: "am-abc-2".into()
        }
    );
    assert_eq!(
        latest(&[old, second]).map(|i| i.name_any()),
        Some("am-abc-2".to_string())
    );
    assert_eq!(episode_name("am-abc", 1), "am-abc");
    assert_eq!(episode_name("am-abc", 3), "am-abc-3");
}

//! Firing again after a resolution: reopen within the window, else open
//! the next episode (as the detector does for a recurrence). Pure.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::Incident;
use crate::controller::detector::EPISODE_LABEL;

/// The name of episode `n` of a group: `am-<hash>` for the first (the name
/// the intake always used), `am-<hash>-<n>` after that.
pub fn episode_name(first: &str, n: u32) -> String {
    if n <= 1 {
        first.to_string()
    } else {
        format!("{first}-{n}")
    }
}

/// The episode of an Incident of a group (1 when unlabelled: opened before
/// episodes existed).
pub fn episode_of(inc: &Incident) -> u32 {
    inc.labels()
        .get(EPISODE_LABEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// What firing alerts do to the Incidents of their group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireDecision {
    /// No Incident yet, or the latest was resolved longer than the reopen
    /// window ago: open episode `episode`.
    Open { name: String, episode: u32 },
    /// The latest Incident is open: update it (severity only rises).
    Update { name: String },
    /// The latest Incident was resolved within the reopen window: reopen it.
    Reopen { name: String },
}

/// Decide what firing alerts do, as the detector does for a recurrence:
/// reopen the latest Incident of the group when it was resolved less than
/// `window` ago (or its resolution is not processed yet), else open the
/// next episode. Pure. `group`: the Incidents of the group in the namespace.
pub fn decide_fire(
    first_name: &str,
    group: &[Incident],
    window: Duration,
    now: Timestamp,
) -> FireDecision {
    let Some(latest) = group.iter().max_by_key(|i| episode_of(i)) else {
        return FireDecision::Open {
            name: first_name.to_string(),
            episode: 1,
        };
    };
    let name = latest.name_any();
    let resolved_at = latest
        .status
        .as_ref()
        .and_then(|s| s.resolved_at.as_ref())
        .map(|t| t.0);
    match (resolved_at, latest.spec.resolution.is_some()) {
        (None, false) => FireDecision::Update { name },
        // Resolved in the spec, not yet by the controller: just resolved.
        (None, true) => FireDecision::Reopen { name },
        (Some(at), _) => {
            let within = at.checked_add(window).is_ok_and(|end| now < end);
            if within {
                FireDecision::Reopen { name }
            } else {
                let episode = episode_of(latest) + 1;
                FireDecision::Open {
                    name: episode_name(first_name, episode),
                    episode,
                }
            }
        }
    }
}

/// The latest Incident of a group, if any (what a resolution applies to).
pub fn latest(group: &[Incident]) -> Option<&Incident> {
    group.iter().max_by_key(|i| episode_of(i))
}

#[cfg(test)]
#[path = "episodes_tests.rs"]
mod tests;

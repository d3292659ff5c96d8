//! The `NotificationFailed` condition from the notifier's delivery records.

use std::collections::BTreeMap;

use super::builder::Builder;
use super::condition;
use crate::api::{DeliveryState, NotificationRecord};
use crate::core::conditions::{FALSE, TRUE};

/// `NotificationFailed` from the notifier's delivery records: `True` while
/// the latest delivery to some sink failed (or its outcome is unknown).
pub(super) fn deliveries(b: &mut Builder) {
    if b.status.notifications.is_empty() {
        return;
    }
    let mut latest: BTreeMap<&str, &NotificationRecord> = BTreeMap::new();
    for r in &b.status.notifications {
        if r.state == DeliveryState::Sending {
            continue;
        }
        latest.insert(r.sink.as_str(), r);
    }
    let failing: Vec<String> = latest
        .values()
        .filter(|r| matches!(r.state, DeliveryState::Failed | DeliveryState::Unknown))
        .map(|r| format!("{} ({}: {})", r.sink, r.id, r.message))
        .collect();
    let (status, reason, message) = if failing.is_empty() {
        (
            FALSE,
            "Delivered",
            "the latest notification to every sink was delivered".to_string(),
        )
    } else {
        (
            TRUE,
            "DeliveryFailed",
            format!("notification delivery failed: {}", failing.join("; ")),
        )
    };
    if latest.is_empty() {
        return;
    }
    b.cond(condition::NOTIFICATION_FAILED, status, reason, message);
}

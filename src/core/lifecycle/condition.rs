//! Condition types on an Incident.

pub const ACKNOWLEDGED: &str = "Acknowledged";
pub const RESPONSE_OVERDUE: &str = "ResponseOverdue";
pub const RESOLUTION_OVERDUE: &str = "ResolutionOverdue";
pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
pub const MITIGATION_FAILED: &str = "MitigationFailed";
pub const RESOLVED: &str = "Resolved";
/// `False` when the spec is semantically invalid (the message names the field).
pub const VALID: &str = "Valid";
/// `True` while the latest delivery to some notification sink failed.
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";

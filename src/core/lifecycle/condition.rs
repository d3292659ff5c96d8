//! Condition types on an Incident.

pub const ACKNOWLEDGED: &str = "Acknowledged";
pub const RESPONSE_OVERDUE: &str = "ResponseOverdue";
pub const RESOLUTION_OVERDUE: &str = "ResolutionOverdue";
pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
pub const MITIGATION_FAILED: &str = "MitigationFailed";
/// `True` while some step was refused: no Runbook governing the target grants it.
pub const MITIGATION_REFUSED: &str = "MitigationRefused";
/// `False` while an `approvedBy` was not checked by the API server's
/// admission policy (not honoured, or honoured under
/// `--accept-unverified-approvals`).
pub const APPROVALS_VERIFIED: &str = "ApprovalsVerified";
pub const RESOLVED: &str = "Resolved";
/// `False` when the spec is semantically invalid (the message names the field).
pub const VALID: &str = "Valid";
/// `True` while the latest delivery to some notification sink failed.
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
/// A step paused the target's GitOps owner (True) until it is given back.
pub const GITOPS_SUSPENDED: &str = "GitOpsSuspended";

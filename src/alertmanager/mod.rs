//! Alertmanager intake: `POST /alertmanager` accepts Alertmanager's webhook
//! payload (version 4) and opens, updates and resolves Incidents with
//! source `Alertmanager`, one per (alert group, namespace).
//!
//! - Authentication: `Authorization: Bearer <token>`, the token read from a
//!   Secret (`--alertmanager-token-secret NAMESPACE/NAME`, key
//!   `--alertmanager-token-key`, default `token`). Missing or wrong: 401.
//! - Malformed JSON, a version other than "4", no groupKey: 400; no alert
//!   that maps to a watched namespace: 422. Nothing is changed then.
//! - Mapping (flags): the namespace, deployment, pod and severity labels,
//!   and severity values to SEV levels.
//! - Grouping: the Incident name is `am-` + a hash of (groupKey, namespace);
//!   firing alerts open or update it (severity only rises), a payload in
//!   which every alert of the namespace is resolved resolves it. Firing
//!   again after that does what a detector recurrence does: within the
//!   reopen window (`--alertmanager-reopen-window`, default 1h) of the
//!   resolution it reopens the Incident (`spec.resolution` removed and the
//!   annotation `kubeincident.io/recurred-at` set, which the lifecycle turns
//!   into `Reopened`); later it opens a new episode `am-<hash>-<n>`.
//! - A namespace that does not exist (or another refusal no retry can fix)
//!   is a 422 with the reason; server errors are a 503, which Alertmanager
//!   retries (every step is idempotent).
//!
//! Layout:
//! - `mapping`: how alert labels map onto Incidents (the flags).
//! - `payload`: the v4 payload, parsed and planned into [`Action`]s (pure).
//! - `episodes`: reopen or open a new episode when alerts fire again (pure).
//! - `auth`: where the bearer token lives, and checking it.
//! - `handler`: the HTTP endpoint (authenticate, plan, apply, reply).
//! - `apply`: the Kubernetes writes of one action.

mod apply;
mod auth;
mod episodes;
mod handler;
mod mapping;
mod payload;

pub use apply::ApplyError;
pub use auth::TokenRef;
pub use episodes::{decide_fire, episode_name, episode_of, latest, FireDecision};
pub use handler::{handle, Intake, DEFAULT_REOPEN_WINDOW};
pub use mapping::{Mapping, MappingError};
pub use payload::{incident_name, plan, Action, Alert, IntakeError, Payload};

/// Label on Incidents opened from Alertmanager: the group hash.
pub const ALERT_GROUP_LABEL: &str = "kubeincident.io/alert-group";
/// Annotation with the full Alertmanager group key.
pub const ALERT_GROUP_KEY_ANNOTATION: &str = "kubeincident.io/alert-group-key";
/// Who resolves an Incident when its alerts resolve.
pub const RESOLVER: &str = "alertmanager";

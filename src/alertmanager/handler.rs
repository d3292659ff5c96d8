//! The HTTP endpoint: authenticate, plan, apply, reply.

use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kube::Client;
use serde_json::json;
use tracing::{info, warn};

use super::apply::ApplyError;
use super::auth::{self, TokenRef};
use super::mapping::Mapping;
use super::payload::plan;

/// The intake endpoint's state.
pub struct Intake {
    pub client: Client,
    pub token: TokenRef,
    pub mapping: Mapping,
    pub watched: Vec<String>,
    /// Only the leader writes; a follower answers 503 and Alertmanager
    /// retries (the Service may route the retry to the leader).
    pub leadership: crate::leader::Leadership,
    /// Firing again within this long of the resolution reopens the
    /// Incident; later, a new episode opens.
    pub reopen_window: Duration,
    pub clock: crate::controller::Clock,
}

/// The default of `--alertmanager-reopen-window` (the detector's default
/// `reopenWindow`).
pub const DEFAULT_REOPEN_WINDOW: Duration = Duration::from_secs(3600);

fn reply(code: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"status": if code.is_success() {"ok"} else {"error"}, "message": message.into()})
            .to_string(),
    )
        .into_response();
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

impl Intake {
    /// Handle one request: authenticate, plan, apply.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let Some(presented) = auth::presented(headers) else {
            return reply(StatusCode::UNAUTHORIZED, "missing bearer token");
        };
        let expected = match self.expected_token().await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "alertmanager intake: cannot authenticate requests");
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the intake cannot read its token secret; see the operator's log",
                );
            }
        };
        if !auth::same(&presented, &expected) {
            return reply(StatusCode::UNAUTHORIZED, "invalid bearer token");
        }
        let actions = match plan(body, &self.mapping, &self.watched) {
            Ok(a) => a,
            Err(e) => {
                info!(error = %e, "alertmanager payload refused");
                return reply(e.status(), e.to_string());
            }
        };
        if !self.leadership.is_leader() {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "this replica is not the leader; retry (another replica will take it)",
            );
        }
        let mut done = Vec::new();
        let mut refused = Vec::new();
        for a in &actions {
            match self.apply(a).await {
                Ok(what) => done.push(what),
                Err(ApplyError::Retry(e)) => {
                    warn!(error = %e, "alertmanager intake: cannot apply");
                    // Alertmanager retries on 5xx; every step is idempotent.
                    return reply(StatusCode::SERVICE_UNAVAILABLE, e);
                }
                Err(ApplyError::Refused(e)) => {
                    info!(error = %e, "alertmanager intake: alert refused");
                    refused.push(e);
                }
            }
        }
        if !refused.is_empty() {
            // A 4xx: Alertmanager must not retry what cannot succeed.
            let mut message = format!("refused: {}", refused.join("; "));
            if !done.is_empty() {
                message.push_str(&format!("; done: {}", done.join("; ")));
            }
            return reply(StatusCode::UNPROCESSABLE_ENTITY, message);
        }
        reply(StatusCode::OK, done.join("; "))
    }
}

/// Handle a request to `POST /alertmanager` (`None`: the intake is off).
pub async fn handle(intake: Option<&Intake>, headers: &HeaderMap, body: &[u8]) -> Response {
    match intake {
        Some(i) => i.handle(headers, body).await,
        None => reply(
            StatusCode::NOT_FOUND,
            "the Alertmanager intake is off (start the operator with --alertmanager-token-secret)",
        ),
    }
}

//! `metav1.Status` errors with the codes, reasons and message texts of
//! kube-apiserver.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

/// An API error, rendered as a `metav1.Status` JSON body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`.
    pub reason: String,
    /// Human readable message.
    pub message: String,
    /// `details` of the Status, if any.
    pub details: Option<Value>,
    /// `Retry-After` seconds (429 and some 500s).
    pub retry_after: Option<u64>,
}

/// One `details.causes` entry of a 422 Invalid error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...
    pub reason: String,
    /// The error message for this field, e.g. `Required value`.
    pub message: String,
    /// The JSON path of the field, e.g. `spec.replicas`.
    pub field: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
    /// `Required value`.
    pub fn required(field: &str) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }
    /// `Invalid value: <v>: <detail>`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", render_value(value)),
        )
    }
    /// `Unsupported value: <v>: supported values: ...`.
    pub fn not_supported(field: &str, value: &Value, supported: &[Value]) -> Self {
        let list: Vec<String> = supported.iter().map(render_value).collect();
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        )
    }
    /// `Forbidden: <detail>`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }
    /// The `field: message` text used in the aggregate message.
    pub fn text(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `<resource>.<group>` or `<resource>` for the core group (how
/// kube-apiserver names a qualified resource in messages).
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// A bare error.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    /// Set `details`, leaving out empty strings as Go's `omitempty` does
    /// (no `"group": ""` for the core group, no `"name": ""`).
    fn with_details(mut self, mut details: Value) -> Self {
        if let Some(d) = details.as_object_mut() {
            d.retain(|_, v| v.as_str() != Some(""));
        }
        self.details = Some(details);
        self
    }
    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }
    /// 404 NotFound: `<resource>.<group> "<name>" not found`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(resource, group)),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 404 for an unknown URL path (`the server could not find the requested resource`).
    pub fn path_not_found() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }
    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(resource, group)),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(resource: &str, group: &str, name: &str) -> Self {
        ApiError::conflict_msg(
            resource,
            group,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    /// 409 Conflict with a custom reason text.
    pub fn conflict_msg(resource: &str, group: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(resource, group)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 410 Expired (too old resource version / continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }
    /// 410 Gone.
    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Gone", message)
    }
    /// 415 UnsupportedMediaType for a patch type the resource does not accept.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"message": content_type}]}))
    }
    /// 422 Invalid with causes: `<Kind>.<group> "<name>" is invalid: ...`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[Cause]) -> Self {
        let texts: Vec<String> = causes.iter().map(Cause::text).collect();
        let joined = if texts.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        ApiError::new(
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {joined}", qualified(kind, group)),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes_json}))
    }
    /// 422 Invalid for bad request options, e.g. `PatchOptions.meta.k8s.io ""
    /// is invalid: fieldManager: Required value: is required for apply patch`
    /// (kube-apiserver validates the options object like any other).
    pub fn invalid_options(options_kind: &str, causes: &[Cause]) -> Self {
        ApiError::invalid(options_kind, "meta.k8s.io", "", causes)
    }
    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }
    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(resource: &str, group: &str, verb: &str) -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({verb} {})",
                qualified(resource, group)
            ),
        )
    }
    /// 429 TooManyRequests with Retry-After.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
        .with_details(json!({"retryAfterSeconds": retry_after}));
        e.retry_after = Some(retry_after);
        e
    }
    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        let m = message.into();
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {m}"),
        )
        .with_details(json!({"causes": [{"message": m}]}))
    }

    /// The `metav1.Status` JSON.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_status().to_string();
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            if let Ok(h) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, h);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kube_apiserver() {
        assert_eq!(
            ApiError::not_found("deployments", "apps", "x").message,
            "deployments.apps \"x\" not found"
        );
        assert_eq!(
            ApiError::not_found("pods", "", "p").message,
            "pods \"p\" not found"
        );
        assert_eq!(
            ApiError::conflict("deployments", "apps", "x").message,
            "Operation cannot be fulfilled on deployments.apps \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let inv = ApiError::invalid("Pod", "", "p", &[Cause::required("spec.containers")]);
        assert_eq!(
            inv.message,
            "Pod \"p\" is invalid: spec.containers: Required value"
        );
        assert_eq!(
            inv.to_status()["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
        let opt = ApiError::invalid_options(
            "PatchOptions",
            &[Cause::new(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            )],
        );
        assert_eq!(
            opt.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        assert_eq!(
            opt.to_status()["details"],
            json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch", "field": "fieldManager"}]})
        );
        assert_eq!(
            ApiError::not_found("pods", "", "p").to_status()["details"],
            json!({"name": "p", "kind": "pods"})
        );
        let tm = ApiError::too_many_requests(3);
        assert_eq!(tm.to_status()["code"], 429);
        assert_eq!(tm.retry_after, Some(3));
    }
}

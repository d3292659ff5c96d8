//! Query parameters and request bodies: options, field manager, dry run,
//! verbs, selectors and delete options.

use std::collections::HashMap;

use axum::body::Bytes;
use http::{header, HeaderMap, Method};
use serde_json::{json, Value};

use super::routing::Target;
use crate::protobuf;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Cause};
use crate::store::{DeleteOpts, Filter, Propagation, WriteCtx};

pub(super) fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(String::as_str)
}

pub(super) fn bool_param(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(param(q, k), Some("true") | Some("1"))
}

pub(super) fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json");
    if body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    if protobuf::is_protobuf(ct) {
        // kubectl's typed commands: decoded to the same JSON a JSON body gives.
        return Ok(protobuf::decode(body)?);
    }
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(
            ct,
            &["application/json", "application/yaml", protobuf::MEDIA_TYPE],
        ));
    }
    if ct.contains("yaml") {
        serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type JSON): {e}"
            ))
        })
    }
}

/// The options object kube-apiserver validates for a verb (its name is
/// in the 422 message of a bad option).
pub(super) fn options_kind(verb: &str) -> &'static str {
    match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        "patch" | "apply" => "PatchOptions",
        _ => "DeleteOptions",
    }
}

pub(super) fn field_manager(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    verb: &str,
) -> Result<Option<String>, ApiError> {
    if let Some(m) = param(q, "fieldManager") {
        if m.len() > 128 {
            return Err(ApiError::invalid_options(
                options_kind(verb),
                &[Cause::new(
                    "FieldValueTooLong",
                    "fieldManager",
                    "Too long: may not be more than 128 bytes",
                )],
            ));
        }
        return Ok(Some(m.to_string()));
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("unknown");
    Ok(Some(ua.split('/').next().unwrap_or("unknown").to_string()))
}

pub(super) fn dry_run(q: &HashMap<String, String>, verb: &str) -> Result<bool, ApiError> {
    match param(q, "dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::invalid_options(
            options_kind(verb),
            &[Cause::not_supported(
                "dryRun",
                &json!([other]),
                &[json!("All")],
            )],
        )),
    }
}

pub(super) fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
    match (method.as_str(), &t.name) {
        ("GET", None) if bool_param(q, "watch") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => "unknown",
    }
}

pub(super) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

pub(super) fn ctx_for(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    verb: &'static str,
    t: &Target,
) -> Result<WriteCtx, ApiError> {
    Ok(WriteCtx {
        verb,
        subresource: t.sub.clone(),
        field_manager: field_manager(q, headers, verb)?,
        dry_run: dry_run(q, verb)?,
        api_version: t.def.api_version(&t.version),
    })
}

pub(super) fn filter_from(q: &HashMap<String, String>, t: &Target) -> Result<Filter, ApiError> {
    let labels = LabelSelector::parse(param(q, "labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let def = &t.def;
    let fields = FieldSelector::parse(param(q, "fieldSelector").unwrap_or_default(), |f| {
        def.field_supported(f)
    })
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Filter {
        namespace: t.namespace.clone(),
        labels,
        fields,
    })
}

pub(super) fn delete_opts(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(DeleteOpts, bool), ApiError> {
    let mut opts = DeleteOpts::default();
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        parse_body(headers, body)?
    };
    let policy = param(q, "propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            b.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let orphan = b
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| param(q, "orphanDependents").map(|x| x == "true"));
    opts.propagation = match (policy.as_deref(), orphan) {
        (Some("Foreground"), _) => Propagation::Foreground,
        (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
        (Some("Background"), _) | (None, _) => Propagation::Background,
        (Some(other), _) => {
            let supported = ["Foreground", "Background", "Orphan", "nil"].map(|s| json!(s));
            return Err(ApiError::invalid_options(
                "DeleteOptions",
                &[Cause::not_supported(
                    "propagationPolicy",
                    &json!(other),
                    &supported,
                )],
            ));
        }
    };
    opts.precondition_uid = b
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    opts.precondition_rv = b
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let dry = dry_run(q, "delete")?
        || b.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok((opts, dry))
}

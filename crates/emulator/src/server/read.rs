//! The read verbs: list, get, the scale subresource view and pod logs.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::params::{bool_param, filter_from, param, wants_table};
use super::routing::Target;
use super::{json_response, json_value};
use crate::app_state::AppState;
use crate::object_version::object_bytes;
use crate::resources::ResourceDef;
use crate::selectors::LabelSelector;
use crate::status::ApiError;
use crate::store::ListOpts;
use crate::table;

pub(super) fn list(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let filter = filter_from(q, t)?;
    let limit = match param(q, "limit") {
        Some(l) if !l.is_empty() => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        ),
        _ => None,
    };
    let opts = ListOpts {
        limit,
        continue_token: param(q, "continue").map(str::to_string),
        resource_version: param(q, "resourceVersion").map(str::to_string),
        resource_version_match: param(q, "resourceVersionMatch").map(str::to_string),
    };
    if let Some(m) = &opts.resource_version_match {
        if m != "Exact" && m != "NotOlderThan" {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
        if opts
            .resource_version
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
    }
    if opts
        .continue_token
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        && opts
            .resource_version
            .as_deref()
            .is_some_and(|r| !r.is_empty() && r != "0")
    {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    let page = st.store.list(&t.def, &filter, &opts)?;
    if wants_table(headers) {
        let items: Vec<Value> = page.items.iter().map(|s| s.value()).collect();
        let tbl = table::table(
            &t.def,
            &items,
            page.rv,
            page.continue_token.as_deref(),
            param(q, "includeObject"),
        );
        return Ok(json_value(StatusCode::OK, &tbl));
    }
    let mut out: Vec<u8> =
        Vec::with_capacity(256 + page.items.iter().map(|s| s.json.len() + 1).sum::<usize>());
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    let head = json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(&t.version), "metadata": meta});
    let head_s = head.to_string();
    // `{"apiVersion":..,"kind":..,"metadata":..}` -> strip the closing brace and append items.
    out.extend_from_slice(&head_s.as_bytes()[..head_s.len() - 1]);
    out.extend_from_slice(b",\"items\":[");
    for (i, s) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&object_bytes(s, &t.def, &t.version));
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(StatusCode::OK, out))
}

pub(super) fn scale_of(def: &ResourceDef, v: &Value) -> Value {
    let Some(sc) = &def.scale else {
        return Value::Null;
    };
    let ptr = |p: &str| format!("/{}", p.replace('.', "/"));
    let spec_r = v
        .pointer(&ptr(&sc.spec_replicas_path))
        .cloned()
        .unwrap_or(json!(0));
    let status_r = v
        .pointer(&ptr(&sc.status_replicas_path))
        .cloned()
        .unwrap_or(json!(0));
    let selector = match &sc.label_selector_path {
        Some(p) => v
            .pointer(&ptr(p))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => v
            .pointer("/spec/selector")
            .map(|s| LabelSelector::from_label_selector_json(s).to_text())
            .unwrap_or_default(),
    };
    let m = &v["metadata"];
    let mut status = json!({"replicas": status_r});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": spec_r}, "status": status})
}

pub(super) fn get(
    st: &AppState,
    t: &Target,
    ns: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let name = t.name.as_deref().unwrap_or_default();
    if t.sub.as_deref() == Some("log") {
        return pod_log(st, t, ns, name, q);
    }
    let s = st.store.get(&t.def, ns, name)?;
    if t.sub.as_deref() == Some("scale") {
        return Ok(json_value(StatusCode::OK, &scale_of(&t.def, &s.value())));
    }
    if wants_table(headers) {
        let v = s.value();
        let tbl = table::table(
            &t.def,
            std::slice::from_ref(&v),
            s.rv,
            None,
            param(q, "includeObject"),
        );
        return Ok(json_value(StatusCode::OK, &tbl));
    }
    Ok(json_response(
        StatusCode::OK,
        object_bytes(&s, &t.def, &t.version),
    ))
}

pub(super) fn pod_log(
    st: &AppState,
    t: &Target,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let pod = st.store.get(&t.def, ns, name)?.value();
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match param(q, "container").filter(|c| !c.is_empty()) {
        Some(c) => {
            let init: Vec<String> = pod
                .pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if !containers.iter().chain(init.iter()).any(|x| x == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    let previous = bool_param(q, "previous");
    let tail = param(q, "tailLines")
        .and_then(|t| t.parse::<i64>().ok())
        .map(|t| t.max(0) as usize);
    let lines = match st.logs.read(ns, name, &container, previous, tail) {
        Some(l) => l,
        None if previous => {
            return Err(ApiError::bad_request(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )))
        }
        None => Vec::new(),
    };
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

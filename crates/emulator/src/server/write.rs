//! The write verbs: update, patch (merge, JSON, strategic, apply), delete and
//! deletecollection.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::response::Response;
use http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::json_value;
use super::params::{bool_param, ctx_for, delete_opts, filter_from, param, parse_body};
use super::read::scale_of;
use super::routing::Target;
use crate::app_state::AppState;
use crate::managed;
use crate::object_version::with_version;
use crate::patch::{self, PatchError};
use crate::resources::ResourceDef;
use crate::status::{ApiError, Cause};
use crate::store::{self, ListOpts};

pub(super) fn set_scale_replicas(
    def: &ResourceDef,
    obj: &mut Value,
    scale: &Value,
) -> Result<(), ApiError> {
    let Some(sc) = &def.scale else { return Ok(()) };
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if !replicas.is_i64() && !replicas.is_u64() {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            "",
            &[Cause::invalid(
                "spec.replicas",
                &replicas,
                "must be an integer",
            )],
        ));
    }
    if replicas.as_i64().is_some_and(|r| r < 0) {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            &name,
            &[Cause::invalid(
                "spec.replicas",
                &replicas,
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut cur = &mut *obj;
    let parts: Vec<&str> = sc.spec_replicas_path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur[*p] = replicas.clone();
        } else {
            if !cur.get(*p).is_some_and(Value::is_object) {
                cur[*p] = json!({});
            }
            cur = &mut cur[*p];
        }
    }
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        if !rv.is_empty() {
            obj["metadata"]["resourceVersion"] = json!(rv);
        }
    }
    Ok(())
}

pub(super) fn update(
    st: &AppState,
    t: &Target,
    ns: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let obj = parse_body(headers, body)?;
    let ctx = ctx_for(q, headers, "update", t)?;
    let is_scale = t.sub.as_deref() == Some("scale");
    let allow_create = !is_scale
        && t.sub.is_none()
        && matches!(
            (t.def.group.as_str(), t.def.plural.as_str()),
            ("", "events") | ("coordination.k8s.io", "leases") | ("events.k8s.io", "events")
        );
    let def = t.def.clone();
    let (out, created) =
        st.store.update(
            &t.def,
            ns,
            &name,
            &ctx,
            allow_create,
            move |cur| match cur {
                Some(cur) if is_scale => {
                    let mut n = cur.clone();
                    set_scale_replicas(&def, &mut n, &obj)?;
                    if obj
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .is_empty()
                    {
                        if let Some(m) = n.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("resourceVersion");
                        }
                    }
                    Ok(n)
                }
                _ => Ok(obj),
            },
        )?;
    respond_write(t, out, created)
}

pub(super) fn respond_write(t: &Target, out: Value, created: bool) -> Result<Response, ApiError> {
    if t.sub.as_deref() == Some("scale") {
        return Ok(json_value(StatusCode::OK, &scale_of(&t.def, &out)));
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_value(code, &with_version(out, &t.def, &t.version)))
}

pub(super) fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Invalid(m) => ApiError::bad_request(m),
        PatchError::Unprocessable(m) => ApiError::new(422, "Invalid", m),
        PatchError::Conflicts(cs) => {
            // `NewApplyConflict`: the details carry only the causes.
            let causes: Vec<Value> = cs
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.printed_manager), "field": c.field}))
                .collect();
            let mut err = ApiError::new(409, "Conflict", patch::conflict_message(&cs));
            err.details = Some(json!({ "causes": causes }));
            err
        }
    }
}

pub(super) fn patch_req(
    st: &AppState,
    t: &Target,
    ns: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let accepted: &[&str] = if t.def.builtin {
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
            "application/strategic-merge-patch+json",
        ]
    } else {
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
    };
    if !accepted.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&ct, accepted));
    }
    let is_apply = ct == "application/apply-patch+yaml";
    let mut ctx = ctx_for(q, headers, if is_apply { "apply" } else { "patch" }, t)?;
    if is_apply {
        match param(q, "fieldManager") {
            Some(m) if !m.is_empty() => ctx.field_manager = Some(m.to_string()),
            _ => {
                return Err(ApiError::invalid_options(
                    "PatchOptions",
                    &[Cause::new(
                        "FieldValueRequired",
                        "fieldManager",
                        "Required value: is required for apply patch",
                    )],
                ))
            }
        }
    }
    let patch_body: Value = if is_apply {
        serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    };
    let force = bool_param(q, "force");
    if force && !is_apply {
        return Err(ApiError::invalid_options(
            "PatchOptions",
            &[Cause::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )],
        ));
    }
    let is_scale = t.sub.as_deref() == Some("scale");
    if is_apply {
        let av = patch_body
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = patch_body
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !is_scale && (av != t.def.api_version(&t.version) || kind != t.def.kind) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                t.def.api_version(&t.version)
            )));
        }
    }
    let def = t.def.clone();
    let target = t.clone();
    let sub = t.sub.clone();
    let manager = ctx.field_manager.clone().unwrap_or_default();
    let (out, created) =
        st.store
            .update(&t.def, ns, &name, &ctx, is_apply && !is_scale, move |cur| {
                let now = store::now_rfc3339();
                if is_scale {
                    let Some(cur) = cur else {
                        return Err(ApiError::not_found(
                            &def.plural,
                            &def.group,
                            &target.name.clone().unwrap_or_default(),
                        ));
                    };
                    let scale = scale_of(&def, cur);
                    let new_scale =
                        apply_patch(&ct, &scale, &patch_body, "autoscaling", "v1", "Scale")
                            .map_err(patch_error)?;
                    let mut n = cur.clone();
                    set_scale_replicas(&def, &mut n, &new_scale)?;
                    if let Some(m) = n.get_mut("metadata").and_then(Value::as_object_mut) {
                        if new_scale.pointer("/metadata/resourceVersion")
                            == scale.pointer("/metadata/resourceVersion")
                        {
                            m.remove("resourceVersion");
                        }
                    }
                    return Ok(n);
                }
                if is_apply {
                    // `metadata.resourceVersion` in an applied configuration
                    // is a precondition, on the status subresource too
                    // (whose apply merges only `.status`).
                    let want = patch_body
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .filter(|rv| !rv.is_empty());
                    if let (Some(want), Some(live)) = (want, cur) {
                        let have = live
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str);
                        if have != Some(want) {
                            return Err(ApiError::conflict(
                                &def.plural,
                                &def.group,
                                &target.name.clone().unwrap_or_default(),
                            ));
                        }
                    }
                    let schema = managed::schema_for(&def, &target.version);
                    return managed::server_side_apply(
                        cur,
                        &patch_body,
                        &manager,
                        force,
                        sub.as_deref(),
                        &schema,
                        &now,
                    )
                    .map_err(patch_error);
                }
                let Some(cur) = cur else {
                    return Err(ApiError::not_found(
                        &def.plural,
                        &def.group,
                        &target.name.clone().unwrap_or_default(),
                    ));
                };
                let mut n = apply_patch(
                    &ct,
                    cur,
                    &patch_body,
                    &def.group,
                    &target.version,
                    &def.kind,
                )
                .map_err(patch_error)?;
                // A patch that does not mention resourceVersion is unconditional.
                let patch_rv = patch_body.pointer("/metadata/resourceVersion").is_some()
                    || (ct == "application/json-patch+json"
                        && patch_body.to_string().contains("/metadata/resourceVersion"));
                if !patch_rv {
                    if let Some(m) = n.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                }
                Ok(n)
            })?;
    respond_write(t, out, created)
}

pub(super) fn apply_patch(
    ct: &str,
    cur: &Value,
    p: &Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    match ct {
        "application/merge-patch+json" => {
            if !p.is_object() {
                return Err(PatchError::Invalid(
                    "merge patch must be a JSON object".into(),
                ));
            }
            let mut n = cur.clone();
            patch::json_merge_patch(&mut n, p);
            Ok(n)
        }
        "application/json-patch+json" => {
            let mut n = cur.clone();
            patch::json_patch(&mut n, p)?;
            Ok(n)
        }
        _ => managed::strategic_merge_patch(cur, p, group, version, kind),
    }
}

pub(super) fn delete(
    st: &AppState,
    t: &Target,
    ns: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if t.sub.is_some() {
        return Err(ApiError::method_not_allowed(
            &t.def.plural,
            &t.def.group,
            "delete",
        ));
    }
    let name = t.name.clone().unwrap_or_default();
    let (opts, dry) = delete_opts(q, headers, body)?;
    let mut ctx = ctx_for(q, headers, "delete", t)?;
    ctx.dry_run = dry;
    ctx.field_manager = None;
    let out = st.store.delete(&t.def, ns, &name, &opts, &ctx)?;
    let returns_object = !t.def.builtin || (t.def.group.is_empty() && t.def.plural == "pods");
    if out.gone && !returns_object {
        let uid = out
            .obj
            .pointer("/metadata/uid")
            .cloned()
            .unwrap_or(Value::Null);
        let mut details =
            json!({"name": name, "group": t.def.group, "kind": t.def.plural, "uid": uid});
        if t.def.group.is_empty() {
            // Go's omitempty.
            details.as_object_mut().map(|d| d.remove("group"));
        }
        return Ok(json_value(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}),
        ));
    }
    Ok(json_value(
        StatusCode::OK,
        &with_version(out.obj, &t.def, &t.version),
    ))
}

pub(super) fn delete_collection(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let filter = filter_from(q, t)?;
    let (opts, dry) = delete_opts(q, headers, body)?;
    let mut ctx = ctx_for(q, headers, "delete", t)?;
    ctx.dry_run = dry;
    ctx.field_manager = None;
    let page = st.store.list(&t.def, &filter, &ListOpts::default())?;
    let mut items = Vec::new();
    for s in page.items {
        let v = s.value();
        let ns = v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match st.store.delete(&t.def, &ns, &name, &opts, &ctx) {
            Ok(o) => items.push(with_version(o.obj, &t.def, &t.version)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_value(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(&t.version),
            "metadata": {"resourceVersion": st.store.current_rv().to_string()}, "items": items}),
    ))
}

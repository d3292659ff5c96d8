//! HTTP front end of the emulated API server: URL routing, discovery,
//! query parameters, content negotiation and the REST verbs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use super::faults::{FaultInjector, RequestInfo};
use super::logs::PodLogs;
use super::managed;
use super::openapi;
use super::patch::{self, PatchError};
use super::protobuf;
use super::resources::{self, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause};
use super::store::{self, DeleteOpts, Filter, ListOpts, Propagation, Store, Stored, WriteCtx};
use super::table;
use super::watch::{self, WatchParams};

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    /// Fault injection.
    pub faults: FaultInjector,
    /// Container logs.
    pub logs: PodLogs,
    /// Interval between watch bookmarks.
    pub bookmark_interval: Duration,
}

/// The axum router serving the whole API.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

fn json_response(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = (code, body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_value(code: StatusCode, v: &Value) -> Response {
    json_response(code, v.to_string())
}

/// A parsed resource URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub def: ResourceDef,
    /// Requested version.
    pub version: String,
    /// Namespace (namespaced resources).
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Subresource.
    pub sub: Option<String>,
}

enum Route {
    Version,
    Health,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Resource(Box<Target>),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String),
}

fn route(store: &Store, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => return Ok(Route::Health),
        ["api"] => return Ok(Route::ApiVersions),
        ["apis"] => return Ok(Route::GroupList),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => return Ok(Route::OpenApiV3(rest.join("/"))),
        ["api", "v1"] => return Ok(Route::ResourceList(String::new(), "v1".into())),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["apis", g, v] => return Ok(Route::ResourceList(g.to_string(), v.to_string())),
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let lookup = |plural: &str| store.def(group, plural).filter(|d| d.serves(version));
    let (namespace, rest): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|d| d.namespaced) => {
            (Some(ns.to_string()), &rest[2..][..1 + tail.len()])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::path_not_found()),
    };
    let def = lookup(plural).ok_or_else(ApiError::path_not_found)?;
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::path_not_found());
    }
    if let Some(s) = &sub {
        let ok = (s == "status" && def.has_status)
            || (s == "scale" && def.scale.is_some())
            || (s == "log" && def.group.is_empty() && def.plural == "pods");
        if !ok {
            return Err(ApiError::path_not_found());
        }
    }
    Ok(Route::Resource(Box::new(Target {
        def,
        version: version.to_string(),
        namespace,
        name,
        sub,
    })))
}

async fn handle(State(st): State<AppState>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let headers = req.headers().clone();
    tracing::debug!(%method, %path, "request");
    let route = match route(&st.store, &path) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let body = match axum::body::to_bytes(req.into_body(), 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    let result = match route {
        Route::Version => Ok(json_value(
            StatusCode::OK,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-incident-emulator",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
                "platform": "linux/amd64"}),
        )),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::ApiVersions => Ok(json_value(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        )),
        Route::GroupList => Ok(json_value(StatusCode::OK, &group_list(&st.store))),
        Route::Group(g) => group_list(&st.store)["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|x| x["name"] == g.as_str()).cloned())
            .map(|mut x| {
                x["kind"] = json!("APIGroup");
                x["apiVersion"] = json!("v1");
                json_value(StatusCode::OK, &x)
            })
            .ok_or_else(ApiError::path_not_found),
        Route::ResourceList(g, v) => resource_list(&st.store, &g, &v),
        Route::OpenApiV2 => Err(ApiError::path_not_found()),
        Route::OpenApiV3Root => Ok(json_value(StatusCode::OK, &openapi::root(&st.store.defs()))),
        Route::OpenApiV3(gv) => {
            let parts: Vec<&str> = gv.split('/').collect();
            let doc = match parts.as_slice() {
                ["api", v] => openapi::document(&st.store.defs(), "", v),
                ["apis", g, v] => openapi::document(&st.store.defs(), g, v),
                _ => Value::Null,
            };
            if doc.is_null() {
                Err(ApiError::path_not_found())
            } else {
                Ok(json_value(StatusCode::OK, &doc))
            }
        }
        Route::Resource(t) => {
            // The emulator writes JSON only: a client that takes no JSON gets
            // 406 rather than a body it cannot read (logs are plain text).
            let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok());
            if t.sub.as_deref() != Some("log") && !protobuf::accepts_json(accept) {
                Err(protobuf::not_acceptable(accept.unwrap_or_default()))
            } else {
                serve_resource(&st, &method, *t, &query, &headers, body).await
            }
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = resources::builtin_groups()
        .into_iter()
        .map(|(g, vs)| (g.to_string(), vs.into_iter().map(str::to_string).collect()))
        .collect();
    for d in store.defs() {
        if d.builtin {
            continue;
        }
        match groups.iter_mut().find(|(g, _)| *g == d.group) {
            Some((_, vs)) => {
                for v in &d.versions {
                    if !vs.contains(v) {
                        vs.push(v.clone());
                    }
                }
            }
            None => groups.push((d.group.clone(), d.versions.clone())),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().unwrap_or(Value::Null);
            json!({"name": g, "versions": versions, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Result<Response, ApiError> {
    let defs: Vec<ResourceDef> = store
        .defs()
        .into_iter()
        .filter(|d| d.group == group && d.serves(version))
        .collect();
    if defs.is_empty() && !(group.is_empty() && version == "v1") {
        return Err(ApiError::path_not_found());
    }
    let resources: Vec<Value> = defs
        .iter()
        .flat_map(ResourceDef::discovery_entries)
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_value(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}

fn param<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(String::as_str)
}

fn bool_param(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(param(q, k), Some("true") | Some("1"))
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
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
fn options_kind(verb: &str) -> &'static str {
    match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        "patch" | "apply" => "PatchOptions",
        _ => "DeleteOptions",
    }
}

fn field_manager(
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

fn dry_run(q: &HashMap<String, String>, verb: &str) -> Result<bool, ApiError> {
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

fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> &'static str {
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

/// Serialize a stored object for a request version (rewrites `apiVersion`
/// for non-storage versions of a CRD).
pub fn object_bytes(s: &Stored, def: &ResourceDef, version: &str) -> Bytes {
    if version == def.storage_version() {
        return s.json.clone();
    }
    let mut v = s.value();
    v["apiVersion"] = json!(def.api_version(version));
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn with_version(mut v: Value, def: &ResourceDef, version: &str) -> Value {
    if version != def.storage_version() && v.is_object() {
        v["apiVersion"] = json!(def.api_version(version));
    }
    v
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

async fn serve_resource(
    st: &AppState,
    method: &Method,
    t: Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let verb = verb_of(method, &t, q);
    let (delay, fault) = st.faults.check(RequestInfo {
        verb,
        group: &t.def.group,
        resource: &t.def.plural,
        subresource: t.sub.as_deref(),
        namespace: t.namespace.as_deref(),
        name: t.name.as_deref(),
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(e) = fault {
        return Err(e);
    }
    let ns = t.namespace.clone().unwrap_or_default();
    match verb {
        "watch" => {
            let filter = filter_from(q, &t)?;
            let params = WatchParams::from_query(q)?;
            Ok(watch::serve(
                st,
                t.def.clone(),
                t.version.clone(),
                filter,
                params,
            ))
        }
        "list" => list(st, &t, q, headers),
        "get" => get(st, &t, &ns, q, headers),
        "create" => {
            if t.sub.is_some() {
                return Err(ApiError::method_not_allowed(
                    &t.def.plural,
                    &t.def.group,
                    "create",
                ));
            }
            let obj = parse_body(headers, &body)?;
            let ctx = ctx_for(q, headers, "create", &t)?;
            let out = st.store.create(&t.def, &ns, obj, &ctx)?;
            Ok(json_value(
                StatusCode::CREATED,
                &with_version(out, &t.def, &t.version),
            ))
        }
        "update" => update(st, &t, &ns, q, headers, &body),
        "patch" => patch_req(st, &t, &ns, q, headers, &body),
        "delete" => delete(st, &t, &ns, q, headers, &body),
        "deletecollection" => delete_collection(st, &t, q, headers, &body),
        _ => Err(ApiError::method_not_allowed(
            &t.def.plural,
            &t.def.group,
            method.as_str(),
        )),
    }
}

fn ctx_for(
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

fn filter_from(q: &HashMap<String, String>, t: &Target) -> Result<Filter, ApiError> {
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

fn list(
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

fn scale_of(def: &ResourceDef, v: &Value) -> Value {
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

fn set_scale_replicas(def: &ResourceDef, obj: &mut Value, scale: &Value) -> Result<(), ApiError> {
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

fn get(
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

fn pod_log(
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

fn update(
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

fn respond_write(t: &Target, out: Value, created: bool) -> Result<Response, ApiError> {
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

fn patch_error(e: PatchError) -> ApiError {
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

fn patch_req(
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

fn apply_patch(
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

fn delete_opts(
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

fn delete(
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

fn delete_collection(
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

//! HTTP front end of the emulated API server: URL routing, discovery,
//! query parameters, content negotiation and the REST verbs.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use super::app_state::AppState;
use super::faults::RequestInfo;
use super::object_version::with_version;
use super::openapi;
use super::protobuf;
use super::status::ApiError;
use super::watch::{self, WatchParams};

mod discovery;
mod params;
mod read;
mod routing;
mod write;

use discovery::{group_list, resource_list};
use params::{ctx_for, filter_from, parse_body, verb_of};
use read::{get, list};
use routing::{route, Route, Target};
use write::{delete, delete_collection, patch_req, update};

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
        user: headers
            .get("impersonate-user")
            .and_then(|h| h.to_str().ok()),
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

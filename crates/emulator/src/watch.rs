//! Watch streams: newline-delimited `WatchEvent` JSON, chunked and flushed
//! per event, with bookmarks, timeouts, initial events (synthetic ADDED /
//! `sendInitialEvents`) and the 410 Expired ERROR event of kube-apiserver.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::app_state::AppState;
use super::object_version::object_bytes;
use super::resources::ResourceDef;
use super::status::{ApiError, Cause};
use super::store::{event_line, Event, EventType, Filter, Poll};

/// Default watch duration when the client gives no `timeoutSeconds`
/// (kube-apiserver's `--min-request-timeout` is 1800s).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Events handed to a watcher per poll.
const BATCH: usize = 1024;

/// Query parameters of a watch.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
}

impl WatchParams {
    /// Parse and validate the query.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let b = |k: &str| q.get(k).map(|v| v == "true" || v == "1");
        let p = WatchParams {
            resource_version: q.get("resourceVersion").filter(|v| !v.is_empty()).cloned(),
            resource_version_match: q
                .get("resourceVersionMatch")
                .filter(|v| !v.is_empty())
                .cloned(),
            allow_bookmarks: b("allowWatchBookmarks").unwrap_or(false),
            send_initial_events: b("sendInitialEvents"),
            timeout: q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| *t > 0)
                .map(Duration::from_secs),
        };
        if p.send_initial_events == Some(true) {
            let mut causes = Vec::new();
            if p.resource_version_match.as_deref() != Some("NotOlderThan") {
                causes.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !p.allow_bookmarks {
                causes.push(Cause::forbidden(
                    "allowWatchBookmarks",
                    "sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
            if !causes.is_empty() {
                return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &causes));
            }
        } else if p.resource_version_match.is_some() && p.send_initial_events.is_none() {
            return Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                &[Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                )],
            ));
        }
        Ok(p)
    }
}

fn bookmark(def: &ResourceDef, version: &str, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(version), "metadata": meta});
    event_line("BOOKMARK", obj.to_string().as_bytes())
}

fn expired_line(cursor: u64, floor: u64) -> Bytes {
    let status =
        ApiError::expired(format!("too old resource version: {cursor} ({floor})")).to_status();
    event_line("ERROR", status.to_string().as_bytes())
}

fn render(
    ev: &Event,
    def: &ResourceDef,
    version: &str,
    filter: &Filter,
    trivial: bool,
) -> Option<Bytes> {
    let storage = version == def.storage_version();
    if trivial && storage {
        return Some(ev.line.clone());
    }
    let cur = filter.matches(def, &ev.key, &ev.obj);
    let prev = ev
        .prev
        .as_ref()
        .is_some_and(|p| filter.matches(def, &ev.key, p));
    let etype = match ev.etype {
        EventType::Added => cur.then_some(EventType::Added),
        EventType::Deleted => prev.then_some(EventType::Deleted),
        EventType::Modified => match (prev, cur) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
    }?;
    if etype == ev.etype && storage {
        return Some(ev.line.clone());
    }
    Some(event_line(
        etype.as_str(),
        &object_bytes(&ev.obj, def, version),
    ))
}

/// Serve a watch request.
pub fn serve(
    st: &AppState,
    def: ResourceDef,
    version: String,
    filter: Filter,
    params: WatchParams,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let store = Arc::clone(&st.store);
    let mut drop_rx = st.faults.drop_signal();
    drop_rx.mark_unchanged();
    let bookmark_interval = st.bookmark_interval;
    tokio::spawn(async move {
        let mut rv_rx = store.subscribe();
        let trivial =
            filter.labels.is_empty() && filter.fields.is_empty() && filter.namespace.is_none();
        let deadline = tokio::time::Instant::now() + params.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let rv_param = params.resource_version.as_deref();
        let initial = match (rv_param, params.send_initial_events) {
            (_, Some(true)) => true,
            (None, Some(false)) => false,
            (None, None) | (Some("0"), _) => true,
            _ => false,
        };
        rv_rx.mark_unchanged();
        let mut cursor: u64;
        if initial {
            let (items, rv) = match store.snapshot(&def, &filter) {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx
                        .send(event_line("ERROR", e.to_status().to_string().as_bytes()))
                        .await;
                    return;
                }
            };
            for s in items {
                if tx
                    .send(event_line("ADDED", &object_bytes(&s, &def, &version)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            cursor = rv;
            // sendInitialEvents defaults to true for a watch from "" or "0"
            // (KEP-3157): with bookmarks allowed, the initial ADDED events
            // end with the initial-events-end bookmark there too.
            if params.allow_bookmarks
                && params.send_initial_events != Some(false)
                && tx.send(bookmark(&def, &version, rv, true)).await.is_err()
            {
                return;
            }
        } else if let Some(rv) = rv_param {
            match rv.parse::<u64>() {
                Ok(n) => {
                    if let Err(floor) = store.check_resume(&def, n) {
                        let _ = tx.send(expired_line(n, floor)).await;
                        return;
                    }
                    cursor = n
                }
                Err(_) => {
                    let e = ApiError::bad_request(format!("invalid resource version: {rv}"));
                    let _ = tx
                        .send(event_line("ERROR", e.to_status().to_string().as_bytes()))
                        .await;
                    return;
                }
            }
        } else {
            cursor = store.current_rv();
        }
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + bookmark_interval,
            bookmark_interval,
        );
        loop {
            rv_rx.mark_unchanged();
            match store.poll(&def, cursor, BATCH) {
                Poll::Events(events, new_cursor) => {
                    let full = events.len() == BATCH;
                    for ev in &events {
                        if let Some(line) = render(ev, &def, &version, &filter, trivial) {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                    cursor = new_cursor;
                    if full {
                        continue;
                    }
                }
                Poll::Expired(floor) => {
                    let _ = tx.send(expired_line(cursor, floor)).await;
                    return;
                }
                Poll::Gone => return,
            }
            tokio::select! {
                r = rv_rx.changed() => { if r.is_err() { return; } }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = drop_rx.changed() => return,
                _ = ticker.tick(), if params.allow_bookmarks => {
                    if tx.send(bookmark(&def, &version, cursor, false)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, Infallible>))
    });
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn params_validation() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(WatchParams::from_query(&q(&[("sendInitialEvents", "true")])).is_err());
        let ok = WatchParams::from_query(&q(&[
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "5"),
        ]));
        assert!(ok.is_ok_and(|p| p.timeout == Some(Duration::from_secs(5)) && p.allow_bookmarks));
        let b = bookmark(&crate::resources::builtin()[1], "v1", 7, true);
        let v: Value = serde_json::from_slice(&b).unwrap_or_default();
        assert_eq!(v["type"], "BOOKMARK");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(
            v["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
    }
}

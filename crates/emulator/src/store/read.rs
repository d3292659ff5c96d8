//! The read side of the store: lists (paginated, at a past resourceVersion
//! through the watch history), watch snapshots and watch history polling.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::{rk, Event, Filter, ListOpts, ListPage, ObjKey, Poll, Store, Stored};
use crate::pagination::{self, Continue};
use crate::resources::ResourceDef;
use crate::status::ApiError;

impl Store {
    /// List objects.
    pub fn list(
        &self,
        def: &ResourceDef,
        filter: &Filter,
        opts: &ListOpts,
    ) -> Result<ListPage, ApiError> {
        let mut g = self.lock();
        let has_token = opts
            .continue_token
            .as_deref()
            .is_some_and(|t| !t.is_empty());
        let forced = match g.tables.get_mut(&rk(def)) {
            Some(t) if has_token && t.force_expire => {
                t.force_expire = false;
                true
            }
            _ => false,
        };
        let table = g
            .tables
            .get(&rk(def))
            .ok_or_else(ApiError::path_not_found)?;
        let mut start: Option<ObjKey> = None;
        let mut snapshot_rv: Option<u64> = None;
        if let Some(tok) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let c = pagination::decode(tok).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if c.rv < table.floor || forced {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            let key = if def.namespaced {
                match c.start.split_once('/') {
                    Some((a, b)) => (a.to_string(), b.to_string()),
                    None => (String::new(), c.start.clone()),
                }
            } else {
                (String::new(), c.start.clone())
            };
            start = Some(key);
            snapshot_rv = Some(c.rv);
        } else if opts.resource_version_match.as_deref() == Some("Exact") {
            let rv: u64 = opts
                .resource_version
                .as_deref()
                .unwrap_or_default()
                .parse()
                .map_err(|_| {
                    ApiError::bad_request("resourceVersionMatch=Exact requires a resourceVersion")
                })?;
            if rv < table.floor {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    table.floor
                )));
            }
            if rv < g.rv {
                snapshot_rv = Some(rv);
            }
        }
        let list_rv = snapshot_rv.unwrap_or(g.rv);
        // Changes after the snapshot, undone: key -> state at snapshot.
        let mut overlay: BTreeMap<ObjKey, Option<Arc<Stored>>> = BTreeMap::new();
        if let Some(srv) = snapshot_rv {
            for ev in table.history.iter().rev() {
                if ev.rv <= srv {
                    break;
                }
                overlay.insert(ev.key.clone(), ev.prev.clone());
            }
        }
        let lower: Bound<ObjKey> = match (&start, &filter.namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.clone(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut base = table
            .objects
            .range((lower.clone(), Bound::Unbounded))
            .peekable();
        let mut ov = overlay.range((lower, Bound::Unbounded)).peekable();
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last: Option<ObjKey> = None;
        let mut more = false;
        loop {
            let next: Option<(ObjKey, Option<Arc<Stored>>)> = match (base.peek(), ov.peek()) {
                (None, None) => None,
                (Some((bk, bv)), None) => {
                    let r = ((*bk).clone(), Some(Arc::clone(bv)));
                    base.next();
                    Some(r)
                }
                (None, Some((ok, ovv))) => {
                    let r = ((*ok).clone(), (*ovv).clone());
                    ov.next();
                    Some(r)
                }
                (Some((bk, bv)), Some((ok, ovv))) => {
                    if bk < ok {
                        let r = ((*bk).clone(), Some(Arc::clone(bv)));
                        base.next();
                        Some(r)
                    } else if ok < bk {
                        let r = ((*ok).clone(), (*ovv).clone());
                        ov.next();
                        Some(r)
                    } else {
                        let r = ((*ok).clone(), (*ovv).clone());
                        base.next();
                        ov.next();
                        Some(r)
                    }
                }
            };
            let Some((key, val)) = next else { break };
            if let Some(ns) = &filter.namespace {
                if &key.0 != ns {
                    break;
                }
            }
            let Some(s) = val else { continue };
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            if filter.matches(def, &key, &s) {
                items.push(s);
                last = Some(key);
            } else if limit.is_some() {
                last = Some(key);
            }
        }
        let continue_token = match (more, last) {
            (true, Some((ns, name))) => Some(pagination::encode(&Continue {
                rv: list_rv,
                start: if def.namespaced {
                    format!("{ns}/{name}")
                } else {
                    name
                },
            })),
            _ => None,
        };
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
        })
    }

    /// Current objects matching a filter, and the resourceVersion they are at
    /// (the start of a watch without resourceVersion).
    pub fn snapshot(
        &self,
        def: &ResourceDef,
        filter: &Filter,
    ) -> Result<(Vec<Arc<Stored>>, u64), ApiError> {
        let g = self.lock();
        let table = g
            .tables
            .get(&rk(def))
            .ok_or_else(ApiError::path_not_found)?;
        let items = match &filter.namespace {
            Some(ns) => table
                .objects
                .range((ns.clone(), String::new())..)
                .take_while(|(k, _)| &k.0 == ns)
                .filter(|(k, s)| filter.matches(def, k, s))
                .map(|(_, s)| Arc::clone(s))
                .collect(),
            None => table
                .objects
                .iter()
                .filter(|(k, s)| filter.matches(def, k, s))
                .map(|(_, s)| Arc::clone(s))
                .collect(),
        };
        Ok((items, g.rv))
    }

    /// Check that a watch may resume at `rv`: `Err(floor)` when it is too
    /// old (or a forced expiry is pending, which this consumes).
    pub fn check_resume(&self, def: &ResourceDef, rv: u64) -> Result<(), u64> {
        let mut g = self.lock();
        match g.tables.get_mut(&rk(def)) {
            Some(t) if t.force_expire => {
                t.force_expire = false;
                Err(t.floor)
            }
            Some(t) if rv < t.floor => Err(t.floor),
            _ => Ok(()),
        }
    }

    /// Events of a resource after `cursor` (at most `max`).
    pub fn poll(&self, def: &ResourceDef, cursor: u64, max: usize) -> Poll {
        let g = self.lock();
        let Some(t) = g.tables.get(&rk(def)) else {
            return Poll::Gone;
        };
        if t.def.kind != def.kind {
            return Poll::Gone;
        }
        if cursor < t.floor {
            return Poll::Expired(t.floor);
        }
        let start = t.history.partition_point(|e| e.rv <= cursor);
        let end = (start + max).min(t.history.len());
        let events: Vec<Arc<Event>> = t.history.range(start..end).cloned().collect();
        let new_cursor = if end == t.history.len() {
            cursor.max(g.rv)
        } else {
            events.last().map_or(cursor, |e| e.rv)
        };
        Poll::Events(events, new_cursor)
    }
}

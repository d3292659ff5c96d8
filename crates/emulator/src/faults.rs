//! Fault injection: rules that make matching requests fail or slow down,
//! plus one-shot actions on open watches and on the watch history.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::status::ApiError;
use super::store::Store;

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// 500 InternalError.
    InternalError,
    /// 409 Conflict (as for a stale resourceVersion).
    Conflict,
    /// 429 TooManyRequests with `Retry-After: retry_after_secs`.
    TooManyRequests {
        /// Seconds in `Retry-After`.
        retry_after_secs: u64,
    },
    /// Delay the request, then serve it normally.
    Latency(Duration),
}

/// A rule: which requests it matches, what it does, how often.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; `None` matches all.
    pub verb: Option<String>,
    /// Plural resource, e.g. `deployments`; `None` matches all.
    pub resource: Option<String>,
    /// Subresource (`status`, `scale`, `log`); `None` matches all.
    pub subresource: Option<String>,
    /// Namespace; `None` matches all.
    pub namespace: Option<String>,
    /// Object name; `None` matches all.
    pub name: Option<String>,
    /// The requesting user; `None` matches all. The emulator authenticates
    /// no one: a request's user is the one it impersonates (the
    /// `Impersonate-User` header, `auth_info.impersonate` in a kubeconfig),
    /// which is how a test tells two clients (two operator replicas) apart.
    pub user: Option<String>,
    /// The effect.
    pub action: FaultAction,
    /// Probability that a matching request is affected (1.0 = always).
    pub probability: f64,
    /// Affect at most this many requests, then the rule is spent.
    pub count: Option<u64>,
}

impl FaultRule {
    /// A rule matching every request, always applying `action`.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            verb: None,
            resource: None,
            subresource: None,
            namespace: None,
            name: None,
            user: None,
            action,
            probability: 1.0,
            count: None,
        }
    }
    /// Only this verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_string());
        self
    }
    /// Only this plural resource.
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_string());
        self
    }
    /// Only this subresource.
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_string());
        self
    }
    /// Only this namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }
    /// Only this object name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Only requests impersonating this user (`Impersonate-User`).
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }
    /// Apply with this probability.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }
    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }
}

/// Identifies an added rule.
pub type RuleId = u64;

#[derive(Debug)]
struct Inner {
    /// Rules with the number of requests each matched so far.
    rules: Mutex<Vec<(RuleId, FaultRule, u64)>>,
    next_id: AtomicU64,
    drop_tx: tokio::sync::watch::Sender<u64>,
    store: Arc<Store>,
}

/// Clonable, thread-safe handle to the emulator's fault injection.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    inner: Arc<Inner>,
}

/// The request a rule is checked against.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// Verb.
    pub verb: &'a str,
    /// API group.
    pub group: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    /// Subresource.
    pub subresource: Option<&'a str>,
    /// Namespace.
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: Option<&'a str>,
    /// The impersonated user (`Impersonate-User`), if any.
    pub user: Option<&'a str>,
}

fn matches(opt: &Option<String>, v: Option<&str>) -> bool {
    opt.as_deref().is_none_or(|o| Some(o) == v)
}

impl FaultInjector {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        let (drop_tx, _) = tokio::sync::watch::channel(0);
        FaultInjector {
            inner: Arc::new(Inner {
                rules: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                drop_tx,
                store,
            }),
        }
    }

    /// Add a rule; returns its id.
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, rule, 0));
        id
    }

    /// How many requests rule `id` has matched (and acted on) so far;
    /// `None` once it is removed or spent. A `Latency(Duration::ZERO)` rule
    /// counts requests without changing them.
    pub fn hits(&self, id: RuleId) -> Option<u64> {
        self.inner
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, _, h)| *h)
    }

    /// Remove a rule; false if it was not there (or already spent).
    pub fn remove(&self, id: RuleId) -> bool {
        let mut rules = self
            .inner
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|(i, _, _)| *i != id);
        rules.len() != before
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.inner
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Close every open watch stream now (clients see the connection end
    /// and re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.inner.drop_tx.send_modify(|n| *n += 1);
    }

    /// Compact the watch history of a plural resource (all when `None`):
    /// watches and continue tokens from an older resourceVersion get 410
    /// Expired, as after an etcd compaction.
    pub fn expire_history(&self, resource: Option<&str>) {
        self.inner.store.expire_history(resource);
    }

    /// Both: compact the history then drop open watches, so watchers must
    /// resume and get 410 (then relist).
    pub fn force_watch_expiry(&self, resource: Option<&str>) {
        self.expire_history(resource);
        self.drop_watches();
    }

    pub(crate) fn drop_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.drop_tx.subscribe()
    }

    /// Check a request against the rules: total latency to add, then the
    /// error to return (if any). Spends rule counts.
    pub(crate) fn check(&self, req: RequestInfo<'_>) -> (Duration, Option<ApiError>) {
        use rand::Rng;
        let mut rules = self
            .inner
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut delay = Duration::ZERO;
        let mut error = None;
        let mut rng = rand::rng();
        for (_, rule, hits) in rules.iter_mut() {
            if rule.count == Some(0) {
                continue;
            }
            let hit = matches(&rule.verb, Some(req.verb))
                && matches(&rule.resource, Some(req.resource))
                && matches(&rule.subresource, req.subresource)
                && matches(&rule.namespace, req.namespace)
                && matches(&rule.name, req.name)
                && matches(&rule.user, req.user);
            if !hit {
                continue;
            }
            if rule.probability < 1.0 && rng.random::<f64>() >= rule.probability {
                continue;
            }
            *hits += 1;
            match &rule.action {
                FaultAction::Latency(d) => delay += *d,
                other => {
                    if error.is_some() {
                        continue;
                    }
                    let name = req.name.unwrap_or_default();
                    error = Some(match other {
                        FaultAction::InternalError => ApiError::internal("injected fault"),
                        FaultAction::Conflict => ApiError::conflict(req.resource, req.group, name),
                        FaultAction::TooManyRequests { retry_after_secs } => {
                            ApiError::too_many_requests(*retry_after_secs)
                        }
                        FaultAction::Latency(_) => continue,
                    });
                }
            }
            if let Some(c) = rule.count.as_mut() {
                *c -= 1;
            }
        }
        rules.retain(|(_, r, _)| r.count != Some(0));
        (delay, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::PodLogs;

    #[test]
    fn rules_match_and_spend() {
        let f = FaultInjector::new(Arc::new(Store::new(10, PodLogs::new())));
        let req = RequestInfo {
            verb: "update",
            group: "apps",
            resource: "deployments",
            subresource: None,
            namespace: Some("ns"),
            name: Some("x"),
            user: None,
        };
        f.add(
            FaultRule::new(FaultAction::Conflict)
                .verb("update")
                .resource("deployments")
                .times(1),
        );
        let slow = f.add(FaultRule::new(FaultAction::Latency(Duration::from_millis(5))).name("x"));
        let (d, e) = f.check(req);
        assert_eq!(d, Duration::from_millis(5));
        assert_eq!(e.map(|e| e.code), Some(409));
        let (_, e) = f.check(req);
        assert!(e.is_none());
        assert_eq!(f.hits(slow), Some(2));
        f.check(RequestInfo {
            name: Some("y"),
            ..req
        });
        assert_eq!(f.hits(slow), Some(2), "another object does not count");
        let mine = f.add(FaultRule::new(FaultAction::InternalError).user("op-a"));
        assert!(f.check(req).1.is_none(), "no user: not op-a");
        let as_b = RequestInfo {
            user: Some("op-b"),
            ..req
        };
        assert!(f.check(as_b).1.is_none(), "another user");
        let as_a = RequestInfo {
            user: Some("op-a"),
            ..req
        };
        assert_eq!(f.check(as_a).1.map(|e| e.code), Some(500));
        assert_eq!(f.hits(mine), Some(1));
        assert!(f.remove(mine));
        let id = f.add(
            FaultRule::new(FaultAction::TooManyRequests {
                retry_after_secs: 2,
            })
            .verb("get"),
        );
        assert!(f
            .check(RequestInfo { verb: "get", ..req })
            .1
            .is_some_and(|e| e.retry_after == Some(2)));
        assert!(f.remove(id));
        f.clear();
        assert_eq!(f.check(req), (Duration::ZERO, None));
    }
}

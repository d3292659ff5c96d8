//! A single delayed work queue with client-go workqueue semantics: a key is
//! queued at most once (earliest due time wins), never handed to two workers
//! at once, and re-queued after processing when it was added meanwhile.
//! Timers for thousands of pods live in one binary heap instead of per-pod
//! tasks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A Deployment (namespace, name).
    Deployment(String, String),
    /// A ReplicaSet (namespace, name).
    ReplicaSet(String, String),
    /// A Pod (namespace, name).
    Pod(String, String),
}

#[derive(Default)]
struct Inner {
    heap: BinaryHeap<Reverse<(Instant, u64, Key)>>,
    due: HashMap<Key, Instant>,
    processing: HashSet<Key>,
    deferred: HashMap<Key, Instant>,
    seq: u64,
    failures: HashMap<Key, u32>,
}

/// The delayed, de-duplicating work queue.
#[derive(Default)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Inner {
    fn schedule(&mut self, key: Key, at: Instant) -> bool {
        if self.processing.contains(&key) {
            let e = self.deferred.entry(key).or_insert(at);
            if at < *e {
                *e = at;
            }
            return false;
        }
        match self.due.get(&key) {
            Some(t) if *t <= at => false,
            _ => {
                self.due.insert(key.clone(), at);
                self.seq += 1;
                self.heap.push(Reverse((at, self.seq, key)));
                true
            }
        }
    }
}

impl WorkQueue {
    /// A new, empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `key` now.
    pub fn add(&self, key: Key) {
        self.add_after(key, Duration::ZERO);
    }

    /// Queue `key` after `delay` (keeps an earlier pending time).
    pub fn add_after(&self, key: Key, delay: Duration) {
        let at = Instant::now() + delay;
        if self.lock().schedule(key, at) {
            self.notify.notify_one();
        }
    }

    /// Number of keys waiting (due or not).
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next due key and marks it as being processed.
    pub async fn next(&self) -> Key {
        loop {
            let notified = self.notify.notified();
            let wait_until = {
                let mut q = self.lock();
                let now = Instant::now();
                let mut wait = None;
                while let Some(Reverse((at, _, key))) = q.heap.peek().cloned() {
                    if q.due.get(&key) != Some(&at) {
                        q.heap.pop();
                        continue;
                    }
                    if at > now {
                        wait = Some(at);
                        break;
                    }
                    q.heap.pop();
                    q.due.remove(&key);
                    q.processing.insert(key.clone());
                    // Wake another worker if more work is due.
                    if q.heap.peek().is_some_and(|Reverse((t, _, _))| *t <= now) {
                        self.notify.notify_one();
                    }
                    return key;
                }
                wait
            };
            match wait_until {
                Some(t) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(t) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Processing of `key` finished; re-queues it if it was added meanwhile.
    pub fn done(&self, key: &Key) {
        let mut q = self.lock();
        q.processing.remove(key);
        if let Some(at) = q.deferred.remove(key) {
            if q.schedule(key.clone(), at) {
                drop(q);
                self.notify.notify_one();
            }
        }
    }

    /// Rate-limited re-queue after a failure: 5ms * 2^n, capped at 30s.
    pub fn add_rate_limited(&self, key: Key) {
        let n = {
            let mut q = self.lock();
            let n = q.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = Duration::from_millis(5u64.saturating_mul(1u64 << n.min(13)))
            .min(Duration::from_secs(30));
        self.add_after(key, delay);
    }

    /// Forget the failure count of `key` (after a successful sync).
    pub fn forget(&self, key: &Key) {
        let mut q = self.lock();
        if !q.failures.is_empty() {
            q.failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str) -> Key {
        Key::Pod("ns".into(), n.into())
    }

    #[tokio::test]
    async fn dedup_and_order() {
        let q = WorkQueue::new();
        q.add_after(k("b"), Duration::from_millis(200));
        q.add_after(k("a"), Duration::from_millis(100));
        q.add_after(k("b"), Duration::from_secs(5)); // later: ignored
        q.add_after(k("a"), Duration::from_millis(50)); // earlier: wins
        assert_eq!(q.len(), 2);
        let start = Instant::now();
        assert_eq!(q.next().await, k("a"));
        let t = Instant::now() - start;
        assert!(
            t >= Duration::from_millis(50) && t < Duration::from_millis(150),
            "{t:?}"
        );
        q.done(&k("a"));
        assert_eq!(q.next().await, k("b"));
        let t = Instant::now() - start;
        assert!(
            t >= Duration::from_millis(200) && t < Duration::from_secs(2),
            "{t:?}"
        );
        q.done(&k("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn added_while_processing_is_deferred() {
        let q = WorkQueue::new();
        q.add(k("a"));
        assert_eq!(q.next().await, k("a"));
        q.add(k("a"));
        assert!(q.is_empty(), "not handed out twice");
        q.done(&k("a"));
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, k("a"));
    }
}

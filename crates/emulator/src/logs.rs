//! Container log lines of simulated pods, shared in-process between the
//! workload simulation (which writes them) and the API server (which serves
//! them on `GET /api/v1/namespaces/{ns}/pods/{name}/log`). Real Kubernetes
//! has no API to write logs; this store stands in for the kubelet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Lines kept per container instance; older lines are dropped (like log rotation).
pub const MAX_LINES_PER_CONTAINER: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    pod: String,
    container: String,
}

#[derive(Debug, Default)]
struct Instances {
    current: Vec<String>,
    previous: Option<Vec<String>>,
}

/// A cheap-to-clone handle to the log store.
#[derive(Debug, Clone, Default)]
pub struct PodLogs {
    inner: Arc<Mutex<HashMap<Key, Instances>>>,
}

fn key(namespace: &str, pod: &str, container: &str) -> Key {
    Key {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: container.to_string(),
    }
}

impl PodLogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a line to the current instance of a container.
    pub fn append(&self, namespace: &str, pod: &str, container: &str, line: impl Into<String>) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inst = map.entry(key(namespace, pod, container)).or_default();
        inst.current.push(line.into());
        if inst.current.len() > MAX_LINES_PER_CONTAINER {
            let excess = inst.current.len() - MAX_LINES_PER_CONTAINER;
            inst.current.drain(..excess);
        }
    }

    /// The container restarted: the current log becomes `previous`, a new one starts.
    pub fn restart(&self, namespace: &str, pod: &str, container: &str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inst = map.entry(key(namespace, pod, container)).or_default();
        inst.previous = Some(std::mem::take(&mut inst.current));
    }

    /// Lines of the current (`previous == false`) or previous instance; `None`
    /// when there is no such instance (the server answers 400 like the kubelet:
    /// "previous terminated container ... not found").
    pub fn read(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        tail_lines: Option<usize>,
    ) -> Option<Vec<String>> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inst = map.get(&key(namespace, pod, container))?;
        let lines = if previous {
            inst.previous.as_ref()?
        } else {
            &inst.current
        };
        let start = tail_lines.map_or(0, |n| lines.len().saturating_sub(n));
        Some(lines[start..].to_vec())
    }

    /// Forget every container of a deleted pod.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|k, _| !(k.namespace == namespace && k.pod == pod));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_and_tail() {
        let logs = PodLogs::new();
        logs.append("ns", "p", "app", "a");
        logs.append("ns", "p", "app", "b");
        assert_eq!(logs.read("ns", "p", "app", true, None), None);
        logs.restart("ns", "p", "app");
        logs.append("ns", "p", "app", "c");
        assert_eq!(
            logs.read("ns", "p", "app", true, Some(1)),
            Some(vec!["b".to_string()])
        );
        assert_eq!(
            logs.read("ns", "p", "app", false, None),
            Some(vec!["c".to_string()])
        );
        logs.remove_pod("ns", "p");
        assert_eq!(logs.read("ns", "p", "app", false, None), None);
    }
}

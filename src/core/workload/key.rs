//! The identity of a workload: the unit of one Incident, its dedup
//! fingerprint and its deterministic Incident names.

use sha2::{Digest, Sha256};

/// A workload: the unit of one Incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub namespace: String,
    /// A [`crate::api::TargetKind`] name (a bare pod is its own target), or
    /// `ReplicaSet` for pods whose ReplicaSet's owner is not known yet.
    pub kind: String,
    pub name: String,
}

impl WorkloadKey {
    /// The key of a workload of `kind` (a [`crate::api::TargetKind`] name).
    pub fn new(namespace: &str, kind: &str, name: &str) -> Self {
        WorkloadKey {
            namespace: namespace.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    /// The key of a Deployment.
    pub fn deployment(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadKey {
            namespace: namespace.into(),
            kind: "Deployment".into(),
            name: name.into(),
        }
    }

    /// The dedup fingerprint: stable across restarts and replicas.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.namespace.as_bytes());
        h.update([0]);
        h.update(self.kind.as_bytes());
        h.update([0]);
        h.update(self.name.as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// The deterministic Incident name of episode `n` (1-based) of this
    /// workload: `<name>-<fingerprint prefix>-<n>`, a valid DNS-1123 name
    /// of at most 63 characters. Retries and racing replicas compute the
    /// same name, so the API server's AlreadyExists makes creation exactly-once.
    pub fn incident_name(&self, episode: u32) -> String {
        let fp = self.fingerprint();
        let suffix = format!("-{}-{episode}", &fp[..8]);
        let kind = if self.kind == "Pod" { "pod-" } else { "" };
        let mut base: String = format!("{kind}{}", self.name)
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        base.truncate(63 - suffix.len());
        let base = base.trim_end_matches('-').trim_start_matches('-');
        format!("{base}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> WorkloadKey {
        WorkloadKey {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "checkout".into(),
        }
    }

    #[test]
    fn deterministic_names() {
        let k = key();
        assert_eq!(k.incident_name(1), k.incident_name(1));
        assert_ne!(k.incident_name(1), k.incident_name(2));
        assert!(k.incident_name(1).starts_with("checkout-"));
        assert!(k.incident_name(1).ends_with("-1"));
        let long = WorkloadKey {
            namespace: "n".into(),
            kind: "Pod".into(),
            name: "a".repeat(80),
        };
        let n = long.incident_name(12);
        assert!(n.len() <= 63, "{n}");
        assert!(n.starts_with("pod-aaa"));
        let other = WorkloadKey {
            namespace: "other".into(),
            ..key()
        };
        assert_ne!(
            other.fingerprint(),
            key().fingerprint(),
            "namespace is part of the fingerprint"
        );
    }
}

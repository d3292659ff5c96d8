//! Workload simulation (like kwok): deployment, ReplicaSet and pod-lifecycle
//! controllers that act on the emulated API server through a real
//! `kube::Client`, exactly as the real controllers act on kube-apiserver.

pub mod hash;
pub mod rollout;

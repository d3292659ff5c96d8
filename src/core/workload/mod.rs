//! Workloads as detection sees them: the identity of a workload
//! ([`WorkloadKey`], in `key.rs`), the lean wire type a Pod is decoded into
//! from the watch ([`PodLite`], in `wire.rs`), and the compact views the
//! core judges ([`PodView`], [`DeploymentView`], in `view.rs`; the other
//! workload kinds, wire types and views, in `controllers.rs`).
//!
//! Dependencies run one way: `controllers` -> `wire` -> `view` -> `key`.

mod controllers;
mod key;
mod view;
mod wire;

pub use self::controllers::{
    CronHistory, CronJobLite, CronJobView, DaemonSetLite, DaemonSetView, JobLite, JobOutcome,
    JobView, StatefulSetLite, StatefulSetView,
};
pub use self::key::WorkloadKey;
pub use self::view::{
    CondView, ContainerRole, ContainerView, DeploymentView, OwnerView, PodView, Termination,
};
pub use self::wire::{PodLite, PodSpecLite, PodStatusLite};

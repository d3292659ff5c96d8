//! The `PodStatus` the simulated kubelet (or the scheduler) reports for a
//! pod: conditions with stable transition times, container statuses with
//! container and image ids.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::behavior::UNSCHEDULABLE_MESSAGE;
use super::container_ids::{hex_id, image_ref};
use super::{Phase, PodSim, Terminated};
use crate::sim::rollout::trunc_secs;

impl PodSim {
    fn set_cond(&mut self, t: &'static str, status: &str, now: Timestamp) -> Timestamp {
        match self.conds.get(t) {
            Some((s, ts)) if s == status => *ts,
            _ => {
                let ts = trunc_secs(now);
                self.conds.insert(t, (status.to_string(), ts));
                ts
            }
        }
    }

    /// Whether the pod is Ready.
    pub fn is_ready(&self) -> bool {
        self.ready && matches!(self.phase, Phase::Running { .. })
    }

    /// The pod status the kubelet (or scheduler) would write now.
    pub fn status(&mut self, now: Timestamp) -> PodStatus {
        let cond = |t: &str, s: &str, ts: Timestamp, reason: Option<&str>, msg: Option<String>| {
            PodCondition {
                type_: t.to_string(),
                status: s.to_string(),
                last_transition_time: Some(Time(ts)),
                reason: reason.map(str::to_string),
                message: msg,
                last_probe_time: None,
                observed_generation: None,
            }
        };
        if self.node.is_none() {
            let ts = self.set_cond("PodScheduled", "False", now);
            return PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some(self.qos.into()),
                conditions: Some(vec![cond(
                    "PodScheduled",
                    "False",
                    ts,
                    Some("Unschedulable"),
                    Some(UNSCHEDULABLE_MESSAGE.into()),
                )]),
                ..Default::default()
            };
        }
        let running = matches!(self.phase, Phase::Running { .. });
        let ready = self.is_ready();
        let names: Vec<String> = self.containers.iter().map(|c| c.0.clone()).collect();
        let unready_msg = format!("containers with unready status: [{}]", names.join(" "));
        let sandbox = self.set_cond("PodReadyToStartContainers", "True", now);
        let init = self.set_cond("Initialized", "True", now);
        let rs = if ready { "True" } else { "False" };
        let ready_ts = self.set_cond("Ready", rs, now);
        let cready_ts = self.set_cond("ContainersReady", rs, now);
        let sched = self.set_cond("PodScheduled", "True", now);
        let (r_reason, r_msg) = if ready {
            (None, None)
        } else {
            (Some("ContainersNotReady"), Some(unready_msg))
        };
        let conditions = vec![
            cond("PodReadyToStartContainers", "True", sandbox, None, None),
            cond("Initialized", "True", init, None, None),
            cond("Ready", rs, ready_ts, r_reason, r_msg.clone()),
            cond("ContainersReady", rs, cready_ts, r_reason, r_msg),
            cond("PodScheduled", "True", sched, None, None),
        ];
        let restart_count = self.restart_count;
        let statuses = self
            .containers
            .iter()
            .map(|(name, image)| {
                let started = self.ever_started;
                let cid = |n: i32| {
                    format!(
                        "containerd://{}",
                        hex_id(&[&self.uid, name, &n.to_string()])
                    )
                };
                let state = match &self.phase {
                    Phase::Running { started_at } => ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(Time(trunc_secs(*started_at))),
                        }),
                        ..Default::default()
                    },
                    Phase::Creating => ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("ContainerCreating".into()),
                            message: None,
                        }),
                        ..Default::default()
                    },
                    Phase::Exited => ContainerState {
                        terminated: self
                            .last_terminated
                            .as_ref()
                            .map(|t| term(t, cid(restart_count))),
                        ..Default::default()
                    },
                    Phase::Waiting { reason, message } => ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some((*reason).to_string()),
                            message: Some(message.clone()),
                        }),
                        ..Default::default()
                    },
                };
                let last_state = match (&self.phase, &self.last_terminated) {
                    (Phase::Exited, _) | (_, None) => ContainerState::default(),
                    (_, Some(t)) => {
                        let n = if running {
                            restart_count - 1
                        } else {
                            restart_count
                        };
                        ContainerState {
                            terminated: Some(term(t, cid(n))),
                            ..Default::default()
                        }
                    }
                };
                let has_container = started && !matches!(self.phase, Phase::Creating);
                ContainerStatus {
                    name: name.clone(),
                    image: image.clone(),
                    image_id: if has_container {
                        image_ref(image)
                    } else {
                        String::new()
                    },
                    container_id: has_container.then(|| cid(restart_count)),
                    ready,
                    started: Some(running),
                    restart_count,
                    state: Some(state),
                    last_state: Some(last_state),
                    ..Default::default()
                }
            })
            .collect();
        let init_statuses: Vec<ContainerStatus> = self
            .init_containers
            .iter()
            .map(|(name, image)| {
                let start = trunc_secs(self.start_time.unwrap_or(now));
                ContainerStatus {
                    name: name.clone(),
                    image: image.clone(),
                    image_id: image_ref(image),
                    container_id: Some(format!(
                        "containerd://{}",
                        hex_id(&[&self.uid, name, "init"])
                    )),
                    ready: true,
                    started: Some(false),
                    restart_count: 0,
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            reason: Some("Completed".into()),
                            started_at: Some(Time(start)),
                            finished_at: Some(Time(start)),
                            container_id: Some(format!(
                                "containerd://{}",
                                hex_id(&[&self.uid, name, "init"])
                            )),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    last_state: Some(ContainerState::default()),
                    ..Default::default()
                }
            })
            .collect();
        PodStatus {
            phase: Some(
                if self.ever_started {
                    "Running"
                } else {
                    "Pending"
                }
                .into(),
            ),
            conditions: Some(conditions),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: Some(self.pod_ip.clone()),
            pod_ips: Some(vec![PodIP {
                ip: self.pod_ip.clone(),
            }]),
            start_time: self.start_time.map(|t| Time(trunc_secs(t))),
            qos_class: Some(self.qos.into()),
            container_statuses: Some(statuses),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            ..Default::default()
        }
    }
}

fn term(t: &Terminated, container_id: String) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.into()),
        started_at: Some(Time(trunc_secs(t.started_at))),
        finished_at: Some(Time(trunc_secs(t.finished_at))),
        container_id: Some(container_id),
        ..Default::default()
    }
}

//! Pure pod-lifecycle simulation (what the scheduler and the kubelet would
//! report for a pod): a per-pod state machine driven by the behaviour
//! annotations, producing a `PodStatus`, core/v1 event descriptions and
//! container log lines. No I/O; `runtime.rs` drives it.
//!
//! The behaviour annotations and back-off timing are in `behavior.rs`, what
//! the kubelet reads from a pod spec in `pod_spec.rs`, container and image
//! ids in `container_ids.rs`, and the `PodStatus` the state machine reports
//! in `status.rs`.

mod behavior;
mod container_ids;
mod pod_spec;
mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::rollout::{scale_duration, trunc_secs};

pub use behavior::{
    backoff, go_duration, parse_duration, restart_delay, Behavior, BehaviorSpec, AFTER_ANNOTATION,
    BEHAVIOR_ANNOTATION, CRASH_RUN_TIME, INITIAL_BACKOFF, MAX_BACKOFF, OOM_RUN_TIME, SLOW_READY,
    START_DELAY, UNSCHEDULABLE_MESSAGE,
};
pub use pod_spec::qos_class;

use container_ids::image_ref;
use pod_spec::{container_list, first_config_ref};

/// An event the kubelet/scheduler would record for the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// Event reason.
    pub reason: &'static str,
    /// Event message.
    pub message: String,
    /// `involvedObject.fieldPath`, e.g. `spec.containers{app}`.
    pub field_path: Option<String>,
    /// Reporting component (`kubelet` or `default-scheduler`).
    pub component: &'static str,
}

/// A side effect of a state transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Record an event.
    Event(SimEvent),
    /// Append a log line to a container's current instance.
    Log {
        /// Container name.
        container: String,
        /// The line.
        line: String,
    },
    /// A container restarted: its current log becomes `previous`.
    RestartLog {
        /// Container name.
        container: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Bound, creating the sandbox / pulling.
    Creating,
    Running {
        started_at: Timestamp,
    },
    /// Just exited (shown as terminated until the immediate first restart).
    Exited,
    Waiting {
        reason: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Terminated {
    exit_code: i32,
    reason: &'static str,
    started_at: Timestamp,
    finished_at: Timestamp,
}

/// Simulated runtime state of one pod on a node.
#[derive(Debug, Clone)]
pub struct PodSim {
    spec: BehaviorSpec,
    time_scale: f64,
    namespace: String,
    name: String,
    uid: String,
    containers: Vec<(String, String)>,
    init_containers: Vec<(String, String)>,
    has_readiness_probe: bool,
    ready_delay: Duration,
    config_ref: String,
    qos: &'static str,
    /// Node the pod runs on (`None` while unschedulable).
    pub node: Option<String>,
    host_ip: String,
    pod_ip: String,
    start_time: Option<Timestamp>,
    phase: Phase,
    restart_count: i32,
    crashes: u32,
    pull_failures: u32,
    config_failures: u32,
    last_terminated: Option<Terminated>,
    behavior_active: bool,
    behavior_at: Option<Timestamp>,
    ready_at: Option<Timestamp>,
    crash_at: Option<Timestamp>,
    next_at: Option<Timestamp>,
    ready: bool,
    ever_started: bool,
    conds: BTreeMap<&'static str, (String, Timestamp)>,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|sd| t.checked_add(sd).ok())
        .unwrap_or(t)
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn rfc3339(t: Timestamp) -> String {
    format!("{}", trunc_secs(t))
}

impl PodSim {
    /// New state for a pod the kubelet has just been assigned (`node`), or
    /// that the scheduler cannot place (`node == None`). `now` is the bind time.
    pub fn new(
        pod: &Pod,
        node: Option<String>,
        host_ip: String,
        pod_ip: String,
        now: Timestamp,
        time_scale: f64,
    ) -> Self {
        let spec = BehaviorSpec::from_pod(pod);
        let pspec = pod.spec.as_ref();
        let containers = pspec
            .map(|s| container_list(&s.containers))
            .unwrap_or_default();
        let init_containers = pspec
            .and_then(|s| s.init_containers.as_deref())
            .map(container_list)
            .unwrap_or_default();
        let probe = pspec
            .and_then(|s| s.containers.first())
            .and_then(|c| c.readiness_probe.as_ref());
        let ready_delay = probe.map_or(Duration::ZERO, |p| {
            Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64 + 1)
        });
        let mut s = Self {
            spec,
            time_scale,
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            containers,
            init_containers,
            has_readiness_probe: probe.is_some(),
            ready_delay,
            config_ref: first_config_ref(pod),
            qos: qos_class(pod),
            node,
            host_ip,
            pod_ip,
            start_time: None,
            phase: Phase::Creating,
            restart_count: 0,
            crashes: 0,
            pull_failures: 0,
            config_failures: 0,
            last_terminated: None,
            behavior_active: false,
            behavior_at: None,
            ready_at: None,
            crash_at: None,
            next_at: None,
            ready: false,
            ever_started: false,
            conds: BTreeMap::new(),
        };
        if s.node.is_some() {
            s.start_time = Some(now);
            s.next_at = Some(add(now, s.scaled(START_DELAY)));
            match s.spec.after {
                Some(a) if !a.is_zero() => s.behavior_at = Some(add(now, s.scaled(a))),
                _ => s.behavior_active = true,
            }
        }
        s
    }

    fn scaled(&self, d: Duration) -> Duration {
        scale_duration(d, self.time_scale)
    }

    /// The behaviour this pod simulates.
    pub fn behavior(&self) -> BehaviorSpec {
        self.spec
    }

    /// Restart count of the containers.
    pub fn restart_count(&self) -> i32 {
        self.restart_count
    }

    /// When `advance` must next be called (wall clock), if ever.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.node.as_ref()?;
        let mut t = self.next_at;
        if !self.ready {
            t = min_opt(t, self.ready_at);
        }
        t = min_opt(t, self.crash_at);
        if !self.behavior_active {
            t = min_opt(t, self.behavior_at);
        }
        t
    }

    fn ev(
        &self,
        type_: &'static str,
        reason: &'static str,
        message: String,
        container: Option<&str>,
    ) -> Effect {
        Effect::Event(SimEvent {
            type_,
            reason,
            message,
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            component: "kubelet",
        })
    }

    fn log_all(&self, out: &mut Vec<Effect>, now: Timestamp, level: &str, msg: &str) {
        for (c, _) in &self.containers {
            out.push(Effect::Log {
                container: c.clone(),
                line: format!("{} {level} {msg}", rfc3339(now)),
            });
        }
    }

    /// Advances the state machine to `now`, returning the side effects.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut out = Vec::new();
        // Bounded: each iteration consumes at least one due deadline.
        for _ in 0..64 {
            let Some(due) = self.next_wakeup() else { break };
            if due > now {
                break;
            }
            if !self.behavior_active && self.behavior_at.is_some_and(|t| t <= due) {
                self.behavior_at = None;
                self.activate(due, &mut out);
            } else if self.crash_at.is_some_and(|t| t <= due) {
                self.crash_at = None;
                self.crash(due, &mut out);
            } else if !self.ready && self.ready_at.is_some_and(|t| t <= due) {
                self.ready_at = None;
                self.ready = true;
                self.log_all(
                    &mut out,
                    due,
                    "INFO",
                    "readiness check passed, serving traffic",
                );
            } else if self.next_at.is_some_and(|t| t <= due) {
                self.next_at = None;
                self.step(due, &mut out);
            } else {
                break;
            }
        }
        out
    }

    fn activate(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        self.behavior_active = true;
        if !matches!(self.phase, Phase::Running { .. }) {
            return;
        }
        match self.spec.behavior {
            Behavior::CrashLoop | Behavior::Oom | Behavior::ImagePull | Behavior::ConfigError => {
                self.crash_at = Some(now);
            }
            Behavior::Flaky if self.crashes == 0 => self.crash_at = Some(now),
            Behavior::Unready => {
                self.ready = false;
                self.ready_at = None;
                self.log_all(
                    out,
                    now,
                    "WARN",
                    "health check failed: upstream dependency unavailable",
                );
                let c = self.containers.first().map(|c| c.0.clone());
                out.push(self.ev(
                    "Warning",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
                    c.as_deref(),
                ));
            }
            Behavior::Healthy | Behavior::Unschedulable | Behavior::Flaky | Behavior::Slow => {}
        }
    }

    fn crash(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        let Phase::Running { started_at } = self.phase.clone() else {
            return;
        };
        let (exit_code, reason) = match self.spec.behavior {
            Behavior::Oom => {
                for (c, _) in &self.containers {
                    out.push(Effect::Log {
                        container: c.clone(),
                        line: format!(
                            "{} INFO loading dataset into memory: 1536MiB allocated",
                            rfc3339(now)
                        ),
                    });
                    out.push(Effect::Log {
                        container: c.clone(),
                        line: "fatal error: runtime: out of memory".into(),
                    });
                }
                (137, "OOMKilled")
            }
            Behavior::CrashLoop | Behavior::Flaky => {
                self.log_all(out, now, "ERROR", "failed to connect to database: dial tcp 10.96.12.34:5432: connect: connection refused");
                for (c, _) in &self.containers {
                    out.push(Effect::Log { container: c.clone(), line: "panic: failed to connect to database: dial tcp 10.96.12.34:5432: connect: connection refused".into() });
                    out.push(Effect::Log {
                        container: c.clone(),
                        line: String::new(),
                    });
                    out.push(Effect::Log {
                        container: c.clone(),
                        line: "goroutine 1 [running]:".into(),
                    });
                    out.push(Effect::Log {
                        container: c.clone(),
                        line: "main.main()\n\t/src/main.go:42 +0x1d4".into(),
                    });
                }
                (1, "Error")
            }
            _ => {
                self.log_all(
                    out,
                    now,
                    "ERROR",
                    "fatal: configuration reload failed, exiting",
                );
                (1, "Error")
            }
        };
        self.crashes += 1;
        self.ready = false;
        self.ready_at = None;
        self.last_terminated = Some(Terminated {
            exit_code,
            reason,
            started_at,
            finished_at: now,
        });
        let delay = restart_delay(self.crashes);
        if self.crashes <= 1 {
            self.phase = Phase::Exited;
        } else {
            self.enter_crash_backoff(now, delay, out);
        }
        self.next_at = Some(add(now, self.scaled(delay)));
    }

    fn enter_crash_backoff(&mut self, _now: Timestamp, delay: Duration, out: &mut Vec<Effect>) {
        let c = self
            .containers
            .first()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        self.phase = Phase::Waiting {
            reason: "CrashLoopBackOff",
            message: format!(
                "back-off {} restarting failed container={c} pod={}_{}({})",
                go_duration(delay),
                self.name,
                self.namespace,
                self.uid
            ),
        };
        out.push(self.ev(
            "Warning",
            "BackOff",
            format!(
                "Back-off restarting failed container {c} in pod {}_{}({})",
                self.name, self.namespace, self.uid
            ),
            Some(&c),
        ));
    }

    /// A timer step: container creation, restart, pull retry.
    fn step(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        let behavior = if self.behavior_active {
            self.spec.behavior
        } else {
            Behavior::Healthy
        };
        match self.phase.clone() {
            Phase::Creating | Phase::Exited => self.try_start(now, behavior, out),
            Phase::Waiting {
                reason: "ErrImagePull",
                ..
            } => {
                let delay = backoff(self.pull_failures);
                for (c, image) in &self.containers {
                    out.push(self.ev(
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                        Some(c),
                    ));
                    out.push(self.ev(
                        "Warning",
                        "Failed",
                        "Error: ImagePullBackOff".into(),
                        Some(c),
                    ));
                }
                let image = self
                    .containers
                    .first()
                    .map(|c| c.1.clone())
                    .unwrap_or_default();
                self.phase = Phase::Waiting {
                    reason: "ImagePullBackOff",
                    message: format!("Back-off pulling image \"{image}\""),
                };
                self.next_at = Some(add(now, self.scaled(delay)));
            }
            Phase::Waiting { .. } => self.try_start(now, behavior, out),
            Phase::Running { .. } => {}
        }
    }

    fn try_start(&mut self, now: Timestamp, behavior: Behavior, out: &mut Vec<Effect>) {
        let restarting = self.ever_started;
        match behavior {
            Behavior::ImagePull => {
                for (c, image) in &self.containers {
                    out.push(self.ev(
                        "Normal",
                        "Pulling",
                        format!("Pulling image \"{image}\""),
                        Some(c),
                    ));
                    let r = image_ref(image);
                    let reference = r.split('@').next().unwrap_or_default().to_string();
                    out.push(self.ev("Warning", "Failed", format!(
                        "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{reference}\": failed to resolve reference \"{reference}\": {reference}: not found"), Some(c)));
                    out.push(self.ev("Warning", "Failed", "Error: ErrImagePull".into(), Some(c)));
                }
                self.pull_failures += 1;
                let image = self
                    .containers
                    .first()
                    .map(|c| c.1.clone())
                    .unwrap_or_default();
                let reference = image_ref(&image)
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.phase = Phase::Waiting {
                    reason: "ErrImagePull",
                    message: format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{reference}\": failed to resolve reference \"{reference}\": {reference}: not found"),
                };
                self.next_at = Some(add(now, self.scaled(Duration::from_secs(1))));
            }
            Behavior::ConfigError => {
                self.config_failures += 1;
                for (c, image) in &self.containers {
                    out.push(self.ev(
                        "Normal",
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                        Some(c),
                    ));
                    out.push(self.ev(
                        "Warning",
                        "Failed",
                        format!("Error: {}", self.config_ref),
                        Some(c),
                    ));
                }
                self.phase = Phase::Waiting {
                    reason: "CreateContainerConfigError",
                    message: self.config_ref.clone(),
                };
                self.next_at = Some(add(now, self.scaled(backoff(self.config_failures))));
            }
            _ => {
                for (c, image) in &self.containers {
                    if restarting {
                        out.push(self.ev(
                            "Normal",
                            "Pulled",
                            format!("Container image \"{image}\" already present on machine"),
                            Some(c),
                        ));
                    } else {
                        out.push(self.ev(
                            "Normal",
                            "Pulling",
                            format!("Pulling image \"{image}\""),
                            Some(c),
                        ));
                        out.push(self.ev("Normal", "Pulled", format!(
                            "Successfully pulled image \"{image}\" in 812ms (812ms including waiting). Image size: 52428800 bytes."), Some(c)));
                    }
                    out.push(self.ev(
                        "Normal",
                        "Created",
                        format!("Created container: {c}"),
                        Some(c),
                    ));
                    out.push(self.ev(
                        "Normal",
                        "Started",
                        format!("Started container {c}"),
                        Some(c),
                    ));
                }
                if restarting {
                    self.restart_count += 1;
                    for (c, _) in &self.containers {
                        out.push(Effect::RestartLog {
                            container: c.clone(),
                        });
                    }
                }
                self.ever_started = true;
                self.phase = Phase::Running { started_at: now };
                for (c, image) in &self.containers {
                    let version = image
                        .rsplit(':')
                        .next()
                        .filter(|v| !v.contains('/'))
                        .unwrap_or("latest");
                    for line in [
                        format!("starting {c} version={version} pod={}", self.name),
                        "loaded configuration from /etc/app/config.yaml".to_string(),
                        format!("listening on 0.0.0.0:8080 (pod IP {})", self.pod_ip),
                    ] {
                        out.push(Effect::Log {
                            container: c.clone(),
                            line: format!("{} INFO {line}", rfc3339(now)),
                        });
                    }
                }
                let unready = behavior == Behavior::Unready;
                self.ready_at = if unready {
                    None
                } else if behavior == Behavior::Slow {
                    Some(add(now, self.scaled(SLOW_READY)))
                } else {
                    Some(add(now, self.scaled(self.ready_delay)))
                };
                if unready {
                    let c = self.containers.first().map(|c| c.0.clone());
                    self.log_all(
                        out,
                        now,
                        "WARN",
                        "health check failed: upstream dependency unavailable",
                    );
                    out.push(self.ev(
                        "Warning",
                        "Unhealthy",
                        "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
                        c.as_deref(),
                    ));
                }
                self.crash_at = match behavior {
                    Behavior::CrashLoop => Some(add(now, self.scaled(CRASH_RUN_TIME))),
                    Behavior::Oom => Some(add(now, self.scaled(OOM_RUN_TIME))),
                    // A flaky container's first run crashes; its restart runs.
                    Behavior::Flaky if self.crashes == 0 => {
                        Some(add(now, self.scaled(CRASH_RUN_TIME)))
                    }
                    _ => None,
                };
                if self.crash_at.is_some() && !self.has_readiness_probe {
                    // No readiness probe: the kubelet reports the container ready while it runs.
                    self.ready_at = Some(now);
                }
            }
        }
    }

    /// Events the scheduler records (Scheduled / FailedScheduling).
    pub fn scheduler_event(&self) -> SimEvent {
        match &self.node {
            Some(n) => SimEvent {
                type_: "Normal",
                reason: "Scheduled",
                message: format!(
                    "Successfully assigned {}/{} to {n}",
                    self.namespace, self.name
                ),
                field_path: None,
                component: "default-scheduler",
            },
            None => SimEvent {
                type_: "Warning",
                reason: "FailedScheduling",
                message: UNSCHEDULABLE_MESSAGE.to_string(),
                field_path: None,
                component: "default-scheduler",
            },
        }
    }
}

#[cfg(test)]
#[path = "kubelet_tests.rs"]
mod tests;

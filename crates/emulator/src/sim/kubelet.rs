//! Pure pod-lifecycle simulation (what the scheduler and the kubelet would
//! report for a pod): a per-pod state machine driven by the behaviour
//! annotations, producing a `PodStatus`, core/v1 event descriptions and
//! container log lines. No I/O; `runtime.rs` drives it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use super::rollout::{scale_duration, trunc_secs};

/// Annotation selecting the simulated behaviour of a pod's containers.
pub const BEHAVIOR_ANNOTATION: &str = "sim.kubeincident.io/behavior";
/// Annotation delaying the behaviour: the pod is healthy this long first (e.g. `30s`).
pub const AFTER_ANNOTATION: &str = "sim.kubeincident.io/after";
/// How long a crashing container runs before it exits (simulated time).
pub const CRASH_RUN_TIME: Duration = Duration::from_secs(3);
/// How long an OOM-ing container runs before it is killed (simulated time).
pub const OOM_RUN_TIME: Duration = Duration::from_secs(5);
/// Time from binding to a started container (sandbox + image pull).
pub const START_DELAY: Duration = Duration::from_secs(1);
/// The kubelet's container restart back-off cap (5 minutes).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The kubelet's initial back-off.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Scheduler message for unschedulable pods.
pub const UNSCHEDULABLE_MESSAGE: &str = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";

/// What the containers of a pod do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Starts, becomes ready, keeps running.
    Healthy,
    /// Runs a few seconds, exits 1 (Error), restarts with back-off.
    CrashLoop,
    /// Killed by the OOM killer (exit 137, OOMKilled), restarts with back-off.
    Oom,
    /// The image cannot be pulled: ErrImagePull / ImagePullBackOff.
    ImagePull,
    /// A referenced secret/configmap is missing: CreateContainerConfigError.
    ConfigError,
    /// Runs, but the readiness probe never succeeds.
    Unready,
    /// The scheduler finds no node.
    Unschedulable,
}

impl Behavior {
    /// Parses the annotation value (unknown values are healthy).
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "crashloop" | "crashloopbackoff" | "crash" => Self::CrashLoop,
            "oom" | "oomkilled" => Self::Oom,
            "imagepull" | "imagepullbackoff" | "errimagepull" => Self::ImagePull,
            "config-error" | "configerror" | "createcontainerconfigerror" => Self::ConfigError,
            "unready" => Self::Unready,
            "unschedulable" | "pending" => Self::Unschedulable,
            _ => Self::Healthy,
        }
    }
}

/// Parses a Go-style duration (`30s`, `1m30s`, `500ms`, `2h`; a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// The behaviour of a pod read from its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BehaviorSpec {
    /// What happens.
    pub behavior: Behavior,
    /// Healthy for this long (simulated) first.
    pub after: Option<Duration>,
}

impl BehaviorSpec {
    /// Reads `sim.kubeincident.io/behavior` and `sim.kubeincident.io/after`.
    /// The delay may also be written inline: `crashloop; after: 30s`
    /// (`after=30s`, `after 30s`); the separate annotation wins.
    pub fn from_pod(pod: &Pod) -> Self {
        let ann = pod.metadata.annotations.as_ref();
        let get = |k: &str| ann.and_then(|a| a.get(k)).map(String::as_str);
        let (behavior, inline_after) =
            get(BEHAVIOR_ANNOTATION).map_or((Behavior::Healthy, None), Self::parse_value);
        Self {
            behavior,
            after: get(AFTER_ANNOTATION)
                .and_then(parse_duration)
                .or(inline_after),
        }
    }

    /// Parses a behaviour annotation value with an optional inline `after`.
    pub fn parse_value(v: &str) -> (Behavior, Option<Duration>) {
        let mut words = v
            .split(|c: char| c == ';' || c == ',' || c == ':' || c == '=' || c.is_whitespace())
            .filter(|w| !w.is_empty());
        let behavior = words.next().map_or(Behavior::Healthy, Behavior::parse);
        let mut after = None;
        while let Some(w) = words.next() {
            if w.eq_ignore_ascii_case("after") {
                after = words.next().and_then(parse_duration);
            }
        }
        (behavior, after)
    }
}

/// Kubelet container back-off: `INITIAL_BACKOFF * 2^(n-1)` capped at 5m, for
/// the n-th consecutive back-off (n >= 1).
pub fn backoff(n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// Delay before restarting a container after its `crashes`-th exit: the first
/// restart is immediate (next PLEG relist, ~1s), then 10s, 20s, 40s ... 5m.
pub fn restart_delay(crashes: u32) -> Duration {
    if crashes <= 1 {
        Duration::from_secs(1)
    } else {
        backoff(crashes - 1)
    }
}

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

fn container_list(cs: &[Container]) -> Vec<(String, String)> {
    cs.iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// QoS class as the API server computes it (`BestEffort`, `Burstable`, `Guaranteed`).
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let res = c.resources.as_ref();
        let req = res.and_then(|r| r.requests.as_ref());
        let lim = res.and_then(|r| r.limits.as_ref());
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for k in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(k));
            let r = req.and_then(|m| m.get(k)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The name of the first secret/configmap a pod's containers reference, as
/// the kubelet would report it when missing (`secret "x" not found`).
fn first_config_ref(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        for e in c.env.iter().flatten() {
            if let Some(v) = e.value_from.as_ref() {
                if let Some(s) = v.secret_key_ref.as_ref() {
                    return format!("secret \"{}\" not found", s.name);
                }
                if let Some(s) = v.config_map_key_ref.as_ref() {
                    return format!("configmap \"{}\" not found", s.name);
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(s) = e.secret_ref.as_ref() {
                return format!("secret \"{}\" not found", s.name);
            }
            if let Some(s) = e.config_map_ref.as_ref() {
                return format!("configmap \"{}\" not found", s.name);
            }
        }
    }
    let base = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app"))
        .cloned()
        .unwrap_or_else(|| "app".to_string());
    format!("secret \"{base}-secrets\" not found")
}

fn hex_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

fn image_ref(image: &str) -> String {
    let (name, _) = image.split_once('@').unwrap_or((image, ""));
    let without_tag = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    let full = if without_tag.contains('/') {
        if without_tag
            .split('/')
            .next()
            .is_some_and(|h| h.contains('.') || h.contains(':'))
        {
            without_tag.to_string()
        } else {
            format!("docker.io/{without_tag}")
        }
    } else {
        format!("docker.io/library/{without_tag}")
    };
    format!("{full}@sha256:{}", hex_id(&[image]))
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
            Behavior::Healthy | Behavior::Unschedulable => {}
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
            Behavior::CrashLoop => {
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

/// Formats a duration like Go's `time.Duration.String()` for whole seconds (`10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
    }
}

#[cfg(test)]
#[path = "kubelet_tests.rs"]
mod tests;

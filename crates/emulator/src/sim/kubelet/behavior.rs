//! The behaviour annotations a pod carries (what its containers do, and
//! after how long), the simulated timings and the kubelet's restart back-off.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

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
/// How long a `slow` container takes to become ready (simulated time).
pub const SLOW_READY: Duration = Duration::from_secs(20);
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
    /// Crashes once (exit 1), is restarted, then runs and becomes ready.
    Flaky,
    /// Runs, and becomes ready only [`SLOW_READY`] after it started.
    Slow,
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
            "flaky" => Self::Flaky,
            "slow" => Self::Slow,
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

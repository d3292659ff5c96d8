use super::*;
use serde_json::json;

fn pod(behavior: &str, after: Option<&str>, probe: bool) -> Pod {
    let mut ann = serde_json::Map::new();
    ann.insert(BEHAVIOR_ANNOTATION.into(), json!(behavior));
    if let Some(a) = after {
        ann.insert(AFTER_ANNOTATION.into(), json!(a));
    }
    let mut c = json!({"name": "app", "image": "registry.example.com/shop/web:1.2.3"});
    if probe {
        c["readinessProbe"] =
            json!({"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5});
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web-abc-xyz12", "namespace": "default", "uid": "u-1", "annotations": ann},
        "spec": {"containers": [c]}
    }))
    .expect("pod")
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).expect("ts")
}

fn run_until(sim: &mut PodSim, end: i64) -> Vec<Effect> {
    let mut all = Vec::new();
    let mut now = ts(0);
    while now <= ts(end) {
        all.extend(sim.advance(now));
        now = add(now, Duration::from_millis(250));
    }
    all
}

fn events(effects: &[Effect]) -> Vec<(&'static str, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some((ev.reason, ev.message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn parsing() {
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("abc"), None);
    assert_eq!(Behavior::parse("CrashLoop"), Behavior::CrashLoop);
    assert_eq!(Behavior::parse("config-error"), Behavior::ConfigError);
    assert_eq!(Behavior::parse("whatever"), Behavior::Healthy);
    assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    assert_eq!(
        BehaviorSpec::parse_value("crashloop; after: 30s"),
        (Behavior::CrashLoop, Some(Duration::from_secs(30)))
    );
    assert_eq!(
        BehaviorSpec::parse_value("oom after=1m"),
        (Behavior::Oom, Some(Duration::from_secs(60)))
    );
    assert_eq!(
        BehaviorSpec::parse_value("unready"),
        (Behavior::Unready, None)
    );
    let p = pod("crashloop, after: 5s", Some("10s"), false);
    assert_eq!(
        BehaviorSpec::from_pod(&p),
        BehaviorSpec {
            behavior: Behavior::CrashLoop,
            after: Some(Duration::from_secs(10))
        }
    );
    assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
}

#[test]
fn backoff_schedule() {
    let secs: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(restart_delay(1), Duration::from_secs(1));
    assert_eq!(restart_delay(2), Duration::from_secs(10));
    assert_eq!(restart_delay(3), Duration::from_secs(20));
}

#[test]
fn healthy_pod_becomes_ready_with_stable_transition_times() {
    let p = pod("healthy", None, true);
    let mut sim = PodSim::new(
        &p,
        Some("sim-node-1".into()),
        "10.0.0.11".into(),
        "10.244.1.5".into(),
        ts(0),
        1.0,
    );
    let st = sim.status(ts(0));
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    let cs = &st.container_statuses.as_ref().expect("cs")[0];
    assert_eq!(
        cs.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("ContainerCreating")
    );
    let effects = run_until(&mut sim, 3);
    let reasons: Vec<&str> = events(&effects).iter().map(|e| e.0).collect();
    assert_eq!(reasons, vec!["Pulling", "Pulled", "Created", "Started"]);
    let st = sim.status(ts(3));
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(!sim.is_ready(), "probe initialDelay 5s + 1s");
    let not_ready_ltt = st
        .conditions
        .as_ref()
        .expect("c")
        .iter()
        .find(|c| c.type_ == "Ready")
        .and_then(|c| c.last_transition_time.clone());
    run_until(&mut sim, 8);
    let st = sim.status(ts(8));
    let ready = st
        .conditions
        .as_ref()
        .expect("c")
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
        .expect("ready");
    assert_eq!(ready.status, "True");
    assert_ne!(ready.last_transition_time, not_ready_ltt);
    let st2 = sim.status(ts(20));
    let ready2 = st2
        .conditions
        .as_ref()
        .expect("c")
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
        .expect("ready");
    assert_eq!(
        ready.last_transition_time, ready2.last_transition_time,
        "no transition, same time"
    );
    let cs = &st2.container_statuses.as_ref().expect("cs")[0];
    assert!(cs.ready && cs.started == Some(true) && cs.restart_count == 0);
    assert!(cs
        .container_id
        .as_deref()
        .is_some_and(|c| c.starts_with("containerd://")));
    assert!(cs
        .image_id
        .starts_with("registry.example.com/shop/web@sha256:"));
    assert!(sim.next_wakeup().is_none());
}

#[test]
fn crashloop_restarts_with_backoff() {
    let p = pod("crashloop", None, true);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 1.0);
    // start at 1s, crash at 4s, restart at 5s, crash at 8s -> back-off 10s -> restart at 18s, crash 21s -> 20s.
    let effects = run_until(&mut sim, 9);
    let st = sim.status(ts(9));
    let cs = &st.container_statuses.as_ref().expect("cs")[0];
    assert_eq!(cs.restart_count, 1);
    let w = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        w.message.as_deref(),
        Some("back-off 10s restarting failed container=app pod=web-abc-xyz12_default(u-1)")
    );
    let t = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(events(&effects).iter().any(|e| e.0 == "BackOff"
        && e.1
            .starts_with("Back-off restarting failed container app in pod")));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::RestartLog { .. })));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Log { line, .. } if line.contains("connection refused"))));
    run_until(&mut sim, 23);
    let st = sim.status(ts(23));
    let cs = &st.container_statuses.as_ref().expect("cs")[0];
    assert_eq!(cs.restart_count, 2);
    assert_eq!(
        cs.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.clone())
            .map(|m| m.starts_with("back-off 20s")),
        Some(true)
    );
}

#[test]
fn oom_then_backoff_and_after_delay() {
    let p = pod("oom", Some("10s"), false);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 2.0);
    // time scale 2: start at 0.5s, healthy until 5s, OOM at 5s, restart 5.5s, OOM at 8s -> back-off 10s/2.
    run_until(&mut sim, 4);
    assert!(sim.is_ready(), "healthy before `after`");
    run_until(&mut sim, 9);
    let st = sim.status(ts(9));
    let cs = &st.container_statuses.as_ref().expect("cs")[0];
    let t = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
    assert_eq!(
        cs.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("CrashLoopBackOff")
    );
}

#[test]
fn imagepull_alternates_and_config_error() {
    let p = pod("imagepull", None, false);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 1.0);
    sim.advance(ts(1));
    let w = |sim: &mut PodSim, t| {
        let st = sim.status(ts(t));
        st.container_statuses.as_ref().expect("cs")[0]
            .state
            .as_ref()
            .and_then(|s| s.waiting.clone())
            .expect("waiting")
    };
    assert_eq!(w(&mut sim, 1).reason.as_deref(), Some("ErrImagePull"));
    let effects = sim.advance(ts(2));
    let st = w(&mut sim, 2);
    assert_eq!(st.reason.as_deref(), Some("ImagePullBackOff"));
    assert_eq!(
        st.message.as_deref(),
        Some("Back-off pulling image \"registry.example.com/shop/web:1.2.3\"")
    );
    assert!(events(&effects).iter().any(|e| e.0 == "BackOff"));
    sim.advance(ts(12));
    assert_eq!(w(&mut sim, 12).reason.as_deref(), Some("ErrImagePull"));
    assert_eq!(sim.status(ts(12)).phase.as_deref(), Some("Pending"));

    let p = pod("config-error", None, false);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 1.0);
    sim.advance(ts(1));
    let wt = w(&mut sim, 1);
    assert_eq!(wt.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(
        wt.message.as_deref(),
        Some("secret \"app-secrets\" not found")
    );
}

#[test]
fn unready_and_unschedulable() {
    let p = pod("unready", None, true);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 1.0);
    run_until(&mut sim, 30);
    let st = sim.status(ts(30));
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(!sim.is_ready());
    let p = pod("unschedulable", None, false);
    let mut sim = PodSim::new(&p, None, String::new(), String::new(), ts(0), 1.0);
    let st = sim.status(ts(0));
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    let c = &st.conditions.as_ref().expect("c")[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
        ("PodScheduled", "False", Some("Unschedulable"))
    );
    assert!(st.container_statuses.is_none());
    assert_eq!(sim.scheduler_event().reason, "FailedScheduling");
}

#[test]
fn flaky_crashes_once_then_runs_and_is_ready() {
    let p = pod("flaky", None, true);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 1.0);
    // start at 1s, crash at 4s, restart at 5s (the kubelet's first restart
    // is immediate), then runs.
    run_until(&mut sim, 30);
    let st = sim.status(ts(30));
    let cs = &st.container_statuses.as_ref().expect("cs")[0];
    assert_eq!(cs.restart_count, 1);
    assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    assert!(cs.ready);
    assert!(cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 1));
    assert_eq!(Behavior::parse("flaky"), Behavior::Flaky);
}

#[test]
fn slow_becomes_ready_twenty_seconds_after_it_started() {
    let p = pod("slow", None, true);
    let mut sim = PodSim::new(&p, Some("n".into()), "h".into(), "p".into(), ts(0), 1.0);
    run_until(&mut sim, 15);
    let cs = sim.status(ts(15)).container_statuses.expect("cs")[0].clone();
    assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    assert!(!cs.ready, "not ready 14 s after start");
    run_until(&mut sim, 30);
    let cs = sim.status(ts(30)).container_statuses.expect("cs")[0].clone();
    assert!(cs.ready);
    assert_eq!(cs.restart_count, 0);
}

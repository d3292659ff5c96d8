//! Integration tests of the workload simulation against the emulated API
//! server, through a real `kube::Client` (and the real `kubectl` when it is
//! installed). Time runs 20-50x faster.

use std::future::Future;
use std::time::Duration;

use emulator::sim::{self, SimConfig, SimHandle};
use emulator::{Emulator, EmulatorConfig};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

struct Env {
    emu: Emulator,
    sim: SimHandle,
    client: Client,
    ns: String,
}

impl Env {
    async fn start(ns: &str, time_scale: f64) -> Env {
        // The simulation is spawned here (not by the emulator) so these tests
        // exercise exactly `sim::spawn`.
        let emu = Emulator::start(EmulatorConfig {
            simulate: false,
            time_scale,
            ..Default::default()
        })
        .await
        .expect("emulator starts");
        let client = emu.client();
        let sim = sim::spawn(client.clone(), SimConfig { time_scale }, emu.pod_logs());
        let nss: Api<Namespace> = Api::all(client.clone());
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        nss.create(&PostParams::default(), &n)
            .await
            .expect("namespace created");
        Env {
            emu,
            sim,
            client,
            ns: ns.to_string(),
        }
    }

    fn deploys(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn rss(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn events(&self) -> Api<Event> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn stop(self) {
        self.sim.shutdown().await;
        self.emu.shutdown().await;
    }
}

/// Polls `f` every 50ms until it returns `Some`, panicking after `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn deployment(
    name: &str,
    replicas: i32,
    image: &str,
    behavior: &str,
    extra_spec: Value,
) -> Deployment {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"sim.kubeincident.io/behavior": behavior}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 5}}]}
            }
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).expect("deployment")
}

fn cond<'a>(
    d: &'a Deployment,
    t: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
}

fn ann<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

async fn complete(env: &Env, name: &str, replicas: i32, secs: u64) -> Deployment {
    wait_for(&format!("deployment {name} complete"), secs, || async {
        let d = env.deploys().get(name).await.ok()?;
        let s = d.status.as_ref()?;
        let done = s.updated_replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.observed_generation >= d.metadata.generation
            && cond(&d, "Progressing").and_then(|c| c.reason.as_deref())
                == Some("NewReplicaSetAvailable");
        done.then_some(d)
    })
    .await
}

async fn rs_by_revision(env: &Env) -> Vec<(String, ReplicaSet)> {
    let mut v: Vec<(String, ReplicaSet)> = env
        .rss()
        .list(&ListParams::default())
        .await
        .expect("list rs")
        .items
        .into_iter()
        .map(|r| {
            (
                ann(&r.metadata, "deployment.kubernetes.io/revision")
                    .unwrap_or("")
                    .to_string(),
                r,
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_creates_replicaset_and_pods_and_becomes_available() {
    let env = Env::start("sim-basic", 50.0).await;
    env.deploys()
        .create(
            &PostParams::default(),
            &deployment("web", 3, "nginx:1.25", "healthy", json!({})),
        )
        .await
        .expect("create");
    let d = complete(&env, "web", 3, 30).await;
    assert_eq!(
        ann(&d.metadata, "deployment.kubernetes.io/revision"),
        Some("1")
    );
    let avail = cond(&d, "Available").expect("Available");
    assert_eq!(
        (avail.status.as_str(), avail.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    assert_eq!(d.status.as_ref().and_then(|s| s.ready_replicas), Some(3));

    let rss = env
        .rss()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
        .expect("hash label");
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let sel = rs
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .expect("selector");
    assert_eq!(sel.get("pod-template-hash"), Some(&hash));
    let owner = &rs.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        ("Deployment", Some(true), Some(true))
    );
    assert_eq!(owner.uid, d.metadata.uid.clone().expect("uid"));
    assert_eq!(
        ann(&rs.metadata, "deployment.kubernetes.io/desired-replicas"),
        Some("3")
    );
    assert_eq!(
        ann(&rs.metadata, "deployment.kubernetes.io/max-replicas"),
        Some("4")
    );
    let rst = rs.status.as_ref().expect("rs status");
    assert_eq!(
        (
            rst.replicas,
            rst.ready_replicas,
            rst.available_replicas,
            rst.fully_labeled_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    assert_eq!(rst.observed_generation, rs.metadata.generation);

    let pods = env
        .pods()
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let name = p.metadata.name.clone().expect("name");
        assert!(
            name.starts_with(&format!("web-{hash}-"))
                && name.len() == format!("web-{hash}-").len() + 5,
            "{name}"
        );
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash")),
            Some(&hash)
        );
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("bound");
        assert!(node.starts_with("sim-node-"), "{node}");
        let st = p.status.as_ref().expect("status");
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(st
            .pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.244.")));
        assert!(st.host_ip.is_some() && st.start_time.is_some());
        let types: Vec<&str> = st
            .conditions
            .as_ref()
            .expect("conds")
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(types.contains(&t), "{t} in {types:?}");
        }
        let cs = &st.container_statuses.as_ref().expect("cs")[0];
        assert!(cs.ready && cs.started == Some(true) && cs.restart_count == 0);
        assert!(cs
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .is_some());
        assert!(cs
            .container_id
            .as_deref()
            .is_some_and(|c| c.starts_with("containerd://")));
        let lines = env
            .emu
            .pod_logs()
            .read("sim-basic", &name, "app", false, None)
            .expect("logs");
        assert!(
            lines.iter().any(|l| l.contains("listening on")),
            "{lines:?}"
        );
    }
    // Events: scheduler, kubelet and controllers.
    let evs = wait_for("events", 10, || async {
        let evs = env.events().list(&ListParams::default()).await.ok()?.items;
        let has = |r: &str| evs.iter().any(|e| e.reason.as_deref() == Some(r));
        (has("ScalingReplicaSet")
            && has("SuccessfulCreate")
            && has("Scheduled")
            && has("Started")
            && has("Created"))
        .then_some(evs)
    })
    .await;
    let scaling = evs
        .iter()
        .find(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
        .expect("scaling");
    assert_eq!(
        scaling.message.as_deref(),
        Some(format!("Scaled up replica set web-{hash} from 0 to 3").as_str())
    );
    assert_eq!(scaling.involved_object.kind.as_deref(), Some("Deployment"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_undo_reuses_old_revision() {
    let env = Env::start("sim-roll", 20.0).await;
    let spec = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    env.deploys()
        .create(
            &PostParams::default(),
            &deployment("web", 4, "nginx:1.25", "healthy", spec),
        )
        .await
        .expect("create");
    complete(&env, "web", 4, 30).await;

    // Update the image: revision 2.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}});
    env.deploys()
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch image");
    // Observe the rollout: never more than replicas + maxSurge pods, never fewer than replicas - maxUnavailable available.
    let mut saw_two_active = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let rss = env
            .rss()
            .list(&ListParams::default())
            .await
            .expect("rs")
            .items;
        let total: i32 = rss.iter().map(rs_replicas).sum();
        assert!(total <= 5, "maxSurge 1 exceeded: {total}");
        let available: i32 = rss
            .iter()
            .filter_map(|r| r.status.as_ref()?.available_replicas)
            .sum();
        if rss.len() == 2 && rss.iter().all(|r| rs_replicas(r) > 0) {
            saw_two_active = true;
            assert!(
                available >= 4
                    || rss
                        .iter()
                        .any(|r| r.status.as_ref().and_then(|s| s.observed_generation)
                            < r.metadata.generation),
                "maxUnavailable 0 violated: {available} available"
            );
        }
        let d = env.deploys().get("web").await.expect("get");
        if d.status.as_ref().and_then(|s| s.updated_replicas) == Some(4)
            && cond(&d, "Progressing").and_then(|c| c.reason.as_deref())
                == Some("NewReplicaSetAvailable")
            && d.status.as_ref().and_then(|s| s.replicas) == Some(4)
            && d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
            && ann(&d.metadata, "deployment.kubernetes.io/revision") == Some("2")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout did not finish"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        saw_two_active,
        "a rolling update has both replica sets active for a while"
    );
    let d = env.deploys().get("web").await.expect("get");
    assert_eq!(
        ann(&d.metadata, "deployment.kubernetes.io/revision"),
        Some("2")
    );
    let rss = rs_by_revision(&env).await;
    assert_eq!(
        rss.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["1", "2"]
    );
    assert_eq!(rs_replicas(&rss[0].1), 0, "old replica set scaled to 0");
    assert_eq!(rs_replicas(&rss[1].1), 4);
    let rs1_name = rss[0].1.metadata.name.clone().expect("name");
    let rs2_name = rss[1].1.metadata.name.clone().expect("name");
    let evs = env
        .events()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    assert!(evs.iter().any(|e| e.message.as_deref()
        == Some(format!("Scaled down replica set {rs1_name} from 4 to 3").as_str())));

    // `kubectl rollout undo` (client side): copy revision 1's template back, hash label removed.
    let mut template =
        serde_json::to_value(rss[0].1.spec.as_ref().and_then(|s| s.template.clone()))
            .expect("tmpl");
    template["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("pod-template-hash");
    let annotations = json!({"deployment.kubernetes.io/revision": "2"});
    let undo = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations}
    ]);
    let undo: json_patch::Patch = serde_json::from_value(undo).expect("json patch");
    env.deploys()
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(undo))
        .await
        .expect("undo");
    complete(&env, "web", 4, 40).await;
    let d = wait_for("revision 3", 10, || async {
        let d = env.deploys().get("web").await.ok()?;
        (ann(&d.metadata, "deployment.kubernetes.io/revision") == Some("3")).then_some(d)
    })
    .await;
    assert!(d.status.is_some());
    let rss = rs_by_revision(&env).await;
    assert_eq!(rss.len(), 2, "the old replica set is re-used, no new one");
    assert_eq!(rss[0].0, "2");
    assert_eq!(rss[1].0, "3");
    assert_eq!(rss[1].1.metadata.name.as_deref(), Some(rs1_name.as_str()));
    assert_eq!(
        ann(
            &rss[1].1.metadata,
            "deployment.kubernetes.io/revision-history"
        ),
        Some("1")
    );
    assert_eq!(rs_replicas(&rss[1].1), 4);
    assert_eq!(rs_replicas(&rss[0].1), 0);

    // The real kubectl, when installed: history and another undo (back to revision 2 -> 4).
    if std::path::Path::new("/usr/bin/kubectl").exists() {
        let dir = std::env::temp_dir().join(format!("sim-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let kc = dir.join("config");
        env.emu.write_kubeconfig(&kc).expect("kubeconfig");
        let kubectl = |args: &[&str]| {
            let out = std::process::Command::new("/usr/bin/kubectl")
                .arg("--kubeconfig")
                .arg(&kc)
                .args(["-n", "sim-roll"])
                .args(args)
                .output()
                .expect("kubectl runs");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        };
        let (ok, out) =
            tokio::task::block_in_place(|| kubectl(&["rollout", "history", "deployment/web"]));
        assert!(ok, "{out}");
        let revs: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(revs, vec!["2", "3"], "{out}");
        let (ok, out) =
            tokio::task::block_in_place(|| kubectl(&["rollout", "undo", "deployment/web"]));
        assert!(ok, "{out}");
        assert!(out.contains("rolled back"), "{out}");
        wait_for("revision 4 on rs2", 40, || async {
            let rs = env.rss().get(&rs2_name).await.ok()?;
            (ann(&rs.metadata, "deployment.kubernetes.io/revision") == Some("4")
                && ann(&rs.metadata, "deployment.kubernetes.io/revision-history") == Some("2"))
            .then_some(())
        })
        .await;
        complete(&env, "web", 4, 40).await;
        let (ok, out) =
            tokio::task::block_in_place(|| kubectl(&["rollout", "history", "deployment/web"]));
        assert!(ok, "{out}");
        let revs: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(revs, vec!["3", "4"], "{out}");
        eprintln!("kubectl rollout history after two undos:\n{out}");
        let (ok, out) = tokio::task::block_in_place(|| {
            kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])
        });
        assert!(ok && out.contains("successfully rolled out"), "{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashloop_backs_off_and_deployment_exceeds_progress_deadline() {
    let env = Env::start("sim-crash", 40.0).await;
    // 120s deadline / 40 = 3s real.
    let spec = json!({"progressDeadlineSeconds": 120});
    env.deploys()
        .create(
            &PostParams::default(),
            &deployment("api", 2, "shop/api:2.0", "crashloop", spec),
        )
        .await
        .expect("create");
    let pod = wait_for("restartCount >= 3 in CrashLoopBackOff", 30, || async {
        let pods = env.pods().list(&ListParams::default()).await.ok()?.items;
        pods.into_iter().find(|p| {
            let cs = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first());
            cs.is_some_and(|cs| {
                cs.restart_count >= 3
                    && cs
                        .state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
            })
        })
    })
    .await;
    let st = pod.status.as_ref().expect("status");
    let cs = &st.container_statuses.as_ref().expect("cs")[0];
    let w = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    let pod_name = pod.metadata.name.clone().expect("name");
    let msg = w.message.clone().expect("message");
    assert!(
        msg.starts_with("back-off ")
            && msg.contains(&format!(
                "restarting failed container=app pod={pod_name}_sim-crash("
            )),
        "{msg}"
    );
    assert!(
        msg.starts_with("back-off 20s")
            || msg.starts_with("back-off 40s")
            || msg.starts_with("back-off 1m20s"),
        "{msg}"
    );
    let t = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert!(!cs.ready);
    assert_eq!(st.phase.as_deref(), Some("Running"));
    let ready = st
        .conditions
        .as_ref()
        .expect("c")
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );

    // Logs of the previous instance hold the crash; also through the API server.
    let prev = env
        .emu
        .pod_logs()
        .read("sim-crash", &pod_name, "app", true, None)
        .expect("previous log");
    assert!(
        prev.iter().any(|l| l.contains("connection refused")),
        "{prev:?}"
    );
    let via_api = env
        .pods()
        .logs(
            &pod_name,
            &LogParams {
                previous: true,
                container: Some("app".into()),
                ..Default::default()
            },
        )
        .await
        .expect("previous logs via API");
    assert!(via_api.contains("panic: failed to connect"), "{via_api}");

    // BackOff events are aggregated: one object with a growing count.
    let ev = wait_for("BackOff count >= 2", 20, || async {
        let evs = env.events().list(&ListParams::default()).await.ok()?.items;
        evs.into_iter().find(|e| {
            e.reason.as_deref() == Some("BackOff")
                && e.involved_object.name.as_deref() == Some(pod_name.as_str())
                && e.count.unwrap_or(0) >= 2
        })
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(
        ev.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
    let backoffs = env
        .events()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("BackOff")
                && e.involved_object.name.as_deref() == Some(pod_name.as_str())
        })
        .count();
    assert_eq!(backoffs, 1, "repeats bump count instead of creating events");

    let d = wait_for("ProgressDeadlineExceeded", 30, || async {
        let d = env.deploys().get("api").await.ok()?;
        (cond(&d, "Progressing").and_then(|c| c.reason.as_deref())
            == Some("ProgressDeadlineExceeded"))
        .then_some(d)
    })
    .await;
    let c = cond(&d, "Progressing").expect("Progressing");
    assert_eq!(c.status, "False");
    assert!(c
        .message
        .as_deref()
        .is_some_and(|m| m.ends_with("has timed out progressing.")));
    let a = cond(&d, "Available").expect("Available");
    assert_eq!(
        (a.status.as_str(), a.reason.as_deref()),
        ("False", Some("MinimumReplicasUnavailable"))
    );
    assert_eq!(
        d.status.as_ref().and_then(|s| s.unavailable_replicas),
        Some(2)
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_imagepull_config_error_and_unschedulable_statuses() {
    let env = Env::start("sim-fail", 50.0).await;
    for (name, behavior) in [
        ("oom", "oom"),
        ("pull", "imagepull"),
        ("cfg", "config-error"),
        ("pend", "unschedulable"),
        ("slow", "unready"),
    ] {
        env.deploys()
            .create(
                &PostParams::default(),
                &deployment(name, 1, "shop/app:1.0", behavior, json!({})),
            )
            .await
            .expect("create");
    }
    let by_app = |app: &'static str| {
        let env = &env;
        async move {
            let lp = ListParams::default().labels(&format!("app={app}"));
            env.pods().list(&lp).await.ok()?.items.into_iter().next()
        }
    };
    let cs_of = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first().cloned())
    };
    let oom = wait_for("OOMKilled", 30, || async {
        let p = by_app("oom").await?;
        let cs = cs_of(&p)?;
        let t = cs.last_state.as_ref()?.terminated.clone()?;
        (t.reason.as_deref() == Some("OOMKilled")).then_some(t)
    })
    .await;
    assert_eq!(oom.exit_code, 137);
    let pull = wait_for("ImagePullBackOff", 30, || async {
        let w = cs_of(&by_app("pull").await?)?.state?.waiting?;
        (w.reason.as_deref() == Some("ImagePullBackOff")).then_some(w)
    })
    .await;
    assert_eq!(
        pull.message.as_deref(),
        Some("Back-off pulling image \"shop/app:1.0\"")
    );
    let cfg = wait_for("CreateContainerConfigError", 30, || async {
        let w = cs_of(&by_app("cfg").await?)?.state?.waiting?;
        (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w)
    })
    .await;
    assert!(cfg
        .message
        .as_deref()
        .is_some_and(|m| m.ends_with("not found")));
    let pend = wait_for("Unschedulable", 30, || async {
        let p = by_app("pend").await?;
        let st = p.status.clone()?;
        let c = st
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "PodScheduled")?
            .clone();
        (c.reason.as_deref() == Some("Unschedulable")).then_some((p, st, c))
    })
    .await;
    assert_eq!(pend.1.phase.as_deref(), Some("Pending"));
    assert_eq!(pend.2.status, "False");
    assert!(pend
        .2
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("0/3 nodes are available")));
    assert!(pend
        .0
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none());
    // Unready: running, never ready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let slow = by_app("slow").await.expect("pod");
    let cs = cs_of(&slow).expect("cs");
    assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some() && !cs.ready);
    let pull_pod = by_app("pull").await.expect("pod");
    assert_eq!(
        pull_pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_does_not_roll_until_resumed_and_scaling_works() {
    let env = Env::start("sim-pause", 50.0).await;
    env.deploys()
        .create(
            &PostParams::default(),
            &deployment("web", 2, "nginx:1.25", "healthy", json!({})),
        )
        .await
        .expect("create");
    complete(&env, "web", 2, 30).await;
    let pp = PatchParams::default();
    env.deploys()
        .patch(
            "web",
            &pp,
            &Patch::Merge(&json!({"spec": {"paused": true}})),
        )
        .await
        .expect("pause");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}}}});
    env.deploys()
        .patch("web", &pp, &Patch::Strategic(&patch))
        .await
        .expect("image");
    let d = wait_for("DeploymentPaused", 10, || async {
        let d = env.deploys().get("web").await.ok()?;
        (cond(&d, "Progressing").and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused"))
            .then_some(d)
    })
    .await;
    assert_eq!(
        cond(&d, "Progressing").map(|c| c.status.as_str()),
        Some("Unknown")
    );
    // Scaling a paused deployment still works (proportionally, here a single RS).
    env.deploys()
        .patch("web", &pp, &Patch::Merge(&json!({"spec": {"replicas": 3}})))
        .await
        .expect("scale");
    wait_for("3 pods", 20, || async {
        let d = env.deploys().get("web").await.ok()?;
        (d.status.as_ref()?.available_replicas == Some(3)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rss = env
        .rss()
        .list(&ListParams::default())
        .await
        .expect("rs")
        .items;
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(
        ann(
            &rss[0].metadata,
            "deployment.kubernetes.io/desired-replicas"
        ),
        Some("3")
    );
    env.deploys()
        .patch(
            "web",
            &pp,
            &Patch::Merge(&json!({"spec": {"paused": false}})),
        )
        .await
        .expect("resume");
    let d = complete(&env, "web", 3, 30).await;
    assert_eq!(
        ann(&d.metadata, "deployment.kubernetes.io/revision"),
        Some("2")
    );
    let rss = rs_by_revision(&env).await;
    assert_eq!(rss.len(), 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_strategy_scales_old_down_first_and_history_limit_cleans_up() {
    let env = Env::start("sim-recreate", 50.0).await;
    let spec = json!({"strategy": {"type": "Recreate"}, "revisionHistoryLimit": 1});
    env.deploys()
        .create(
            &PostParams::default(),
            &deployment("db", 2, "postgres:16.1", "healthy", spec),
        )
        .await
        .expect("create");
    complete(&env, "db", 2, 30).await;
    for image in ["postgres:16.2", "postgres:16.3"] {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        env.deploys()
            .patch("db", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("image");
        // While the new replica set has pods, no old one may still have replicas.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let rss = env
                .rss()
                .list(&ListParams::default())
                .await
                .expect("rs")
                .items;
            let active = rss.iter().filter(|r| rs_replicas(r) > 0).count();
            assert!(active <= 1, "Recreate never runs two versions");
            let d = env.deploys().get("db").await.expect("get");
            let img = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.containers[0].image.clone());
            let done = d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
                && d.status.as_ref().and_then(|s| s.updated_replicas) == Some(2)
                && d.status.as_ref().and_then(|s| s.replicas) == Some(2)
                && img.as_deref() == Some(image);
            if done
                && d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recreate rollout did not finish"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    // revisionHistoryLimit 1: revision 1 is cleaned up once revision 3 completes.
    wait_for("cleanup", 20, || async {
        let rss = rs_by_revision(&env).await;
        (rss.iter().map(|r| r.0.as_str()).collect::<Vec<_>>() == vec!["2", "3"]).then_some(())
    })
    .await;
    env.stop().await;
}

/// Scale smoke test (ignored by default): `SIM_SCALE_PODS=5000 cargo test --test simulation scale -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scale_many_pods_become_available() {
    let n: i32 = std::env::var("SIM_SCALE_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let env = Env::start("sim-scale", 50.0).await;
    let started = std::time::Instant::now();
    let mut d = deployment("big", n, "nginx:1.25", "healthy", json!({}));
    if let Some(c) = d
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .map(|s| &mut s.containers[0])
    {
        c.readiness_probe = None;
    }
    env.deploys()
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    if std::env::var("SIM_SCALE_TRACE").is_ok() {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let t = std::time::Instant::now();
            let pods = env
                .pods()
                .list(&ListParams::default())
                .await
                .expect("pods")
                .items;
            let bound = pods
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
                .count();
            let running = pods
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            eprintln!(
                "{:?}: {} pods, {bound} bound, {running} running (list took {:?})",
                started.elapsed(),
                pods.len(),
                t.elapsed()
            );
            if running == n as usize {
                break;
            }
        }
    }
    complete(&env, "big", n, 600).await;
    eprintln!("{n} pods available after {:?}", started.elapsed());
    env.stop().await;
}

//! The real kubectl against the emulator: get, get -o yaml, describe,
//! apply (client-side and server-side), patch (three types), scale,
//! rollout history, delete, and the typed `create` commands that send
//! protobuf bodies. Uses `$KUBECTL` when set, else `kubectl` on PATH;
//! skipped (with a message) without either.

use crate::harness::env;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;

struct Kubectl {
    kubeconfig: Option<std::path::PathBuf>,
    ns: String,
}

impl Kubectl {
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(kubectl_bin());
        if let Some(k) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        cmd.arg("-n").arg(&self.ns).args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(mut sin) = child.stdin.take() {
            if let Some(s) = stdin {
                sin.write_all(s.as_bytes()).await.expect("stdin");
            }
        }
        let out = child.wait_with_output().await.expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }
}

/// `$KUBECTL` (the v1.36 kubectl of the test bed) when set, else `kubectl`.
fn kubectl_bin() -> String {
    std::env::var("KUBECTL")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "kubectl".to_string())
}

fn kubectl_available() -> bool {
    std::process::Command::new(kubectl_bin())
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1.25
        env: [{name: MODE, value: "a"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drives_the_emulator() {
    if !kubectl_available() {
        eprintln!("skipping kubectl_drives_the_emulator: no kubectl ($KUBECTL or PATH)");
        return;
    }
    let Some(e) = env("kubectl").await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kube-incident-kubectl-{}", e.ns));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let kubeconfig = e.kubeconfig(&dir);
    let k = Kubectl {
        kubeconfig,
        ns: e.ns.clone(),
    };
    let deps: Api<Deployment> = e.api();

    // Client-side apply: create, then a 3-way strategic merge patch.
    let out = k
        .ok(
            &["apply", "-f", "-"],
            Some(&DEPLOY.replace("REPLICAS", "2")),
        )
        .await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = k
        .ok(
            &["apply", "-f", "-"],
            Some(&DEPLOY.replace("REPLICAS", "3")),
        )
        .await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = deps.get("web").await.expect("get");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert!(d
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("kubectl.kubernetes.io/last-applied-configuration"));

    // get (server-side Table) and -o yaml.
    let out = k.ok(&["get", "deployments"], None).await;
    assert!(out.contains("NAME") && out.contains("web"), "{out}");
    let out = k.ok(&["get", "deploy", "web", "-o", "yaml"], None).await;
    assert!(
        out.contains("kind: Deployment") && out.contains("replicas: 3"),
        "{out}"
    );
    let out = k
        .ok(
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.metadata.generation}",
            ],
            None,
        )
        .await;
    assert_eq!(out.trim(), "2");

    // describe.
    let out = k.ok(&["describe", "deployment", "web"], None).await;
    assert!(
        out.contains("Name:") && out.contains("web") && out.contains("nginx:1.25"),
        "{out}"
    );

    // patch: strategic, merge, json.
    k.ok(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:1.26"}]}}}}"#], None).await;
    k.ok(
        &[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"fe"}}}"#,
        ],
        None,
    )
    .await;
    k.ok(
        &[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
        ],
        None,
    )
    .await;
    let d = deps.get("web").await.expect("get");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(4));
    let c = &spec.template.spec.expect("pod").containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx:1.26"));
    assert_eq!(
        c.env.as_ref().map(Vec::len),
        Some(1),
        "SMP kept the env list"
    );
    assert_eq!(
        d.metadata
            .labels
            .unwrap_or_default()
            .get("tier")
            .map(String::as_str),
        Some("fe")
    );

    // scale.
    k.ok(&["scale", "deployment", "web", "--replicas=5"], None)
        .await;
    assert_eq!(
        deps.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(5)
    );

    // Server-side apply.
    let out = k
        .ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&DEPLOY.replace("REPLICAS", "6")),
        )
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    assert_eq!(
        deps.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(6)
    );

    // rollout history needs no controller to answer.
    let (ok, out, err) = k.run(&["rollout", "history", "deployment/web"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("deployment.apps/web"), "{out}");

    // delete.
    let out = k.ok(&["delete", "deployment", "web"], None).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(deps.get_opt("web").await.expect("get").is_none());
    let (ok, _, err) = k.run(&["get", "deployment", "web"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_undo_with_simulation() {
    if !kubectl_available() {
        eprintln!("skipping kubectl_rollout_undo_with_simulation: no kubectl ($KUBECTL or PATH)");
        return;
    }
    let cfg = emulator::EmulatorConfig {
        simulate: true,
        time_scale: 10.0,
        ..crate::harness::emu_config()
    };
    let Some(e) = crate::harness::env_with("kubectl_undo", cfg).await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kube-incident-kubectl-{}", e.ns));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let kubeconfig = e.kubeconfig(&dir);
    let k = Kubectl {
        kubeconfig,
        ns: e.ns.clone(),
    };
    let deps: Api<Deployment> = e.api();
    k.ok(
        &["apply", "-f", "-"],
        Some(&DEPLOY.replace("REPLICAS", "2")),
    )
    .await;
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    )
    .await;
    k.ok(&["set", "image", "deployment/web", "app=nginx:1.26"], None)
        .await;
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    )
    .await;
    let out = k.ok(&["rollout", "history", "deployment/web"], None).await;
    assert!(out.contains('1') && out.contains('2'), "{out}");
    k.ok(&["rollout", "undo", "deployment/web"], None).await;
    let image = |d: Deployment| {
        d.spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers[0].image.clone())
            .unwrap_or_default()
    };
    assert_eq!(image(deps.get("web").await.expect("get")), "nginx:1.25");
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=60s"],
        None,
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    e.finish().await;
}

/// kubectl's typed commands (`create namespace|deployment|configmap|secret|
/// serviceaccount`) send `application/vnd.kubernetes.protobuf` bodies; the
/// stored objects must carry what was asked for. `kubectl run` (JSON) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_commands_send_protobuf() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
    if !kubectl_available() {
        eprintln!("skipping kubectl_create_commands_send_protobuf: no kubectl ($KUBECTL or PATH)");
        return;
    }
    let Some(e) = env("kubectl_proto").await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kube-incident-kubectl-{}", e.ns));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let kubeconfig = e.kubeconfig(&dir);
    let k = Kubectl {
        kubeconfig,
        ns: e.ns.clone(),
    };

    // This kubectl really sends protobuf (else the test would prove nothing).
    let (ok, _, log) = k
        .run(
            &["create", "configmap", "probe", "--from-literal=a=b", "-v=8"],
            None,
        )
        .await;
    assert!(ok, "{log}");
    assert!(
        log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl sent no protobuf body: {log}"
    );

    // Namespace (cluster-scoped).
    let extra_ns = format!("{}-made", e.ns);
    let out = k.ok(&["create", "namespace", &extra_ns], None).await;
    assert!(out.contains("created"), "{out}");
    let nss: Api<Namespace> = Api::all(e.client.clone());
    let ns = nss.get(&extra_ns).await.expect("namespace stored");
    assert_eq!(ns.metadata.name.as_deref(), Some(extra_ns.as_str()));
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));

    // Deployments: replicas 0 survives (a pointer field), labels, selector,
    // image, port, command.
    let deps: Api<Deployment> = e.api();
    k.ok(
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=0",
            "--port=8080",
        ],
        None,
    )
    .await;
    let d = deps.get("web").await.expect("deployment web");
    let want_labels = std::collections::BTreeMap::from([("app".to_string(), "web".to_string())]);
    assert_eq!(d.metadata.labels.as_ref(), Some(&want_labels));
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(0), "explicit replicas 0 kept");
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&want_labels));
    assert_eq!(
        spec.template.metadata.and_then(|m| m.labels).as_ref(),
        Some(&want_labels)
    );
    let pod_spec = spec.template.spec.expect("pod spec");
    assert_eq!(pod_spec.containers.len(), 1);
    let c = &pod_spec.containers[0];
    assert_eq!(c.name, "nginx");
    assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
    let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
    assert_eq!(ports, vec![8080]);
    // Defaults applied as for a JSON body ("" from Go's encoder is not a value).
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));

    k.ok(
        &[
            "create",
            "deployment",
            "api",
            "--image=busybox:1.36",
            "--replicas=3",
            "--",
            "sleep",
            "3600",
        ],
        None,
    )
    .await;
    let d = deps.get("api").await.expect("deployment api");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let c = &spec.template.spec.expect("pod spec").containers[0];
    assert_eq!(
        c.command.as_deref(),
        Some(&["sleep".to_string(), "3600".to_string()][..])
    );

    // ConfigMap: data, including an empty value.
    k.ok(
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=mode=fast",
            "--from-literal=empty=",
        ],
        None,
    )
    .await;
    let cms: Api<ConfigMap> = e.api();
    let cm = cms.get("settings").await.expect("configmap");
    let data = cm.data.expect("data");
    assert_eq!(data.get("mode").map(String::as_str), Some("fast"));
    assert_eq!(data.get("empty").map(String::as_str), Some(""));
    assert_eq!(data.len(), 2);

    // Secret: bytes round-trip, type defaulted.
    k.ok(
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=hunter2",
            "--from-literal=user=admin",
        ],
        None,
    )
    .await;
    let secrets: Api<Secret> = e.api();
    let s = secrets.get("creds").await.expect("secret");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let data = s.data.expect("data");
    assert_eq!(
        data.get("password").map(|b| b.0.as_slice()),
        Some(&b"hunter2"[..])
    );
    assert_eq!(
        data.get("user").map(|b| b.0.as_slice()),
        Some(&b"admin"[..])
    );

    // ServiceAccount.
    k.ok(&["create", "serviceaccount", "robot"], None).await;
    let sas: Api<ServiceAccount> = e.api();
    let sa = sas.get("robot").await.expect("serviceaccount");
    assert_eq!(sa.metadata.namespace.as_deref(), Some(e.ns.as_str()));

    // kubectl run (sends JSON, but is the other first command people type).
    k.ok(
        &[
            "run",
            "shell",
            "--image=busybox:1.36",
            "--labels=app=shell,tier=debug",
            "--env=MODE=a",
            "--restart=Never",
            "--",
            "sleep",
            "60",
        ],
        None,
    )
    .await;
    let pods: Api<Pod> = e.api();
    let p = pods.get("shell").await.expect("pod");
    let labels = p.metadata.labels.expect("labels");
    assert_eq!(labels.get("tier").map(String::as_str), Some("debug"));
    let spec = p.spec.expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let c = &spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("busybox:1.36"));
    assert_eq!(
        c.env
            .as_ref()
            .and_then(|e| e.first())
            .map(|v| (v.name.as_str(), v.value.as_deref())),
        Some(("MODE", Some("a")))
    );

    // Reading back through kubectl (JSON answers to a protobuf-first Accept).
    let out = k
        .ok(
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        )
        .await;
    assert_eq!(out.trim(), "0");

    let _ = nss
        .delete(&extra_ns, &kube::api::DeleteParams::default())
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    e.finish().await;
}

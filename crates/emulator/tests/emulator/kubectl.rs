//! The real kubectl against the emulator: get, get -o yaml, describe,
//! apply (client-side and server-side), patch (three types), scale,
//! rollout history, delete. Skipped (with a message) without kubectl.

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
        let mut cmd = tokio::process::Command::new("kubectl");
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

fn kubectl_available() -> bool {
    std::process::Command::new("kubectl")
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
        eprintln!("skipping kubectl_drives_the_emulator: kubectl not found on PATH");
        return;
    }
    let e = env("kubectl").await;
    let dir = std::env::temp_dir().join(format!("kube-incident-kubectl-{}", e.ns));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let kubeconfig = e.emu.as_ref().map(|emu| {
        let p = dir.join("kubeconfig");
        emu.write_kubeconfig(&p).expect("kubeconfig");
        p
    });
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
        eprintln!("skipping kubectl_rollout_undo_with_simulation: kubectl not found on PATH");
        return;
    }
    let cfg = emulator::EmulatorConfig {
        simulate: true,
        time_scale: 10.0,
        ..crate::harness::emu_config()
    };
    let e = crate::harness::env_with("kubectl_undo", cfg).await;
    let dir = std::env::temp_dir().join(format!("kube-incident-kubectl-{}", e.ns));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let kubeconfig = e.emu.as_ref().map(|emu| {
        let p = dir.join("kubeconfig");
        emu.write_kubeconfig(&p).expect("kubeconfig");
        p
    });
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

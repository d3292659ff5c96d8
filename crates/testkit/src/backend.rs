//! Which API server the tests talk to, chosen once per process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kind of back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The project's emulated API server, one per test.
    Emulator,
    /// A real Kubernetes API server shared by the tests (one namespace each).
    Real,
}

/// Where a real control plane is and who is who on it.
#[derive(Debug, Clone)]
pub struct RealEnv {
    /// Kubeconfig of an administrator (test set-up, fixtures).
    pub admin_kubeconfig: Option<PathBuf>,
    /// Kubeconfig of the operator's least-privilege user, if there is one;
    /// otherwise the operator runs with the admin's credentials.
    pub operator_kubeconfig: Option<PathBuf>,
    /// The user name the API server sees for the operator.
    pub operator_user: String,
    /// The API server's audit log (JSON lines), where writes are counted.
    pub audit_log: Option<PathBuf>,
    /// `kubectl` to use for clean-up.
    pub kubectl: String,
    /// A short description for messages.
    pub describe: String,
}

/// The back end of this test process.
#[derive(Debug, Clone)]
pub enum Backend {
    Emulator,
    Real(RealEnv),
    /// A real back end was asked for but is not available: tests skip.
    Skip(String),
}

static BACKEND: OnceLock<Backend> = OnceLock::new();

impl Backend {
    /// The back end for this process (decided and, for `real`, started once).
    pub fn get() -> &'static Backend {
        BACKEND.get_or_init(Backend::from_env)
    }

    pub fn kind() -> BackendKind {
        match Backend::get() {
            Backend::Emulator => BackendKind::Emulator,
            _ => BackendKind::Real,
        }
    }

    /// True on the emulated API server.
    pub fn is_emulator() -> bool {
        Backend::kind() == BackendKind::Emulator
    }

    fn from_env() -> Backend {
        if std::env::var("KUBE_INCIDENT_E2E").is_ok_and(|v| v == "1") {
            return Backend::Real(RealEnv {
                admin_kubeconfig: None,
                operator_kubeconfig: std::env::var_os("KUBE_INCIDENT_OPERATOR_KUBECONFIG")
                    .map(PathBuf::from),
                operator_user: std::env::var("KUBE_INCIDENT_OPERATOR_USER")
                    .unwrap_or_else(|_| "kube-incident-operator".into()),
                audit_log: std::env::var_os("KUBE_AUDIT_LOG").map(PathBuf::from),
                kubectl: std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()),
                describe: "the cluster of the current kubeconfig (KUBE_INCIDENT_E2E=1)".into(),
            });
        }
        match std::env::var("KUBE_INCIDENT_BACKEND").as_deref() {
            Ok("real") => match shared_k8s() {
                Some(dir) => match start_shared(&dir) {
                    Ok(env) => Backend::Real(env),
                    Err(e) => panic!("KUBE_INCIDENT_BACKEND=real: {e}"),
                },
                None => Backend::Skip(
                    "../shared/k8s is absent (a user's machine): set KUBE_INCIDENT_E2E=1 with a kubeconfig to use another cluster".into(),
                ),
            },
            Ok("emulator") | Ok("") | Err(_) => Backend::Emulator,
            Ok(other) => panic!("KUBE_INCIDENT_BACKEND={other}: expected emulator or real"),
        }
    }
}

/// `../shared/k8s` beside the project (or `KUBE_INCIDENT_K8S_DIR`).
fn shared_k8s() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KUBE_INCIDENT_K8S_DIR") {
        let dir = PathBuf::from(dir);
        return dir.join("cluster.sh").is_file().then_some(dir);
    }
    // This crate is <project>/crates/testkit; the project's parent holds shared/.
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    let dir = project.parent()?.join("shared").join("k8s");
    dir.join("cluster.sh").is_file().then_some(dir)
}

/// Start (or reuse) the control plane and the kubelet stand-in, and read
/// where its kubeconfigs and audit log are.
fn start_shared(dir: &Path) -> Result<RealEnv, String> {
    let script = dir.join("cluster.sh");
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`cluster.sh {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let env = parse_env(&run(&["env"])?);
    let admin = env
        .get("KUBECONFIG")
        .map(PathBuf::from)
        .ok_or("cluster.sh env printed no KUBECONFIG")?;
    let kubectl = env
        .get("KUBECTL")
        .cloned()
        .unwrap_or_else(|| "kubectl".into());
    // One process at a time brings the cluster up (test binaries, CI).
    let lock_path = std::env::temp_dir().join("kube-incident-testkit.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    let healthy = || {
        Command::new(&kubectl)
            .args(["--kubeconfig"])
            .arg(&admin)
            .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !admin.is_file() || !healthy() {
        eprintln!("testkit: starting the control plane in {}", dir.display());
        run(&["up"])?;
    }
    // Idempotent: returns at once when the kubelet stand-in already runs.
    run(&["sim"])?;
    drop(lock);
    Ok(RealEnv {
        admin_kubeconfig: Some(admin),
        operator_kubeconfig: env
            .get("KUBE_INCIDENT_OPERATOR_KUBECONFIG")
            .map(PathBuf::from),
        operator_user: "kube-incident-operator".into(),
        audit_log: env.get("KUBE_AUDIT_LOG").map(PathBuf::from),
        kubectl,
        describe: format!("the real control plane of {}", dir.display()),
    })
}

/// Reads `export K=V` lines.
fn parse_env(s: &str) -> std::collections::HashMap<String, String> {
    s.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_cluster_env() {
        let env = super::parse_env("export KUBECONFIG=/a/admin\nexport KUBECTL=/b/kubectl\n");
        assert_eq!(env["KUBECONFIG"], "/a/admin");
        assert_eq!(env["KUBECTL"], "/b/kubectl");
    }
}

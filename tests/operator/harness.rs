//! A cluster for operator tests: the emulated API server by default, or the
//! real cluster of the current kubeconfig when `KUBE_INCIDENT_E2E=1`.
//! Each test gets its own namespace; the operator runs in-process with the
//! cluster's client, watching only that namespace.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use kube_incident::api::{Incident, Runbook};
use kube_incident::emulator::{Emulator, EmulatorConfig};
use kube_incident::metrics::Metrics;
use kube_incident::operator::{self, OperatorHandle, RunArgs};

pub fn e2e() -> bool {
    std::env::var("KUBE_INCIDENT_E2E").is_ok_and(|v| v == "1")
}

pub struct Cluster {
    pub client: Client,
    /// Keeps the emulated API server alive for the test's duration.
    #[allow(dead_code)]
    pub emulator: Option<Emulator>,
}

impl Cluster {
    /// A cluster without our CRDs.
    pub async fn bare(simulate: bool) -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        if e2e() {
            let client = Client::try_default()
                .await
                .expect("KUBE_INCIDENT_E2E=1 needs a kubeconfig");
            return Cluster {
                client,
                emulator: None,
            };
        }
        let emulator = Emulator::start(EmulatorConfig {
            simulate,
            time_scale: 20.0,
            ..Default::default()
        })
        .await
        .expect("emulator starts");
        Cluster {
            client: emulator.client(),
            emulator: Some(emulator),
        }
    }

    /// A cluster with the CRDs installed and established.
    pub async fn with_crds(simulate: bool) -> Cluster {
        let c = Cluster::bare(simulate).await;
        install_crds(&c.client).await;
        c
    }

    /// A fresh namespace.
    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        name
    }
}

pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [Incident::crd(), Runbook::crd()] {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("kube-incident-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("CRD applied");
        wait_for(Duration::from_secs(20), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let c = crds.get(&name).await.ok()?;
                let established = c
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await
        .expect("CRD established");
    }
    // Discovery may lag the Established condition a little on real servers.
    wait_for(Duration::from_secs(20), || {
        let client = client.clone();
        async move { operator::check_crds(&client).await.ok() }
    })
    .await
    .expect("CRDs served");
}

/// Poll `f` until it returns Some, or time out.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An operator running in-process.
pub struct RunningOperator {
    pub handle: OperatorHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), operator::OperatorError>>,
}

impl RunningOperator {
    pub async fn start(client: &Client, namespace: &str, extra: &[&str]) -> RunningOperator {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: RunArgs,
        }
        let mut argv = vec![
            "test",
            "--namespaces",
            namespace,
            "--metrics-addr",
            "127.0.0.1:0",
        ];
        argv.extend_from_slice(extra);
        let args = Wrapper::parse_from(argv).args;
        let handle = OperatorHandle {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            metrics_addr: Arc::new(Mutex::new(None)),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let client = client.clone();
        let h = handle.clone();
        let task = tokio::spawn(async move {
            operator::run(
                client,
                args,
                operator::system_clock(),
                async {
                    let _ = rx.await;
                },
                Some(h),
            )
            .await
        });
        let ready = handle.ready.clone();
        wait_for(Duration::from_secs(20), || {
            let ready = ready.clone();
            async move {
                ready
                    .load(std::sync::atomic::Ordering::SeqCst)
                    .then_some(())
            }
        })
        .await
        .expect("operator becomes ready");
        RunningOperator {
            handle,
            stop: Some(tx),
            task,
        }
    }

    /// Graceful shutdown (as on SIGTERM); returns the operator's result.
    pub async fn stop(mut self) -> Result<(), operator::OperatorError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("operator stops within 20s")
            .expect("operator task did not panic")
    }

    pub fn metrics_url(&self) -> String {
        let addr = self
            .handle
            .metrics_addr
            .lock()
            .unwrap()
            .expect("metrics bound");
        format!("http://{addr}")
    }
}

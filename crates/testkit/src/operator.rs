//! The operator, running in-process against a test cluster.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube_incident::metrics::Metrics;
use kube_incident::operator::{self, OperatorHandle, RunArgs};

use crate::wait::wait_for;

/// An operator running in-process (as `kube-incident run` would).
pub struct RunningOperator {
    pub handle: OperatorHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), operator::OperatorError>>,
}

impl RunningOperator {
    /// Start the operator with `client` (use `Cluster::operator_client`: the
    /// least-privilege user on a real back end), watching `namespace`, with
    /// extra `kube-incident run` flags; waits until it is ready.
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
        // The admission policy that verifies approvals is cluster-wide; the
        // tests share one cluster, so the operator accepts unverified
        // approvals unless a test says otherwise (tests/suite/admission.rs
        // installs the policy for its own namespaces).
        if !extra
            .iter()
            .any(|a| a.starts_with("--accept-unverified-approvals"))
        {
            argv.push("--accept-unverified-approvals");
        }
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
        wait_for(Duration::from_secs(30), || {
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
        tokio::time::timeout(Duration::from_secs(45), &mut self.task)
            .await
            .expect("operator stops within 45s (graceful shutdown)")
            .expect("operator task did not panic")
    }

    /// The `/metrics` base URL.
    pub fn metrics_url(&self) -> String {
        let addr = self
            .handle
            .metrics_addr
            .lock()
            .expect("metrics lock")
            .expect("metrics bound");
        format!("http://{addr}")
    }
}

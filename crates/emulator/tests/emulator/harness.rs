//! Conformance harness: the same test bodies run against the emulator
//! always, and against a real cluster when `KUBE_INCIDENT_E2E=1` (using the
//! default kubeconfig). Emulator-only tests skip themselves on a real cluster.

use emulator::{Emulator, EmulatorConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use std::time::Duration;

/// A test environment: a client, the emulator (absent on a real cluster)
/// and a fresh namespace.
pub struct Env {
    pub client: Client,
    pub emu: Option<Emulator>,
    pub ns: String,
}

pub fn e2e() -> bool {
    std::env::var("KUBE_INCIDENT_E2E").is_ok_and(|v| v == "1")
}

fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

pub fn emu_config() -> EmulatorConfig {
    EmulatorConfig {
        simulate: false,
        bookmark_interval: Duration::from_millis(300),
        ..EmulatorConfig::default()
    }
}

/// Start an environment with a unique namespace named after the test.
pub async fn env(test: &str) -> Env {
    env_with(test, emu_config()).await
}

/// Like [`env`] with a custom emulator configuration.
pub async fn env_with(test: &str, cfg: EmulatorConfig) -> Env {
    let (client, emu) = if e2e() {
        (
            Client::try_default()
                .await
                .expect("kubeconfig for KUBE_INCIDENT_E2E=1"),
            None,
        )
    } else {
        let emu = Emulator::start(cfg).await.expect("emulator starts");
        (emu.client(), Some(emu))
    };
    let ns = unique(&format!("t-{}", test.replace('_', "-")));
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    nss.create(&PostParams::default(), &n)
        .await
        .expect("create test namespace");
    Env { client, emu, ns }
}

impl Env {
    /// The emulator, or `None` (with a printed reason) on a real cluster.
    pub fn emulator(&self, test: &str) -> Option<&Emulator> {
        if self.emu.is_none() {
            eprintln!("skipping {test}: emulator-only test on a real cluster");
        }
        self.emu.as_ref()
    }

    /// Typed namespaced Api in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Delete the namespace and stop the emulator.
    pub async fn finish(self) {
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let _ = nss.delete(&self.ns, &DeleteParams::default()).await;
        if let Some(e) = self.emu {
            e.shutdown().await;
        }
    }
}

/// Poll `f` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

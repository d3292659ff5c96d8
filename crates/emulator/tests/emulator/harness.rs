//! Conformance harness: the same test bodies run against the emulator by
//! default, and against a real API server with `KUBE_INCIDENT_BACKEND=real`
//! (../shared/k8s) or `KUBE_INCIDENT_E2E=1` (the current kubeconfig), as the
//! test kit decides (docs/testing.md). Emulator-only tests skip themselves
//! on a real cluster with one line saying why.

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
    /// An administrator's kubeconfig on a real back end (`None`: the
    /// default kubeconfig, or the emulator's, written on demand).
    real_kubeconfig: Option<std::path::PathBuf>,
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

/// Start an environment with a unique namespace named after the test, or
/// `None` (after one line saying why) where the chosen back end is absent.
pub async fn env(test: &str) -> Option<Env> {
    env_with(test, emu_config()).await
}

/// Like [`env`] with a custom emulator configuration.
pub async fn env_with(test: &str, cfg: EmulatorConfig) -> Option<Env> {
    let (client, emu, kubeconfig) = match testkit::Backend::get() {
        testkit::Backend::Skip(why) => {
            eprintln!("skipped {test}: {why}");
            return None;
        }
        testkit::Backend::Real(real) => (
            testkit::admin_client(real).await,
            None,
            real.admin_kubeconfig.clone(),
        ),
        testkit::Backend::Emulator => {
            let emu = Emulator::start(cfg).await.expect("emulator starts");
            (emu.client(), Some(emu), None)
        }
    };
    let ns = unique(&format!("t-{}", test.replace('_', "-")));
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.clone());
    nss.create(&PostParams::default(), &n)
        .await
        .expect("create test namespace");
    Some(Env {
        client,
        emu,
        ns,
        real_kubeconfig: kubeconfig,
    })
}

impl Env {
    /// The emulator, or `None` (with a printed reason) on a real cluster.
    pub fn emulator(&self, test: &str) -> Option<&Emulator> {
        if self.emu.is_none() {
            eprintln!("skipping {test}: emulator-only test on a real cluster");
        }
        self.emu.as_ref()
    }

    /// A kubeconfig for `kubectl` run as a process: the emulator's (written
    /// into `dir`), the real back end's admin kubeconfig, or `None` for the
    /// default one.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> Option<std::path::PathBuf> {
        match &self.emu {
            Some(emu) => {
                let p = dir.join("kubeconfig");
                emu.write_kubeconfig(&p).expect("kubeconfig");
                Some(p)
            }
            None => self.real_kubeconfig.clone(),
        }
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

pub use testkit::eventually;

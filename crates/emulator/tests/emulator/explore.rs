//! Manual exploration: `cargo test --test emulator explore -- --ignored`
//! keeps an emulator running for 10 minutes with a kubeconfig at
//! `/tmp/kube-incident-emulator.kubeconfig`.

use crate::harness::emu_config;
use emulator::Emulator;

#[tokio::test]
#[ignore]
async fn explore_serve() {
    let cfg = emulator::EmulatorConfig {
        simulate: true,
        time_scale: 10.0,
        ..emu_config()
    };
    let emu = Emulator::start(cfg).await.expect("start");
    emu.write_kubeconfig(std::path::Path::new(
        "/tmp/kube-incident-emulator.kubeconfig",
    ))
    .expect("write");
    eprintln!("emulator at {}", emu.url());
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    emu.shutdown().await;
}

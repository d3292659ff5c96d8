//! `kube-incident demo`: the whole loop on the embedded emulated cluster.

use std::process::ExitCode;

/// Flags of `kube-incident demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Write a kubeconfig for the emulated cluster here, so kubectl can watch along.
    #[arg(long)]
    pub kubeconfig_out: Option<std::path::PathBuf>,
    /// Keep the emulated cluster and the operator running after the scenario.
    #[arg(long)]
    pub hold: bool,
    /// Speed of the simulated workloads (10 = ten times faster than real time).
    #[arg(long, default_value_t = 20.0)]
    pub time_scale: f64,
}

/// Run the demo; exit code 0 when the scenario completed as expected.
pub async fn main(_args: DemoArgs) -> ExitCode {
    eprintln!("error: the demo needs the emulated cluster, which is not wired in yet");
    ExitCode::FAILURE
}

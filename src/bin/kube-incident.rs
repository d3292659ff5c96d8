//! `kube-incident`: the operator (`run`), the embedded demo (`demo`), the
//! CRD generator (`crds`) and the admission policy generator
//! (`install-manifests`).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kube_incident::operator::{self, RunArgs};

#[derive(Parser, Debug)]
#[command(
    name = "kube-incident",
    version,
    about = "The first responder of a Kubernetes cluster: detects trouble, opens Incidents, runs approved mitigations.",
    long_about = None,
)]
struct Cli {
    /// Log format.
    #[arg(long, env = "KUBE_INCIDENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
// Parsed once at start-up; without the `demo` feature the other variants are
// tiny, so boxing `Run` would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the operator against the current kubeconfig or in-cluster config.
    Run {
        /// Path to a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
        #[arg(long, env = "KUBECONFIG_PATH")]
        kubeconfig: Option<std::path::PathBuf>,
        /// Kubeconfig context to use.
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Print the CRD YAML of Incident and Runbook (the same bytes as crds/).
    Crds,
    /// Print the verified-approvals admission policies (Kubernetes >= 1.30),
    /// their bindings and the responder/approver ClusterRoles, for
    /// `kubectl apply -f -` on a cluster installed without the Helm chart.
    InstallManifests {
        /// The operator's username, exempt from the policies.
        #[arg(
            long,
            value_name = "USERNAME",
            default_value = "system:serviceaccount:kube-incident-system:kube-incident"
        )]
        operator_username: String,
        /// Prefix of the objects' names (and of the ClusterRoles the denial
        /// messages name).
        #[arg(long, value_name = "PREFIX", default_value = kube_incident::admission::DEFAULT_PREFIX)]
        name_prefix: String,
        /// Bind the policies only in these namespaces (repeatable; default:
        /// every namespace).
        #[arg(long = "namespace", value_name = "NAMESPACE")]
        namespaces: Vec<String>,
    },
    /// Run the whole loop on an embedded emulated cluster (no cluster needed).
    #[cfg(feature = "demo")]
    Demo(kube_incident::demo::DemoArgs),
    /// The demo is not part of this build (the shipped image leaves it out):
    /// run `cargo demo` from a checkout.
    #[cfg(not(feature = "demo"))]
    #[command(disable_help_flag = true)]
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn client_for(
    kubeconfig: Option<std::path::PathBuf>,
    context: Option<String>,
) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| format!("invalid kubeconfig {}: {e}", path.display()))?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("invalid kubeconfig: {e}"))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no kubeconfig or in-cluster config found: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match kube_incident::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
        Command::InstallManifests {
            operator_username,
            name_prefix,
            namespaces,
        } => {
            let opts = kube_incident::admission::PolicyOptions {
                name_prefix,
                namespaces,
                ..kube_incident::admission::PolicyOptions::new(&operator_username)
            };
            match kube_incident::admission::manifests_yaml(&opts) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot render the admission policies: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            kubeconfig,
            context,
            args,
        } => {
            init_logging(cli.log_format);
            let client = match client_for(kubeconfig, context).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match operator::run(
                client,
                args,
                operator::system_clock(),
                operator::shutdown_signal(),
                None,
            )
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => kube_incident::demo::main(args).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => {
            eprintln!(
                "kube-incident: this build has no demo (the shipped image leaves the emulator out); from a checkout run `cargo demo`"
            );
            ExitCode::from(2)
        }
    }
}

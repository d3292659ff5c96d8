//! The `kubectl-incident` plugin: `kubectl incident list|describe|declare|ack|approve|resolve|postmortem`.
//!
//! Output goes to stdout; an error is one line `error: ...` on stderr and
//! exit status 1. Set `RUST_LOG=debug` to see the requests.

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use kube_incident::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            // help and version go to stdout with exit 0
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `kubectl incident` alone: show the help, but fail
            let _ = e.print();
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {}", cli::usage_error_line(&e, &argv));
            return ExitCode::from(1);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .init();

    let result = match cli::connect(&cli.global).await {
        Ok(session) => cli::run(&cli.command, &session).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // a closed pipe (`| head`) is not an error worth reporting
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(1)
        }
    }
}

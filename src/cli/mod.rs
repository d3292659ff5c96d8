//! The `kubectl-incident` plugin (`kubectl incident ...`): list, describe,
//! declare, ack, approve, resolve and postmortem.
//!
//! Layout:
//! - [`args`]: clap definitions and pure parsing (`--target`, names).
//! - [`session`]: kubeconfig handling and the connected [`Session`].
//! - [`identity`]: who the caller is (SelfSubjectReview, kubeconfig, `--as`).
//! - [`format`]: pure `list`/`describe` rendering (golden-tested).
//! - [`commands`]: the commands as `async fn(args, &Session) -> Result<String, CliError>`.
//!
//! Embedding or testing against any API server:
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kube_incident::cli::CliError> {
//! use clap::Parser;
//! use kube_incident::cli::{run, Cli, Session};
//! let cli = Cli::try_parse_from(["kubectl-incident", "-n", "shop", "list"])
//!     .map_err(|e| kube_incident::cli::CliError::Usage(e.to_string()))?;
//! let session = Session::new(client, &cli.global);
//! print!("{}", run(&cli.command, &session).await?);
//! # Ok(()) }
//! ```

pub mod args;
pub mod commands;
pub mod error;
pub mod format;
pub mod identity;
pub mod session;

pub use args::{Cli, Command, GlobalArgs};
pub use commands::{run, run_at, CLI_FIELD_MANAGER};
pub use error::CliError;
pub use session::{connect, Session};

/// Turn a clap parse error into one line (`error: ...` is added by the
/// caller), pointing at the command's help.
pub fn usage_error_line(err: &clap::Error, args: &[String]) -> String {
    let rendered = err.to_string();
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.trim_start_matches("error:").trim().to_string());
        }
    }
    let sub = args
        .iter()
        .skip(1)
        .find(|a| {
            [
                "list",
                "ls",
                "describe",
                "declare",
                "ack",
                "acknowledge",
                "approve",
                "resolve",
                "postmortem",
            ]
            .contains(&a.as_str())
        })
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    format!(
        "{} (see: kubectl incident{sub} --help)",
        error::one_line(&parts.join(" "))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn usage_errors_are_one_line() {
        let argv: Vec<String> = ["kubectl-incident", "declare", "web down"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = Cli::try_parse_from(&argv).unwrap_err();
        assert_eq!(
            usage_error_line(&e, &argv),
            "the following required arguments were not provided: --severity <SEV1|SEV2|SEV3|SEV4> (see: kubectl incident declare --help)"
        );
        let argv: Vec<String> = ["kubectl-incident", "frobnicate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = Cli::try_parse_from(&argv).unwrap_err();
        let line = usage_error_line(&e, &argv);
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with("unrecognized subcommand 'frobnicate'"),
            "{line}"
        );
        assert!(line.ends_with("(see: kubectl incident --help)"), "{line}");
    }
}

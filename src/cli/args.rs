//! Command-line arguments (clap derive) and the pure parsing of the values
//! they carry: `--target`, `--severity`, incident names.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::error::CliError;
use crate::api::{Severity, TargetKind, TargetRef};

const ROOT_LONG_ABOUT: &str = "\
Drive kube-incident Incidents from the command line: see what is open, read
one in detail, declare one by hand, acknowledge it, approve a mitigation step
and resolve it.

Installed as `kubectl-incident` on the PATH, it runs as `kubectl incident ...`.
It talks to the cluster of the current kubeconfig context, like kubectl.

Who you are (recorded in acknowledgedBy, approvedBy and resolution.by) is the
username the API server authenticates you as (SelfSubjectReview); on servers
without that API (Kubernetes < 1.28) or where it is forbidden, the user name of
the kubeconfig context; --as NAME overrides both (it only changes the recorded
name: it is NOT impersonation).";

const ROOT_EXAMPLES: &str = "\
Examples:
  # What is open in the shop namespace, most severe first
  kubectl incident list -n shop --open

  # Everything, in every namespace
  kubectl incident list -A

  # Read one incident: deadlines, mitigation plan, timeline
  kubectl incident describe checkout-crashloop-7f3a2c -n shop

  # Declare an incident by hand
  kubectl incident declare --severity SEV2 --target deploy/web -n shop \"web: 502s after deploy\"

  # Take it, approve the waiting step, resolve it
  kubectl incident ack checkout-crashloop-7f3a2c -n shop
  kubectl incident approve checkout-crashloop-7f3a2c -n shop
  kubectl incident resolve checkout-crashloop-7f3a2c -n shop --summary \"rolled back to v2.3.0\"

  # Print the post-mortem draft once resolved
  kubectl incident postmortem checkout-crashloop-7f3a2c -n shop > postmortem.md";

/// `kubectl incident`: the kube-incident kubectl plugin.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "kubectl-incident",
    bin_name = "kubectl incident",
    version,
    about = "Work with kube-incident Incidents: list, describe, declare, ack, approve, resolve, postmortem",
    long_about = ROOT_LONG_ABOUT,
    after_long_help = ROOT_EXAMPLES
)]
pub struct Cli {
    /// Flags shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command (accepted before or after the command name).
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalArgs {
    /// Namespace of the Incident (default: the kubeconfig context's namespace, else "default")
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context)
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// The name to record as yours in ack/approve/resolve (not impersonation)
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub as_user: Option<String>,
}

/// The commands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List Incidents, most severe first
    #[command(
        visible_alias = "ls",
        long_about = "List Incidents in one namespace (or all, with -A), sorted by effective severity\n\
(SEV1 first) and then by age (oldest first).\n\
\n\
Columns: NAME, SEVERITY (effective), PHASE, TARGET, ACK (who acknowledged it),\n\
AGE (since it was opened), TITLE; NAMESPACE first with -A.",
        after_long_help = "Examples:\n  kubectl incident list -n shop\n  kubectl incident list -A --open\n  kubectl incident list -n shop -o json | jq '.items[].metadata.name'"
    )]
    List(ListArgs),
    /// Show one Incident in detail
    #[command(
        long_about = "Show one Incident for a human: severity (effective and declared), phase, target,\n\
commander, when it was opened and acknowledged, the response and resolution\n\
deadlines (\"in 3m\" or \"overdue by 2m\"), impact, the mitigation plan with each\n\
step's state, conditions, the timeline relative to the opening (+2m10s) and\n\
where the evidence and post-mortem are kept.",
        after_long_help = "Examples:\n  kubectl incident describe checkout-crashloop-7f3a2c -n shop"
    )]
    Describe(NameArgs),
    /// Declare (open) an Incident by hand
    #[command(
        long_about = "Create an Incident with source Manual. The title is the rest of the command\n\
line. The name defaults to one derived from the target (or the title) plus a\n\
short random suffix; pass --name to choose it. Prints\n\
`incident.kubeincident.io/NAME declared`.",
        after_long_help = "Examples:\n  kubectl incident declare --severity SEV2 --target deploy/web -n shop \"web: 502s after deploy\"\n  kubectl incident declare --severity SEV1 --commander alice payments are failing\n  kubectl incident declare --severity sev3 --target pod/batch-0 --name batch-stuck \"batch job stuck\""
    )]
    Declare(DeclareArgs),
    /// Acknowledge an Incident (sets spec.acknowledgedBy to you)
    #[command(
        visible_alias = "acknowledge",
        long_about = "Acknowledge an Incident: sets spec.acknowledgedBy to your identity, which stops\n\
the response-deadline clock. Acknowledging an incident that is already\n\
acknowledged changes nothing and says who did it.",
        after_long_help = "Examples:\n  kubectl incident ack checkout-crashloop-7f3a2c -n shop\n  kubectl incident ack checkout-crashloop-7f3a2c -n shop --as alice"
    )]
    Ack(NameArgs),
    /// Approve a Manual mitigation step (sets its approvedBy to you)
    #[command(
        long_about = "Approve a Manual mitigation step: sets spec.mitigations[i].approvedBy to your\n\
identity, and the operator runs the step when it is its turn. Without STEP,\n\
approves the one step that is currently AwaitingApproval. The write is a JSON\n\
patch that first tests that position i still holds STEP, so a concurrent edit of\n\
the plan can never approve the wrong step.",
        after_long_help = "Examples:\n  # approve whatever step is waiting\n  kubectl incident approve checkout-crashloop-7f3a2c -n shop\n  # approve a named step (also ahead of its turn)\n  kubectl incident approve checkout-crashloop-7f3a2c more-capacity -n shop"
    )]
    Approve(ApproveArgs),
    /// Resolve an Incident by hand (sets spec.resolution)
    #[command(
        long_about = "Resolve an Incident by hand: sets spec.resolution {by: you, summary}. The\n\
summary goes into the timeline and the post-mortem. Resolving an incident that\n\
is already resolved changes nothing.",
        after_long_help = "Examples:\n  kubectl incident resolve checkout-crashloop-7f3a2c -n shop --summary \"rolled back; fix in v2.3.1\""
    )]
    Resolve(ResolveArgs),
    /// Print the post-mortem draft (Markdown)
    #[command(
        long_about = "Print the post-mortem draft Markdown that kube-incident writes when an Incident\n\
is resolved (key postmortem.md of the ConfigMap named in status.postmortemRef).",
        after_long_help = "Examples:\n  kubectl incident postmortem checkout-crashloop-7f3a2c -n shop > postmortem.md"
    )]
    Postmortem(NameArgs),
}

/// Output formats of `list`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// A `v1` `List` of the Incidents, as `kubectl get -o json` prints.
    Json,
    /// The same `List` as YAML.
    Yaml,
}

/// Arguments of `list`.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
pub struct ListArgs {
    /// List Incidents in every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Hide Resolved Incidents
    #[arg(long)]
    pub open: bool,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// A command that takes one Incident name.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct NameArgs {
    /// Name of the Incident
    pub name: String,
}

/// Arguments of `declare`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct DeclareArgs {
    /// Severity: SEV1 (most severe), SEV2, SEV3 or SEV4
    #[arg(short = 's', long, value_parser = parse_severity, value_name = "SEV1|SEV2|SEV3|SEV4")]
    pub severity: Severity,
    /// The workload in trouble, in the Incident's namespace: deploy/NAME, sts/NAME, ds/NAME, job/NAME, cj/NAME or pod/NAME (kubectl's names and short names)
    #[arg(short = 't', long, value_parser = parse_target, value_name = "KIND/NAME")]
    pub target: Option<TargetRef>,
    /// The incident commander
    #[arg(long, value_name = "NAME")]
    pub commander: Option<String>,
    /// Name of the Incident (default: derived from the target or title, plus a random suffix)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Request the governing Runbook's mitigation step of this name
    /// (repeatable, in order). Its action and parameters come from the
    /// Runbook in the target's namespace that lists it; give NAME=ACTION
    /// for a cluster-wide Runbook's step. The step waits for approval.
    #[arg(long = "step", value_name = "NAME[=ACTION]")]
    pub steps: Vec<String>,
    /// One line saying what is wrong (several words are joined with spaces)
    #[arg(required = true, num_args = 1.., value_name = "TITLE")]
    pub title: Vec<String>,
}

impl DeclareArgs {
    /// The title words joined with single spaces.
    pub fn title_text(&self) -> String {
        self.title.join(" ").trim().to_string()
    }
}

/// Arguments of `approve`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ApproveArgs {
    /// Name of the Incident
    pub name: String,
    /// The step to approve (default: the one step awaiting approval)
    pub step: Option<String>,
}

/// Arguments of `resolve`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ResolveArgs {
    /// Name of the Incident
    pub name: String,
    /// What was done; goes into the timeline and the post-mortem
    #[arg(long, value_name = "TEXT")]
    pub summary: String,
}

/// Parse `SEV1`..`SEV4` (case-insensitive).
pub fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// Parse `--target`: `KIND/NAME` with kubectl's names for the kind
/// (singular, plural, short name, or `<plural>.<group>`): `deploy/NAME`,
/// `sts/NAME`, `ds/NAME`, `job/NAME`, `cj/NAME`, `pod/NAME`, ...
pub fn parse_target(input: &str) -> Result<TargetRef, CliError> {
    let invalid = |reason: &str| CliError::InvalidTarget {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let (kind, name) = input
        .split_once('/')
        .ok_or_else(|| invalid("expected KIND/NAME such as deploy/web or pod/web-0"))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "deploy" | "deployment" | "deployments" | "deployment.apps" | "deployments.apps" => {
            TargetKind::Deployment
        }
        "sts" | "statefulset" | "statefulsets" | "statefulset.apps" | "statefulsets.apps" => {
            TargetKind::StatefulSet
        }
        "ds" | "daemonset" | "daemonsets" | "daemonset.apps" | "daemonsets.apps" => {
            TargetKind::DaemonSet
        }
        "job" | "jobs" | "job.batch" | "jobs.batch" => TargetKind::Job,
        "cj" | "cronjob" | "cronjobs" | "cronjob.batch" | "cronjobs.batch" => TargetKind::CronJob,
        "po" | "pod" | "pods" => TargetKind::Pod,
        _ => {
            return Err(invalid(
                "the kind must be deploy, sts, ds, job, cj or pod (or their full names)",
            ))
        }
    };
    if let Err(reason) = validate_dns1123_subdomain(name) {
        return Err(invalid(&format!("the name {reason}")));
    }
    Ok(TargetRef {
        kind,
        name: name.to_string(),
    })
}

/// Check a Kubernetes object name (DNS-1123 subdomain: at most 253
/// characters of lowercase letters, digits, '-' and '.', starting and
/// ending with a letter or digit). The error says what is wrong.
pub fn validate_dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if !name.chars().all(allowed) {
        return Err(
            "must consist of lower case letters, digits, '-' and '.' (e.g. web-7f3a2c)".into(),
        );
    }
    for label in name.split('.') {
        let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok_end(label.chars().next()) || !ok_end(label.chars().last()) {
            return Err("must start and end with a letter or digit".into());
        }
    }
    Ok(())
}

/// Longest base (before `-suffix`) of a derived name.
const MAX_BASE_LEN: usize = 40;

/// Derive an Incident name: the target's name if there is one, else the
/// title, turned into a DNS-1123 label (lowercase, runs of other characters
/// become '-', at most 40 characters, cut at a '-' where possible), then
/// `-` and `suffix`. Falls back to `incident-<suffix>`.
pub fn derive_name(target: Option<&TargetRef>, title: &str, suffix: &str) -> String {
    let source = target.map_or(title, |t| t.name.as_str());
    let mut slug = String::new();
    for c in source.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    if slug.len() > MAX_BASE_LEN {
        let cut = &slug[..MAX_BASE_LEN];
        slug = match cut.rfind('-') {
            Some(i) if i >= MAX_BASE_LEN / 2 => cut[..i].to_string(),
            _ => cut.to_string(),
        };
    }
    let slug = slug.trim_matches('-');
    let base = if slug.is_empty() { "incident" } else { slug };
    format!("{base}-{suffix}")
}

/// Six random lowercase hex digits for derived names.
pub fn random_suffix() -> String {
    format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-incident").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_declare_with_global_flags_anywhere() {
        let cli = parse(&[
            "-n",
            "shop",
            "declare",
            "--severity",
            "sev2",
            "--target",
            "deploy/web",
            "--as",
            "alice",
            "web",
            "is",
            "down",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.global.as_user.as_deref(), Some("alice"));
        let Command::Declare(d) = cli.command else {
            panic!("expected declare, got {:?}", cli.command)
        };
        assert_eq!(d.severity, Severity::SEV2);
        assert_eq!(
            d.target,
            Some(TargetRef {
                kind: TargetKind::Deployment,
                name: "web".into()
            })
        );
        assert_eq!(d.title_text(), "web is down");
        assert_eq!(d.name, None);
    }

    #[test]
    fn declare_requires_severity_and_title() {
        let e = parse(&["declare", "web is down"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let e = parse(&["declare", "--severity", "SEV2"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let e = parse(&["declare", "--severity", "SEV9", "x"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(e.to_string().contains("SEV9"), "{e}");
        let e = parse(&["declare", "--severity", "SEV2", "--target", "svc/web", "x"]).unwrap_err();
        assert!(
            e.to_string().contains("deploy, sts, ds, job, cj or pod"),
            "{e}"
        );
    }

    #[test]
    fn parses_list_flags() {
        let cli = parse(&["list", "-A", "--open", "-o", "json"]).unwrap();
        assert_eq!(
            cli.command,
            Command::List(ListArgs {
                all_namespaces: true,
                open: true,
                output: OutputFormat::Json
            })
        );
        let cli = parse(&["ls", "--context", "prod", "--kubeconfig", "/tmp/kc"]).unwrap();
        assert_eq!(cli.command, Command::List(ListArgs::default()));
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
        assert_eq!(cli.global.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert!(parse(&["list", "-o", "wide"]).is_err());
    }

    #[test]
    fn parses_approve_resolve_ack() {
        let cli = parse(&["approve", "inc-1"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Approve(ApproveArgs {
                name: "inc-1".into(),
                step: None
            })
        );
        let cli = parse(&["approve", "inc-1", "rollback"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Approve(ApproveArgs {
                name: "inc-1".into(),
                step: Some("rollback".into())
            })
        );
        let cli = parse(&["resolve", "inc-1", "--summary", "rolled back"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Resolve(ResolveArgs {
                name: "inc-1".into(),
                summary: "rolled back".into()
            })
        );
        assert!(
            parse(&["resolve", "inc-1"]).is_err(),
            "--summary is required"
        );
        let cli = parse(&["ack", "inc-1", "-n", "shop"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Ack(NameArgs {
                name: "inc-1".into()
            })
        );
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert!(parse(&["ack"]).is_err());
    }

    #[test]
    fn help_has_examples() {
        let mut cmd = Cli::command();
        let help = cmd.render_long_help().to_string();
        assert!(
            help.contains("kubectl incident list -n shop --open"),
            "{help}"
        );
        for sub in [
            "list",
            "describe",
            "declare",
            "ack",
            "approve",
            "resolve",
            "postmortem",
        ] {
            let mut cmd = Cli::command();
            let sc = cmd
                .find_subcommand_mut(sub)
                .unwrap_or_else(|| panic!("no subcommand {sub}"));
            let help = sc.render_long_help().to_string();
            assert!(
                help.contains(&format!("kubectl incident {sub}")),
                "help of {sub} has no example: {help}"
            );
        }
    }

    #[test]
    fn target_parsing() {
        let t = parse_target("deploy/web").unwrap();
        assert_eq!((t.kind, t.name.as_str()), (TargetKind::Deployment, "web"));
        let t = parse_target("deployment.apps/web").unwrap();
        assert_eq!(t.kind, TargetKind::Deployment);
        let t = parse_target("Pod/web-0").unwrap();
        assert_eq!((t.kind, t.name.as_str()), (TargetKind::Pod, "web-0"));
        assert!(parse_target("web").is_err());
        assert!(parse_target("deploy/").is_err());
        assert!(parse_target("deploy/Web").is_err());
        assert!(parse_target("deploy/web-").is_err());
        for (input, kind) in [
            ("sts/db", TargetKind::StatefulSet),
            ("statefulsets.apps/db", TargetKind::StatefulSet),
            ("ds/agent", TargetKind::DaemonSet),
            ("job/report", TargetKind::Job),
            ("CronJob/nightly", TargetKind::CronJob),
        ] {
            assert_eq!(parse_target(input).unwrap().kind, kind, "{input}");
        }
        assert!(parse_target("replicaset/web-7f").is_err());
        let e = parse_target("svc/web").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid --target \"svc/web\": the kind must be deploy, sts, ds, job, cj or pod (or their full names)"
        );
    }

    #[test]
    fn dns_names() {
        assert!(validate_dns1123_subdomain("web-7f3a2c").is_ok());
        assert!(validate_dns1123_subdomain("a.b").is_ok());
        assert!(validate_dns1123_subdomain("-a").is_err());
        assert!(validate_dns1123_subdomain("a..b").is_err());
        assert!(validate_dns1123_subdomain("a_b").is_err());
        assert!(validate_dns1123_subdomain(&"a".repeat(254)).is_err());
    }

    #[test]
    fn derived_names() {
        let web = TargetRef {
            kind: TargetKind::Deployment,
            name: "web".into(),
        };
        assert_eq!(derive_name(Some(&web), "anything", "abc123"), "web-abc123");
        assert_eq!(
            derive_name(None, "Checkout: 502s after deploy!", "abc123"),
            "checkout-502s-after-deploy-abc123"
        );
        assert_eq!(derive_name(None, "!!!", "abc123"), "incident-abc123");
        let long = derive_name(
            None,
            "payments are failing for every customer in every region since noon",
            "abc123",
        );
        assert_eq!(long, "payments-are-failing-for-every-customer-abc123");
        assert!(validate_dns1123_subdomain(&long).is_ok());
        let s = random_suffix();
        assert_eq!(s.len(), 6);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}

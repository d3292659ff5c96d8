//! Errors of the `kubectl-incident` plugin. Every variant renders as one
//! clear line; `main` prints it as `error: <line>` and exits 1.

/// Everything that can go wrong in a `kubectl incident` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The named Incident does not exist.
    #[error("incident {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// Incident name.
        name: String,
        /// Namespace searched.
        namespace: String,
    },
    /// The `incidents.kubeincident.io` resource is not served.
    #[error("the Incident CRD is not installed on this cluster (kubectl apply -f crds/)")]
    CrdNotInstalled,
    /// The API server could not be reached at all.
    #[error("cannot reach the Kubernetes API server at {url}: {reason}")]
    Unreachable {
        /// The server URL from the kubeconfig.
        url: String,
        /// The innermost transport error.
        reason: String,
    },
    /// The server answered something that is not what the API promises.
    #[error("unexpected answer from the Kubernetes API server at {url}: {reason}")]
    BadResponse {
        /// The server URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The kubeconfig could not be read or has no usable context.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// `--target` is not `deploy/NAME`, `deployment/NAME` or `pod/NAME`.
    #[error("invalid --target {input:?}: {reason}")]
    InvalidTarget {
        /// What the user wrote.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// `--name` (or a derived name) is not a valid object name.
    #[error("invalid incident name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// Some other invalid command-line value.
    #[error("{0}")]
    Usage(String),
    /// `declare` with a name that is taken.
    #[error("incident {name:?} already exists in namespace {namespace:?}")]
    AlreadyExists {
        /// Incident name.
        name: String,
        /// Namespace.
        namespace: String,
    },
    /// The API server refused the request for lack of permission.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The verified-approvals admission policy refused an acknowledgement,
    /// resolution or approval (the policy's message names what is missing).
    #[error("{0}")]
    Denied(String),
    /// Any other error answer of the API server.
    #[error("the API server answered {code}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// Neither the server, the kubeconfig nor `--as` named the caller.
    #[error("cannot tell who you are: the API server does not say and the kubeconfig context names no user; pass --as NAME")]
    NoIdentity,
    /// `approve NAME` without a step, and no step awaits approval.
    #[error("incident {name:?} has no step awaiting approval ({steps}); name one: kubectl incident approve {name} STEP")]
    NoStepAwaiting {
        /// Incident name.
        name: String,
        /// The steps and their states, for the message.
        steps: String,
    },
    /// `approve NAME` without a step, and several await approval.
    #[error("incident {name:?} has several steps awaiting approval ({steps}); name one: kubectl incident approve {name} STEP")]
    AmbiguousStep {
        /// Incident name.
        name: String,
        /// The candidate steps.
        steps: String,
    },
    /// `approve NAME STEP` with a step the Incident does not have.
    #[error("incident {name:?} has no mitigation step {step:?} (valid steps: {valid})")]
    UnknownStep {
        /// Incident name.
        name: String,
        /// The step asked for.
        step: String,
        /// The steps that exist.
        valid: String,
    },
    /// `approve` on an Automatic step.
    #[error("step {step:?} of incident {name:?} is Automatic: only Manual steps need approval")]
    NotManual {
        /// Incident name.
        name: String,
        /// The step.
        step: String,
    },
    /// `approve` on a step that already ran (or will not run).
    #[error(
        "step {step:?} of incident {name:?} is already {state}: there is nothing left to approve"
    )]
    StepFinal {
        /// Incident name.
        name: String,
        /// The step.
        step: String,
        /// Its final state.
        state: String,
    },
    /// The Incident changed between reading and writing it.
    #[error(
        "incident {name:?} changed while {action}; nothing was written, run the command again"
    )]
    Conflict {
        /// Incident name.
        name: String,
        /// What was being done (`approving step "x"`).
        action: String,
    },
    /// `postmortem` before the draft exists.
    #[error("incident {name:?} has no post-mortem draft yet (it is written once the incident is resolved)")]
    NoPostmortem {
        /// Incident name.
        name: String,
    },
    /// `status.postmortemRef` names a ConfigMap that is missing or lacks the key.
    #[error("the post-mortem ConfigMap {configmap:?} of incident {name:?} {problem}")]
    PostmortemUnreadable {
        /// Incident name.
        name: String,
        /// ConfigMap name.
        configmap: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Output could not be encoded.
    #[error("cannot encode the output: {0}")]
    Encode(String),
}

impl CliError {
    /// The message as exactly one line (server messages may contain newlines).
    pub fn one_line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// Collapse whitespace runs containing newlines into single spaces.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The innermost message of an error's `source()` chain (e.g. "Connection
/// refused (os error 111)" rather than "ServiceError: client error (Connect)").
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = CliError::Api {
            code: 500,
            message: "first\n  second".into(),
        };
        assert_eq!(e.one_line(), "the API server answered 500: first second");
        let e = CliError::NotFound {
            name: "x".into(),
            namespace: "shop".into(),
        };
        assert_eq!(
            e.one_line(),
            "incident \"x\" not found in namespace \"shop\""
        );
    }

    #[test]
    fn root_cause_walks_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(root_cause(&e), "connection refused");
    }
}

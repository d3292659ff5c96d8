//! The executor's errors (each is retried by the controller).

/// Errors of the executor; each is retried by the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to record the intent of mitigation {step:?} in incident {incident}: {source}")]
    RecordIntent {
        incident: String,
        step: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ExecutorRead",
            Error::RecordIntent { .. } => "RecordIntent",
        }
    }
}

/// Map a failed read of `what` to [`Error::Read`].
pub(super) fn read_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Read { what, source }
}
